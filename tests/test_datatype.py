"""The datatype engine against MPI itself: property tests over random nested MPI
datatypes and random strided views (baobab's pack is byte-identical to
MPI.Datatype.Pack, unpack inverts it), canonical forms of equivalent
constructions, and the errors for bad input."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpi4py import MPI

import baobab
from baobab import Datatype

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAMED = [MPI.BYTE, MPI.SHORT, MPI.INT, MPI.FLOAT, MPI.DOUBLE]


def mpi_pack(t, base_ptr, count, nbytes_out):
    """MPI's own MPI_Pack of `count` elements of t from the raw address base_ptr."""
    ext = t.Get_extent()[1]
    inbuf = MPI.buffer.fromaddress(base_ptr, ext * count) if count else MPI.buffer.fromaddress(base_ptr, 0)
    out = np.zeros(max(nbytes_out, 1), np.uint8)
    pos = t.Pack(inbuf, out, 0, MPI.COMM_SELF) if count else 0
    return out[:pos]


def mpi_unpack(t, packed, base_ptr, count):
    ext = t.Get_extent()[1]
    outbuf = MPI.buffer.fromaddress(base_ptr, ext * count)
    t.Unpack(packed, 0, outbuf, MPI.COMM_SELF)


@st.composite
def mpi_types(draw, depth=0):
    """A random committed-able nested datatype without overlaps or negative offsets."""
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(NAMED))
    old = draw(mpi_types(depth=depth + 1))
    ext = old.Get_extent()[1]
    kind = draw(st.sampled_from(["contiguous", "vector", "hvector", "indexed_block", "hindexed", "indexed",
                                 "subarray", "resized", "dup"]))
    if kind == "contiguous":
        return old.Create_contiguous(draw(st.integers(1, 4)))
    if kind == "vector":
        bl = draw(st.integers(1, 3))
        return old.Create_vector(draw(st.integers(1, 4)), bl, bl + draw(st.integers(0, 3)))
    if kind == "hvector":
        bl = draw(st.integers(1, 3))
        return old.Create_hvector(draw(st.integers(1, 4)), bl, bl * ext + draw(st.integers(0, 3)) * ext +
                                  draw(st.sampled_from([0, 1, 3])))
    if kind in ("indexed_block", "indexed", "hindexed"):
        n = draw(st.integers(1, 4))
        bls = [draw(st.integers(1, 3)) for _ in range(n)] if kind != "indexed_block" else [draw(st.integers(1, 3))] * n
        displs, at = [], draw(st.integers(0, 2))
        for b in bls:
            displs.append(at)
            at += b + draw(st.integers(0, 3))
        if kind == "indexed_block":
            return old.Create_indexed_block(bls[0], displs)
        if kind == "indexed":
            return old.Create_indexed(bls, displs)
        return old.Create_hindexed(bls, [d * ext for d in displs])
    if kind == "subarray":
        nd = draw(st.integers(1, 3))
        sizes = [draw(st.integers(1, 5)) for _ in range(nd)]
        subs = [draw(st.integers(1, s)) for s in sizes]
        starts = [draw(st.integers(0, s - u)) for s, u in zip(sizes, subs)]
        order = draw(st.sampled_from([MPI.ORDER_C, MPI.ORDER_FORTRAN]))
        return old.Create_subarray(sizes, subs, starts, order=order)
    if kind == "resized":
        lb, e = old.Get_extent()
        return old.Create_resized(lb, e + draw(st.integers(0, 3)) * max(old.Get_size(), 1))
    return old.Dup()


@SETTINGS
@given(mpi_types(), st.integers(1, 3), st.integers(0, 2**31))
def test_pack_matches_mpi_pack(t, count, seed):
    t = t.Dup().Commit()
    try:
        d = Datatype.from_mpi(t)
        lo, hi = d.span(count)
        assert lo >= 0
        rng = np.random.default_rng(seed)
        buf = rng.integers(0, 256, size=max(hi, 1), dtype=np.uint8)
        ours = d.pack(buf, count)
        ref = mpi_pack(t, buf.ctypes.data, count, t.Pack_size(count, MPI.COMM_SELF))
        assert ours.tobytes() == ref.tobytes(), d.describe()
        assert d.size == t.Get_size()
        # unpack inverts it, and writes exactly what MPI_Unpack writes
        mine = np.zeros_like(buf)
        theirs = np.zeros_like(buf)
        d.unpack(ours, mine, count)
        mpi_unpack(t, ref, theirs.ctypes.data, count)
        assert np.array_equal(mine, theirs)
        assert d.pack(mine, count).tobytes() == ours.tobytes()
    finally:
        t.Free()


@st.composite
def strided_views(draw):
    dtype = draw(st.sampled_from([np.int8, np.int16, np.float32, np.float64, np.complex128]))
    nd = draw(st.integers(1, 4))
    shape = [draw(st.integers(1, 6)) for _ in range(nd)]
    base = np.arange(int(np.prod(shape)) * 1, dtype=np.int64).astype(dtype).reshape(shape)
    index = []
    for n in shape:
        step = draw(st.sampled_from([1, 2, 3, -1, -2]))
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(0, n))
        index.append(slice(a, b, step) if step > 0 else slice(b if b < n else None, a if a > 0 else None, step))
    view = base[tuple(index)]
    if draw(st.booleans()):
        view = view.T
    if draw(st.integers(0, 4)) == 0 and view.size:  # a zero stride on the read side
        view = np.broadcast_to(view[..., :1], view.shape[:-1] + (draw(st.integers(1, 3)),))
    return view


def hvector_type_of(view):
    """The MPI datatype of a view: hvector nests of its element type (a
    descending dimension as hindexed_block with explicit displacements: Open
    MPI 4.1 builds a wrong type map for an hvector whose stride is minus its
    child's extent, see test_open_mpi_negative_stride_hvector_defect)."""
    t = MPI.BYTE.Create_contiguous(view.itemsize)
    for n, s in zip(reversed(view.shape), reversed(view.strides)):
        t2 = t.Create_hvector(n, 1, s) if s >= 0 else t.Create_hindexed_block(1, [k * s for k in range(n)])
        t.Free()
        t = t2
    return t.Commit()


def test_open_mpi_negative_stride_hvector_defect():
    """hvector(2, 1, -1) of one byte: the second byte lies BELOW the first. MPI
    must report lb = -1; Open MPI 4.1.4 reports lb = 0 and packs the byte above.
    baobab decodes the constructor (not MPI's type map), so its layout is right
    on every MPI; this test records which libraries get the type map wrong."""
    b = np.array([7, 5, 9], np.int8)
    t = MPI.BYTE.Create_hvector(2, 1, -1).Commit()
    try:
        d = Datatype.from_mpi(t)
        assert d.layout.true_lb == -1 and d.layout.size == 2
        ref = mpi_pack(t, b[1:].__array_interface__["data"][0], 1, 2)
        mpi_right = ref.tobytes() == bytes([5, 7])
        if MPI.Get_library_version().startswith("Open MPI v4"):
            assert t.lb == 0 or mpi_right  # the defect (or a fixed 4.x)
        else:
            assert t.lb == -1 and mpi_right
    finally:
        t.Free()


@SETTINGS
@given(strided_views())
def test_pack_of_views_matches_numpy_and_mpi(view):
    packed = baobab.pack(view)
    assert packed.flags.c_contiguous and packed.shape == view.shape
    assert np.array_equal(packed, np.ascontiguousarray(view))
    if view.size:
        t = hvector_type_of(view)
        try:
            ref = mpi_pack(t, view.__array_interface__["data"][0], 1, view.nbytes)
            assert packed.tobytes() == ref.tobytes()
        finally:
            t.Free()
        # unpack into a fresh array with the same strides: the inverse of pack
        layout = Datatype.from_array(view).layout
        mem = np.zeros(layout.true_ub - layout.true_lb, np.uint8)
        base = mem.ctypes.data - layout.true_lb
        out = np.ndarray(view.shape, view.dtype, buffer=memoryview(mem), offset=-layout.true_lb, strides=view.strides)
        assert out.__array_interface__["data"][0] == base
        if layout.overlaps():
            with pytest.raises(baobab.InvalidArgument, match="overlaps"):
                baobab.unpack(packed, out=out)
        else:
            baobab.unpack(packed, out=out)
            assert np.array_equal(out, view)


def test_unpack_inverts_pack_into_strided_views():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 9, 5))
    for index in [(slice(1, 6, 2), slice(None, None, -1), slice(0, 5, 3)), (Ellipsis, 2), (slice(None, None, -3),)]:
        view = a[index]
        packed = baobab.pack(view)
        b = np.zeros_like(a)
        baobab.unpack(packed, out=b[index])
        assert np.array_equal(b[index], view)
        mask = np.ones(a.shape, bool)
        mask[index] = False
        assert not b[mask].any()  # nothing else written


def test_equivalent_constructions_have_identical_canonical_forms():
    d = MPI.DOUBLE
    ext = 8
    forms = [
        d.Create_vector(4, 3, 6),
        d.Create_hvector(4, 3, 6 * ext),
        d.Create_indexed_block(3, [0, 6, 12, 18]),
        d.Create_hindexed([3] * 4, [0, 48, 96, 144]),
        d.Create_indexed([3] * 4, [0, 6, 12, 18]),
        d.Create_contiguous(3).Create_hvector(4, 1, 48),
        d.Create_vector(2, 3, 6).Create_hvector(2, 1, 96),
        d.Create_subarray([4, 6], [4, 3], [0, 0]).Create_resized(0, 168),
        d.Create_subarray([6, 4], [3, 4], [0, 0], order=MPI.ORDER_FORTRAN).Create_resized(0, 168),
        d.Create_vector(4, 3, 6).Dup(),
    ]
    canon = []
    for t in forms:
        t.Commit()
        canon.append(Datatype.from_mpi(t).canonical())
    assert all(c == canon[0] for c in canon), canon
    assert canon[0] == dict(kind="strided", start=0, counts=(24, 4), strides=(1, 48), size=96, lb=0, extent=168)
    # contiguous nests collapse to one dense run
    c1 = MPI.INT.Create_contiguous(3).Create_contiguous(5).Commit()
    c2 = MPI.INT.Create_vector(5, 3, 3).Commit()
    c3 = MPI.BYTE.Create_contiguous(60).Commit()
    assert Datatype.from_mpi(c1) == Datatype.from_mpi(c2) == Datatype.from_mpi(c3)
    assert Datatype.from_mpi(c1).canonical()["counts"] == (60,)
    # a view and the MPI type describing it agree
    a = np.zeros((4, 6))
    assert Datatype.from_array(a[:, :3]).canonical()["counts"] == (24, 4)
    for t in forms + [c1, c2, c3]:
        t.Free()


def test_irregular_layouts_keep_runs_and_cache():
    t = MPI.INT.Create_indexed([1, 2, 1], [0, 3, 9]).Commit()
    d = Datatype.from_mpi(t)
    assert d.kind == "runs" and d.canonical()["runs"] == ((0, 4), (12, 8), (36, 4))
    assert Datatype.from_mpi(t) == d  # second lookup from the attribute cache
    t.Free()


def test_fallback_types_use_mpi_packing_with_a_reason():
    t = MPI.DOUBLE.Create_darray(1, 0, [8], [MPI.DISTRIBUTE_BLOCK], [MPI.DISTRIBUTE_DFLT_DARG], [1]).Commit()
    d = Datatype.from_mpi(t)
    assert d.kind == "mpi" and "darray" in d.fallback
    buf = np.arange(8.0)
    assert np.array_equal(d.pack(buf).view(np.float64), buf)
    t.Free()
    d = Datatype.from_mpi(MPI.DOUBLE_INT)
    assert d.kind == "mpi" and "gaps" in d.fallback


def test_uncommitted_type_is_refused():
    t = MPI.DOUBLE.Create_vector(2, 1, 2)
    with pytest.raises(baobab.InvalidArgument, match="not committed"):
        Datatype.from_mpi(t)
    t.Free()


def test_bad_buffers():
    t = MPI.DOUBLE.Create_vector(3, 1, 4).Commit()
    d = Datatype.from_mpi(t)
    with pytest.raises(baobab.InvalidArgument, match=r"touch bytes \[0, 72\)"):
        d.pack(np.zeros(4))
    with pytest.raises(baobab.InvalidArgument, match="packed buffer holds 8 bytes"):
        d.unpack(np.zeros(1), np.zeros(20))
    ro = np.zeros(20)
    ro.flags.writeable = False
    with pytest.raises(baobab.InvalidArgument, match="read-only"):
        d.unpack(np.zeros(3), ro)
    t.Free()
    with pytest.raises(baobab.InvalidArgument, match="sizes do not match"):
        baobab.unpack(np.zeros(5), out=np.zeros((4, 4))[:, 1])
    with pytest.raises(baobab.InvalidArgument, match="overlaps itself"):
        baobab.unpack(np.zeros(4), out=np.lib.stride_tricks.as_strided(np.zeros(4), (4,), (0,)))
    with pytest.raises(baobab.InvalidArgument, match="mpi4py Datatype"):
        Datatype.from_mpi("MPI_DOUBLE")

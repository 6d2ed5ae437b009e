"""The geometry of an N-d halo exchange on a Cartesian communicator: which
slab of the field goes to (or comes from) which neighbour, with which tag.
Used by point-to-point (host fields) and the device path (cupy fields)."""
from . import _core
from ._buffers import interface


def halo_slabs(field, width, cart):
    """Per dimension d, the messages of its exchange: (view, peer, tag, is_recv)
    with the view a slab spanning the whole field in the other dimensions.
    Receives into the halos first, then sends of the layers next to them."""
    from mpi4py import MPI
    w = width
    plan = []
    for d in range(field.ndim):
        src, dst = cart.Shift(d, 1)
        n = field.shape[d]

        def slab(a, b):
            index = [slice(None)] * field.ndim
            index[d] = slice(a, b)
            return field[tuple(index)]
        ops = []
        if src != MPI.PROC_NULL:
            ops.append((slab(0, w), src, 2 * d, True))
        if dst != MPI.PROC_NULL:
            ops.append((slab(n - w, n), dst, 2 * d + 1, True))
            ops.append((slab(n - 2 * w, n - w), dst, 2 * d, False))
        if src != MPI.PROC_NULL:
            ops.append((slab(w, 2 * w), src, 2 * d + 1, False))
        plan.append(ops)
    return plan


def host_plan(field, width, cart):
    """halo_slabs as (offset from the field's pointer, layout, peer, tag,
    is_recv): the field's geometry only, so repeated exchanges reuse it."""
    base = field.__array_interface__["data"][0]
    plan = []
    for ops in halo_slabs(field, width, cart):
        row = []
        for v, peer, tag, is_recv in ops:
            ptr, shape, strides, itemsize, _ = interface(v)
            row.append((ptr - base, _core.layout_from_strides(itemsize, list(shape), list(strides)), peer, tag,
                        is_recv))
        plan.append(row)
    return plan

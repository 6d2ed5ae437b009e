"""Topology: detection inputs, the BAOBAB_TOPOLOGY grammar, Slurm addresses, errors."""
import pytest

import baobab
from baobab import _core


def topo(size, spec="", keys=None, addrs=None):
    keys = keys if keys is not None else [0] * size
    return _core.make_topology(size, keys, ["h%d" % k for k in keys], addrs or [""] * size, spec).as_dict()


def test_detected_nodes_follow_shared_memory_keys():
    t = topo(6, keys=[0, 0, 2, 2, 0, 2])  # round-robin-ish placement
    assert t["groups"][0] == [0, 0, 1, 1, 0, 1]
    assert t["local_rank"] == [0, 1, 0, 1, 2, 2]
    assert t["local_size"] == [3, 3, 3, 3, 3, 3]
    assert t["leaders"] == [0, 2]
    assert t["levels"] == 1


def test_nodes_even_split_gives_remainder_to_first_nodes():
    t = topo(5, "nodes=2")
    assert t["groups"][0] == [0, 0, 0, 1, 1]
    assert t["source"] == "BAOBAB_TOPOLOGY=nodes=2"


def test_uneven_groups():
    t = topo(6, "groups=3,1,2")
    assert t["groups"][0] == [0, 0, 0, 1, 2, 2]
    assert t["local_size"] == [3, 3, 3, 1, 2, 2]
    assert t["leaders"] == [0, 3, 4]


def test_multi_level_spec():
    t = topo(8, "switch=2,nodes=4")
    assert t["level_names"] == ["node", "switch"]
    assert t["groups"][0] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert t["groups"][1] == [0, 0, 0, 0, 1, 1, 1, 1]
    t = topo(6, "rack=1,2,groups=1,2,3")
    assert t["groups"][0] == [0, 1, 1, 2, 2, 2]
    assert t["groups"][1] == [0, 1, 1, 1, 1, 1]


def test_upper_level_over_detected_nodes():
    t = topo(4, "switch=2", keys=[0, 0, 2, 2])
    # 2 switches of 1 node each add nothing over the nodes: dropped
    assert t["levels"] == 1
    t = topo(8, "switch=2", keys=[0, 0, 2, 2, 4, 4, 6, 6])
    assert t["levels"] == 2 and t["groups"][1] == [0, 0, 0, 0, 1, 1, 1, 1]


def test_slurm_topology_address_adds_levels():
    addrs = ["s0.n1", "s0.n1", "s0.n2", "s1.n3", "s1.n4", "s1.n4"]
    t = topo(6, keys=[0, 0, 2, 3, 4, 4], addrs=addrs)
    assert t["level_names"] == ["node", "switch"]
    assert t["groups"][1] == [0, 0, 0, 1, 1, 1]
    assert "SLURM_TOPOLOGY_ADDR" in t["source"]


def test_link_levels():
    t = _core.make_topology(8, [0] * 8, ["h"] * 8, [""] * 8, "switch=2,nodes=4")
    assert t.link_level(0, 1) == 0
    assert t.link_level(0, 2) == 1
    assert t.link_level(0, 7) == 2


@pytest.mark.parametrize("spec, words", [
    ("nodes=0", "positive"),
    ("nodes=x", "positive"),
    ("nodes=5", "more groups"),
    ("groups=3,2", "add up to 5, but there are 4"),
    ("=2", "no name"),
    ("2", "NAME=VALUE"),
    ("switch=3,nodes=2", "more groups"),
    ("nodes=2,nodes=1", "given twice"),
])
def test_bad_specs_raise_invalid_argument(spec, words):
    with pytest.raises(baobab.InvalidArgument, match=words):
        topo(4, spec)

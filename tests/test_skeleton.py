from __future__ import annotations

import json
import random

import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import coalesce

from pyg_skeleton.skeleton import PRESET_DIR, Skeleton

PRESETS = {  # name: (num_joints, num_edges)
    "h36m17": (17, 16),
    "h36m16": (16, 15),
    "ntu25": (25, 24),
    "coco17": (17, 16),
    "smpl24": (24, 23),
    "mpi_inf_3dhp17": (17, 16),
}

H36M17_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]


def nx_hops(graph: nx.Graph, n: int) -> torch.Tensor:
    """Independent reference: networkx BFS, -1 where unreachable."""
    hops = torch.full((n, n), -1, dtype=torch.long)
    for i, lengths in nx.all_pairs_shortest_path_length(graph):
        for j, d in lengths.items():
            hops[i, j] = d
    return hops


def plain_graph(n, edges) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(edges)
    return graph


def random_parents(n: int, rng: random.Random) -> list[int]:
    """Random tree as a parents list, with the labels shuffled so that the
    root is not necessarily joint 0 and parents are not always smaller."""
    order = list(range(n))
    rng.shuffle(order)
    parents = [-1] * n
    for k in range(1, n):
        parents[order[k]] = order[rng.randrange(k)]
    return parents


def mirror_name(name: str) -> str:
    for left, right in [("left_", "right_"), ("L", "R")]:
        if name.startswith(left):
            return right + name[len(left):]
        if name.startswith(right):
            return left + name[len(right):]
    return name


# ----------------------------------------------------------------- presets


def test_presets_listed():
    assert Skeleton.presets() == sorted(PRESETS)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_sizes(name):
    skeleton = Skeleton.preset(name)
    assert skeleton.name == name
    assert (skeleton.num_joints, skeleton.num_edges) == PRESETS[name]
    assert skeleton.edges.shape == (skeleton.num_edges, 2)
    assert skeleton.edge_index.shape == (2, 2 * skeleton.num_edges)
    assert len(skeleton.joint_names) == skeleton.num_joints
    # All presets are trees, so every one has a parents list.
    assert skeleton.parents is not None and skeleton.parents.count(-1) == 1


def test_nnz_with_self_loops():
    for name, nnz in [("h36m17", 49), ("h36m16", 46)]:
        skeleton = Skeleton.preset(name)
        dense = torch.zeros(skeleton.num_joints, skeleton.num_joints)
        dense[skeleton.edge_index[0], skeleton.edge_index[1]] = 1
        dense += torch.eye(skeleton.num_joints)
        assert int((dense != 0).sum()) == nnz


def test_preset_contents():
    h36m17 = Skeleton.preset("h36m17")
    assert h36m17.parents == H36M17_PARENTS
    assert h36m17.root == 0 and h36m17.centre == 7
    assert h36m17.joint_names[9] == "Neck/Nose"
    assert h36m17.flip_pairs == [(1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16)]
    assert h36m17.groups == [[2, 3], [5, 6], [1, 4], [0, 7], [8, 9, 10], [15, 16], [12, 13],
                             [11, 14]]

    h36m16 = Skeleton.preset("h36m16")
    assert h36m16.parents == [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 10, 11, 8, 13, 14]
    assert h36m16.groups == [[2, 3], [5, 6], [1, 4], [0, 7], [8, 9], [14, 15], [11, 12],
                             [10, 13]]

    # NTU: edges given 1-based in the reference table.
    ntu = Skeleton.preset("ntu25")
    one_based = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21),
                 (10, 9), (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1),
                 (18, 17), (19, 18), (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]
    expected = sorted((min(a, b) - 1, max(a, b) - 1) for a, b in one_based)
    assert ntu.edges.tolist() == [list(e) for e in expected]
    assert ntu.centre == 20 and ntu.joint_names[20] == "spine_shoulder"
    assert ntu.root == 0
    assert ntu.flip_pairs == [(4, 8), (5, 9), (6, 10), (7, 11), (12, 16), (13, 17), (14, 18),
                              (15, 19), (21, 23), (22, 24)]

    assert Skeleton.preset("coco17").parents == [-1, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11,
                                                 12, 13, 14]
    smpl = Skeleton.preset("smpl24")
    assert smpl.joint_names[smpl.centre] == "spine2"
    mpi = Skeleton.preset("mpi_inf_3dhp17")
    assert mpi.root == 14 and mpi.joint_names[mpi.root] == "pelvis"
    assert mpi.joint_names[mpi.centre] == "spine"


def test_preset_files_have_source():
    for name in PRESETS:
        path = PRESET_DIR / f"{name}.json"
        d = json.loads(path.read_text())
        assert isinstance(d["source"], str) and d["source"]
        assert d["name"] == name


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown skeleton preset 'nope'"):
        Skeleton.preset("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_flip_by_name(name):
    skeleton = Skeleton.preset(name)
    names = skeleton.joint_names
    perm = skeleton.flip_permutation
    assert torch.equal(perm[perm], torch.arange(skeleton.num_joints))  # involution
    for i, j in enumerate(perm.tolist()):
        assert names[j] == mirror_name(names[i]), (names[i], names[j])
    # Every left-named joint has a partner, i.e. no pair was forgotten.
    assert sum(names[i] != names[j] for i, j in enumerate(perm.tolist())) == \
        2 * len(skeleton.flip_pairs)
    pose = torch.randn(4, skeleton.num_joints, 3)
    assert torch.equal(skeleton.flip(skeleton.flip(pose)), pose)


def test_flip_names_h36m():
    skeleton = Skeleton.preset("h36m17")
    names = skeleton.joint_names
    perm = skeleton.flip_permutation
    assert names[perm[names.index("LHip")]] == "RHip"
    assert names[perm[names.index("RWrist")]] == "LWrist"
    assert names[perm[names.index("Spine")]] == "Spine"


# -------------------------------------------------------------- edge_index


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_edge_index(name):
    skeleton = Skeleton.preset(name)
    ei = skeleton.edge_index
    assert ei.dtype == torch.long
    assert not (ei[0] == ei[1]).any()
    pairs = set(map(tuple, ei.t().tolist()))
    assert len(pairs) == ei.size(1)  # no duplicates
    assert pairs == {(j, i) for i, j in pairs}  # symmetric
    shuffled = ei[:, torch.randperm(ei.size(1))]
    assert torch.equal(coalesce(shuffled, num_nodes=skeleton.num_joints), ei)
    # edges: i < j, lexicographic, the same undirected set.
    edges = skeleton.edges
    assert (edges[:, 0] < edges[:, 1]).all()
    assert edges.tolist() == sorted(edges.tolist())
    assert {tuple(e) for e in edges.tolist()} == {(i, j) for i, j in pairs if i < j}


# ----------------------------------------------------------- hop distances


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_hop_distance_presets(name):
    skeleton = Skeleton.preset(name)
    graph = plain_graph(skeleton.num_joints, skeleton.edges.tolist())
    expected = nx_hops(graph, skeleton.num_joints)
    assert torch.equal(skeleton.hop_distance, expected)
    assert skeleton.max_hop == nx.diameter(graph)


def test_max_hop_values():
    # Values are networkx's diameters (checked above), written out for the record.
    expected = {"h36m17": 8, "h36m16": 8, "ntu25": 12, "coco17": 8, "smpl24": 12,
                "mpi_inf_3dhp17": 8}
    for name, value in expected.items():
        skeleton = Skeleton.preset(name)
        assert value == nx.diameter(skeleton.to_networkx())
        assert skeleton.max_hop == value


def test_hop_distance_random_trees():
    rng = random.Random(0)
    for n in [1, 2, 3, 10, 40]:
        parents = random_parents(n, rng)
        skeleton = Skeleton.from_parents(parents)
        graph = plain_graph(n, [(i, p) for i, p in enumerate(parents) if p >= 0])
        assert torch.equal(skeleton.hop_distance, nx_hops(graph, n))


def test_hop_distance_random_graphs():
    rng = random.Random(1)
    for n, m in [(8, 12), (20, 35), (30, 80)]:
        graph = nx.gnm_random_graph(n, m, seed=rng.randrange(10**6))
        # Add a random spanning tree so the graph is connected.
        parents = random_parents(n, rng)
        graph.add_edges_from((i, p) for i, p in enumerate(parents) if p >= 0)
        skeleton = Skeleton.from_edges(list(graph.edges()), n)
        assert skeleton.parents is None  # not a tree
        assert torch.equal(skeleton.hop_distance, nx_hops(graph, n))
        assert skeleton.max_hop == nx.diameter(graph)


def test_hop_distance_disconnected():
    edges = [(0, 1), (1, 2), (3, 4)]
    skeleton = Skeleton(6, edges, require_connected=False)
    expected = nx_hops(plain_graph(6, edges), 6)
    assert torch.equal(skeleton.hop_distance, expected)
    assert skeleton.hop_distance[0, 3] == -1 and skeleton.hop_distance[5, 5] == 0
    assert skeleton.max_hop == 2
    assert skeleton.parents is None and skeleton.root is None


def test_hop_distance_is_cached_and_safe_to_modify():
    skeleton = Skeleton.preset("h36m16")
    hops = skeleton.hop_distance
    hops.fill_(0)
    assert skeleton.hop_distance.max() > 0


# ---------------------------------------------------------------- builders


def test_from_edges_derives_parents():
    rng = random.Random(2)
    for n in [2, 5, 17, 30]:
        parents = random_parents(n, rng)
        edges = [(i, p) if rng.random() < 0.5 else (p, i) for i, p in enumerate(parents)
                 if p >= 0]
        rng.shuffle(edges)
        skeleton = Skeleton.from_edges(edges, n, root=parents.index(-1))
        assert skeleton.parents == parents
        assert skeleton == Skeleton.from_parents(parents)


def test_from_edges_default_root_and_inferred_size():
    h36m = Skeleton.preset("h36m17")
    skeleton = Skeleton.from_edges(h36m.edges.flip(1).tolist())
    assert skeleton.num_joints == 17
    assert skeleton.parents == H36M17_PARENTS and skeleton.root == 0


def test_from_edges_rerooted():
    skeleton = Skeleton.from_edges([(0, 1), (1, 2)], root=2)
    assert skeleton.parents == [1, 2, -1]
    assert skeleton.root == 2


def test_from_parents_edges_are_bones():
    skeleton = Skeleton.from_parents(H36M17_PARENTS)
    expected = sorted((min(c, p), max(c, p)) for c, p in enumerate(H36M17_PARENTS) if p >= 0)
    assert [tuple(e) for e in skeleton.edges.tolist()] == expected
    assert skeleton.joint_names == [f"joint_{i}" for i in range(17)]


def test_bones():
    bones = Skeleton.preset("h36m17").bones()
    assert bones.dtype == torch.long
    assert bones.tolist() == [[c, H36M17_PARENTS[c]] for c in range(1, 17)]
    cycle = Skeleton(4, [(0, 1), (1, 2), (2, 3), (3, 0)])
    assert torch.equal(cycle.bones(), cycle.edges)


def test_networkx_round_trip():
    for name in PRESETS:
        skeleton = Skeleton.preset(name)
        graph = skeleton.to_networkx()
        assert list(graph.nodes) == list(range(skeleton.num_joints))
        assert [graph.nodes[i]["name"] for i in graph.nodes] == skeleton.joint_names
        assert graph.number_of_edges() == skeleton.num_edges
        back = Skeleton.from_networkx(graph, root=skeleton.root, flip_pairs=skeleton.flip_pairs,
                                      centre=skeleton.centre, groups=skeleton.groups)
        assert back == skeleton
        assert back.name == name


def test_from_networkx_string_labels():
    graph = nx.Graph()
    # Node order is the joint order, whatever order the edges come in.
    graph.add_nodes_from(["pelvis", "left_hip", "right_hip", "spine", "head"])
    graph.add_edges_from([("spine", "head"), ("pelvis", "left_hip"), ("pelvis", "right_hip"),
                          ("pelvis", "spine")])
    skeleton = Skeleton.from_networkx(graph, root="pelvis",
                                      flip_pairs=[("left_hip", "right_hip")],
                                      centre="spine", groups=[["pelvis", 3], [1, 2], ["head"]],
                                      name="tiny")
    assert skeleton.joint_names == ["pelvis", "left_hip", "right_hip", "spine", "head"]
    assert skeleton.parents == [-1, 0, 0, 0, 3]
    assert skeleton.flip_pairs == [(1, 2)]
    assert skeleton.centre == 3
    assert skeleton.groups == [[0, 3], [1, 2], [4]]
    assert skeleton.name == "tiny"
    # A root other than the first node.
    assert Skeleton.from_networkx(graph, root="head").parents == [3, 0, 0, 4, -1]


def test_from_networkx_int_labels_keep_node_order():
    graph = nx.Graph()
    graph.add_nodes_from([10, 20, 30])
    graph.add_edges_from([(30, 10), (10, 20)])
    skeleton = Skeleton.from_networkx(graph, centre=30)
    assert skeleton.edges.tolist() == [[0, 1], [0, 2]]
    assert skeleton.centre == 2
    assert skeleton.joint_names == ["joint_0", "joint_1", "joint_2"]


def test_dict_and_file_round_trip(tmp_path):
    for name in PRESETS:
        skeleton = Skeleton.preset(name)
        assert Skeleton.from_dict(skeleton.to_dict()) == skeleton
        path = tmp_path / f"{name}.json"
        skeleton.save(path)
        assert Skeleton.load(path) == skeleton
        # The saved file is plain JSON in the preset schema.
        d = json.loads(path.read_text())
        assert d["joint_names"] == skeleton.joint_names and "parents" in d
    cyclic = Skeleton(4, [(0, 1), (1, 2), (2, 3), (3, 0)], flip_pairs=[(1, 3)], name="ring")
    assert "edges" in cyclic.to_dict() and "parents" not in cyclic.to_dict()
    assert Skeleton.from_dict(cyclic.to_dict()) == cyclic
    split = Skeleton(4, [(0, 1), (2, 3)], require_connected=False)
    split.save(tmp_path / "split.json")
    assert Skeleton.load(tmp_path / "split.json") == split


def test_user_defined_skeleton(tmp_path):
    # A new layout needs only data: a 5-joint "star" with a left/right pair.
    path = tmp_path / "star.json"
    path.write_text(json.dumps({
        "name": "star", "source": "test",
        "joint_names": ["body", "left_arm", "right_arm", "left_leg", "right_leg"],
        "parents": [-1, 0, 0, 0, 0],
        "flip_pairs": [[1, 2], [3, 4]], "centre": 0,
        "groups": [[0], [1, 2], [3, 4]],
    }))
    skeleton = Skeleton.load(path)
    assert repr(skeleton) == "Skeleton('star', num_joints=5, num_edges=4)"
    assert skeleton.max_hop == 2
    assert skeleton.flip_permutation.tolist() == [0, 2, 1, 4, 3]
    data = skeleton.to_data(x=torch.randn(5, 2))
    assert data.num_nodes == 5 and data.x.shape == (5, 2)
    assert skeleton == Skeleton.from_edges([(0, 1), (0, 2), (0, 3), (0, 4)],
                                           joint_names=skeleton.joint_names,
                                           flip_pairs=[(2, 1), (4, 3)], centre=0,
                                           groups=[[0], [1, 2], [3, 4]], name="other")


def test_equality():
    a = Skeleton.preset("h36m17")
    b = Skeleton.from_parents(H36M17_PARENTS, joint_names=a.joint_names,
                              flip_pairs=a.flip_pairs, centre=7, groups=a.groups)
    assert a == b  # the name is not part of equality
    assert a != Skeleton.from_parents(H36M17_PARENTS, joint_names=a.joint_names,
                                      flip_pairs=a.flip_pairs, centre=8, groups=a.groups)
    assert a != Skeleton.from_parents(H36M17_PARENTS)
    assert a != Skeleton.preset("coco17")
    assert a != "h36m17"


def test_repr_without_name():
    assert repr(Skeleton(2, [(0, 1)])) == "Skeleton(num_joints=2, num_edges=1)"


# -------------------------------------------------------------------- flip


def naive_flip(pose, pairs, lateral_axis):
    out = pose.clone()
    for a, b in pairs:
        out[..., a, :] = pose[..., b, :]
        out[..., b, :] = pose[..., a, :]
    if lateral_axis is not None:
        out[..., lateral_axis] = -out[..., lateral_axis]
    return out


@pytest.mark.parametrize("name", ["h36m17", "ntu25", "smpl24"])
def test_flip_against_naive_loop(name):
    skeleton = Skeleton.preset(name)
    pose = torch.randn(5, skeleton.num_joints, 3)
    pairs = skeleton.flip_pairs
    assert torch.equal(skeleton.flip(pose), naive_flip(pose, pairs, 0))
    assert torch.equal(skeleton.flip(pose, lateral_axis=None), naive_flip(pose, pairs, None))
    assert torch.equal(skeleton.flip(pose, lateral_axis=2), naive_flip(pose, pairs, 2))
    # Any leading dimensions, and no batch dimension at all.
    pose4 = torch.randn(2, 3, skeleton.num_joints, 2)
    assert torch.equal(skeleton.flip(pose4), naive_flip(pose4, pairs, 0))
    assert torch.equal(skeleton.flip(pose[0]), naive_flip(pose[0], pairs, 0))


def test_flip_is_differentiable():
    skeleton = Skeleton.preset("h36m16")
    pose = torch.randn(2, 16, 3, requires_grad=True)
    skeleton.flip(pose).sum().backward()
    expected = torch.ones(2, 16, 3)
    expected[..., 0] = -1
    assert torch.equal(pose.grad, expected)


def test_flip_validation():
    skeleton = Skeleton.preset("h36m17")
    with pytest.raises(ValueError, match=r"expected pose of shape \[\.\.\., 17, C\]"):
        skeleton.flip(torch.randn(2, 16, 3))
    with pytest.raises(ValueError, match="expected pose of shape"):
        skeleton.flip(torch.randn(17))
    with pytest.raises(ValueError, match="lateral_axis 3 is out of range for 3 coordinates"):
        skeleton.flip(torch.randn(2, 17, 3), lateral_axis=3)


# ------------------------------------------------------------------- PyG


def test_to_data_and_batch():
    skeleton = Skeleton.preset("h36m16")
    x = torch.randn(16, 2)
    data = skeleton.to_data(x=x)
    assert isinstance(data, Data)
    assert torch.equal(data.edge_index, skeleton.edge_index)
    assert data.num_nodes == 16 and torch.equal(data.x, x)
    assert skeleton.to_data().num_nodes == 16
    batch = Batch.from_data_list([data, data, data])
    ei = skeleton.edge_index
    assert torch.equal(batch.edge_index, torch.cat([ei, ei + 16, ei + 32], dim=1))
    assert batch.num_nodes == 48


# ------------------------------------------------------------ validation


@pytest.mark.parametrize("parents, match", [
    ([-1, 2, 3, 1], r"cycle through joints \[1, 2, 3\]"),
    ([-1, 1], r"cycle through joints \[1\]"),
    ([-1, 0, 5], "parent of joint 2 is 5, outside"),
    ([-1, -2], "parent of joint 1 is -2, outside"),
    ([1, 0], "no root"),
    ([-1, 0, -1], r"several roots \(joints \[0, 2\]\)"),
])
def test_bad_parents(parents, match):
    with pytest.raises(ValueError, match=match):
        Skeleton.from_parents(parents)


def test_bad_parents_in_constructor():
    with pytest.raises(ValueError, match="parents has 2 entries but num_joints is 3"):
        Skeleton(3, [(0, 1), (1, 2)], parents=[-1, 0])
    with pytest.raises(ValueError, match="parents do not describe the same edges"):
        Skeleton(3, [(0, 1), (1, 2)], parents=[-1, 0, 0])


def test_bad_joint_names():
    with pytest.raises(ValueError, match="duplicate joint name 'hip'"):
        Skeleton.from_parents([-1, 0, 0], joint_names=["root", "hip", "hip"])
    with pytest.raises(ValueError, match="expected 3 joint names, got 2"):
        Skeleton.from_parents([-1, 0, 0], joint_names=["root", "hip"])


@pytest.mark.parametrize("edges, match", [
    ([(0, 1), (2, 2)], r"edge \(2, 2\) is a self-loop"),
    ([(0, 1), (1, 3)], r"edge \(1, 3\) has an index outside \[0, 3\)"),
    ([(0, 1), (-1, 2)], r"edge \(-1, 2\) has an index outside"),
    ([(0, 1), (1, 2), (2, 1)], r"duplicate edge \(1, 2\)"),
    ([(0, 1), (1, 2), (0, 1)], r"duplicate edge \(0, 1\)"),
    ([(0, 1, 2)], "each edge must be a pair"),
])
def test_bad_edges(edges, match):
    with pytest.raises(ValueError, match=match):
        Skeleton(3, edges)


@pytest.mark.parametrize("flip_pairs, match", [
    ([(1, 5)], r"flip pair \(1, 5\) has an index outside \[0, 4\)"),
    ([(2, 2)], r"flip pair \(2, 2\) pairs joint 2 with itself"),
    ([(1, 2), (2, 3)], "joint 2 appears in more than one flip pair"),
    ([(1, 2), (1, 2)], "joint 1 appears in more than one flip pair"),
])
def test_bad_flip_pairs(flip_pairs, match):
    with pytest.raises(ValueError, match=match):
        Skeleton.from_parents([-1, 0, 0, 0], flip_pairs=flip_pairs)


def test_bad_centre():
    with pytest.raises(ValueError, match=r"centre 4 is outside \[0, 4\)"):
        Skeleton.from_parents([-1, 0, 0, 0], centre=4)
    with pytest.raises(ValueError, match=r"centre -1 is outside"):
        Skeleton.from_parents([-1, 0, 0, 0], centre=-1)


@pytest.mark.parametrize("groups, match", [
    ([[0, 1], [2]], "joint 3 is in no group"),
    ([[0, 1], [1, 2, 3]], "joint 1 is in more than one group"),
    ([[0, 1], [2, 3, 7]], r"joint 7 is outside \[0, 4\)"),
])
def test_bad_groups(groups, match):
    with pytest.raises(ValueError, match="groups must partition the joints: " + match):
        Skeleton.from_parents([-1, 0, 0, 0], groups=groups)


def test_unequal_groups_allowed():
    skeleton = Skeleton.from_parents([-1, 0, 0, 0, 1], groups=[[0], [1, 2, 3, 4]])
    assert skeleton.groups == [[0], [1, 2, 3, 4]]


def test_disconnected():
    with pytest.raises(ValueError, match="disconnected: joint 2 cannot be reached from joint 0"):
        Skeleton(4, [(0, 1), (2, 3)])
    with pytest.raises(ValueError, match="disconnected: joint 3 cannot"):
        Skeleton.from_edges([(0, 1), (1, 2)], 4)
    assert Skeleton(4, [(0, 1), (2, 3)], require_connected=False).num_edges == 2


def test_directed_networkx_rejected():
    graph = nx.DiGraph([(0, 1), (1, 2)])
    with pytest.raises(ValueError, match=r"directed; convert it with graph.to_undirected\(\)"):
        Skeleton.from_networkx(graph)
    assert Skeleton.from_networkx(graph.to_undirected()).num_edges == 2


def test_bad_networkx_inputs():
    graph = nx.Graph([("a", "b"), ("b", "c")])
    with pytest.raises(ValueError, match="unknown joint 'd'"):
        Skeleton.from_networkx(graph, flip_pairs=[("a", "d")])
    graph.add_edge("c", "c")
    with pytest.raises(ValueError, match=r"edge \(2, 2\) is a self-loop"):
        Skeleton.from_networkx(graph)


def test_bad_from_edges_inputs():
    with pytest.raises(ValueError, match=r"root 3 is outside \[0, 3\)"):
        Skeleton.from_edges([(0, 1), (1, 2)], root=3)
    with pytest.raises(ValueError, match="cannot infer num_joints"):
        Skeleton.from_edges([])
    with pytest.raises(ValueError, match="num_joints must be positive"):
        Skeleton(0, [])


def test_bad_dicts():
    d = Skeleton.preset("coco17").to_dict()
    with pytest.raises(ValueError, match=r"unknown skeleton key\(s\) \['parent'\]"):
        Skeleton.from_dict({**d, "parent": d["parents"]})
    with pytest.raises(ValueError, match="exactly one of 'parents' and 'edges'"):
        Skeleton.from_dict({**d, "edges": [[0, 1]]})
    no_structure = {k: v for k, v in d.items() if k != "parents"}
    with pytest.raises(ValueError, match="exactly one of 'parents' and 'edges'"):
        Skeleton.from_dict(no_structure)

"""Skeleton layouts as data: joints, bones, left/right pairs and graph views.

A :class:`Skeleton` is built from a parents list, an edge list, a
:class:`networkx.Graph` or a JSON file, so a new layout never needs a change
to the library. The layouts shipped with the package live in
``pyg_skeleton/data/skeletons/<name>.json`` and load with
:meth:`Skeleton.preset`.
"""

from __future__ import annotations

import copy
import json
import operator
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

from pyg_skeleton.utils import check_partition, hop_counts

PRESET_DIR = Path(__file__).parent / "data" / "skeletons"

# Keys a skeleton dict (and so a JSON file) may carry; "source" only documents
# where a layout comes from and is not part of the skeleton itself.
_DICT_KEYS = {
    "name", "joint_names", "parents", "edges", "root", "flip_pairs", "centre",
    "groups", "require_connected", "source", "body_map",
}


def _as_int(value: Any, what: str) -> int:
    # int() would truncate 1.5 to 1 and accept "3"; take integers and
    # integral floats (JSON may write 2.0) only.
    if isinstance(value, (bool, str, bytes)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if not number.is_integer():
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return int(number)


def _edge_tensor(edges: Iterable[Sequence[int]]) -> Tensor:
    pairs = [tuple(_as_int(v, "an edge index") for v in edge) for edge in edges]
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"each edge must be a pair (i, j), got {pair}")
    return torch.tensor(pairs, dtype=torch.long).reshape(-1, 2)


def _check_parents(parents: list[int], num_joints: int, forest: bool = False) -> None:
    if len(parents) != num_joints:
        raise ValueError(f"parents has {len(parents)} entries but num_joints is {num_joints}")
    for joint, parent in enumerate(parents):
        if not -1 <= parent < num_joints:
            raise ValueError(f"parent of joint {joint} is {parent}, outside [-1, {num_joints})")
    roots = [joint for joint, parent in enumerate(parents) if parent == -1]
    if not roots:
        raise ValueError("parents has no root: exactly one joint must have parent -1")
    if len(roots) > 1 and not forest:
        raise ValueError(f"parents has several roots (joints {roots}): exactly one joint must "
                         "have parent -1 (pass require_connected=False for a forest, e.g. "
                         "several persons)")
    # Walk up from every joint; `reaches_root` memoises finished walks so the
    # whole check is linear in the number of joints.
    reaches_root = {-1}
    for joint in range(num_joints):
        path: dict[int, int] = {}
        node = joint
        while node not in reaches_root:
            if node in path:
                cycle = list(path)[path[node]:]
                raise ValueError(f"parents contain a cycle through joints {cycle}")
            path[node] = len(path)
            node = parents[node]
        reaches_root.update(path)


class Skeleton:
    r"""A human skeleton (or any small fixed graph) described as data.

    Joints are numbered :obj:`0..num_joints-1`. The graph is undirected and
    stored once in canonical form (:obj:`i < j`, sorted); :attr:`edge_index`
    gives the PyG view with both directions. A skeleton that is a tree also
    carries a :attr:`parents` list, used for bone vectors.

    .. code-block:: python

        skeleton = Skeleton.preset("h36m17")
        data = skeleton.to_data(x=pose_2d)            # Data(edge_index, x)
        flipped = skeleton.flip(pose_3d)               # left/right mirror

        custom = Skeleton.from_parents([-1, 0, 1, 0, 3],
                                       flip_pairs=[(1, 3), (2, 4)])

    Args:
        num_joints (int): Number of joints :obj:`N`.
        edges (iterable of (int, int)): Undirected edges. Each edge may be
            given in either direction, but only once.
        joint_names (sequence of str, optional): One unique name per joint.
            Defaults to :obj:`"joint_0"`, :obj:`"joint_1"`, ...
        parents (sequence of int, optional): Parent of every joint, :obj:`-1`
            for the single root (for every root of a forest, *e.g.* several
            persons, with :obj:`require_connected=False`). Must describe
            exactly :obj:`edges`. If not
            given and the graph is a tree, parents are derived from a
            breadth-first search rooted at joint 0
            (see :meth:`from_edges` for another root).
        flip_pairs (iterable of (int, int), optional): Left/right joint pairs
            swapped by :meth:`flip`. Stored as :obj:`(min, max)`, sorted.
        centre (int, optional): Centre joint (e.g. the spine for
            spatial partitioning). (default: :obj:`None`)
        groups (sequence of sequence of int, optional): A partition of the
            joints (each joint exactly once, groups of any size), e.g. for
            grouped key pooling in non-local blocks. (default: :obj:`None`)
        name (str, optional): Name of the layout. (default: :obj:`None`)
        require_connected (bool, optional): If :obj:`True`, reject a graph in
            which some joint cannot be reached from joint 0.
            (default: :obj:`True`)

    Raises:
        ValueError: If any of the inputs is inconsistent; the message names
            the offending joint, edge, pair or name.
    """

    def __init__(
        self,
        num_joints: int,
        edges: Iterable[tuple[int, int]],
        *,
        joint_names: Sequence[str] | None = None,
        parents: Sequence[int] | None = None,
        flip_pairs: Iterable[tuple[int, int]] = (),
        centre: int | None = None,
        groups: Sequence[Sequence[int]] | None = None,
        name: str | None = None,
        require_connected: bool = True,
    ):
        num_joints = _as_int(num_joints, "num_joints")
        if num_joints < 1:
            raise ValueError(f"num_joints must be positive, got {num_joints}")
        self._num_joints = num_joints
        self._name = name

        # Parents are checked before the edges so that a bad parents list is
        # reported as such, not as a bad edge derived from it.
        if parents is not None:
            parents = [_as_int(p, f"parent of joint {i}") for i, p in enumerate(parents)]
            _check_parents(parents, num_joints, forest=not require_connected)

        self._edges = self._canonical_edges(_edge_tensor(edges))
        self._edge_index = to_undirected(self._edges.t(), num_nodes=num_joints)
        self._hop: Tensor | None = None

        if joint_names is None:
            joint_names = [f"joint_{i}" for i in range(num_joints)]
        joint_names = list(joint_names)
        for joint_name in joint_names:
            if not isinstance(joint_name, str):
                raise ValueError(f"joint names must be strings, got {joint_name!r}")
        if len(joint_names) != num_joints:
            raise ValueError(f"expected {num_joints} joint names, got {len(joint_names)}")
        duplicates = [n for n, count in Counter(joint_names).items() if count > 1]
        if duplicates:
            raise ValueError(f"duplicate joint name {duplicates[0]!r}")
        self._joint_names = joint_names

        unreachable = (self._hops_from(torch.tensor([0]))[0] < 0).nonzero().flatten().tolist()
        self._connected = not unreachable
        if require_connected and unreachable:
            raise ValueError(f"skeleton is disconnected: joint {unreachable[0]} cannot be reached "
                             "from joint 0 (pass require_connected=False to allow this)")

        if parents is not None:
            bones = _edge_tensor((i, p) for i, p in enumerate(parents) if p >= 0)
            if not torch.equal(self._canonical_edges(bones), self._edges):
                raise ValueError("parents do not describe the same edges as `edges`")
        elif self._connected and self.num_edges == num_joints - 1:
            parents = self._tree_parents(0)
        self._parents = parents

        self._flip_pairs = self._check_flip_pairs(flip_pairs)

        if centre is not None:
            centre = _as_int(centre, "centre")
            if not 0 <= centre < num_joints:
                raise ValueError(f"centre {centre} is outside [0, {num_joints})")
        self._centre = centre

        if groups is not None:
            groups = [[_as_int(j, "a group's joint") for j in group] for group in groups]
            groups = check_partition(groups, num_joints, node="joint")
        self._groups = groups
        # set by from_dict from a "body_map" (synthetic poses of a custom skeleton)
        self._body_map: dict[str, Any] | None = None

    # ------------------------------------------------------------------ build

    @classmethod
    def from_parents(
        cls,
        parents: Sequence[int],
        *,
        joint_names: Sequence[str] | None = None,
        flip_pairs: Iterable[tuple[int, int]] = (),
        centre: int | None = None,
        groups: Sequence[Sequence[int]] | None = None,
        name: str | None = None,
        require_connected: bool = True,
    ) -> Skeleton:
        r"""Builds a tree skeleton from a parents list.

        Args:
            parents (sequence of int): Parent of every joint; exactly one
                joint (the root) has parent :obj:`-1`, or, with
                :obj:`require_connected=False`, one per tree of a forest.
                Bones are the :obj:`(child, parent)` pairs.
            joint_names (sequence of str, optional): Joint names.
            flip_pairs (iterable of (int, int), optional): Left/right pairs.
            centre (int, optional): Centre joint.
            groups (sequence of sequence of int, optional): Joint partition.
            name (str, optional): Name of the layout.
            require_connected (bool, optional): If :obj:`False`, allow a
                forest (several roots). (default: :obj:`True`)

        Returns:
            Skeleton: The skeleton.

        Raises:
            ValueError: If the parents list has no root, several roots (a
                forest without :obj:`require_connected=False`), a parent out
                of range or a cycle, or another input is invalid.
        """
        parents = [_as_int(p, f"parent of joint {i}") for i, p in enumerate(parents)]
        edges = [(child, parent) for child, parent in enumerate(parents) if parent != -1]
        return cls(len(parents), edges, joint_names=joint_names, parents=parents,
                   flip_pairs=flip_pairs, centre=centre, groups=groups, name=name,
                   require_connected=require_connected)

    @classmethod
    def from_edges(
        cls,
        edges: Iterable[tuple[int, int]],
        num_joints: int | None = None,
        *,
        root: int = 0,
        joint_names: Sequence[str] | None = None,
        flip_pairs: Iterable[tuple[int, int]] = (),
        centre: int | None = None,
        groups: Sequence[Sequence[int]] | None = None,
        name: str | None = None,
        require_connected: bool = True,
    ) -> Skeleton:
        r"""Builds a skeleton from an undirected edge list.

        If the graph is a tree, :attr:`parents` is derived by a breadth-first
        search from :obj:`root`; otherwise :attr:`parents` is :obj:`None`.

        Args:
            edges (iterable of (int, int)): Undirected edges, each once.
            num_joints (int, optional): Number of joints. Defaults to the
                number of :obj:`joint_names` if given, else to the largest
                index in :obj:`edges` plus one.
            root (int, optional): Root of the derived parents list.
                (default: :obj:`0`)
            joint_names (sequence of str, optional): Joint names.
            flip_pairs (iterable of (int, int), optional): Left/right pairs.
            centre (int, optional): Centre joint.
            groups (sequence of sequence of int, optional): Joint partition.
            name (str, optional): Name of the layout.
            require_connected (bool, optional): Reject disconnected graphs.
                (default: :obj:`True`)

        Returns:
            Skeleton: The skeleton.

        Raises:
            ValueError: If :obj:`root` is out of range, the number of joints
                cannot be inferred, or another input is invalid.
        """
        edges = _edge_tensor(edges)
        if num_joints is None:
            if joint_names is not None:
                num_joints = len(joint_names)
            elif edges.numel() > 0:
                num_joints = int(edges.max()) + 1
            else:
                raise ValueError("cannot infer num_joints from an empty edge list")
        skeleton = cls(num_joints, edges, joint_names=joint_names, flip_pairs=flip_pairs,
                       centre=centre, groups=groups, name=name,
                       require_connected=require_connected)
        root = _as_int(root, "root")
        if not 0 <= root < skeleton.num_joints:
            raise ValueError(f"root {root} is outside [0, {skeleton.num_joints})")
        # The constructor roots derived parents at joint 0; re-root if asked.
        if skeleton._parents is not None and root != 0:
            skeleton._parents = skeleton._tree_parents(root)
        return skeleton

    @classmethod
    def from_networkx(
        cls,
        graph: nx.Graph,
        *,
        root: Hashable | None = None,
        flip_pairs: Iterable[tuple[Hashable, Hashable]] = (),
        centre: Hashable | None = None,
        groups: Sequence[Sequence[Hashable]] | None = None,
        name: str | None = None,
        require_connected: bool = True,
    ) -> Skeleton:
        r"""Builds a skeleton from an undirected :class:`networkx.Graph`.

        Joint :obj:`i` is the :obj:`i`-th node in the graph's node order.
        String node labels become the joint names; otherwise a :obj:`"name"`
        node attribute on every node is used (as written by
        :meth:`to_networkx`), else the default names. :obj:`root`,
        :obj:`flip_pairs`, :obj:`centre` and :obj:`groups` may refer to joints
        by node label or, for values that are not node labels, by index.

        Args:
            graph (networkx.Graph): Undirected graph.
            root (hashable, optional): Root of the derived parents list.
                (default: the first node)
            flip_pairs (iterable of pairs, optional): Left/right pairs.
            centre (hashable, optional): Centre joint.
            groups (sequence of sequences, optional): Joint partition.
            name (str, optional): Name of the layout. Defaults to
                :obj:`graph.name` when that is set.
            require_connected (bool, optional): Reject disconnected graphs.
                (default: :obj:`True`)

        Returns:
            Skeleton: The skeleton.

        Raises:
            ValueError: If the graph is directed, a joint reference is not a
                node, or another input is invalid.
        """
        if graph.is_directed():
            raise ValueError("graph is directed; convert it with graph.to_undirected() first")
        labels = list(graph.nodes)
        position = {label: i for i, label in enumerate(labels)}

        def index(ref: Hashable) -> int:
            if ref in position:
                return position[ref]
            if isinstance(ref, int) and not isinstance(ref, bool):
                return ref
            raise ValueError(f"unknown joint {ref!r}: not a node of the graph")

        if all(isinstance(label, str) for label in labels):
            joint_names = labels
        elif all("name" in attrs for attrs in graph.nodes.values()):
            joint_names = [attrs["name"] for attrs in graph.nodes.values()]
        else:
            joint_names = None

        return cls.from_edges(
            [(position[u], position[v]) for u, v in graph.edges()],
            len(labels),
            root=0 if root is None else index(root),
            joint_names=joint_names,
            flip_pairs=[(index(a), index(b)) for a, b in flip_pairs],
            centre=None if centre is None else index(centre),
            groups=None if groups is None else [[index(j) for j in g] for g in groups],
            name=name if name is not None else (graph.name or None),
            require_connected=require_connected,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Skeleton:
        r"""Builds a skeleton from a dict in the :meth:`to_dict` schema.

        The dict holds :obj:`"parents"` or :obj:`"edges"` (with an optional
        :obj:`"root"`), and optionally :obj:`"name"`, :obj:`"joint_names"`,
        :obj:`"flip_pairs"`, :obj:`"centre"`, :obj:`"groups"`,
        :obj:`"require_connected"`, a :obj:`"body_map"` (a joint map of
        :func:`~pyg_skeleton.datasets.synthetic_poses` keyed by the joint names, for
        synthetic poses of this skeleton, see :attr:`body_map`) and a
        free-text :obj:`"source"`, which is ignored.

        Args:
            d (dict): The skeleton description.

        Returns:
            Skeleton: The skeleton.

        Raises:
            ValueError: If the dict has unknown keys, not exactly one of
                :obj:`"parents"` and :obj:`"edges"`, or invalid contents.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a skeleton description must be a dict (JSON object), got "
                             f"{type(d).__name__}")
        unknown = sorted(set(d) - _DICT_KEYS)
        if unknown:
            raise ValueError(f"unknown skeleton key(s) {unknown}")
        if ("parents" in d) == ("edges" in d):
            raise ValueError("a skeleton dict needs exactly one of 'parents' and 'edges'")
        common = dict(
            joint_names=d.get("joint_names"),
            flip_pairs=[tuple(pair) for pair in d.get("flip_pairs", ())],
            centre=d.get("centre"),
            groups=d.get("groups"),
            name=d.get("name"),
        )
        if "parents" in d:
            skeleton = cls.from_parents(
                d["parents"], require_connected=d.get("require_connected", True), **common)
        else:
            skeleton = cls.from_edges(d["edges"], root=d.get("root", 0),
                                      require_connected=d.get("require_connected", True),
                                      **common)
        if d.get("body_map") is not None:
            skeleton._body_map = skeleton._check_body_map(d["body_map"])
        return skeleton

    def _check_body_map(self, body_map: Any) -> dict[str, Any]:
        from pyg_skeleton.datasets.synthetic import check_joint_map
        if not isinstance(body_map, dict) or not isinstance(body_map.get("joints"), dict):
            raise ValueError("'body_map' must be a joint map: {\"body\": \"smpl24\", "
                             "\"joints\": {joint name: body joint or {\"joint\", \"offset\"}}}")
        missing = [n for n in self._joint_names if n not in body_map["joints"]]
        extra = [n for n in body_map["joints"] if n not in self._joint_names]
        if missing or extra:
            raise ValueError(f"'body_map' must map every joint name once: missing {missing}, "
                             f"unknown {extra}")
        # the skeleton's own order; no preset name, which would impose the preset's order
        checked = check_joint_map({"body": body_map.get("body"), "joints": {
            n: body_map["joints"][n] for n in self._joint_names}})
        return {"body": checked["body"], "joints": checked["joints"]}

    def to_dict(self) -> dict[str, Any]:
        r"""Returns a JSON-ready description that :meth:`from_dict` reads back.

        Tree skeletons are written with :obj:`"parents"`, others with
        :obj:`"edges"`; :obj:`"groups"` is written only when set and
        :obj:`"require_connected": false` only for disconnected skeletons.

        Returns:
            dict: The skeleton description.
        """
        d: dict[str, Any] = {"name": self._name, "joint_names": list(self._joint_names)}
        if self._parents is not None:
            d["parents"] = list(self._parents)
        else:
            d["edges"] = self._edges.tolist()
        d["flip_pairs"] = [list(pair) for pair in self._flip_pairs]
        d["centre"] = self._centre
        if self._groups is not None:
            d["groups"] = [list(group) for group in self._groups]
        if not self._connected:
            d["require_connected"] = False
        if self._body_map is not None:
            d["body_map"] = self.body_map
        return d

    @classmethod
    def load(cls, path: str | Path) -> Skeleton:
        r"""Loads a skeleton from a JSON file written by :meth:`save`.

        Args:
            path (str or Path): File to read.

        Returns:
            Skeleton: The skeleton.

        Raises:
            ValueError: One line naming the file if it is not UTF-8 JSON of
                a valid skeleton.
        """
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except (TypeError, ValueError) as e:  # JSON and UTF-8 errors are ValueErrors
            # too; a TypeError is a value of the wrong kind, e.g. "parents": 5
            raise ValueError(f"{path}: {str(e).splitlines()[0]}") from None

    def save(self, path: str | Path) -> None:
        r"""Saves the skeleton as JSON in the schema of the preset files.

        Args:
            path (str or Path): File to write.
        """
        # One key per line with compact values keeps the files readable and
        # diff-friendly (plain indent=2 puts every number on its own line).
        lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in self.to_dict().items()]
        Path(path).write_text("{\n" + ",\n".join(lines) + "\n}\n", encoding="utf-8")

    @classmethod
    def preset(cls, name: str) -> Skeleton:
        r"""Loads a shipped layout from :obj:`pyg_skeleton/data/skeletons`.

        Args:
            name (str): Preset name, one of :meth:`presets`.

        Returns:
            Skeleton: The skeleton.

        Raises:
            ValueError: If there is no preset of that name.
        """
        if name not in cls.presets():
            raise ValueError(f"unknown skeleton preset {name!r}; available: {cls.presets()}")
        return cls.load(PRESET_DIR / f"{name}.json")

    @staticmethod
    def presets() -> list[str]:
        r"""Returns the sorted names of the shipped layouts."""
        return sorted(path.stem for path in PRESET_DIR.glob("*.json"))

    # ------------------------------------------------------------- properties

    @property
    def name(self) -> str | None:
        r"""Name of the layout, or :obj:`None`."""
        return self._name

    @property
    def num_joints(self) -> int:
        r"""Number of joints :obj:`N`."""
        return self._num_joints

    @property
    def joint_names(self) -> list[str]:
        r"""Joint names, one per joint."""
        return list(self._joint_names)

    @property
    def parents(self) -> list[int] | None:
        r"""Parent of every joint (:obj:`-1` for the root), or :obj:`None`
        if the skeleton is not a tree."""
        return None if self._parents is None else list(self._parents)

    @property
    def root(self) -> int | None:
        r"""Root of :attr:`parents` (of a forest: the first root, see
        :attr:`roots`), or :obj:`None` if there are no parents."""
        return None if self._parents is None else self._parents.index(-1)

    @property
    def roots(self) -> list[int]:
        r"""Every root of :attr:`parents` (one per tree of a forest), or
        :obj:`[]` if there are no parents."""
        return [] if self._parents is None else [j for j, p in enumerate(self._parents)
                                                  if p == -1]

    @property
    def body_map(self) -> dict[str, Any] | None:
        r"""The joint map of the skeleton's joints onto a synthetic body
        table (:func:`~pyg_skeleton.datasets.synthetic_poses`), read from the
        :obj:`"body_map"` of a skeleton file, or :obj:`None`: with it,
        :func:`~pyg_skeleton.datasets.synthetic_poses` draws poses of this
        skeleton."""
        return None if self._body_map is None else copy.deepcopy(self._body_map)

    @property
    def centre(self) -> int | None:
        r"""Centre joint, or :obj:`None`."""
        return self._centre

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        r"""Left/right pairs as :obj:`(min, max)` tuples, sorted."""
        return list(self._flip_pairs)

    @property
    def groups(self) -> list[list[int]] | None:
        r"""Joint partition, or :obj:`None`."""
        return None if self._groups is None else [list(g) for g in self._groups]

    @property
    def edges(self) -> Tensor:
        r"""Undirected edges as a :obj:`[num_edges, 2]` long tensor with
        :obj:`i < j`, sorted lexicographically."""
        return self._edges.clone()

    @property
    def num_edges(self) -> int:
        r"""Number of undirected edges."""
        return self._edges.size(0)

    @property
    def edge_index(self) -> Tensor:
        r"""Both directions of every edge as a :obj:`[2, 2 * num_edges]` long
        tensor, without self-loops, sorted by row and then column (PyG's
        coalesced order)."""
        return self._edge_index.clone()

    @property
    def hop_distance(self) -> Tensor:
        r"""All-pairs shortest-path hop counts as an :obj:`[N, N]` long
        tensor: :obj:`0` on the diagonal, :obj:`-1` for unreachable pairs.
        Computed once and cached."""
        if self._hop is None:
            # Imported here: pyg_skeleton.nn imports this module.
            from pyg_skeleton.nn.memory import HOP_TABLE_BYTES, check_memory
            n = self._num_joints
            check_memory('Skeleton.hop_distance', HOP_TABLE_BYTES * n * n,
                         f'all-pairs hops of {n} joints', 'use hop_counts() '
                         'from a few sources, or khop_edges() for the pairs '
                         'within a few hops')
            self._hop = self._hops_from(torch.arange(self._num_joints))
        return self._hop.clone()

    @property
    def max_hop(self) -> int:
        r"""Largest finite hop distance between two joints."""
        return int(self.hop_distance.max())

    @property
    def flip_permutation(self) -> Tensor:
        r"""Index tensor of shape :obj:`[N]` that swaps the joints of every
        flip pair and leaves the other joints in place."""
        perm = torch.arange(self._num_joints)
        for a, b in self._flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    # ---------------------------------------------------------------- methods

    def flip(self, pose: Tensor, lateral_axis: int | None = 0) -> Tensor:
        r"""Mirrors poses: swaps left/right joints and negates one coordinate.

        Args:
            pose (torch.Tensor): Poses of shape :obj:`[..., N, C]`.
            lateral_axis (int, optional): Coordinate of the last dimension to
                negate (the left-right axis). If :obj:`None`, joints are only
                swapped. (default: :obj:`0`)

        Returns:
            torch.Tensor: The mirrored poses, same shape as :obj:`pose`.

        Raises:
            ValueError: If :obj:`pose` does not have :obj:`N` joints in
                dimension :obj:`-2`, or :obj:`lateral_axis` is not a valid
                coordinate.
        """
        if pose.dim() < 2 or pose.size(-2) != self._num_joints:
            raise ValueError(f"expected pose of shape [..., {self._num_joints}, C], "
                             f"got {list(pose.shape)}")
        out = pose.index_select(-2, self.flip_permutation.to(pose.device))
        if lateral_axis is None:
            return out
        num_coords = pose.size(-1)
        if not -num_coords <= lateral_axis < num_coords:
            raise ValueError(f"lateral_axis {lateral_axis} is out of range for "
                             f"{num_coords} coordinates")
        sign = torch.ones(num_coords, dtype=pose.dtype, device=pose.device)
        sign[lateral_axis] = -1
        return out * sign

    def bones(self) -> Tensor:
        r"""Returns the bones for bone-vector losses.

        Returns:
            torch.Tensor: :obj:`[num_edges, 2]` long tensor of
            :obj:`(child, parent)` pairs ordered by child if the skeleton has
            :attr:`parents`, otherwise :attr:`edges`.
        """
        if self._parents is None:
            return self.edges
        return _edge_tensor((child, parent) for child, parent in enumerate(self._parents)
                            if parent != -1)

    def to_data(self, **kwargs: Any) -> Data:
        r"""Returns the skeleton graph as a :class:`torch_geometric.data.Data`.

        Args:
            **kwargs (optional): Extra attributes, e.g. :obj:`x=features`.

        Returns:
            torch_geometric.data.Data: Object with :obj:`edge_index`,
            :obj:`num_nodes` and the extra attributes.
        """
        return Data(edge_index=self.edge_index, num_nodes=self._num_joints, **kwargs)

    def to_networkx(self) -> nx.Graph:
        r"""Returns the skeleton as an undirected :class:`networkx.Graph`.

        Returns:
            networkx.Graph: Nodes :obj:`0..N-1` with a :obj:`"name"` attribute
            holding the joint name; :obj:`graph.name` is the layout name.
        """
        graph = nx.Graph(name=self._name or "")
        graph.add_nodes_from((i, {"name": n}) for i, n in enumerate(self._joint_names))
        graph.add_edges_from(self._edges.tolist())
        return graph

    def __repr__(self) -> str:
        name = "" if self._name is None else f"{self._name!r}, "
        return (f"{self.__class__.__name__}({name}num_joints={self._num_joints}, "
                f"num_edges={self.num_edges})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Skeleton):
            return NotImplemented
        return (self._num_joints == other._num_joints
                and torch.equal(self._edges, other._edges)
                and self._joint_names == other._joint_names
                and self._parents == other._parents
                and self._flip_pairs == other._flip_pairs
                and self._centre == other._centre
                and self._groups == other._groups)

    # --------------------------------------------------------------- helpers

    def _canonical_edges(self, edges: Tensor) -> Tensor:
        n = self._num_joints
        out_of_range = ((edges < 0) | (edges >= n)).any(dim=1)
        if out_of_range.any():
            i, j = edges[out_of_range][0].tolist()
            raise ValueError(f"edge ({i}, {j}) has an index outside [0, {n})")
        loops = edges[:, 0] == edges[:, 1]
        if loops.any():
            i = int(edges[loops][0, 0])
            raise ValueError(f"edge ({i}, {i}) is a self-loop")
        low, high = edges.min(dim=1).values, edges.max(dim=1).values
        # torch.unique sorts the keys, which gives the lexicographic order.
        keys, counts = torch.unique(low * n + high, return_counts=True)
        if (counts > 1).any():
            key = int(keys[counts > 1][0])
            raise ValueError(f"duplicate edge ({key // n}, {key % n})")
        return torch.stack([keys // n, keys % n], dim=1)

    def _hops_from(self, sources: Tensor) -> Tensor:
        # Hop counts [len(sources), N] from each source joint (-1: unreachable).
        return hop_counts(self._edge_index, self._num_joints, sources)

    def _tree_parents(self, root: int) -> list[int]:
        # In a tree every edge joins a joint to its parent, which is the
        # endpoint nearer to the root.
        depth = self._hops_from(torch.tensor([root]))[0]
        a, b = self._edges.unbind(dim=1)
        child = torch.where(depth[a] > depth[b], a, b)
        parents = torch.full((self._num_joints,), -1, dtype=torch.long)
        parents[child] = a + b - child
        return parents.tolist()

    def _check_flip_pairs(self, flip_pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        n = self._num_joints
        pairs = []
        seen: set[int] = set()
        for a, b in flip_pairs:
            a, b = _as_int(a, "a flip pair's joint"), _as_int(b, "a flip pair's joint")
            if not (0 <= a < n and 0 <= b < n):
                raise ValueError(f"flip pair ({a}, {b}) has an index outside [0, {n})")
            if a == b:
                raise ValueError(f"flip pair ({a}, {b}) pairs joint {a} with itself")
            for joint in (a, b):
                if joint in seen:
                    raise ValueError(f"joint {joint} appears in more than one flip pair")
                seen.add(joint)
            pairs.append((min(a, b), max(a, b)))
        return sorted(pairs)

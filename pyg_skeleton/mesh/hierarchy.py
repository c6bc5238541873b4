r""":class:`MeshHierarchy`: the levels of a HEM coarsening of a mesh graph,
with pooling operators, optional padded binary-tree ordering, and plain
:obj:`torch.save` / :obj:`torch.load(weights_only=True)` persistence."""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .coarsening import Coarsening, binary_tree_permutations, hem_coarsen
from .io import Mesh, read_mesh
from .pooling import (
    HEMPool,
    HEMUnpool,
    compose_clusters,
    hem_pool,
    pool_weights,
)

FORMAT_VERSION = 1


class MeshHierarchy:
    r"""A multi-level HEM coarsening of a graph (usually a mesh).

    Level :obj:`0` is the input graph, level :obj:`L` the coarsest. Negative
    level numbers count from the coarsest (:obj:`-1` is level :obj:`L`).

    With :obj:`padded=True` the hierarchy also holds Defferrard et al.'s
    binary-tree ordering (:func:`binary_tree_permutations`): level
    :math:`l` then has :obj:`num_padded` :math:`= n_L 2^{L - l}` positions,
    :obj:`num_nodes` of them real. :obj:`pad` and :obj:`unpad` move
    features between the two layouts, and :meth:`padded_edge_index` is the
    graph on the padded positions (fake nodes isolated), the layout of HGN's
    96/48-node graphs.

    Build it with :meth:`from_mesh` or :meth:`from_edge_index`.
    """
    def __init__(self, coarsening: Coarsening, *,
                 pos: Tensor | None = None, padded: bool = False,
                 meta: dict[str, Any] | None = None):
        self.num_nodes: list[int] = [int(n) for n in coarsening.num_nodes]
        self.weighted_edge_index: list[Tensor] = list(coarsening.edge_index)
        self.edge_weight: list[Tensor] = list(coarsening.edge_weight)
        self.clusters: list[Tensor] = list(coarsening.clusters)
        self.rounds: list[int] = list(coarsening.rounds)
        self.pos = pos
        self.meta: dict[str, Any] = dict(meta or {})
        self.perms: list[Tensor] | None = (
            binary_tree_permutations(self.clusters, self.num_nodes)
            if padded else None)

    # -- construction -----------------------------------------------------

    @classmethod
    def from_edge_index(cls, edge_index: Tensor, num_nodes: int, *,
                        levels: int | None = None,
                        max_nodes: int | None = None,
                        pos: Tensor | None = None, padded: bool = False,
                        **kwargs) -> MeshHierarchy:
        r"""Coarsens :obj:`edge_index` with :func:`hem_coarsen`
        (:obj:`score`, :obj:`order`, :obj:`method`, :obj:`seed`,
        :obj:`edge_weight` pass through)."""
        c = hem_coarsen(edge_index, num_nodes, levels=levels,
                        max_nodes=max_nodes, **kwargs)
        meta = {k: kwargs.get(k, d) for k, d in
                (('score', 'xavier'), ('order', 'degree'),
                 ('method', 'parallel'), ('seed', None))}
        return cls(c, pos=pos, padded=padded, meta=meta)

    @classmethod
    def from_mesh(cls, mesh: Mesh, *, levels: int | None = None,
                  max_nodes: int | None = None, padded: bool = False,
                  **kwargs) -> MeshHierarchy:
        r"""Coarsens the edge graph of a :class:`Mesh`
        (:meth:`Mesh.edge_index`); its :obj:`pos` becomes :obj:`pos` of
        level 0."""
        return cls.from_edge_index(mesh.edge_index(), mesh.num_vertices,
                                   levels=levels, max_nodes=max_nodes,
                                   pos=mesh.pos,
                                   padded=padded, **kwargs)

    @classmethod
    def hgn(cls, source: Mesh | str | Path) -> MeshHierarchy:
        r"""HGN's mesh hierarchy (Li et al., "Hierarchical Graph Networks
        for 3D Human Pose Estimation", BMVC 2021): :obj:`HGN_LEVELS` levels
        of the official HEM (:obj:`method='official'`, see
        :func:`~pyg_skeleton.mesh.hem_coarsen`) with the padded binary-tree
        ordering, as the official code builds them.

        On SMPL (6890 vertices) levels 7 and 8 (:obj:`-3` and :obj:`-2`)
        are HGN's 96- and 48-node graphs (padded sizes) and level 9 its 24
        coarsest nodes, which HGN replaces by the skeleton; pass the
        hierarchy to :meth:`~pyg_skeleton.nn.HGN.from_hierarchy`. The real
        node counts depend on the mesh (on the CC0 MakeHuman body: 163, 89
        and 48 at levels 7 to 9, padded 192, 96 and 48).

        Args:
            source: A :class:`Mesh`, or a file read by
                :func:`~pyg_skeleton.mesh.read_mesh`: a SMPL, SMPL-X or MANO
                model (:obj:`.pkl` as distributed, read without running
                pickled code, or an :obj:`.npz` with :obj:`v_template` and
                :obj:`f`), or an OBJ, PLY or NPZ mesh.

        Raises:
            ValueError: If the file cannot be read as a mesh (one line
                naming it), or the mesh has an isolated vertex (the official
                coarsening needs an edge at every node).
        """
        mesh = source if isinstance(source, Mesh) else read_mesh(source)
        return cls.from_mesh(mesh, levels=cls.HGN_LEVELS, padded=True,
                             method='official')

    #: Coarsening steps of HGN's hierarchy (:meth:`hgn`).
    HGN_LEVELS = 9

    # -- levels ----------------------------------------------------------

    @property
    def num_levels(self) -> int:
        r"""Number of coarsening steps :math:`L` (there are :math:`L + 1`
        graphs)."""
        return len(self.clusters)

    def __len__(self) -> int:
        return self.num_levels + 1

    def _level(self, level: int) -> int:
        n = self.num_levels + 1
        if not -n <= level < n:
            raise IndexError(f"level {level} out of range for {n} levels")
        return level % n

    def edge_index(self, level: int, self_loops: bool = False) -> Tensor:
        r"""The binary graph of :obj:`level` ``[2, E]`` (both directions),
        without the self-loops of merged pairs unless :obj:`self_loops`."""
        ei = self.weighted_edge_index[self._level(level)]
        return ei if self_loops else ei[:, ei[0] != ei[1]]

    def num_padded(self, level: int) -> int:
        self._require_padded()
        return self.perms[self._level(level)].numel()

    def real_mask(self, level: int) -> Tensor:
        r"""Boolean ``[num_padded]``: which padded positions are real."""
        self._require_padded()
        level = self._level(level)
        return self.perms[level] < self.num_nodes[level]

    def positions_of(self, level: int) -> Tensor:
        r"""Padded position of every real node of :obj:`level`."""
        self._require_padded()
        level = self._level(level)
        perm = self.perms[level]
        real = perm < self.num_nodes[level]
        out = torch.empty(self.num_nodes[level], dtype=torch.long)
        out[perm[real]] = real.nonzero().view(-1)
        return out

    def pad(self, x: Tensor, level: int) -> Tensor:
        r"""``[..., n_l, C]`` to ``[..., num_padded, C]``, zeros at fake
        positions."""
        pos = self.positions_of(level).to(x.device)
        out = x.new_zeros(x.shape[:-2] + (self.num_padded(level), x.size(-1)))
        return out.index_copy(-2, pos, x)

    def unpad(self, x: Tensor, level: int) -> Tensor:
        r"""``[..., num_padded, C]`` to the real nodes ``[..., n_l, C]`` in
        their original order."""
        return x.index_select(-2, self.positions_of(level).to(x.device))

    def padded_edge_index(self, level: int, self_loops: bool = False
                          ) -> Tensor:
        r"""The graph of :obj:`level` on its padded positions."""
        return self.positions_of(level)[self.edge_index(level, self_loops)]

    def _require_padded(self):
        if self.perms is None:
            raise ValueError("This hierarchy has no padded ordering; build "
                             "it with padded=True")

    # -- pooling ---------------------------------------------------------

    def assignment(self, source: int = 0, target: int = -1) -> Tensor:
        r"""The node of level :obj:`target` each node of level
        :obj:`source` belongs to."""
        return compose_clusters(self.clusters, self._level(source),
                                self._level(target))

    def pool_op(self, source: int = 0, target: int = -1,
                mode: str = 'dyadic', padded: bool = False) -> HEMPool:
        r"""A :class:`HEMPool` from level :obj:`source` to the coarser
        :obj:`target`. With :obj:`padded`, both sides use the padded
        positions (fake nodes get weight 0)."""
        s, t = self._level(source), self._level(target)
        if s > t:
            raise ValueError(f"pool from a fine to a coarse level (got "
                             f"{source} -> {target})")
        index = compose_clusters(self.clusters, s, t)
        weight = pool_weights(self.clusters, s, t, mode)
        if not padded:
            return HEMPool(index, weight, self.num_nodes[t])
        n_pad = self.num_padded(s)
        p_index = torch.arange(n_pad) >> (t - s)
        p_weight = torch.zeros(n_pad, dtype=torch.float64)
        p_weight[self.positions_of(s)] = weight
        return HEMPool(p_index, p_weight, self.num_padded(t))

    def unpool_op(self, source: int = -1, target: int = 0,
                  padded: bool = False) -> HEMUnpool:
        r"""A :class:`HEMUnpool` from the coarse level :obj:`source` to the
        finer :obj:`target` (fake nodes of a padded target get zeros)."""
        s, t = self._level(source), self._level(target)
        if t > s:
            raise ValueError(f"unpool from a coarse to a fine level (got "
                             f"{source} -> {target})")
        if not padded:
            return HEMUnpool(compose_clusters(self.clusters, t, s),
                             self.num_nodes[s])
        n_pad = self.num_padded(t)
        return HEMUnpool(torch.arange(n_pad) >> (s - t), self.num_padded(s),
                         mask=self.real_mask(t))

    def pool(self, x: Tensor, source: int = 0, target: int = -1,
             mode: str = 'dyadic', batch: Tensor | None = None) -> Tensor:
        r"""Pools features ``[..., n_source, C]`` (or a disjoint batch with
        :obj:`batch`) to level :obj:`target`; see
        :func:`~pyg_skeleton.mesh.hem_pool` for the modes."""
        s, t = self._level(source), self._level(target)
        return hem_pool(x, compose_clusters(self.clusters, s, t),
                        pool_weights(self.clusters, s, t, mode),
                        self.num_nodes[t], batch)

    def unpool(self, x: Tensor, source: int = -1, target: int = 0,
               batch: Tensor | None = None) -> Tensor:
        r"""Copies coarse features of level :obj:`source` to the nodes of
        the finer level :obj:`target`."""
        return self.unpool_op(source, target)(x, batch)

    def level_positions(self, level: int, mode: str = 'dyadic') -> Tensor:
        r"""Vertex positions of :obj:`level` pooled from level 0
        (:obj:`'dyadic'`: the official pseudo-ground-truth rule;
        :obj:`'mean'`: plain cluster means)."""
        if self.pos is None:
            raise ValueError("This hierarchy has no vertex positions")
        return self.pool(self.pos.double(), 0, level, mode).to(self.pos.dtype)

    # -- reporting and persistence ---------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        r"""One row per level: nodes, padded nodes, undirected edges (no
        self-loops), self-loops, matching rounds."""
        rows = []
        for level in range(self.num_levels + 1):
            ei = self.weighted_edge_index[level]
            loops = int((ei[0] == ei[1]).sum())
            rows.append({
                'level': level,
                'nodes': self.num_nodes[level],
                'padded': (self.num_padded(level)
                           if self.perms is not None else None),
                'edges': (ei.size(1) - loops) // 2,
                'self_loops': loops,
                'rounds': self.rounds[level - 1] if level > 0 else None,
            })
        return rows

    def to_dict(self) -> dict[str, Any]:
        r"""Plain tensors, lists, ints and strings only (loadable with
        :obj:`torch.load(weights_only=True)`)."""
        return {
            'format': 'pyg_skeleton.MeshHierarchy',
            'version': FORMAT_VERSION,
            'num_nodes': list(self.num_nodes),
            'edge_index': list(self.weighted_edge_index),
            'edge_weight': list(self.edge_weight),
            'clusters': list(self.clusters),
            'rounds': list(self.rounds),
            'perms': None if self.perms is None else list(self.perms),
            'pos': self.pos,
            'meta': {k: v for k, v in self.meta.items()
                     if isinstance(v, (int, float, str, type(None)))},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = 'MeshHierarchy dict'
                  ) -> MeshHierarchy:
        r"""The hierarchy of a :meth:`to_dict` dict, after checking every
        entry: shapes, dtypes and index ranges against the node counts,
        finite positive edge weights, finite positions, cluster maps that
        reach every coarse node, and padded orderings consistent with them.

        Raises:
            ValueError: One line naming :obj:`source` and the offending key.
        """
        if not isinstance(d, dict):
            raise ValueError(f"{source}: not a saved MeshHierarchy (a "
                             f"{type(d).__name__}, expected a dict)")
        if d.get('format') != 'pyg_skeleton.MeshHierarchy':
            raise ValueError(f"{source}: not a saved MeshHierarchy")
        version = d.get('version', 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ValueError(f"{source}: MeshHierarchy format {version!r} is "
                             f"not supported (this version reads up to "
                             f"{FORMAT_VERSION})")
        num_nodes, clusters, edge_index, edge_weight, rounds, perms = \
            _checked_levels(d, source)
        pos = d.get('pos')
        if pos is not None:
            if (not isinstance(pos, Tensor) or not pos.is_floating_point()
                    or pos.dim() != 2 or pos.size(0) != num_nodes[0]):
                raise ValueError(f"{source}: 'pos' must be a float tensor "
                                 f"[{num_nodes[0]}, D] (got "
                                 f"{_describe(pos)})")
            if not bool(torch.isfinite(pos).all()):
                raise ValueError(f"{source}: 'pos' holds NaN or infinite "
                                 f"coordinates")
        meta = d.get('meta')
        if meta is not None and not isinstance(meta, dict):
            raise ValueError(f"{source}: 'meta' must be a dict (got "
                             f"{type(meta).__name__})")
        c = Coarsening(num_nodes, clusters, rounds, [])
        c._full = list(zip(edge_index, edge_weight))
        out = cls(c, pos=pos, padded=False, meta=meta)
        out.perms = perms
        return out

    def save(self, path: str | Path) -> None:
        torch.save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> MeshHierarchy:
        r"""Loads a hierarchy written by ``save`` (with
        :obj:`weights_only=True`: plain tensors and containers only).

        Raises:
            FileNotFoundError: If the file does not exist.
            ValueError: One line naming the file if it is not a saved
                hierarchy or any entry is invalid (see :meth:`from_dict`).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"MeshHierarchy file not found: {path}")
        try:
            d = torch.load(path, weights_only=True)
        except pickle.UnpicklingError:  # torch's advice here is unsafe
            raise ValueError(f"{path}: cannot read as a saved MeshHierarchy "
                             f"(not a torch.save file of plain tensors and "
                             f"containers)") from None
        except Exception as e:  # truncated archive, bad zip, ...
            text = str(e).strip()
            why = text.splitlines()[0] if text else type(e).__name__
            raise ValueError(f"{path}: cannot read as a saved MeshHierarchy "
                             f"({why})") from None
        return cls.from_dict(d, source=str(path))

    def __repr__(self) -> str:
        sizes = ' -> '.join(str(n) for n in self.num_nodes)
        pad = ''
        if self.perms is not None:
            pad = ', padded=' + ' -> '.join(str(p.numel())
                                            for p in self.perms)
        return f'{self.__class__.__name__}({sizes}{pad})'


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor {list(value.shape)}"
    return type(value).__name__


def _tensor_list(d: dict[str, Any], key: str, length: int, source: str
                 ) -> list[Any]:
    value = d.get(key)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{source}: {key!r} must be a list of {length} "
                         f"entries (got {_describe(value)})")
    if len(value) != length:
        raise ValueError(f"{source}: {key!r} must be a list of {length} "
                         f"entries (got {len(value)})")
    return list(value)


def _index_tensor(value: Any, shape: tuple[int, ...], bound: int, what: str
                  ) -> Tensor:
    r"""An integer tensor of :obj:`shape` (:obj:`-1`: any size) with values
    in ``[0, bound)``."""
    if (not isinstance(value, Tensor) or value.is_floating_point()
            or value.is_complex() or value.dtype == torch.bool
            or value.dim() != len(shape) or any(
                s >= 0 and value.size(i) != s for i, s in enumerate(shape))):
        want = ', '.join('E' if s < 0 else str(s) for s in shape)
        raise ValueError(f"{what} must be an integer tensor [{want}] (got "
                         f"{_describe(value)})")
    value = value.long()
    if value.numel() and (int(value.min()) < 0 or int(value.max()) >= bound):
        bad = value[(value < 0) | (value >= bound)]
        raise ValueError(f"{what} holds the index {int(bad[0])}, out of "
                         f"range for {bound} nodes")
    return value


def _checked_levels(d: dict[str, Any], source: str):
    r"""The checked per-level entries of a saved hierarchy."""
    num_nodes = d.get('num_nodes')
    if (not isinstance(num_nodes, (list, tuple)) or not num_nodes or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0
            for n in num_nodes)):
        raise ValueError(f"{source}: 'num_nodes' must be a non-empty list "
                         f"of non-negative ints (got {num_nodes!r:.80})")
    num_nodes = list(num_nodes)
    L = len(num_nodes) - 1
    # matching never adds nodes; this also bounds every count by the size of
    # level 0's cluster map before any count is used to allocate
    if any(b > a for a, b in zip(num_nodes, num_nodes[1:])):
        raise ValueError(f"{source}: 'num_nodes' must not increase from level "
                         f"to level (got {num_nodes!r:.80})")
    clusters = []
    for l, c in enumerate(_tensor_list(d, 'clusters', L, source)):
        c = _index_tensor(c, (num_nodes[l], ), num_nodes[l + 1],
                          f"{source}: 'clusters'[{l}]")
        if bool((torch.bincount(c, minlength=num_nodes[l + 1]) == 0).any()):
            raise ValueError(f"{source}: 'clusters'[{l}] leaves coarse nodes "
                             f"of level {l + 1} without members")
        clusters.append(c)
    edge_index, edge_weight = [], []
    for l, (ei, ew) in enumerate(zip(
            _tensor_list(d, 'edge_index', L + 1, source),
            _tensor_list(d, 'edge_weight', L + 1, source))):
        ei = _index_tensor(ei, (2, -1), num_nodes[l],
                           f"{source}: 'edge_index'[{l}]")
        if (not isinstance(ew, Tensor) or not ew.is_floating_point()
                or ew.shape != (ei.size(1), )):
            raise ValueError(f"{source}: 'edge_weight'[{l}] must be a float "
                             f"tensor [{ei.size(1)}] (got {_describe(ew)})")
        if not bool(((ew > 0) & torch.isfinite(ew)).all()):
            raise ValueError(f"{source}: 'edge_weight'[{l}] holds NaN, "
                             f"infinite or non-positive weights")
        edge_index.append(ei)
        edge_weight.append(ew)
    rounds = d.get('rounds')
    if (not isinstance(rounds, (list, tuple)) or len(rounds) != L
            or not all(isinstance(r, int) and r >= 0 for r in rounds)):
        raise ValueError(f"{source}: 'rounds' must be a list of {L} "
                         f"non-negative ints (got {rounds!r:.80})")
    perms = d.get('perms')
    if perms is not None:
        perms = _tensor_list(d, 'perms', L + 1, source)
        top = perms[L].numel() if isinstance(perms[L], Tensor) else 0
        for l in range(L + 1):
            size = top << (L - l)
            what = f"{source}: 'perms'[{l}]"
            perms[l] = _index_tensor(perms[l], (size, ), size, what)
            if bool((torch.bincount(perms[l], minlength=size) != 1).any()):
                raise ValueError(f"{what} is not a permutation of "
                                 f"{size} positions")
            if size < num_nodes[l]:
                raise ValueError(f"{what} has {size} positions for "
                                 f"{num_nodes[l]} nodes")
        # the parent of the real node at position k sits at position k // 2
        for l in range(L):
            fine, coarse = perms[l], perms[l + 1]
            where = torch.empty(coarse.numel(), dtype=torch.long)
            where[coarse] = torch.arange(coarse.numel())
            real = (fine < num_nodes[l]).nonzero().view(-1)
            if not torch.equal(where[clusters[l][fine[real]]], real // 2):
                raise ValueError(f"{source}: 'perms'[{l}] does not follow "
                                 f"'clusters'[{l}] (a node's parent must sit "
                                 f"at half its position)")
    return num_nodes, clusters, edge_index, edge_weight, list(rounds), perms

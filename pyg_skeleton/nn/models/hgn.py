r"""Hierarchical Graph Networks (HGN) for 2D-to-3D pose lifting with coarse
body-mesh branches, after `"Hierarchical Graph Networks for 3D Human Pose
Estimation" <https://arxiv.org/abs/2111.11927>`_ (Li et al., BMVC 2021)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import Parameter

from pyg_skeleton.nn.conv import SemGraphConv
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.models.semgcn import GraphConvBlock, ResGraphBlock
from pyg_skeleton.nn.non_local import DENSE_MAX_KEYS, NonLocalBlock, mesh_groups
from pyg_skeleton.nn.topology import built_on_cpu
from pyg_skeleton.skeleton import Skeleton
from pyg_skeleton.utils import whole_graphs

FUSIONS = ('auto', 'linear', 'pool')
#: The most weights (:math:`N_i N_j`) of a learned dense :class:`NodeMap`
#: between two mesh branches under :obj:`fusion='auto'`: 256 x 256, 14 times
#: the official 48 x 96 maps; larger pairs take the HEM pooling maps.
DENSE_MAP_MAX_WEIGHTS = 2**16
FUSION_ORDERS = ('parallel', 'sequential')
PADDED_NODES = ('self', 'uniform')


def branch_key_groups(edge_index: Tensor, num_nodes: int
                      ) -> list[list[int]] | None:
    r"""The key groups of the non-local blocks of an HGN branch: :obj:`None`
    (one key per node, as the official code) for a graph of at most
    :obj:`DENSE_MAX_KEYS` (256) nodes; otherwise the clusters of a coarse
    heavy-edge-matching level (:func:`~pyg_skeleton.nn.mesh_groups`) of
    the nodes with an edge, and one more group of the nodes without any
    (the fake nodes of a padded level), which no matching can merge.

    Args:
        edge_index (torch.Tensor): The branch's graph :obj:`[2, E]`.
        num_nodes (int): Its number of nodes.
    """
    if num_nodes <= DENSE_MAX_KEYS:
        return None
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    linked = torch.zeros(num_nodes, dtype=torch.bool)
    linked[edge_index.reshape(-1)] = True
    if bool(linked.all()):
        return mesh_groups(edge_index, num_nodes)
    real = linked.nonzero().view(-1)
    relabel = torch.full((num_nodes, ), -1, dtype=torch.long)
    relabel[real] = torch.arange(real.numel())
    groups = [real[group].tolist() for group in
              mesh_groups(relabel[edge_index], real.numel())] \
        if real.numel() else []
    return groups + [(~linked).nonzero().view(-1).tolist()]


class NodeMap(torch.nn.Module):
    r"""A learned linear map over the **node axis**, shared over channels,
    from a graph of :math:`N_a` nodes to one of :math:`N_b` nodes (HGN's
    cross-scale "1x1 convolution", :obj:`Conv1d(N_a, N_b, 1)` on
    ``[B, N_a, C]``):

    .. math::
        \mathbf{Y}_{n, c} = \sum_{m} T_{n m} \mathbf{X}_{m, c} + t_n .

    :math:`N_a N_b + N_b` parameters, initialised as :obj:`Conv1d`
    (:math:`\mathcal{U}(\pm 1 / \sqrt{N_a})`). Input ``[..., N_a, C]``.
    """
    def __init__(self, in_nodes: int, out_nodes: int, bias: bool = True):
        super().__init__()
        self.in_nodes, self.out_nodes = int(in_nodes), int(out_nodes)
        itemsize = torch.empty((), dtype=torch.get_default_dtype()).itemsize
        check_memory('NodeMap', (self.in_nodes + 1) * self.out_nodes *
                     itemsize, f'a dense {self.out_nodes} x {self.in_nodes} '
                     f'node map', "between fine mesh levels use "
                     "fusion='auto' or fusion='pool' with the HEM pooling "
                     "maps (HGN.from_hierarchy)")
        self.weight = Parameter(torch.empty(out_nodes, in_nodes))
        self.bias = Parameter(torch.empty(out_nodes)) if bias else None
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.in_nodes)
        torch.nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.size(-2) != self.in_nodes:
            raise ValueError(f"'NodeMap' expects {self.in_nodes} nodes on "
                             f"dim -2 (got {list(x.shape)})")
        if x.dim() == 2:
            out = self.weight @ x
            return out if self.bias is None else out + self.bias.unsqueeze(-1)
        # bmm with the matrix expanded over the batch, not a broadcasting
        # matmul, which copies x to make one product (timings in
        # docs/design_notes.rst).
        x3 = x.reshape(-1, self.in_nodes, x.size(-1))
        weight = self.weight.expand(x3.size(0), -1, -1)
        if self.bias is None:
            out = torch.bmm(weight, x3)
        else:
            out = torch.baddbmm(self.bias.unsqueeze(-1), weight, x3)
        return out.view(x.shape[:-2] + out.shape[-2:])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.in_nodes} -> ' \
               f'{self.out_nodes})'


class MultiScaleFusion(torch.nn.Module):
    r"""Multi-scale feature fusion across :math:`K` graphs with different
    node sets (HGN, Eq. 3):

    .. math::
        \mathbf{Y}_j = \mathbf{X}_j + \sum_{i \ne j} T_{i \to j}
        (\mathbf{X}_i),

    with a learned :class:`NodeMap` per ordered pair, or any fixed module
    given in :obj:`maps` (*e.g.* a :class:`~pyg_skeleton.mesh.HEMPool` /
    :class:`~pyg_skeleton.mesh.HEMUnpool` between two mesh levels).

    :obj:`order='parallel'` computes every :math:`T_{i \to j}` from the
    inputs, as the paper's figure draws it. :obj:`order='sequential'`
    reproduces the official code, which accumulates each fused output in
    place into the input tensor of its branch: branches are updated in order
    :math:`j = 0, 1, \dots` and later branches read the already updated
    earlier ones (Gauss-Seidel), *e.g.* branch 1 reads branch 0 after it
    received branch 1's contribution. Both forms are written out of place, so
    autograd is safe.

    Inputs and outputs are lists of ``[..., N_k, C]`` tensors.
    """
    def __init__(self, num_nodes: Sequence[int], order: str = 'parallel',
                 maps: dict[tuple[int, int], torch.nn.Module] | None = None):
        super().__init__()
        if order not in FUSION_ORDERS:
            raise ValueError(f"Unknown fusion order '{order}' (choose from "
                             f"{FUSION_ORDERS})")
        self.num_nodes = [int(n) for n in num_nodes]
        self.order = order
        maps = maps or {}
        self.maps = torch.nn.ModuleDict()
        for j in range(len(self.num_nodes)):
            for i in range(len(self.num_nodes)):
                if i == j:
                    continue
                # Not maps.get(..., NodeMap(...)): the default argument would
                # build (and throw away) a dense N_j x N_i map for every
                # given pair, 230 MB at 10,661 vertices.
                if (i, j) in maps:
                    self.maps[f'{i}_{j}'] = maps[(i, j)]
                else:
                    self.maps[f'{i}_{j}'] = NodeMap(self.num_nodes[i],
                                                    self.num_nodes[j])

    def forward(self, xs: Sequence[Tensor]) -> list[Tensor]:
        if len(xs) != len(self.num_nodes):
            raise ValueError(f"'MultiScaleFusion' expects "
                             f"{len(self.num_nodes)} inputs (got {len(xs)})")
        src = list(xs)
        out = list(xs)
        for j in range(len(xs)):
            read = out if self.order == 'sequential' else src
            y = xs[j]
            for i in range(len(xs)):
                if i != j:
                    y = y + self.maps[f'{i}_{j}'](read[i])
            out[j] = y
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_nodes}, '
                f'order={self.order!r})')


class _Join(torch.nn.Module):
    r"""Starts a new branch as :math:`\sum_i T_{i \to k}(\mathbf{X}_i)` over
    the existing branches."""
    def __init__(self, maps: list[torch.nn.Module]):
        super().__init__()
        self.maps = torch.nn.ModuleList(maps)

    def forward(self, xs: Sequence[Tensor]) -> Tensor:
        out = self.maps[0](xs[0])
        for m, x in zip(self.maps[1:], xs[1:]):
            out = out + m(x)
        return out


class HGN(torch.nn.Module):
    r"""Hierarchical Graph Networks: parallel sub-networks on the skeleton
    and on coarse body-mesh graphs that repeatedly exchange features.

    Branch 0 runs on the skeleton, branch :math:`k \ge 1` on
    :obj:`mesh_graphs[k - 1]` (HGN: the 48- and 96-node padded HEM levels of
    SMPL). Branch :math:`k` has :obj:`num_blocks[k]` residual blocks
    (two :class:`~pyg_skeleton.nn.SemGraphConv` + batch norm + ReLU layers
    with a skip, then a :class:`~pyg_skeleton.nn.NonLocalBlock`) and joins
    in the last :obj:`num_blocks[k]` of the :math:`S = \max_k`
    :obj:`num_blocks[k]` stages. As in the official code
    with the default :obj:`(4, 4, 2)`:

    * an input graph convolution block lifts the 2D joints to
      :obj:`hidden_channels`;
    * a branch joining at a stage starts as :math:`\sum_i T_{i \to k}
      (\mathbf{X}_i)` over the existing branches;
    * every stage runs one block per active branch, then a
      :class:`MultiScaleFusion` of the active branches; before a stage at
      which a new branch joins, the existing branches are fused first and
      the new branch starts from their fused features (the official
      :obj:`fc_2_1_3` and :obj:`fc_1_2_3`, then :obj:`fc_1_3_3` and
      :obj:`fc_2_3_3`); a fusion always follows the last stage;
    * a :class:`~pyg_skeleton.nn.SemGraphConv` head per branch.

    With :obj:`(4, 4, 2)` that is the official model's 19 node maps
    (1 + 2 + 2 + 2 + 6 + 6) and, on graphs of 17, 48 and 96 nodes at width
    128, its 1,040,527 parameters besides the edge logits (1,045,621 in all
    on the official SMPL graphs; ours has one more logit per node whose
    official adjacency row lacks a self-loop, see :meth:`from_official`).
    :obj:`fuse_on_join=False` leaves out the fusion before a branch joins
    (17 maps, 1,697 parameters fewer at these sizes; the previous default).

    Fake (padded) mesh nodes, which have no edge, see only themselves in a
    graph convolution by default (:obj:`padded_nodes='self'`). The official
    dense softmax gives each of them the uniform average over all nodes of
    its level instead (:obj:`padded_nodes='uniform'`, see
    :class:`~pyg_skeleton.nn.SemGraphConv`'s :obj:`isolated_nodes`). Real
    nodes never read fake ones through a graph convolution, but they do
    through the non-local blocks, the node maps and the batch-norm
    statistics, so real-node outputs differ between the two. The official
    model is :obj:`fusion_order='sequential'`,
    :obj:`padded_nodes='uniform'` (:meth:`from_official` loads its weights).

    **Fine meshes.** The official design (small padded levels of 48 and 96
    nodes) is kept exactly where it applies, and the model stays linear in
    the number of vertices where it does not:

    * *cross-scale maps* (:obj:`fusion='auto'`, the default): a learned
      dense :class:`NodeMap` of :math:`N_j \times N_i` weights for every
      map to or from the skeleton (:math:`J N_k`, linear in the mesh size)
      and between two mesh branches with :math:`N_i N_j \le`
      :obj:`DENSE_MAP_MAX_WEIGHTS` (:math:`2^{16}`, *e.g.* 256 x 256); a
      larger pair of mesh branches is fused through the fixed HEM pooling
      (fine to coarse) and unpooling (coarse to fine) maps of
      :obj:`pool_maps`, which :meth:`from_hierarchy` builds. No dense map
      is built for a pair that does not use one. :obj:`fusion='linear'`
      forces dense maps everywhere; their total size is checked against
      the available memory first (a :class:`MemoryError` naming the
      estimate and :obj:`fusion='auto'`).
    * *non-local keys*: a branch of more than :obj:`DENSE_MAX_KEYS` (256)
      nodes max-pools the keys of its non-local blocks per cluster of a
      coarse heavy-edge-matching level of its graph, as
      :class:`~pyg_skeleton.nn.SemGCN` does on meshes (at most 256
      clusters, plus one group of the padded nodes without edges, see
      ``branch_key_groups``); branches of up to 256 nodes, the
      skeleton and the official levels included, keep one key per node.

    Args:
        skeleton (Skeleton or str): The skeleton of branch 0.
        mesh_graphs (sequence of (Tensor, int)): :obj:`(edge_index,
            num_nodes)` of each mesh branch, coarsest first (HGN: 48 then
            96 nodes). Build them with :meth:`from_hierarchy`.
        in_channels (int): Input size per joint. (default: :obj:`2`)
        hidden_channels (int): Hidden size. (default: :obj:`128`)
        out_channels (int): Output size per node. (default: :obj:`3`)
        num_blocks (sequence of int): Residual blocks per branch.
            (default: :obj:`(4, 4, 2)`)
        non_local (bool): Follow every block by a non-local block.
            (default: :obj:`True`)
        fusion (str): :obj:`'auto'` (learned :class:`NodeMap` where the
            map is small, :obj:`pool_maps` between large mesh branches, see
            above), :obj:`'linear'` (learned :class:`NodeMap` for every
            pair, official) or :obj:`'pool'` (the fixed maps of
            :obj:`pool_maps` between mesh branches, learned maps to and from
            the skeleton). (default: :obj:`'auto'`)
        fusion_order (str): :obj:`'parallel'` or :obj:`'sequential'`
            (official), see :class:`MultiScaleFusion`.
        fuse_on_join (bool): Fuse the existing branches before a new one
            joins, as the official code. (default: :obj:`True`)
        padded_nodes (str): What a mesh node without any edge (a padded
            node) aggregates in a graph convolution: :obj:`'self'` or
            :obj:`'uniform'` (official). (default: :obj:`'self'`)
        pool_maps (dict, optional): :obj:`{(i, j): module}` fixed maps from
            branch :obj:`i` to branch :obj:`j` for :obj:`fusion='pool'` or
            :obj:`'auto'` (:meth:`from_hierarchy` passes the HEM pooling and
            unpooling maps).

    Raises:
        ValueError: if :obj:`fusion='auto'` needs a pooling map that
            :obj:`pool_maps` lacks (a large pair of mesh branches).
        MemoryError: if the dense node maps would not fit in memory
            (``pyg_skeleton.nn.memory.check_memory``), before any is
            allocated.

    Shapes:
        - **input:** 2D joints :math:`(B, J, F_{in})`, or :math:`(B J,
          F_{in})` with the :obj:`batch` vector or the :obj:`edge_index`
          of a disjoint batch of whole skeletons (each graph with the
          skeleton's joints in order), see :meth:`forward`
        - **output:** a list: the pose :math:`(B, J, F_{out})` and each mesh
          branch's vertices :math:`(B, N_k, F_{out})` (or the disjoint
          layouts :math:`(B N_k, F_{out})`)
    """
    @built_on_cpu
    def __init__(self, skeleton: Skeleton | str,
                 mesh_graphs: Sequence[tuple[Tensor, int]],
                 in_channels: int = 2, hidden_channels: int = 128,
                 out_channels: int = 3,
                 num_blocks: Sequence[int] = (4, 4, 2),
                 non_local: bool = True, fusion: str = 'auto',
                 fusion_order: str = 'parallel', fuse_on_join: bool = True,
                 pool_maps: dict[tuple[int, int], torch.nn.Module] | None = None,
                 padded_nodes: str = 'self'):
        super().__init__()
        if isinstance(skeleton, str):
            skeleton = Skeleton.preset(skeleton)
        num_blocks = [int(b) for b in num_blocks]
        if len(num_blocks) != len(mesh_graphs) + 1:
            raise ValueError(f"'num_blocks' needs one entry per branch "
                             f"({len(mesh_graphs) + 1}), got {num_blocks}")
        stages = max(num_blocks)
        if num_blocks[0] != stages or any(
                b > a for a, b in zip(num_blocks, num_blocks[1:])) or min(
                    num_blocks) < 1:
            raise ValueError(f"'num_blocks' must be positive and "
                             f"non-increasing, the skeleton branch longest "
                             f"(got {num_blocks})")
        if fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion '{fusion}' (choose from "
                             f"{FUSIONS})")
        if padded_nodes not in PADDED_NODES:
            raise ValueError(f"Unknown 'padded_nodes' {padded_nodes!r} "
                             f"(choose from {PADDED_NODES})")
        if fusion == 'pool' and not pool_maps:
            raise ValueError("fusion='pool' needs 'pool_maps' (use "
                             "HGN.from_hierarchy)")
        self.skeleton = skeleton
        # (edge_index, num_nodes) of every branch, the skeleton first.
        graphs = [(skeleton.edge_index, skeleton.num_joints)]
        graphs += [(torch.as_tensor(ei, dtype=torch.long), int(n))
                   for ei, n in mesh_graphs]
        self.graphs = graphs
        self.num_nodes = [n for _, n in graphs]
        self.num_blocks = num_blocks
        self.start = [stages - b for b in num_blocks]
        self.stages = stages
        self.non_local = non_local
        self.fusion = fusion
        self.fusion_order = fusion_order
        self.fuse_on_join = fuse_on_join
        self.padded_nodes = padded_nodes
        pool_maps = dict(pool_maps or {}) if fusion != 'linear' else {}
        pre_joins, joins, fusions = self._plan()
        # Every map a fusion or join uses, planned first, so that the
        # memory of the dense ones is checked before any is allocated.
        uses = [(i, j) for active in list(pre_joins.values()) + list(
            fusions.values()) for i in active for j in active if i != j]
        uses += [(i, k) for k, existing in joins.items() for i in existing]
        kinds = {pair: self._map_kind(*pair, pool_maps) for pair in uses}
        dense = [(i, j) for i, j in uses if kinds[(i, j)] == 'dense']
        itemsize = torch.empty((), dtype=torch.get_default_dtype()).itemsize
        if dense:
            i, j = max(dense, key=lambda p: self.num_nodes[p[0]] *
                       self.num_nodes[p[1]])
            check_memory(
                'HGN', sum((self.num_nodes[i] + 1) * self.num_nodes[j]
                           for i, j in dense) * itemsize,
                f'{len(dense)} dense node maps (the largest '
                f'{self.num_nodes[j]} x {self.num_nodes[i]})',
                "use fusion='auto' (the default) with HGN.from_hierarchy: "
                "dense maps only between small branches, the HEM pooling "
                "maps between large ones")

        def node_map(i: int, j: int) -> torch.nn.Module:
            if kinds[(i, j)] == 'pool':
                return pool_maps[(i, j)]
            return NodeMap(self.num_nodes[i], self.num_nodes[j])

        def fusion_of(active: list[int]) -> MultiScaleFusion:
            maps = {(a, b): node_map(i, j) for a, i in enumerate(active)
                    for b, j in enumerate(active) if i != j}
            return MultiScaleFusion([self.num_nodes[i] for i in active],
                                    fusion_order, maps)

        def conv(i: int, o: int, g: tuple[Tensor, int]) -> SemGraphConv:
            return SemGraphConv(i, o, *g, isolated_nodes=padded_nodes)

        h = hidden_channels
        self.input = GraphConvBlock(in_channels, h, skeleton)
        self.blocks = torch.nn.ModuleList([
            torch.nn.ModuleList([ResGraphBlock(h, g, conv)
                                 for _ in range(num_blocks[k])])
            for k, g in enumerate(graphs)
        ])
        # One partition per branch, shared by its blocks (None: one key per
        # node, the official blocks on graphs of up to 256 nodes).
        self.key_groups = [
            branch_key_groups(ei, n) if non_local else None
            for ei, n in graphs]
        self.non_locals = torch.nn.ModuleList([
            torch.nn.ModuleList([NonLocalBlock(h, groups=self.key_groups[k])
                                 for _ in range(num_blocks[k])]
                                if non_local else [])
            for k in range(len(graphs))
        ])
        self.joins = torch.nn.ModuleDict()
        self.pre_join_fusions = torch.nn.ModuleDict()
        self.fusions = torch.nn.ModuleDict()
        # Built stage by stage, so that a seed draws the same weights as
        # before the plan existed.
        for s in range(stages):
            if s in pre_joins:
                self.pre_join_fusions[str(s)] = fusion_of(pre_joins[s])
            for k, existing in joins.items():
                if self.start[k] == s:
                    self.joins[str(k)] = _Join([node_map(i, k)
                                                for i in existing])
            if s in fusions:
                self.fusions[str(s)] = fusion_of(fusions[s])
        self.heads = torch.nn.ModuleList(
            [conv(h, out_channels, g) for g in graphs])

    def _plan(self) -> tuple[dict[int, list[int]], dict[int, list[int]],
                             dict[int, list[int]]]:
        r"""The branches fused before stage :obj:`s` (a branch joins at
        :obj:`s`), the existing branches each joining branch :obj:`k`
        starts from, and the branches fused after stage :obj:`s`."""
        pre_joins, joins, fusions = {}, {}, {}
        branches = range(len(self.num_nodes))
        for s in range(self.stages):
            before = [k for k in branches if self.start[k] < s]
            new = [k for k in branches if k > 0 and self.start[k] == s]
            if new and self.fuse_on_join and len(before) > 1:
                pre_joins[s] = before
            for k in new:
                joins[k] = [i for i in range(k) if self.start[i] <= s]
            active = [k for k in branches if self.start[k] <= s]
            joining_next = any(self.start[k] == s + 1 for k in branches
                               if k > 0)
            if len(active) > 1 and (s == self.stages - 1 or not joining_next):
                fusions[s] = active
        return pre_joins, joins, fusions

    def _map_kind(self, i: int, j: int,
                  pool_maps: dict[tuple[int, int], torch.nn.Module]) -> str:
        r""":obj:`'dense'` (a learned :class:`NodeMap`) or :obj:`'pool'`
        (:obj:`pool_maps[(i, j)]`) for the map from branch :obj:`i` to
        branch :obj:`j`."""
        if self.fusion != 'auto':
            return 'pool' if (i, j) in pool_maps else 'dense'
        n_i, n_j = self.num_nodes[i], self.num_nodes[j]
        # Maps to and from the skeleton are J x N: linear in the mesh size.
        if i == 0 or j == 0 or n_i * n_j <= DENSE_MAP_MAX_WEIGHTS:
            return 'dense'
        if (i, j) in pool_maps:
            return 'pool'
        raise ValueError(
            f"'HGN' with fusion='auto' would need a dense {n_j} x {n_i} map "
            f"from branch {i} to branch {j} (more than "
            f"{DENSE_MAP_MAX_WEIGHTS} weights); build the model with "
            f"HGN.from_hierarchy (HEM pooling maps between mesh branches), "
            f"pass 'pool_maps', or force dense maps with fusion='linear'")

    @classmethod
    def from_hierarchy(cls, skeleton: Skeleton | str, hierarchy,
                       mesh_levels: Sequence[int] = (-2, -3),
                       padded: bool = True, **kwargs) -> HGN:
        r"""An HGN whose mesh branches are levels of a
        :class:`~pyg_skeleton.mesh.MeshHierarchy`, coarsest first (HGN on
        SMPL with 9 levels: :obj:`(-2, -3)`, the 48- and 96-node graphs; the
        coarsest level is replaced by the skeleton). With :obj:`padded`, the
        branches use the padded binary-tree layout (the hierarchy must be
        built with :obj:`padded=True`). Mesh branches are fused through
        the HEM pool (dyadic) and unpool operators between them: every pair
        with :obj:`fusion='pool'`, the pairs too large for a dense map with
        the default :obj:`fusion='auto'` (on a fine level, *e.g.* the mesh
        itself, :obj:`mesh_levels=(2, 0)` and :obj:`padded=False`).

        The real sizes of the levels are those of the hierarchy's
        coarsening: the official code's 83 real vertices of the 96-node
        SMPL level (and 45 of 48) come from NumPy < 1.25's sort order, see
        ``hem_coarsen``'s :obj:`method='official'`."""
        levels = [hierarchy._level(lv) for lv in mesh_levels]
        if padded:
            graphs = [(hierarchy.padded_edge_index(lv),
                       hierarchy.num_padded(lv)) for lv in levels]
        else:
            graphs = [(hierarchy.edge_index(lv), hierarchy.num_nodes[lv])
                      for lv in levels]
        if kwargs.get('fusion', 'auto') != 'linear' and \
                'pool_maps' not in kwargs:
            maps = {}
            for a, la in enumerate(levels):
                for b, lb in enumerate(levels):
                    if la < lb:  # a is finer: pool a -> b, unpool b -> a
                        maps[(a + 1, b + 1)] = hierarchy.pool_op(
                            la, lb, padded=padded)
                        maps[(b + 1, a + 1)] = hierarchy.unpool_op(
                            lb, la, padded=padded)
            kwargs['pool_maps'] = maps
        model = cls(skeleton, graphs, **kwargs)
        if padded:
            for k, lv in enumerate(levels):
                model.register_buffer(f'real_mask_{k + 1}',
                                      hierarchy.real_mask(lv),
                                      persistent=False)
        return model

    @classmethod
    def from_official(cls, source, mesh_graphs,
                      skeleton: Skeleton | str = 'h36m17',
                      mesh_levels: Sequence[int] = (-2, -3),
                      **kwargs) -> HGN:
        r"""An HGN with the weights of an official checkpoint (the
        official code's :obj:`torch.save` of :obj:`{'model_state_dict':
        ..., ...}`, with or without :class:`~torch.nn.DataParallel`'s
        :obj:`module.` prefix), read with :obj:`weights_only=True`.

        The model is the official one: :obj:`fusion_order='sequential'`,
        :obj:`fuse_on_join=True`, :obj:`padded_nodes='uniform'`, node maps,
        non-local blocks, sizes and :obj:`num_blocks` read from the
        checkpoint (:obj:`kwargs` override them). Its outputs equal the
        official model's on the same input to rounding, in training and in
        evaluation mode. It is returned in evaluation mode.

        Args:
            source (str, Path or dict): The checkpoint file, or a loaded
                checkpoint or state dict.
            mesh_graphs (MeshHierarchy or sequence of (Tensor, int)): The
                official coarse graphs: a padded
                :class:`~pyg_skeleton.mesh.MeshHierarchy` of SMPL built as
                the official code does (its :obj:`mesh_levels`), or the
                graphs coarsest first (48 then 96 nodes) as
                :obj:`(edge_index, num_nodes)` on the padded node order
                **with the self-loops the official adjacency has** (those of
                merged vertices: :obj:`hierarchy.padded_edge_index(level,
                self_loops=True)`). Each official edge-logit vector is laid
                out over these non-zeros; our self-loop slots that they lack
                get the logit :math:`-9 \cdot 10^{15}` (weight exactly 0).
            skeleton (Skeleton or str): The 17-joint skeleton.
                (default: :obj:`'h36m17'`)
            mesh_levels (sequence of int): The hierarchy's levels of the mesh
                branches, as in :meth:`from_hierarchy`.
                (default: :obj:`(-2, -3)`)

        Raises:
            ValueError: if the file is not a tensor checkpoint, or its keys
                or shapes do not fit (named in the message).
        """
        from pyg_skeleton.nn.models.official import hgn_from_official
        return hgn_from_official(cls, source, mesh_graphs, skeleton,
                                 mesh_levels, **kwargs)

    def real_masks(self) -> list[Tensor | None]:
        r"""Per mesh branch, the boolean mask of real (non-fake) nodes when
        built by :meth:`from_hierarchy` with :obj:`padded=True`."""
        return [getattr(self, f'real_mask_{k}', None)
                for k in range(1, len(self.graphs))]

    def forward(self, x: Tensor, batch: Tensor | None = None,
                edge_index: Tensor | None = None) -> list[Tensor]:
        r"""Runs the model.

        Args:
            x (torch.Tensor): 2D joints :obj:`[B, J, F_in]` (or one
                skeleton :obj:`[J, F_in]`), or :obj:`[B J, F_in]` for a
                disjoint batch of whole skeletons, each with the skeleton's
                joints in order, given with :obj:`batch`, :obj:`edge_index`
                or both.
            batch (torch.Tensor, optional): The batch vector of a disjoint
                batch. (default: :obj:`None`)
            edge_index (torch.Tensor, optional): The edges of a disjoint
                batch (after :obj:`batch`, which keeps its place), *e.g.* of
                :obj:`Batch.from_data_list([skeleton.to_data(x=p) ...])`:
                every edge of each copy of the skeleton once, in any order.
                (default: :obj:`None`)

        Raises:
            ValueError: If a disjoint batch does not hold whole skeletons
                (:func:`~pyg_skeleton.utils.whole_graphs`,
                :meth:`Topology.tiles
                <pyg_skeleton.nn.Topology.tiles>`).
        """
        if batch is not None or edge_index is not None:
            # Whole skeletons are a static batch laid out flat: the model
            # runs once on the view, and each output is flattened once.
            joints = self.num_nodes[0]
            if x.dim() != 2:
                raise ValueError(f"'HGN' expects a disjoint batch [B * "
                                 f"{joints}, C] with its 'batch' vector or "
                                 f"'edge_index' (got shape {list(x.shape)})")
            if batch is not None:
                whole_graphs(batch, x.size(0), joints, 'HGN', node='joint')
            # The input layer's topology is the skeleton: its check of whole
            # copies.
            if edge_index is not None and \
                    not self.input.conv.topology.tiles(edge_index, x.size(0)):
                raise ValueError(
                    f"'HGN' needs the 'edge_index' of whole skeletons: every "
                    f"edge of each copy of the {joints}-joint skeleton once "
                    f"(got {edge_index.size(1)} edges for {x.size(0)} rows)")
            static = x.view(-1, joints, x.size(-1))
            return [out.flatten(0, 1) for out in self(static)]

        def fuse(module: MultiScaleFusion, ids: list[int]) -> None:
            for k, y in zip(ids, module([xs[k] for k in ids])):
                xs[k] = y

        xs: list[Tensor | None] = [None] * len(self.graphs)
        xs[0] = self.input(x)
        for s in range(self.stages):
            key = str(s)
            if key in self.pre_join_fusions:
                fuse(self.pre_join_fusions[key],
                     [k for k in range(len(xs)) if self.start[k] < s])
            for k in range(1, len(xs)):
                if self.start[k] == s:
                    existing = [i for i in range(k) if self.start[i] <= s]
                    xs[k] = self.joins[str(k)]([xs[i] for i in existing])
            for k in range(len(xs)):
                if self.start[k] <= s:
                    i = s - self.start[k]
                    xs[k] = self.blocks[k][i](xs[k])
                    if self.non_local:
                        xs[k] = self.non_locals[k][i](xs[k])
            if key in self.fusions:
                fuse(self.fusions[key],
                     [k for k in range(len(xs)) if self.start[k] <= s])
        return [head(xs[k]) for k, head in enumerate(self.heads)]

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(nodes={self.num_nodes}, '
                f'blocks={self.num_blocks}, fusion={self.fusion!r}, '
                f'order={self.fusion_order!r}, '
                f'fuse_on_join={self.fuse_on_join}, '
                f'padded_nodes={self.padded_nodes!r})')


class HGNLoss(torch.nn.Module):
    r"""HGN's pose plus coarse-mesh loss (Eq. 4)

    .. math::
        \mathcal{L} = \lambda_P \sum_{i=1}^{J} \| \hat{\mathbf{p}}_i -
        \mathbf{p}_i \|_2^2 + \lambda_M \sum_{c} \sum_{i=1}^{V_c}
        \| \hat{\mathbf{m}}^c_i - \mathbf{m}^c_i \|_2^2,

    averaged over the batch, with the paper's :math:`\lambda_P = 1`,
    :math:`\lambda_M = 0.01`. Masks restrict each mesh term to its real
    (non-padded) vertices. :obj:`reduction='mean'` averages over joints /
    valid vertices and coordinates instead of summing (the official code's
    MSE); :obj:`official` returns the official weighting
    (:math:`100 \cdot \mathrm{MSE}_{pose} + \mathrm{MSE}_{mesh}`).
    """
    def __init__(self, lambda_pose: float = 1.0, lambda_mesh: float = 0.01,
                 reduction: str = 'sum'):
        super().__init__()
        if reduction not in ('sum', 'mean'):
            raise ValueError(f"Unknown reduction '{reduction}'")
        self.lambda_pose = lambda_pose
        self.lambda_mesh = lambda_mesh
        self.reduction = reduction

    @classmethod
    def official(cls) -> HGNLoss:
        return cls(100.0, 1.0, 'mean')

    def _term(self, pred: Tensor, target: Tensor,
              mask: Tensor | None) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"'HGNLoss' got a prediction of shape "
                             f"{list(pred.shape)} for a target of shape "
                             f"{list(target.shape)}")
        sq = (pred - target).pow(2)
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != pred.shape[-2:-1]:
                raise ValueError(f"'HGNLoss' needs a boolean mask of shape "
                                 f"{list(pred.shape[-2:-1])} (one entry per "
                                 f"vertex), got {mask.dtype} "
                                 f"{list(mask.shape)}")
            sq = sq[..., mask.to(pred.device), :]
        if self.reduction == 'mean':
            return sq.mean()
        return sq.sum() / (sq.numel() // max(sq.size(-1) * sq.size(-2), 1))

    def forward(self, pose: Tensor, meshes: Sequence[Tensor],
                target_pose: Tensor, target_meshes: Sequence[Tensor],
                masks: Sequence[Tensor | None] | None = None
                ) -> Tensor:
        if len(meshes) != len(target_meshes):
            raise ValueError("'HGNLoss' needs one target per mesh")
        masks = list(masks) if masks is not None else [None] * len(meshes)
        # zip() would silently drop the mesh terms beyond the last mask.
        if len(masks) != len(meshes):
            raise ValueError(f"'HGNLoss' got {len(masks)} masks for "
                             f"{len(meshes)} meshes (pass None for a mesh "
                             f"without padding)")
        loss = self.lambda_pose * self._term(pose, target_pose, None)
        for m, t, mask in zip(meshes, target_meshes, masks):
            loss = loss + self.lambda_mesh * self._term(m, t, mask)
        return loss

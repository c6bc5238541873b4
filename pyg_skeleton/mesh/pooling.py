r"""Pooling and unpooling between the levels of a HEM coarsening.

A HEM hierarchy is a tree: every fine vertex belongs to exactly one coarse
vertex at every coarser level. Pooling from level :math:`a` to level
:math:`b > a` is therefore one weighted scatter-sum

.. math::
    \mathbf{x}^{(b)}_c = \sum_{i \,:\, \pi(i) = c} w_i \, \mathbf{x}^{(a)}_i,

with :math:`\pi` the composed cluster map, and unpooling is the gather
:math:`\mathbf{x}^{(a)}_i = \mathbf{x}^{(b)}_{\pi(i)}`. Both run as sparse
operators (no dense :math:`N_a \times N_b` matrix) on static batches
``[..., N, C]`` and on disjoint batches ``[B N, C]`` of graphs that each
hold the level's :math:`N` nodes in order.

Weights (:obj:`mode`):

* :obj:`'dyadic'`: the official HGN / Pose2Mesh pseudo ground truth. Each
  level averages a matched pair with weights 1/2 and copies a singleton, so
  :math:`w_i = 2^{-m_i}` with :math:`m_i` the number of levels at which
  :math:`i`'s cluster was a pair. When the tree is unbalanced this is **not**
  the plain mean of the descendants: a vertex that stayed a singleton for a
  few levels weighs more than its cousins.
* :obj:`'mean'`: the plain cluster mean, :math:`w_i = 1 / |\pi^{-1}(c)|`.
* :obj:`'sum'`: :math:`w_i = 1`.

For the first two the weights of every coarse vertex sum to one, so pooling
and then unpooling reproduces a constant signal exactly.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.utils import whole_graphs

POOL_MODES = ('dyadic', 'mean', 'sum')


def _check_size(owner: str, x: Tensor, rows: int, num_rows: int,
                copies: int) -> None:
    # `copies` buffers of the result's size (the weighted or masked copy and
    # the output), num_rows of x's rows each: unpooling to a fine level is
    # up to hundreds of times the size of its input.
    elements = x.numel() // max(rows, 1) * num_rows
    check_memory(owner, copies * elements * x.element_size(),
                 f'{copies} x {elements} features', 'use a smaller batch')


def compose_clusters(clusters: list[Tensor], source: int, target: int
                     ) -> Tensor:
    r"""The map from the nodes of level :obj:`source` to those of level
    :obj:`target` (:obj:`source <= target`)."""
    if not 0 <= source <= target <= len(clusters):
        raise ValueError(f"Need 0 <= source <= target <= {len(clusters)} "
                         f"(got {source}, {target})")
    if source == target:
        n = (clusters[source].numel() if source < len(clusters) else
             int(clusters[-1].max()) + 1)
        return torch.arange(n)
    index = clusters[source]
    for level in range(source + 1, target):
        index = clusters[level][index]
    return index


def pool_weights(clusters: list[Tensor], source: int, target: int,
                 mode: str = 'dyadic') -> Tensor:
    r"""Per-node pooling weights :math:`w_i` of level :obj:`source` into
    level :obj:`target` (float64)."""
    if mode not in POOL_MODES:
        raise ValueError(f"Unknown pooling mode '{mode}' (choose from "
                         f"{POOL_MODES})")
    index = compose_clusters(clusters, source, target)
    n = index.numel()
    if mode == 'sum':
        return torch.ones(n, dtype=torch.float64)
    if mode == 'mean':
        size = torch.bincount(index).to(torch.float64)
        return 1.0 / size[index]
    w = torch.ones(n, dtype=torch.float64)
    current = torch.arange(n)
    for level in range(source, target):
        c = clusters[level]
        size = torch.bincount(c).to(torch.float64)
        w = w / size[c[current]]
        current = c[current]
    return w


def _check_index(index: Tensor, num_target: int, what: str) -> None:
    if index.dim() != 1:
        raise ValueError(f"{what}: 'index' must be 1-D (got "
                         f"{list(index.shape)})")
    if index.dtype in (torch.bool, ) or index.is_floating_point():
        raise ValueError(f"{what}: 'index' must hold integers (got "
                         f"{index.dtype})")
    if index.numel() and (int(index.min()) < 0
                          or int(index.max()) >= num_target):
        bad = index[(index < 0) | (index >= num_target)]
        raise ValueError(f"{what}: 'index' holds the cluster {int(bad[0])},"
                         f" out of range for {num_target} coarse nodes")


def hem_pool(x: Tensor, index: Tensor, weight: Tensor, num_clusters: int,
             batch: Tensor | None = None) -> Tensor:
    r"""Weighted scatter-sum pooling :math:`\mathbf{x}_c = \sum_{\pi(i) = c}
    w_i \mathbf{x}_i`.

    Args:
        x (Tensor): ``[..., N, C]`` (static batch), or ``[B N, C]`` with
            :obj:`batch` given (disjoint batch, graphs in order).
        index (Tensor): ``[N]`` cluster of each node.
        weight (Tensor): ``[N]`` weights.
        num_clusters (int): Number of coarse nodes.
        batch (Tensor, optional): The batch vector of a disjoint batch of
            whole graphs, which is pooled as the static batch
            ``x.view(B, N, C)``.

    Raises:
        ValueError: If :obj:`index` holds a cluster outside
            ``[0, num_clusters)``, :obj:`weight` does not match it, or
            :obj:`x` and :obj:`batch` do not hold whole graphs of :obj:`N`
            nodes (:func:`~pyg_skeleton.utils.whole_graphs`).
    """
    _check_index(index, num_clusters, 'hem_pool')
    if weight.shape != index.shape:
        raise ValueError(f"hem_pool: 'weight' must be [{index.numel()}] "
                         f"(got {list(weight.shape)})")
    return _pool(x, index, weight, num_clusters, batch, 'hem_pool')


def _flat_graphs(x: Tensor, graphs: int, num_nodes: int) -> Tensor:
    # A disjoint batch [B N, ...] of whole graphs as the static batch
    # [B, N, F] (the trailing dimensions flattened onto the channels).
    return x.reshape(graphs, num_nodes, math.prod(x.shape[1:]))


def _pool(x: Tensor, index: Tensor, weight: Tensor, num_clusters: int,
          batch: Tensor | None, owner: str) -> Tensor:
    # hem_pool without the index checks (HEMPool checks once when built)
    if batch is not None:
        b = whole_graphs(batch, x.size(0), index.numel(), owner)
        out = _pool(_flat_graphs(x, b, index.numel()), index, weight,
                    num_clusters, None, owner)
        return out.view((b * num_clusters, ) + x.shape[1:])
    # The weighted copy of x and the output, at most as large:
    _check_size('HEMPool', x, 1, 1, 2)
    if x.size(-2) != index.numel():
        raise ValueError(f"hem_pool: expected {index.numel()} nodes on "
                         f"dim -2 (got {list(x.shape)})")
    weight = weight.to(x.dtype).to(x.device)
    out = x.new_zeros(x.shape[:-2] + (num_clusters, x.size(-1)))
    return out.index_add(-2, index.to(x.device), x * weight.unsqueeze(-1))


def hem_unpool(x: Tensor, index: Tensor, mask: Tensor | None = None,
               batch: Tensor | None = None) -> Tensor:
    r"""Unpooling by copying each coarse node to its fine nodes,
    :math:`\mathbf{x}_i = \mathbf{x}_{\pi(i)}` (times :obj:`mask[i]` when a
    0/1 mask of real fine nodes is given). Layouts as :func:`hem_pool`; for a
    disjoint batch :obj:`batch` is the batch vector of the coarse input or
    of the fine output, and each graph has as many coarse nodes as
    :obj:`index` reaches.

    Raises:
        ValueError: If :obj:`index` holds a coarse node that :obj:`x` does
            not have, :obj:`mask` does not match :obj:`index`, or a disjoint
            batch does not hold whole graphs.
    """
    if mask is not None and mask.shape != index.shape:
        raise ValueError(f"hem_unpool: 'mask' must be [{index.numel()}] "
                         f"(got {list(mask.shape)})")
    _check_index(index, (x.size(0) if batch is not None else
                         x.size(-2) if x.dim() >= 2 else 0), 'hem_unpool')
    # A disjoint batch's graphs have as many coarse nodes as the index
    # reaches, a static batch's as x has.
    num_clusters = (int(index.max()) + 1 if index.numel() else 0) \
        if batch is not None else x.size(-2)
    return _unpool(x, index, mask, num_clusters, batch, 'hem_unpool')


def _unpool(x: Tensor, index: Tensor, mask: Tensor | None,
            num_clusters: int, batch: Tensor | None, owner: str) -> Tensor:
    # hem_unpool and HEMUnpool after their checks of index and mask, for x
    # with num_clusters coarse nodes per graph.
    if batch is not None:
        # The batch vector of the coarse input or, as MeshHierarchy.unpool
        # has always taken, of the fine output.
        n, rows = index.numel(), x.size(0)
        if num_clusters and rows % num_clusters == 0 and batch.dim() == 1 \
                and batch.numel() == rows // num_clusters * n != rows:
            b = whole_graphs(batch, batch.numel(), n, owner)
        else:
            b = whole_graphs(batch, rows, num_clusters, owner)
        out = _unpool(_flat_graphs(x, b, num_clusters), index, mask,
                      num_clusters, None, owner)
        return out.view((b * n, ) + x.shape[1:])
    _check_size(owner, x, x.size(-2), index.numel(),
                1 if mask is None else 2)
    out = x.index_select(-2, index.to(x.device))
    if mask is not None:
        out = out * mask.to(out.dtype).to(x.device).unsqueeze(-1)
    return out


class HEMPool(torch.nn.Module):
    r"""Fixed (parameter-free) pooling from a fine to a coarse HEM level,
    :func:`hem_pool` with stored :obj:`index` and :obj:`weight` buffers.
    Build it with :meth:`MeshHierarchy.pool_op`."""
    def __init__(self, index: Tensor, weight: Tensor, num_clusters: int):
        super().__init__()
        _check_index(index, int(num_clusters), 'HEMPool')
        if weight.shape != index.shape:
            raise ValueError(f"HEMPool: 'weight' must be [{index.numel()}] "
                             f"(got {list(weight.shape)})")
        self.register_buffer('index', index.long())
        self.register_buffer('weight', weight.double())
        self.num_clusters = int(num_clusters)

    @property
    def num_nodes(self) -> int:
        return self.index.numel()

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        return _pool(x, self.index, self.weight, self.num_clusters, batch,
                     'HEMPool')

    def matrix(self) -> Tensor:
        r"""The pooling matrix :math:`\mathbf{P}` ``[N, N_c]`` as a sparse
        COO tensor, :math:`\mathbf{x}_c = \mathbf{P}^{\top} \mathbf{x}`."""
        n = self.index.numel()
        return torch.sparse_coo_tensor(
            torch.stack([torch.arange(n, device=self.index.device),
                         self.index]), self.weight,
            (n, self.num_clusters), check_invariants=True).coalesce()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_nodes} -> '
                f'{self.num_clusters})')


class HEMUnpool(torch.nn.Module):
    r"""Fixed unpooling from a coarse to a fine HEM level (:func:`hem_unpool`
    with a stored :obj:`index`, and an optional mask that zeroes padded fake
    nodes; a disjoint batch's graphs have :obj:`num_clusters` nodes)."""
    def __init__(self, index: Tensor, num_clusters: int,
                 mask: Tensor | None = None):
        super().__init__()
        _check_index(index, int(num_clusters), 'HEMUnpool')
        if mask is not None and mask.shape != index.shape:
            raise ValueError(f"HEMUnpool: 'mask' must be [{index.numel()}] "
                             f"(got {list(mask.shape)})")
        self.register_buffer('index', index.long())
        self.register_buffer('mask', None if mask is None else mask.bool())
        self.num_clusters = int(num_clusters)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        if batch is None and (x.dim() < 2
                              or x.size(-2) != self.num_clusters):
            raise ValueError(f"HEMUnpool: expected {self.num_clusters} "
                             f"nodes on dim -2 (got {list(x.shape)})")
        return _unpool(x, self.index, self.mask, self.num_clusters, batch,
                       'HEMUnpool')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.num_clusters} -> '
                f'{self.index.numel()})')


def pool_unpool_pair(clusters: list[Tensor], source: int, target: int,
                     mode: str = 'dyadic') -> tuple[HEMPool, HEMUnpool]:
    r"""A :class:`HEMPool` and :class:`HEMUnpool` between two levels of a
    list of cluster maps."""
    index = compose_clusters(clusters, source, target)
    n_target = int(clusters[target - 1].max()) + 1 if target > 0 else \
        index.numel()
    return (HEMPool(index, pool_weights(clusters, source, target, mode),
                    n_target), HEMUnpool(index, n_target))

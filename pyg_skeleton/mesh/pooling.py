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

import torch
from torch import Tensor

from pyg_skeleton.nn.memory import check_memory

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


def _batched_index(index: Tensor, num_target: int, num_rows: int,
                   batch: Tensor | None, what: str) -> Tensor:
    n = index.numel()
    if num_rows % n != 0:
        raise ValueError(f"{what}: a disjoint batch must hold whole graphs "
                         f"of {n} nodes (got {num_rows} rows)")
    size = num_rows // n
    if batch is not None and batch.numel() != num_rows:
        raise ValueError(f"{what}: 'batch' has {batch.numel()} entries for "
                         f"{num_rows} rows")
    offset = torch.arange(size, device=index.device) * num_target
    return (index.unsqueeze(0) + offset.unsqueeze(1)).reshape(-1)


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
        batch (Tensor, optional): The disjoint batch vector; its presence
            selects the disjoint layout.

    Raises:
        ValueError: If :obj:`index` holds a cluster outside
            ``[0, num_clusters)``, :obj:`weight` does not match it, or
            :obj:`x` does not hold whole graphs of :obj:`N` nodes.
    """
    _check_index(index, num_clusters, 'hem_pool')
    if weight.shape != index.shape:
        raise ValueError(f"hem_pool: 'weight' must be [{index.numel()}] "
                         f"(got {list(weight.shape)})")
    return _pool(x, index, weight, num_clusters, batch)


def _pool(x: Tensor, index: Tensor, weight: Tensor, num_clusters: int,
          batch: Tensor | None) -> Tensor:
    # hem_pool without the index checks (HEMPool checks once when built)
    # The weighted copy of x and the output, at most as large:
    _check_size('HEMPool', x, 1, 1, 2)
    weight = weight.to(x.dtype).to(x.device)
    index = index.to(x.device)
    if batch is None:
        if x.size(-2) != index.numel():
            raise ValueError(f"hem_pool: expected {index.numel()} nodes on "
                             f"dim -2 (got {list(x.shape)})")
        out = x.new_zeros(x.shape[:-2] + (num_clusters, x.size(-1)))
        return out.index_add(-2, index, x * weight.unsqueeze(-1))
    idx = _batched_index(index, num_clusters, x.size(0), batch, 'hem_pool')
    b = x.size(0) // index.numel()
    out = x.new_zeros((b * num_clusters, ) + x.shape[1:])
    w = weight.repeat(b).view((-1, ) + (1, ) * (x.dim() - 1))
    return out.index_add(0, idx, x * w)


def hem_unpool(x: Tensor, index: Tensor, mask: Tensor | None = None,
               batch: Tensor | None = None) -> Tensor:
    r"""Unpooling by copying each coarse node to its fine nodes,
    :math:`\mathbf{x}_i = \mathbf{x}_{\pi(i)}` (times :obj:`mask[i]` when a
    0/1 mask of real fine nodes is given). Layouts as :func:`hem_pool`; for a
    disjoint batch :obj:`batch` is the coarse batch vector (or any tensor of
    matching length).

    Raises:
        ValueError: If :obj:`index` holds a coarse node that :obj:`x` does
            not have, or :obj:`mask` does not match :obj:`index`.
    """
    if mask is not None and mask.shape != index.shape:
        raise ValueError(f"hem_unpool: 'mask' must be [{index.numel()}] "
                         f"(got {list(mask.shape)})")
    _check_index(index, (x.size(0) if batch is not None else
                         x.size(-2) if x.dim() >= 2 else 0), 'hem_unpool')
    index = index.to(x.device)
    copies = 1 if mask is None else 2
    if batch is None:
        _check_size('hem_unpool', x, x.size(-2), index.numel(), copies)
        out = x.index_select(-2, index)
        if mask is not None:
            out = out * mask.to(out.dtype).to(x.device).unsqueeze(-1)
        return out
    num_target = int(index.max()) + 1 if index.numel() else 0
    if x.size(0) % max(num_target, 1) != 0:
        raise ValueError(f"hem_unpool: a disjoint batch must hold whole "
                         f"graphs of {num_target} coarse nodes")
    b = x.size(0) // max(num_target, 1)
    _check_size('hem_unpool', x, x.size(0), b * index.numel(), copies)
    idx = (index.unsqueeze(0) + torch.arange(b, device=x.device).unsqueeze(1)
           * num_target).reshape(-1)
    out = x.index_select(0, idx)
    if mask is not None:
        m = mask.to(out.dtype).to(x.device).repeat(b)
        out = out * m.view((-1, ) + (1, ) * (x.dim() - 1))
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
        return _pool(x, self.index, self.weight, self.num_clusters, batch)

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
    nodes)."""
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
        if batch is not None and x.size(0) % self.num_clusters != 0:
            raise ValueError(f"HEMUnpool: a disjoint batch must hold whole "
                             f"graphs of {self.num_clusters} nodes")
        if batch is None:
            if x.dim() < 2 or x.size(-2) != self.num_clusters:
                raise ValueError(f"HEMUnpool: expected {self.num_clusters} "
                                 f"nodes on dim -2 (got {list(x.shape)})")
            _check_size('HEMUnpool', x, self.num_clusters, self.index.numel(),
                        1 if self.mask is None else 2)
            out = x.index_select(-2, self.index.to(x.device))
            if self.mask is not None:
                out = out * self.mask.to(out.dtype).to(x.device).unsqueeze(-1)
            return out
        b = x.size(0) // self.num_clusters
        _check_size('HEMUnpool', x, x.size(0), b * self.index.numel(),
                    1 if self.mask is None else 2)
        idx = (self.index.unsqueeze(0) + torch.arange(
            b, device=x.device).unsqueeze(1) * self.num_clusters).reshape(-1)
        out = x.index_select(0, idx)
        if self.mask is not None:
            out = out * self.mask.to(out.dtype).repeat(b).view(
                (-1, ) + (1, ) * (x.dim() - 1))
        return out

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

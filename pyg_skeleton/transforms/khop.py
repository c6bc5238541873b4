r"""All node pairs within :math:`L` hops of each other, as an edge list.

Hop-aware operators (:class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv` and
its baselines) aggregate over the *hop sets*
:math:`\mathcal{N}_k(i) = \{ j : d(j, i) = k \}`, :math:`d` the
shortest-path length. :func:`khop_edges` lists every pair with
:math:`1 \le d \le L` once, with its distance; :class:`KHopEdges` stores that
list on a :class:`~torch_geometric.data.Data` object so that disjoint
:class:`~torch_geometric.data.Batch` objects carry it.
"""
import math
from numbers import Integral, Real
from typing import Tuple

import torch
from torch import Tensor

from torch_geometric.data import Data
from torch_geometric.data.datapipes import functional_transform
from torch_geometric.transforms import BaseTransform


def _check_max_hop(max_hop) -> int:
    # int(inf) raises OverflowError and int(nan) ValueError with messages
    # that do not name the argument; bools are not hop counts.
    if isinstance(max_hop, bool) or not isinstance(max_hop, Real) or \
            not math.isfinite(max_hop) or int(max_hop) != max_hop or \
            max_hop < 1:
        raise ValueError(f"'max_hop' must be a positive integer (got "
                         f"{max_hop!r})")
    return int(max_hop)


def khop_edges(edge_index: Tensor, num_nodes: int,
               max_hop: int) -> Tuple[Tensor, Tensor]:
    r"""Returns all pairs of nodes at most :obj:`max_hop` hops apart.

    A pair :math:`(j, i)` is listed when the shortest path from :math:`j` to
    :math:`i` along the edges of :obj:`edge_index` (followed from row 0 to
    row 1) has :math:`1 \le k \le L` edges; :math:`k` is returned with it.
    For an undirected graph (both directions in :obj:`edge_index`) the result
    is symmetric. Self-loops and duplicate edges of the input are ignored;
    the pairs :math:`(i, i)` (hop 0) are never listed.

    The search expands all :math:`N` breadth-first searches at once, one hop
    per step, with gathers over a CSR view of the graph: memory and time are
    linear in the number of pairs found, so it is usable on meshes with
    thousands of nodes. No dense :math:`N \times N` matrix is built.

    Args:
        edge_index (torch.Tensor): The edges :obj:`[2, E]`.
        num_nodes (int): The number of nodes :math:`N`.
        max_hop (int): The largest hop :math:`L \geq 1`.

    Returns:
        :obj:`(edge_index_k, hop)`: :obj:`edge_index_k` of shape
        :obj:`[2, E_L]` (row 0 sources :math:`j`, row 1 targets :math:`i`),
        sorted by target, then source; :obj:`hop` of shape :obj:`[E_L]` with
        each pair's distance in :math:`1..L`.

    Raises:
        ValueError: If :obj:`max_hop` is not an integer :math:`\geq 1`
            (NaN and infinity included), :obj:`num_nodes` is not a positive
            integer, :obj:`edge_index` is not an integer :obj:`[2, E]`
            tensor, or an edge refers to a node outside
            :obj:`[0, num_nodes)`.
    """
    max_hop = _check_max_hop(max_hop)
    if isinstance(num_nodes, bool) or not isinstance(
            num_nodes, Integral) or num_nodes < 1:
        raise ValueError(f"'num_nodes' must be a positive integer (got "
                         f"{num_nodes!r})")
    num_nodes = int(num_nodes)
    if not isinstance(edge_index, Tensor) or edge_index.is_floating_point() \
            or edge_index.is_complex():
        raise ValueError("'edge_index' must be an integer tensor")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, num_edges] (got "
                         f"{list(edge_index.size())})")
    device = edge_index.device
    edge_index = edge_index.long().cpu()
    if edge_index.numel() and (edge_index.min() < 0
                               or edge_index.max() >= num_nodes):
        raise ValueError(f"'edge_index' refers to nodes outside "
                         f"[0, {num_nodes})")
    n = num_nodes
    src, dst = edge_index
    keep = src != dst
    key = torch.unique(src[keep] * n + dst[keep])  # sorted by source
    src, dst = key // n, key % n
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(src, minlength=n).cumsum(0)
    degree = rowptr[1:] - rowptr[:-1]

    # Imported here: pyg_skeleton.nn imports this module.
    from pyg_skeleton.nn.memory import check_memory

    # Every search starts at its own node; `reached` holds the keys
    # origin * N + node found so far, sorted, for membership tests.
    origin = torch.arange(n)
    node = torch.arange(n)
    reached = origin * n + node
    found_keys, found_hops = [], []
    for k in range(1, int(max_hop) + 1):
        # Step every frontier entry (origin, node) to all neighbours of node.
        count = degree[node]
        total = int(count.sum())
        if total == 0:
            break
        # About ten int64 arrays of `total` entries (the gathers, the keys
        # and their sort) before the new pairs are known.
        check_memory('khop_edges', 80 * total,
                     f'hop {k} of the {n}-node graph ({total} neighbour '
                     f'steps from {node.numel()} pairs)',
                     'use a smaller max_hop')
        start = rowptr[node].repeat_interleave(count)
        first = (count.cumsum(0) - count).repeat_interleave(count)
        nbr = dst[start + torch.arange(total) - first]
        new = torch.unique(origin.repeat_interleave(count) * n + nbr)
        pos = torch.searchsorted(reached, new).clamp_(max=reached.numel() - 1)
        new = new[reached[pos] != new]
        if new.numel() == 0:
            break
        found_keys.append(new)
        found_hops.append(torch.full_like(new, k))
        reached, _ = torch.sort(torch.cat([reached, new]))
        origin, node = new // n, new % n

    if not found_keys:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty.view(2, 0), empty
    keys = torch.cat(found_keys)  # origin (source) * N + target
    hops = torch.cat(found_hops)
    source, target = keys // n, keys % n
    order = torch.argsort(target * n + source)
    out = torch.stack([source[order], target[order]], dim=0)
    return out.to(device), hops[order].to(device)


@functional_transform('khop_edges')
class KHopEdges(BaseTransform):
    r"""Adds all pairs of nodes within :obj:`max_hop` hops of each other to
    a :class:`~torch_geometric.data.Data` object, as
    :obj:`data.khop_edge_index` (:obj:`[2, E_L]`, see :func:`khop_edges`)
    and :obj:`data.khop_distance` (:obj:`[E_L]`, the hop of each pair,
    :math:`1..L`), computed from :obj:`data.edge_index`.

    Because the name of :obj:`khop_edge_index` contains :obj:`"index"`,
    :class:`~torch_geometric.data.Batch` shifts it by the number of nodes of
    the preceding graphs, so disjoint batches keep their hop structure.

    Args:
        max_hop (int): The largest hop :math:`L \geq 1`.

    Raises:
        ValueError: If :obj:`max_hop` is not an integer :math:`\geq 1`, or
            (when called) the data has no :obj:`edge_index`.
    """
    def __init__(self, max_hop: int):
        self.max_hop = _check_max_hop(max_hop)

    def forward(self, data: Data) -> Data:
        if getattr(data, 'edge_index', None) is None:
            raise ValueError(f"'{self.__class__.__name__}' needs data with "
                             f"an 'edge_index'")
        edge_index, hop = khop_edges(data.edge_index, data.num_nodes,
                                     self.max_hop)
        data.khop_edge_index = edge_index
        data.khop_distance = hop
        return data

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_hop={self.max_hop})'

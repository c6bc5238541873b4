r"""All node pairs within :math:`L` hops of each other, as an edge list.

Hop-aware operators (:class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv` and
its baselines) aggregate over the *hop sets*
:math:`\mathcal{N}_k(i) = \{ j : d(j, i) = k \}`, :math:`d` the
shortest-path length. :func:`khop_edges` lists every pair with
:math:`1 \le d \le L` once, with its distance; :class:`KHopEdges` stores that
list on a :class:`~torch_geometric.data.Data` object so that disjoint
:class:`~torch_geometric.data.Batch` objects carry it.

Batches of copies of an operator's own graph need neither: the operators
take PyG's one-hop :obj:`edge_index` and find the hop pairs themselves
(none for whole copies, which take the static kernel). The transform is for
graphs other than the operator's.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.data.datapipes import functional_transform
from torch_geometric.transforms import BaseTransform

from pyg_skeleton.utils import bfs, check_edge_index, check_positive_int


def khop_edges(edge_index: Tensor, num_nodes: int,
               max_hop: int) -> tuple[Tensor, Tensor]:
    r"""Returns all pairs of nodes at most :obj:`max_hop` hops apart.

    A pair :math:`(j, i)` is listed when the shortest path from :math:`j` to
    :math:`i` along the edges of :obj:`edge_index` (followed from row 0 to
    row 1) has :math:`1 \le k \le L` edges; :math:`k` is returned with it.
    For an undirected graph (both directions in :obj:`edge_index`) the result
    is symmetric. Self-loops and duplicate edges of the input are ignored;
    the pairs :math:`(i, i)` (hop 0) are never listed.

    The pairs come from one :func:`~pyg_skeleton.utils.bfs` from every node:
    memory and time are linear in the number of pairs found, so it is usable
    on meshes with thousands of nodes. No dense :math:`N \times N` matrix is
    built.

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
    max_hop = check_positive_int(max_hop, 'max_hop')
    edge_index, n = check_edge_index(edge_index, num_nodes)
    # Every node is a source, so a pair's row is its source node.
    source, target, hop = bfs(edge_index, n, max_hop=max_hop, owner='khop_edges')
    order = torch.argsort(target * n + source)
    return torch.stack([source[order], target[order]], dim=0), hop[order]


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
        self.max_hop = check_positive_int(max_hop, 'max_hop')

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

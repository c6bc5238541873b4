r"""What the weight-sharing convolutions of Liu et al. (ECCV 2020) share.

The five schemes differ only in which weight matrix transforms which term;
the graph, the edge weights :math:`a_{ij}`, the bias, the initialisation, the
input checks and the two ways of aggregating (static batch or
:obj:`edge_index`) are the same and live in :class:`WeightSharingConv`.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj, Size

from pyg_skeleton.nn._export_guard import NoTorchScript, check_not_jit_traced
from pyg_skeleton.nn._inference_cache import inference_cached
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.topology import (
    DENSE_MAX_NODES,
    Topology,
    check_channels,
    explain_message_without_loops,
    propagate_static,
)

EDGE_WEIGHTS = ('learnable', 'fixed')


class WeightSharingConv(NoTorchScript, MessagePassing):
    r"""Base class of the weight-sharing graph convolutions.

    Holds the fixed graph (a :class:`~pyg_skeleton.nn.Topology`), the edge
    weights :math:`a_{ij}` over its edges and self-loops, a stack of
    :obj:`num_weights` matrices :obj:`weight` of shape
    :obj:`[num_weights, F_in, F_out]` (applied as :math:`\mathbf{x}^{\top}
    \mathbf{W}`, the official code's layout) and the bias.

    Edge weights are the softmax of one logit per slot of the topology over
    each target's incoming edges and self-loop. With
    :obj:`edge_weights='learnable'` the logits are parameters initialised to
    :math:`1` (SemGCN, and the official code of the weight-sharing study);
    with :obj:`'fixed'` they are a constant buffer of ones, so that
    :math:`a_{ij}` is the row-normalised adjacency
    :math:`\mathbf{D}^{-1}(\mathbf{A} + \mathbf{I})` of the paper's
    equations, computed by the same code path.

    Subclasses build their :class:`~pyg_skeleton.nn.Topology`, pass it with
    the number of weight matrices they need, and implement
    :obj:`transform` with :obj:`aggregate_neighbors` and
    :obj:`per_node`; :obj:`forward` checks the input, computes the edge
    weights, picks the layout and adds the bias.

    A disjoint :class:`~torch_geometric.data.Batch` of whole copies of the
    graph runs the static kernel on :obj:`x.view(B, N, F_in)`
    (:meth:`Topology.as_static
    <pyg_skeleton.nn.topology.Topology.as_static>`), except in a PyG
    explainer's explain mode, whose edge mask weights the input's own
    edges. The static aggregation is :meth:`message_and_aggregate` on the
    graph's sparse adjacency, which runs :meth:`Topology.aggregate
    <pyg_skeleton.nn.topology.Topology.aggregate>`, through PyG's
    :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` whenever a
    hook is registered, so PyG's hooks see it;
    in explain mode a static input passes one message per edge of the
    layer's graph, in the order of :attr:`Topology.neighbor_edge_index
    <pyg_skeleton.nn.topology.Topology.neighbor_edge_index>`.

    A static batch is computed node-major, so its output
    :obj:`[..., N, F_out]` is a strided view of node-major memory, as the
    outputs of :func:`torch.einsum` often are: use
    :meth:`~torch.Tensor.reshape` or :meth:`~torch.Tensor.contiguous`
    rather than :meth:`~torch.Tensor.view` on it.
    """
    #: Hyperparameters shown by :meth:`__repr__` after the sizes.
    _repr_keys: tuple[str, ...] = ('edge_weights', )

    def __init__(self, in_channels: int, out_channels: int,
                 topology: Topology, num_weights: int,
                 edge_weights: str = 'learnable', bias: bool = True,
                 **kwargs):
        kwargs.setdefault('aggr', 'add')
        kwargs.setdefault('node_dim', -2)
        super().__init__(**kwargs)
        check_channels(self.__class__.__name__, in_channels, out_channels)
        if edge_weights not in EDGE_WEIGHTS:
            raise ValueError(f"'edge_weights' must be one of {EDGE_WEIGHTS} "
                             f"(got {edge_weights!r})")

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.edge_weights = edge_weights
        self.topology = topology
        self.num_nodes = topology.num_nodes

        # Per-node and per-edge banks grow with the graph: N or N + E
        # matrices (float32, as created).
        check_memory(self.__class__.__name__,
                     4 * num_weights * in_channels * out_channels,
                     f'{num_weights} weight matrices {in_channels} x '
                     f'{out_channels}',
                     'use a scheme with shared weights (FullSharingConv, '
                     'SemGraphConv) or fewer channels')
        self.weight = Parameter(
            torch.empty(num_weights, in_channels, out_channels))
        logits = torch.ones(topology.num_slots)
        if edge_weights == 'learnable':
            self.logits = Parameter(logits)
        else:
            # A constant of the graph, not state: left out of state_dict.
            self.register_buffer('logits', logits, persistent=False)
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)

        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        # As the official code: Xavier-uniform with gain 1.414 on the whole
        # stacked tensor. PyTorch's fan rule for [n, F_in, F_out] gives the
        # bound 1.414 * sqrt(6 / (F_out * (F_in + n))), much smaller than a
        # per-matrix Xavier; models trained with the official code start so.
        torch.nn.init.xavier_uniform_(self.weight, gain=1.414)
        torch.nn.init.ones_(self.logits)
        if self.bias is not None:
            bound = 1.0 / self.out_channels**0.5
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, edge_index: Adj | None = None) -> Tensor:
        check_not_jit_traced(self.__class__.__name__)
        if x.dim() < 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"'{self.__class__.__name__}' expects node "
                             f"features of shape [..., num_nodes, "
                             f"{self.in_channels}] (got {list(x.size())})")
        n, m = self.num_nodes, x.size(-2)
        # Weight banks are indexed by node id = row mod N, which only
        # means something if the rows are whole copies of the graph.
        if edge_index is None and m != n:
            raise ValueError(
                f"'{self.__class__.__name__}' was built for a graph of {n} "
                f"nodes but got {m}; pass 'edge_index' for a disjoint batch "
                f"of graphs")
        if m % n != 0:
            raise ValueError(
                f"'{self.__class__.__name__}' was built for a graph of {n} "
                f"nodes, but the input has {m} nodes, which is not a "
                f"multiple of {n} (node v of graph b must be row b*{n} + v)")

        if edge_index is None and self.explain:
            # An explainer weights messages, one per edge: those of a
            # static input are the layer's graph, in slot order.
            edge_index = self.topology.neighbor_edge_index
        static = self.topology.as_static(x, edge_index, self.explain)
        if static is not None:
            return self(static).flatten(-3, -2)

        if edge_index is None:
            # The static graph's edge weights depend on the logits alone:
            # kept between calls in inference (see inference_cached).
            _, a_neighbor, a_self = inference_cached(
                self, 'softmax', (self.logits, ),
                lambda: self.topology.softmax(self.logits))
        else:
            edge_index, a_neighbor, a_self = self.topology.softmax(
                self.logits, edge_index, m)
        if edge_index is None:
            # A static batch is computed node-major, [N, L, C] with L all
            # leading dimensions: per-node banks are then one bmm and the
            # aggregation one [N, N] x [N, L C] product, with no transposes
            # in between.
            lead = x.shape[:-2]
            if n > DENSE_MAX_NODES:
                # The node-major copy of x, the transformed features, their
                # aggregate and the output. Skeletons are not checked:
                # reading the limit would cost a measurable part of their
                # forward pass, and their buffers are a few times the input.
                check_memory(self.__class__.__name__,
                             math.prod(lead) * n * (self.in_channels +
                                                    3 * self.out_channels) *
                             x.element_size(),
                             f'the features of {math.prod(lead)} copies of '
                             f'the {n}-node graph', 'use a smaller batch')
            x = x.movedim(-2, 0).reshape(n, -1, x.size(-1))
            out = self.transform(x, None, a_neighbor, a_self.view(n, 1, 1))
            # Contiguous, as on the other paths (a node-major view would
            # fail a user's .view()).
            out = out.view((n, ) + lead + (out.size(-1), )).movedim(
                0, -2).contiguous()
        else:
            # One message per edge and channel (the gathered features and
            # their weighted copy), before any features are transformed:
            check_memory(self.__class__.__name__,
                         2 * edge_index.size(1) * math.prod(x.shape[:-2]) *
                         max(self.in_channels, self.out_channels) *
                         x.element_size(),
                         f'messages over {edge_index.size(1)} edges',
                         'for copies of one graph pass a static batch '
                         '[B, N, C] without edge_index (one sparse product), '
                         'or a smaller batch')
            out = self.transform(x, edge_index, a_neighbor,
                                 a_self.unsqueeze(-1))
        if self.bias is not None:
            out = out + self.bias
        return out

    def transform(self, x: Tensor, edge_index: Tensor | None,
                  a_neighbor: Tensor, a_self: Tensor) -> Tensor:
        r"""The scheme's weighted sum, without the bias.

        For a static batch (:obj:`edge_index=None`) :obj:`x` is node-major,
        :obj:`[N, L, F_in]`, :obj:`a_neighbor` holds the neighbour edge
        weights in slot order and :obj:`a_self` is :obj:`[N, 1, 1]`.
        Otherwise :obj:`x` is :obj:`[..., k N, F_in]` (:math:`k` copies of
        the graph), :obj:`edge_index` the input edges without self-loops
        with one weight each in :obj:`a_neighbor`, and :obj:`a_self` is
        :obj:`[k N, 1]`. Either way :obj:`a_self * x` is the self term, and
        :obj:`aggregate_neighbors` and :obj:`per_node` accept :obj:`x`.
        """
        raise NotImplementedError

    def aggregate_neighbors(self, edge_index: Tensor | None, alpha: Tensor,
                            h: Tensor, a_self: Tensor | None = None,
                            size: Size = None) -> Tensor:
        r"""Computes :math:`\sum_{j \in \mathcal{N}(i)} a_{ij}
        \mathbf{h}_j` over the neighbour edges, plus the self term
        :math:`a_{ii} \mathbf{h}_i` when :obj:`a_self` is given, in the
        layout of :meth:`transform`."""
        if edge_index is None:
            # The static kernel is message_and_aggregate on the graph's
            # sparse adjacency.
            self_value = None if a_self is None else a_self.view(-1)
            out = propagate_static(self, x=h.reshape(h.size(0), -1),
                                   alpha=alpha, self_value=self_value)
            return out.view(h.shape)
        # propagate_type: (x: Tensor, alpha: Tensor, self_value: Tensor | None)
        out = self.propagate(edge_index, x=h, alpha=alpha, self_value=None,
                             size=size)
        return out if a_self is None else out.addcmul(a_self, h)

    def message_and_aggregate(self, adj_t: Tensor | None, x: Tensor,
                              alpha: Tensor,
                              self_value: Tensor | None) -> Tensor:
        r"""The static kernel, on node-major features :obj:`x` of the
        layer's graph, :obj:`[N, L C]` (:obj:`adj_t` is
        :meth:`Topology.adj_t <pyg_skeleton.nn.topology.Topology.adj_t>` or
        :obj:`None`, and is not read):
        :meth:`Topology.aggregate
        <pyg_skeleton.nn.topology.Topology.aggregate>` of the neighbour
        weights :obj:`alpha`, plus the self term with :obj:`self_value`."""
        return self.topology.aggregate(alpha, x, self_value)

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        return alpha.unsqueeze(-1) * x_j

    def explain_message(self, inputs: Tensor,
                        dim_size: int | None) -> Tensor:
        return explain_message_without_loops(self, inputs)

    def per_node(self, x: Tensor, weight: Tensor,
                 edge_index: Tensor | None) -> Tensor:
        r"""Applies one matrix per node, :math:`\mathbf{x}_v^{\top}
        \mathbf{W}_{v \bmod N}`, with :obj:`weight` of shape
        :obj:`[N, F_in, F_out]`, in the layout of :meth:`transform`."""
        if edge_index is None:
            return torch.bmm(x, weight)
        n, lead = self.num_nodes, x.shape[:-2]
        x = x.reshape(lead + (-1, n, x.size(-1))).movedim(-2, 0)
        out = torch.bmm(x.reshape(n, -1, x.size(-1)), weight)
        out = out.view((n, ) + x.shape[1:-1] + (-1, )).movedim(0, -2)
        return out.reshape(lead + (-1, out.size(-1)))

    def __repr__(self) -> str:
        extra = ''.join(f', {key}={getattr(self, key)!r}'
                        for key in self._repr_keys)
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'num_edges={self.topology.num_edges}{extra})')

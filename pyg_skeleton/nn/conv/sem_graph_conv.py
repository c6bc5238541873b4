from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Parameter
from torch_geometric import is_compiling
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj
from torch_geometric.utils import softmax

from pyg_skeleton.nn._export_guard import NoTorchScript, check_not_jit_traced
from pyg_skeleton.nn._inference_cache import inference_cached
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.topology import (
    DENSE_MAX_NODES,
    Topology,
    built_on_cpu,
    check_channels,
    explain_message_without_loops,
    fixed_graph,
    propagate_static,
)

#: What :class:`SemGraphConv` gives a node without any edge.
ISOLATED_NODES = ('self', 'uniform')


class SemGraphConv(NoTorchScript, MessagePassing):
    r"""The semantic graph convolution operator from the `"Semantic Graph
    Convolutional Networks for 3D Human Pose Regression"
    <https://arxiv.org/abs/1904.03345>`_ paper (Eq. 2, and Eq. 3 with
    :obj:`channelwise=True`), in the self/neighbour form of its appendix
    (Eq. 9) that the official code implements

    .. math::
        \mathbf{x}^{\prime}_i = a_{ii} \mathbf{W}_{\mathrm{self}}
        \mathbf{x}_i + \sum_{j \in \mathcal{N}(i)} a_{ij}
        \mathbf{W}_{\mathrm{neighbor}} \mathbf{x}_j + \mathbf{b},
        \qquad
        a_{ij} = \frac{\exp(m_{ij})}{\sum_{k \in \mathcal{N}(i) \cup \{ i \}}
        \exp(m_{ik})},

    where :math:`m_{ij}` is a learnable logit of edge :math:`(j, i)` (the
    entries of :math:`\mathbf{M}` under the mask :math:`\mathbf{A} +
    \mathbf{I}`). With :obj:`channelwise=True` every output channel
    :math:`c` has its own logits :math:`m_{ij}^{(c)}` and weights
    :math:`a_{ij}^{(c)}` (Eq. 3).

    The logits belong to the fixed graph given at construction (a skeleton
    or a mesh). They are laid out row-major over :math:`\mathbf{A} +
    \mathbf{I}`, sorted by target :math:`i`, then source :math:`j`, as in the
    official code, and initialised to :math:`1`, so that :math:`a_{ij}`
    starts as the row-normalised adjacency with self-loops.
    Initialisation follows the official code: the two weight matrices are
    drawn as one stacked :obj:`[2, F_in, F_out]` tensor by Xavier-uniform
    with gain :math:`1.414`, *i.e.* from
    :math:`\mathcal{U}(\pm 1.414 \sqrt{6 / (F_{out} (F_{in} + 2))})`, and the
    bias from :math:`\mathcal{U}(\pm 1 / \sqrt{F_{out}})`
    (:math:`\pm 1 / \sqrt{F_{in}}` for the channel-wise layer).

    The two weight matrices act as one linear map to :math:`2 F_{out}`
    channels, and on a static batch the self and neighbour terms are summed
    in one matrix product (:meth:`Topology.aggregate_pair
    <pyg_skeleton.nn.topology.Topology.aggregate_pair>`), which saves passes
    over memory that dominate the layer's cost beyond its linear maps. On
    graphs of more than 32 nodes that product runs one sample at a time with
    the linear map inside it, and the backward computes the map again
    instead of keeping :obj:`[B, N, 2 F_out]` features: on the 13,380-vertex
    MakeHuman mesh the layer's peak memory in training is below that of its
    two linear maps alone.

    The layer is called in one of three ways, with identical results:

    * :obj:`conv(x)` with :obj:`x` of shape :obj:`[N, F_in]` or
      :obj:`[..., N, F_in]` (a static batch: one graph for all samples);
    * :obj:`conv(x, edge_index)` with the layer's graph or any subset of its
      edges, on :obj:`[..., N, F_in]`;
    * :obj:`conv(batch.x, batch.edge_index)` on a disjoint
      :class:`~torch_geometric.data.Batch` of :math:`B` graphs that each have
      the layer's :math:`N` nodes in the layer's order. Node :math:`v` of
      graph :math:`b` sits at row :math:`bN + v`, so edge :math:`(j, i)`
      takes the logit of edge :math:`(j \bmod N, i \bmod N)`; an edge that is
      not in the layer's graph raises an error. When :obj:`edge_index` holds
      every edge of every copy (as a :class:`~torch_geometric.data.Batch`
      of the whole graph does), the layer runs its static kernel on
      :obj:`x.view(B, N, F_in)`.

    :obj:`edge_index` may also be a :class:`torch_sparse.SparseTensor` or a
    :obj:`torch.sparse` adjacency in PyG's transposed :obj:`adj_t` form.

    PyG's :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` hooks
    see every path: the static kernel is the layer's
    :meth:`message_and_aggregate` on the graph's sparse adjacency
    (:meth:`Topology.adj_t <pyg_skeleton.nn.topology.Topology.adj_t>`),
    run through :obj:`propagate` whenever a hook is registered
    (``propagate_static`` in ``pyg_skeleton.nn.topology``). In
    a PyG explainer's explain mode a static input passes one message per
    edge of the layer's graph, in the order of :attr:`Topology.neighbor_edge_index
    <pyg_skeleton.nn.topology.Topology.neighbor_edge_index>` (sorted by
    target, then source), which the edge mask follows.

    A node without any edge in the graph given at construction (not even a
    self-loop), *e.g.* a padded node of a HEM mesh level, keeps only its
    self-loop slot by default (:obj:`isolated_nodes='self'`:
    :math:`\mathbf{x}^{\prime}_i = \mathbf{W}_{\mathrm{self}}
    \mathbf{x}_i + \mathbf{b}`). In the official code's dense softmax its
    row is all :math:`-9 \cdot 10^{15}`, which gives it the uniform weights
    :math:`a_{ij} = 1/N` over *all* :math:`N` nodes of its graph;
    :obj:`isolated_nodes='uniform'` reproduces that (HGN's padded nodes):

    .. math::
        \mathbf{x}^{\prime}_i = \frac{1}{N} \Big(
        \mathbf{W}_{\mathrm{self}} \mathbf{x}_i + \sum_{j \ne i}
        \mathbf{W}_{\mathrm{neighbor}} \mathbf{x}_j \Big) + \mathbf{b}.

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The fixed graph whose
            edges carry the learnable logits, without self-loops (they are
            always added), *e.g.* :obj:`Skeleton.preset('h36m17').edge_index`.
        num_nodes (int, optional): The number of nodes :math:`N` of the
            graph. (default: :obj:`None`, inferred from :obj:`edge_index`)
        channelwise (bool, optional): If set to :obj:`True`, learns one logit
            per edge and output channel (Eq. 3). (default: :obj:`False`)
        bias (bool, optional): If set to :obj:`False`, the layer will not
            learn an additive bias. (default: :obj:`True`)
        isolated_nodes (str, optional): What a node without any edge in
            :obj:`edge_index` aggregates: :obj:`'self'` (itself) or
            :obj:`'uniform'` (all nodes of its graph with weight
            :math:`1/N`, as the official dense code).
            (default: :obj:`'self'`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(*, |\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`

    The layer has :math:`2 F_{in} F_{out} + (N + |\mathcal{E}|) \cdot
    (1 \text{ or } F_{out}) + F_{out}` parameters, :math:`|\mathcal{E}|`
    counting both directions of every edge.
    """
    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None, channelwise: bool = False,
                 bias: bool = True, isolated_nodes: str = 'self', **kwargs):
        kwargs.setdefault('aggr', 'add')
        kwargs.setdefault('node_dim', -2)
        super().__init__(**kwargs)
        check_channels(self.__class__.__name__, in_channels, out_channels)

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channelwise = channelwise

        if isolated_nodes not in ISOLATED_NODES:
            raise ValueError(f"Unknown 'isolated_nodes' {isolated_nodes!r} "
                             f"(choose from {ISOLATED_NODES})")
        self.isolated_nodes = isolated_nodes
        self.topology = Topology(edge_index, num_nodes)
        self.num_nodes = self.topology.num_nodes
        uniform = None
        if isolated_nodes == 'uniform':
            # Read before Topology adds the self-loops: a node whose row of
            # the given graph is empty, self-loop included.
            ei, _ = fixed_graph(edge_index, self.num_nodes)
            uniform = torch.ones(self.num_nodes, dtype=torch.bool)
            uniform[ei[1]] = False
            uniform = uniform if bool(uniform.any()) else None
        self.register_buffer('uniform_nodes', uniform, persistent=False)
        self.lin_self = Linear(in_channels, out_channels, bias=False)
        self.lin_neighbor = Linear(in_channels, out_channels, bias=False)
        logit_shape = (self.topology.num_slots, )
        if channelwise:
            logit_shape += (out_channels, )
        self.logits = Parameter(torch.empty(logit_shape))
        if bias:
            self.bias = Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)

        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        bound = 1.414 * math.sqrt(
            6.0 / (self.out_channels * (self.in_channels + 2)))
        torch.nn.init.uniform_(self.lin_self.weight, -bound, bound)
        torch.nn.init.uniform_(self.lin_neighbor.weight, -bound, bound)
        torch.nn.init.ones_(self.logits)
        if self.bias is not None:
            fan = self.in_channels if self.channelwise else self.out_channels
            bound = 1.0 / math.sqrt(fan)
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def edge_weights(self) -> tuple[Tensor, Tensor]:
        r"""Returns the normalised edge weights :math:`a_{ij}` the layer has
        learned, as :obj:`(edge_index, alpha)`: the graph's edges including
        self-loops, :obj:`[2, N + |E|]` (row 0 sources :math:`j`, row 1
        targets :math:`i`), and :obj:`alpha` of shape :obj:`[N + |E|]`, or
        :obj:`[N + |E|, F_out]` for the channel-wise layer."""
        alpha = softmax(self.logits, self.topology.dst,
                        num_nodes=self.num_nodes)
        return self.topology.edge_index, alpha

    def _static(self) -> tuple[Tensor, Tensor, Tensor | None]:
        # What the static kernel needs from the parameters alone (kept
        # between calls in inference, see inference_cached): the slot
        # weights, both linear maps as one ([2 F_out, F_in], self first)
        # and, on small graphs, the dense matrix of aggregate_pair.
        alpha = softmax(self.logits, self.topology.dst,
                        num_nodes=self.num_nodes)
        weight = torch.cat([self.lin_self.weight, self.lin_neighbor.weight])
        pair = None
        if self.num_nodes <= DENSE_MAX_NODES and not is_compiling():
            pair = self.topology.pair_matrix(alpha)
        return alpha, weight, pair

    def forward(self, x: Tensor, edge_index: Adj | None = None) -> Tensor:
        check_not_jit_traced(self.__class__.__name__)
        if x.dim() < 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"'{self.__class__.__name__}' expects node "
                             f"features of shape [..., num_nodes, "
                             f"{self.in_channels}] (got {list(x.size())})")
        if edge_index is None and x.size(-2) != self.num_nodes:
            raise ValueError(
                f"'{self.__class__.__name__}' was built for a graph of "
                f"{self.num_nodes} nodes but got {x.size(-2)}; pass "
                f"'edge_index' for a disjoint batch of graphs")
        if edge_index is None:
            if not self.explain:
                return self._propagate_static(x)
            # An explainer weights messages, one per edge: those of a
            # static input are the layer's graph, in slot order.
            edge_index = self.topology.neighbor_edge_index
        static = self.topology.as_static(x, edge_index, self.explain)
        if static is not None:
            return self(static).flatten(-3, -2)
        weight = torch.cat([self.lin_self.weight, self.lin_neighbor.weight])

        edge_index, a_neighbor, a_self = self.topology.softmax(
            self.logits, edge_index, x.size(-2))
        # One message per edge and channel (gathered and weighted):
        check_memory(self.__class__.__name__,
                     2 * edge_index.size(1) * math.prod(x.shape[:-2]) *
                     self.out_channels * x.element_size(),
                     f'messages over {edge_index.size(1)} edges',
                     'for copies of one graph pass a static batch [B, N, C] '
                     'without edge_index (one sparse product), or a smaller '
                     'batch')
        h_self, h_neighbor = F.linear(x, weight).split(self.out_channels,
                                                       dim=-1)
        # propagate_type: (x: Tensor, alpha: Tensor, weight: Tensor | None, pair: Tensor | None)
        out = self.propagate(edge_index, x=h_neighbor, alpha=a_neighbor,
                             weight=None, pair=None)
        if not self.channelwise:
            a_self = a_self.unsqueeze(-1)
        out = out.addcmul(a_self, h_self)
        if self.bias is not None:
            out = out + self.bias
        return self._uniform(x, weight, out)

    def _propagate_static(self, x: Tensor) -> Tensor:
        # The static kernel is message_and_aggregate on the graph's sparse
        # adjacency, through propagate when observed (propagate_static).
        if self.num_nodes > DENSE_MAX_NODES:
            self._check_static(x)
        alpha, weight, pair = inference_cached(
            self, 'static', (self.logits, self.lin_self.weight,
                             self.lin_neighbor.weight), self._static)
        out = propagate_static(self, x=x, alpha=alpha, weight=weight,
                               pair=pair)
        # Checked here, not by a call: one pose's forward notices a call.
        if self.uniform_nodes is None:
            return out
        return self._uniform(x, weight, out)

    def _check_static(self, x: Tensor):
        # Graphs of at most DENSE_MAX_NODES nodes are not checked:
        # reading the limit would cost a measurable part of a skeleton's
        # forward pass, and their buffers are a few times the input's.
        n, c, copies = self.num_nodes, self.out_channels, math.prod(
            x.shape[:-2])
        if not self.channelwise:
            # The sparse kernel maps one sample at a time: the output.
            check_memory(self.__class__.__name__,
                         copies * n * c * x.element_size(),
                         f'the features of {copies} copies of the {n}-node '
                         f'graph', 'use a smaller batch')
            return
        # One weight per slot and channel: both maps [..., 2 N, F_out], the
        # features gathered per slot and weighted, [..., N + E, F_out] each,
        # and the output.
        slots = self.topology.num_slots
        check_memory(self.__class__.__name__,
                     copies * (2 * slots + 3 * n) * c * x.element_size(),
                     f'channel-wise messages over {slots} slots of {copies} '
                     f'copies', "use channelwise=False (one sparse product) "
                     "or a smaller batch")

    def _uniform(self, x: Tensor, weight: Tensor, out: Tensor) -> Tensor:
        r"""Replaces the rows of the nodes without edges by the uniform
        average over their graph (:obj:`isolated_nodes='uniform'`); the
        input holds whole copies of the graph, :obj:`[..., B N, F]`."""
        if self.uniform_nodes is None:
            return out
        n = self.num_nodes
        lead = x.shape[:-2]
        h = F.linear(x.reshape(lead + (-1, n, x.size(-1))), weight)
        h_self, h_neighbor = h.split(self.out_channels, dim=-1)
        mean = (h_self - h_neighbor + h_neighbor.sum(-2, keepdim=True)) / n
        if self.bias is not None:
            mean = mean + self.bias
        mask = self.uniform_nodes.view(n, 1)
        return torch.where(mask, mean, out.view(mean.shape)).view(out.shape)

    def message(self, x_j: Tensor, alpha: Tensor) -> Tensor:
        if not self.channelwise:
            alpha = alpha.unsqueeze(-1)
        return alpha * x_j

    def message_and_aggregate(self, adj_t: Tensor | None, x: Tensor,
                              alpha: Tensor, weight: Tensor | None,
                              pair: Tensor | None) -> Tensor:
        r"""The static kernel, on a static batch :obj:`x` of the layer's
        graph (:obj:`adj_t` is :meth:`Topology.adj_t
        <pyg_skeleton.nn.topology.Topology.adj_t>` or :obj:`None`, and is
        not read): :meth:`Topology.aggregate_pair
        <pyg_skeleton.nn.topology.Topology.aggregate_pair>` of all slot
        weights :obj:`alpha` and both linear maps :obj:`weight`, with the
        bias, and :obj:`pair` its dense matrix on small graphs."""
        return self.topology.aggregate_pair(alpha, x, weight, self.bias, pair)

    def explain_message(self, inputs: Tensor,
                        dim_size: int | None) -> Tensor:
        return explain_message_without_loops(self, inputs)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'num_edges={self.topology.num_edges}, '
                f'channelwise={self.channelwise}'
                + ('' if self.isolated_nodes == 'self' else
                   f', isolated_nodes={self.isolated_nodes!r}') + ')')

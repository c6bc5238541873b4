from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._weight_sharing import WeightSharingConv
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.topology import Topology, built_on_cpu, propagate_static


class NoSharingConv(WeightSharingConv):
    r"""The no-sharing graph convolution from the `"A Comprehensive Study of
    Weight Sharing in Graph Networks for 3D Human Pose Estimation"
    <https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123550307.pdf>`_
    paper, where every edge, self-loops included, has its own weight matrix

    .. math::
        \mathbf{x}^{\prime}_i = \sum_{j \in \mathcal{N}(i) \cup \{ i \}}
        a_{ij} \mathbf{W}_{ij}^{\top} \mathbf{x}_j + \mathbf{b}.

    Self-loops have their own matrices, so decoupling is built in. The
    messages are computed by one batched matrix product over the edges of
    the graph (gathered source features times the per-edge matrices) and
    summed into their targets.

    The edge weights :math:`a_{ij}` are a softmax of one logit per edge
    (self-loops included) over each target's incoming edges. The paper's
    equations use the fixed normalised adjacency,
    :obj:`edge_weights='fixed'`: constant logits, *i.e.*
    :math:`\mathbf{D}^{-1}(\mathbf{A} + \mathbf{I})`. The official code of
    the study keeps SemGCN's learnable logits, initialised to :math:`1`,
    :obj:`edge_weights='learnable'` (the default); it has no no-sharing
    forward pass.

    :obj:`weight` has shape :obj:`[N + |E|, F_in, F_out]`, one matrix per
    edge of :math:`\mathbf{A} + \mathbf{I}` in the layout of the logits:
    row-major by (target :math:`i`, source :math:`j`). Initialisation
    follows the official code's convention for the other schemes: the stack
    is drawn as one tensor by Xavier-uniform with gain :math:`1.414`,
    *i.e.* from :math:`\mathcal{U}(\pm 1.414 \sqrt{6 / (F_{out} (F_{in} +
    N + |E|))})`, the bias from :math:`\mathcal{U}(\pm 1 / \sqrt{F_{out}})`.

    The layer is called as :obj:`conv(x)` on a static batch
    :obj:`[..., N, F_in]`, as :obj:`conv(x, edge_index)` with the layer's
    graph or a subset of its edges, or as
    :obj:`conv(batch.x, batch.edge_index)` on a disjoint
    :class:`~torch_geometric.data.Batch` of copies of the graph, with
    identical results: edge :math:`(j, i)` uses the matrix of edge
    :math:`(j \bmod N, i \bmod N)`.

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The fixed graph, without
            self-loops (they are always added), *e.g.*
            :obj:`Skeleton.preset('h36m17').edge_index`.
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`, inferred from :obj:`edge_index`)
        edge_weights (str, optional): :obj:`'learnable'` or :obj:`'fixed'`
            (see above). (default: :obj:`'learnable'`)
        bias (bool, optional): If set to :obj:`False`, the layer will not
            learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(*, |\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`

    The layer has :math:`(N + |\mathcal{E}|) F_{in} F_{out} + F_{out}`
    parameters, plus :math:`N + |\mathcal{E}|` logits with
    :obj:`edge_weights='learnable'`.
    """
    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None,
                 edge_weights: str = 'learnable', bias: bool = True,
                 **kwargs):
        topology = Topology(edge_index, num_nodes)
        super().__init__(in_channels, out_channels, topology,
                         topology.num_slots, edge_weights, bias, **kwargs)

    def transform(self, x: Tensor, edge_index: Tensor | None,
                  a_neighbor: Tensor, a_self: Tensor) -> Tensor:
        t, n = self.topology, self.num_nodes
        # Every slot's source features, their weighted copy and its message
        # for every copy of the graph: [copies, N + E, F_in or F_out].
        copies = (x.size(1) if edge_index is None else
                  math.prod(x.shape[:-2]) * (x.size(-2) // n))
        check_memory(self.__class__.__name__,
                     copies * t.num_slots * (2 * self.in_channels +
                                             self.out_channels) *
                     x.element_size(),
                     f'per-edge features of {copies} x {t.num_slots} slots',
                     'use PreAggConv or PostAggConv (one matrix per node, no '
                     'per-edge features) or a smaller batch')
        if edge_index is None:
            # The static kernel is message_and_aggregate on the graph's
            # sparse adjacency, on [N, L F_in] (PyG's node dimension).
            out = propagate_static(self, x=x.reshape(n, -1),
                                   alpha=a_neighbor,
                                   self_value=a_self.view(-1))
            return out.view(n, x.size(1), self.out_channels)

        # x_j W_ij for every slot s and copy b of the graph, as rows
        # b (N + E) + s of h; an input edge (j, i) reads b = j // N.
        lead = x.shape[:-2]
        x_src = x.reshape(lead + (-1, n, x.size(-1))).index_select(-2, t.src)
        h = torch.einsum('...si,sio->...so', x_src, self.weight)
        out = a_self * h.index_select(-2, t.self_slot).reshape(
            lead + (-1, self.out_channels))
        h = h.reshape(lead + (-1, self.out_channels))
        _, slot, _ = t.lookup(edge_index, x.size(-2))
        src = (edge_index[0] // n) * t.num_slots + slot
        return out + self.aggregate_neighbors(
            torch.stack([src, edge_index[1]]), a_neighbor, h,
            size=(h.size(-2), x.size(-2)))

    def message_and_aggregate(self, adj_t: Tensor | None, x: Tensor,
                              alpha: Tensor,
                              self_value: Tensor | None) -> Tensor:
        r"""The static kernel, on node-major features :obj:`x` of the
        layer's graph, :obj:`[N, L F_in]` (:obj:`adj_t` is
        :meth:`Topology.adj_t <pyg_skeleton.nn.topology.Topology.adj_t>` or
        :obj:`None`, and is not read): every slot's source features scaled
        by its weight (:obj:`alpha` for the neighbour slots,
        :obj:`self_value` for the self-loops), one batched product with the
        per-slot matrices, summed into the targets; :obj:`[N, L F_out]`."""
        t, n = self.topology, self.num_nodes
        weight = alpha.new_empty(t.num_slots)
        weight = weight.index_copy(0, t.nbr_slot, alpha)
        weight = weight.index_copy(0, t.self_slot, self_value)
        x_src = x.view(n, -1, self.in_channels).index_select(0, t.src)
        msg = torch.bmm(x_src * weight.view(-1, 1, 1), self.weight)
        out = msg.new_zeros((n, ) + msg.shape[1:]).index_add(0, t.dst, msg)
        return out.view(n, -1)

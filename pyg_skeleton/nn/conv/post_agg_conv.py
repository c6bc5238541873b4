from __future__ import annotations

from torch import Tensor
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._weight_sharing import WeightSharingConv
from pyg_skeleton.nn.topology import Topology, built_on_cpu


class PostAggConv(WeightSharingConv):
    r"""The post-aggregation graph convolution from the `"A Comprehensive
    Study of Weight Sharing in Graph Networks for 3D Human Pose Estimation"
    <https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123550307.pdf>`_
    paper, where the weight matrix depends on the *target* node: every node
    aggregates raw features and transforms the sum with its own matrix

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}_i^{\top} \sum_{j \in
        \mathcal{N}(i) \cup \{ i \}} a_{ij} \mathbf{x}_j + \mathbf{b},

    or, with :obj:`decoupled=True`, with separate matrices for the
    self-loop and for the sum over the neighbours

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}^{\mathrm{self}\,\top}_i
        (a_{ii} \mathbf{x}_i) + \mathbf{W}^{\mathrm{neighbor}\,\top}_i
        \sum_{j \in \mathcal{N}(i)} a_{ij} \mathbf{x}_j + \mathbf{b}.

    Aggregating before the transform keeps the cost at one matrix per node.

    The edge weights :math:`a_{ij}` are a softmax of one logit per edge
    (self-loops included) over each target's incoming edges. The paper's
    equations use the fixed normalised adjacency,
    :obj:`edge_weights='fixed'`: constant logits, *i.e.*
    :math:`\mathbf{D}^{-1}(\mathbf{A} + \mathbf{I})`. The official code of
    the study keeps SemGCN's learnable logits, initialised to :math:`1`,
    :obj:`edge_weights='learnable'` (the default); its post-aggregation
    variant is left commented out there.

    :obj:`weight` has shape :obj:`[n, F_in, F_out]` with :math:`n = N`
    (:obj:`weight[i]` is :math:`\mathbf{W}_i`), or :math:`n = 2N` when
    decoupled (:obj:`weight[i]` is :math:`\mathbf{W}^{\mathrm{self}}_i`,
    :obj:`weight[N + i]` is :math:`\mathbf{W}^{\mathrm{neighbor}}_i`, the
    official layout). Initialisation follows the official code: the stack
    is drawn as one tensor by Xavier-uniform with gain :math:`1.414`,
    *i.e.* from :math:`\mathcal{U}(\pm 1.414 \sqrt{6 / (F_{out} (F_{in} +
    n))})`, the bias from :math:`\mathcal{U}(\pm 1 / \sqrt{F_{out}})`.

    The layer is called as :obj:`conv(x)` on a static batch
    :obj:`[..., N, F_in]`, as :obj:`conv(x, edge_index)` with the layer's
    graph or a subset of its edges, or as
    :obj:`conv(batch.x, batch.edge_index)` on a disjoint
    :class:`~torch_geometric.data.Batch` of copies of the graph, with
    identical results: node :math:`v` of copy :math:`b` sits at row
    :math:`bN + v` and uses the matrices of node :math:`v`.

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The fixed graph, without
            self-loops (they are always added), *e.g.*
            :obj:`Skeleton.preset('h36m17').edge_index`.
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`, inferred from :obj:`edge_index`)
        decoupled (bool, optional): If set to :obj:`True`, self-loops get
            their own per-node matrices. (default: :obj:`False`)
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

    The layer has :math:`n F_{in} F_{out} + F_{out}` parameters, plus
    :math:`N + |\mathcal{E}|` logits with :obj:`edge_weights='learnable'`.
    """
    _repr_keys = ('decoupled', 'edge_weights')

    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None, decoupled: bool = False,
                 edge_weights: str = 'learnable', bias: bool = True,
                 **kwargs):
        topology = Topology(edge_index, num_nodes)
        super().__init__(in_channels, out_channels, topology,
                         (2 if decoupled else 1) * topology.num_nodes,
                         edge_weights, bias, **kwargs)
        self.decoupled = decoupled

    def transform(self, x: Tensor, edge_index: Tensor | None,
                  a_neighbor: Tensor, a_self: Tensor) -> Tensor:
        n = self.num_nodes
        if not self.decoupled:
            return self.per_node(
                self.aggregate_neighbors(edge_index, a_neighbor, x, a_self),
                self.weight, edge_index)
        neighbor_sum = self.aggregate_neighbors(edge_index, a_neighbor, x)
        return (self.per_node(a_self * x, self.weight[:n], edge_index) +
                self.per_node(neighbor_sum, self.weight[n:], edge_index))

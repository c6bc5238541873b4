from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._weight_sharing import WeightSharingConv
from pyg_skeleton.nn.memory import HOP_TABLE_BYTES, check_memory
from pyg_skeleton.nn.topology import Topology, built_on_cpu
from pyg_skeleton.utils import hop_counts


class ConvStyleConv(WeightSharingConv):
    r"""The convolution-style graph convolution from the `"A Comprehensive
    Study of Weight Sharing in Graph Networks for 3D Human Pose Estimation"
    <https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123550307.pdf>`_
    paper, where, as in a CNN kernel, the weight matrix depends on where the
    source sits relative to the target: the node itself, a neighbour closer
    to the centre of the graph, or a neighbour farther from it

    .. math::
        \mathbf{x}^{\prime}_i = a_{ii} \mathbf{W}_{\mathrm{self}}^{\top}
        \mathbf{x}_i + \sum_{j \in \mathcal{N}(i),\, d_j \geq d_i} a_{ij}
        \mathbf{W}_{\mathrm{farther}}^{\top} \mathbf{x}_j +
        \sum_{j \in \mathcal{N}(i),\, d_j < d_i} a_{ij}
        \mathbf{W}_{\mathrm{closer}}^{\top} \mathbf{x}_j + \mathbf{b},

    where :math:`d_v` is the hop distance of node :math:`v` from the centre
    node in the graph with its edges taken as undirected. The types are
    computed from the graph, so any graph with a centre works. An edge
    between two nodes at *equal* distance (possible when the graph has
    cycles) counts as "farther". On the Human3.6M 17-joint skeleton with
    centre 7 (Spine) the types are those of the official code.

    On a graph of several connected components (*e.g.* two persons without
    an edge between them) the distance is taken within each component:
    :obj:`centre` is the centre of its own component, and every other
    component gets its own centre, the node of smallest eccentricity (the
    largest hop distance to a node of its component; ties to the lowest
    index). That is the rule that gives 7 on Human3.6M, so each person of a
    two-person Human3.6M graph is typed as the single skeleton
    (see ``component_hops``).

    The official code (left commented out there) never sets the self-loop
    entry of joint 16 (RWrist) in its type masks, so that joint loses its
    self term. This is a bug, and this layer does not reproduce it: every
    node keeps its self term.

    The edge weights :math:`a_{ij}` are a softmax of one logit per edge
    (self-loops included) over each target's incoming edges. The paper's
    equations use the fixed normalised adjacency,
    :obj:`edge_weights='fixed'`: constant logits, *i.e.*
    :math:`\mathbf{D}^{-1}(\mathbf{A} + \mathbf{I})`. The official code of
    the study keeps SemGCN's learnable logits, initialised to :math:`1`,
    :obj:`edge_weights='learnable'` (the default).

    :obj:`weight` has shape :obj:`[3, F_in, F_out]`, in the official order
    self, farther, closer. Initialisation follows the official code: it is
    drawn as one tensor by Xavier-uniform with gain :math:`1.414`, *i.e.*
    from :math:`\mathcal{U}(\pm 1.414 \sqrt{6 / (F_{out} (F_{in} + 3))})`,
    the bias from :math:`\mathcal{U}(\pm 1 / \sqrt{F_{out}})`.

    The layer is called as :obj:`conv(x)` on a static batch
    :obj:`[..., N, F_in]`, as :obj:`conv(x, edge_index)` with the layer's
    graph or a subset of its edges, or as
    :obj:`conv(batch.x, batch.edge_index)` on a disjoint
    :class:`~torch_geometric.data.Batch` of copies of the graph (node
    :math:`v` of copy :math:`b` at row :math:`bN + v`), with identical
    results.

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The fixed graph, without
            self-loops (they are always added), *e.g.*
            :obj:`Skeleton.preset('h36m17').edge_index`.
        centre (int): The centre node, *e.g.*
            :obj:`Skeleton.preset('h36m17').centre`.
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

    The layer has :math:`3 F_{in} F_{out} + F_{out}` parameters, plus
    :math:`N + |\mathcal{E}|` logits with :obj:`edge_weights='learnable'`.
    """
    _repr_keys = ('centre', 'edge_weights')

    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 centre: int | None, num_nodes: int | None = None,
                 edge_weights: str = 'learnable', bias: bool = True,
                 **kwargs):
        topology = Topology(edge_index, num_nodes)
        n = topology.num_nodes
        if centre is None:
            raise ValueError(f"'{self.__class__.__name__}' needs a centre "
                             f"node to tell closer from farther neighbours "
                             f"(got None); give the skeleton one, e.g. "
                             f"Skeleton(..., centre=7)")
        if not 0 <= centre < n:
            raise ValueError(f"The centre node {centre} is outside "
                             f"[0, {n - 1}]")
        super().__init__(in_channels, out_channels, topology, 3,
                         edge_weights, bias, **kwargs)
        self.centre = int(centre)

        hop = component_hops(topology.edge_index, n, self.centre)
        self.register_buffer('hop', hop, persistent=False)
        nbr = topology.nbr_slot
        self.register_buffer(
            'farther', self.is_farther(topology.src[nbr], topology.dst[nbr]),
            persistent=False)

    def is_farther(self, src: Tensor, dst: Tensor) -> Tensor:
        r"""Returns whether the source of each edge :math:`(j, i)` is at
        least as far from the centre as its target, :math:`d_j \geq d_i`
        (node ids are taken modulo :math:`N`)."""
        n = self.num_nodes
        return self.hop[src % n] >= self.hop[dst % n]

    def transform(self, x: Tensor, edge_index: Tensor | None,
                  a_neighbor: Tensor, a_self: Tensor) -> Tensor:
        if edge_index is None:
            farther = self.farther
        else:
            farther = self.is_farther(edge_index[0], edge_index[1])
        out = self.aggregate_neighbors(
            edge_index, a_neighbor.masked_fill(~farther, 0.0),
            x @ self.weight[1])
        out = out + self.aggregate_neighbors(
            edge_index, a_neighbor.masked_fill(farther, 0.0),
            x @ self.weight[2])
        return out.addcmul(a_self, x @ self.weight[0])


#: Largest component without the given centre whose centre is searched
#: (all-pairs hops: a [C, N] table).
MAX_COMPONENT_NODES = 4096


def component_hops(edge_index: Tensor, num_nodes: int, centre: int) -> Tensor:
    r"""Hop distance of every node from the centre of its connected
    component (edges taken as undirected): :obj:`centre` for its own
    component, the node of smallest eccentricity (ties: the lowest index)
    for every other one.

    Args:
        edge_index (torch.Tensor): The graph, :obj:`[2, E]`.
        num_nodes (int): The number of nodes :math:`N`.
        centre (int): The centre node of its component.

    Returns:
        torch.Tensor: :obj:`[N]` long tensor of hop distances.

    Raises:
        ValueError: If a component without :obj:`centre` has more than
            :data:`MAX_COMPONENT_NODES` nodes.
    """
    graph = torch.cat([edge_index, edge_index.flip(0)], dim=1)
    hop = hop_counts(graph, num_nodes, torch.tensor([centre]))[0]
    while bool((hop < 0).any()):
        # the next component not typed yet: every node's distances within it
        first = int((hop < 0).nonzero()[0])
        members = (hop_counts(graph, num_nodes,
                              torch.tensor([first]))[0] >= 0).nonzero().view(-1)
        if members.numel() > MAX_COMPONENT_NODES:
            raise ValueError(f"The graph has a component of "
                             f"{members.numel()} nodes (node {first}) "
                             f"without the centre {centre}: finding its "
                             f"centre needs all-pairs hops (over "
                             f"{MAX_COMPONENT_NODES} nodes); connect the "
                             f"graph or type each component separately")
        check_memory('ConvStyleConv', HOP_TABLE_BYTES * members.numel() *
                     num_nodes, f'the hops of a {members.numel()}-node '
                     f'component (node {first}) without the centre',
                     'connect the graph or type each component separately')
        ecc = hop_counts(graph, num_nodes, members).max(dim=1).values
        centre_c = members[int(torch.argmin(ecc))]  # first minimum: lowest id
        hop_c = hop_counts(graph, num_nodes, centre_c.view(1))[0]
        hop = torch.where(hop_c >= 0, hop_c, hop)
    return hop

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._hops import HopConv, check_hop
from pyg_skeleton.nn.topology import built_on_cpu


def hop_membership(hops: Sequence[int]) -> Tensor:
    r"""Groups :math:`\{0..k_g\}` as a :obj:`[G, max(k) + 1]` mask."""
    mask = torch.zeros(len(hops), max(hops) + 1, dtype=torch.bool)
    for g, k in enumerate(hops):
        mask[g, :k + 1] = True
    return mask


def check_hops(conv: HopConv, hops: Sequence[int]) -> list[int]:
    name = conv.__class__.__name__
    hops = [check_hop(k, 'hop in hops', 0, name) for k in hops]
    if not hops:
        raise ValueError(f"'{name}' needs at least one hop")
    return hops


class MixHopSkeletonConv(HopConv):
    r"""The MixHop-style baseline of the `"Learning Skeletal Graph Neural
    Networks for Hard 3D Pose Estimation" <https://arxiv.org/abs/2108.07181>`_
    paper's ablation (supplementary Tab. 6): the :math:`k`-hop aggregates
    for :math:`k \in \{k_1, \dots, k_G\}` (default :math:`\{1, 5, 7\}`) each
    get their own weight matrix, and their outputs are concatenated

    .. math::
        \mathbf{x}^{\prime}_i = \Big\Vert_{g=1}^{G} \mathbf{W}_g^{\top}
        \frac{1}{|\mathcal{N}_{\le k_g}(i)|} \sum_{j \in \mathcal{N}_{\le
        k_g}(i)} \mathbf{x}_j + \mathbf{b},

    where :math:`\mathbf{W}_g \in \mathbb{R}^{F_{in} \times F_g}` and the
    widths :math:`F_g` split :math:`F_{out}` evenly (the first
    :math:`F_{out} \bmod G` groups get one more channel), as the
    supplementary's "the output size of the k-hop feature is one-third of
    the final output".

    Unlike :class:`torch_geometric.nn.conv.MixHopConv`, which mixes powers
    :math:`\hat{\mathbf{A}}^p \mathbf{X}` of the normalised adjacency
    (weights given by walks, which revisit nodes and favour near ones), this
    layer mixes *hop sets*: every node within :math:`k_g` shortest-path hops
    counts once, with equal weight (:obj:`normalize=False` sums instead).
    Hops beyond the graph's furthest hop are clipped with a
    :class:`UserWarning`.

    Called as :obj:`conv(x)` on :obj:`[..., N, F_in]`, as
    :obj:`conv(x, edge_index)` on a disjoint batch's one-hop graph, or with
    any graph's hop pairs (see
    :class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv`).

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The graph.
        num_nodes (int, optional): The number of nodes :math:`N`.
        hops (sequence of int, optional): The radii :math:`k_g`.
            (default: :obj:`(1, 5, 7)`)
        normalize (bool, optional): Average instead of summing.
            (default: :obj:`True`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(*, |\mathcal{V}|, F_{in})`, hop
          pairs and hops *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`

    The layer has :math:`F_{in} F_{out} + F_{out}` parameters.
    """
    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None,
                 hops: Sequence[int] = (1, 5, 7), normalize: bool = True,
                 bias: bool = True, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        hops = check_hops(self, hops)
        if len(hops) > out_channels:
            raise ValueError(f"'{self.__class__.__name__}' cannot split "
                             f"{out_channels} channels over {len(hops)} hops")
        self._build_hops(edge_index, num_nodes, max(hops))
        self.hops = [self._clip_hop(k, f'hop {k}') for k in hops]
        self._set_groups(hop_membership(self.hops), normalize)
        g = len(self.hops)
        self.widths = [out_channels // g + (i < out_channels % g)
                       for i in range(g)]
        self.lins = torch.nn.ModuleList(
            [Linear(in_channels, w, bias=False) for w in self.widths])
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for lin in self.lins:
            lin.reset_parameters()
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                khop_distance: Tensor | None = None,
                khop_edge_index: Tensor | None = None) -> Tensor:
        self._check_features(x)
        agg = self.aggregate_hops(x, edge_index, khop_distance,
                                  khop_edge_index=khop_edge_index)
        out = torch.cat([lin(agg[..., g, :]) for g, lin in
                         enumerate(self.lins)], dim=-1)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'hops={self.hops})')

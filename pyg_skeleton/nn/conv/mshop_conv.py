from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._hops import HopConv
from pyg_skeleton.nn.conv.mixhop_skeleton_conv import (
    check_hops,
    hop_membership,
)
from pyg_skeleton.nn.topology import built_on_cpu


class MSHopConv(HopConv):
    r"""The multi-scale hop baseline ("MS-Hop") of the `"Learning Skeletal
    Graph Neural Networks for Hard 3D Pose Estimation"
    <https://arxiv.org/abs/2108.07181>`_ paper's ablation (supplementary
    Tab. 6): the :math:`k`-hop aggregates for :math:`k \in \{k_1, \dots,
    k_G\}` (default :math:`\{1, 5, 7\}`) each get their own full-width
    weight matrix, and their outputs are averaged

    .. math::
        \mathbf{x}^{\prime}_i = \frac{1}{G} \sum_{g=1}^{G}
        \mathbf{W}_g^{\top} \frac{1}{|\mathcal{N}_{\le k_g}(i)|} \sum_{j \in
        \mathcal{N}_{\le k_g}(i)} \mathbf{x}_j + \mathbf{b},
        \qquad \mathbf{W}_g \in \mathbb{R}^{F_{in} \times F_{out}}.

    The average is linear, so it is computed with one
    :obj:`[G F_in, F_out]` matrix. Hops beyond the graph's furthest hop are
    clipped with a :class:`UserWarning`; :obj:`normalize=False` sums over
    each neighbourhood instead of averaging.

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
        normalize (bool, optional): Average over each neighbourhood.
            (default: :obj:`True`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(*, |\mathcal{V}|, F_{in})`, hop
          pairs and hops *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`

    The layer has :math:`G F_{in} F_{out} + F_{out}` parameters.
    """
    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None,
                 hops: Sequence[int] = (1, 5, 7), normalize: bool = True,
                 bias: bool = True, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        hops = check_hops(self, hops)
        self._build_hops(edge_index, num_nodes, max(hops))
        self.hops = [self._clip_hop(k, f'hop {k}') for k in hops]
        self._set_groups(hop_membership(self.hops), normalize)
        self.lins = torch.nn.ModuleList([
            Linear(in_channels, out_channels, bias=False) for _ in self.hops
        ])
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
        weight = torch.cat([lin.weight.t() for lin in self.lins], dim=0)
        out = agg.flatten(-2) @ (weight / len(self.lins))
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'hops={self.hops})')

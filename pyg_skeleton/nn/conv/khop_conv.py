from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._hops import HopConv, check_hop
from pyg_skeleton.nn.topology import built_on_cpu


class KHopConv(HopConv):
    r"""Plain :math:`k`-hop aggregation, the "k-hop" baseline of the
    `"Learning Skeletal Graph Neural Networks for Hard 3D Pose Estimation"
    <https://arxiv.org/abs/2108.07181>`_ paper's ablation (supplementary
    Tab. 6): all nodes within :math:`k` hops, the node itself included,
    share one weight matrix

    .. math::
        \mathbf{x}^{\prime}_i = \mathbf{W}^{\top} \frac{1}{|\mathcal{N}_{\le
        k}(i)|} \sum_{j \in \mathcal{N}_{\le k}(i)} \mathbf{x}_j +
        \mathbf{b}, \qquad \mathcal{N}_{\le k}(i) = \{ j : d(j, i) \le k \},

    (a sum instead of the mean with :obj:`normalize=False`). With
    :math:`k = 1` this is a one-partition ST-GCN layer on the static
    skeleton. A :obj:`k` beyond the graph's furthest hop is clipped to it
    with a :class:`UserWarning` (the neighbourhood is then the whole
    connected component).

    Called as :obj:`conv(x)` on :obj:`[..., N, F_in]`, as
    :obj:`conv(x, edge_index)` on a disjoint batch's one-hop graph, or with
    any graph's hop pairs (see
    :class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv`).

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The graph.
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`)
        k (int, optional): The neighbourhood radius :math:`k \geq 0`.
            (default: :obj:`1`)
        normalize (bool, optional): Average instead of summing.
            (default: :obj:`True`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(*, |\mathcal{V}|, F_{in})`, hop
          pairs :math:`(2, |\mathcal{E}_k|)` and hops *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`

    The layer has :math:`F_{in} F_{out} + F_{out}` parameters.
    """
    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None, k: int = 1,
                 normalize: bool = True, bias: bool = True, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        k = check_hop(k, 'k', 0, self.__class__.__name__)
        self._build_hops(edge_index, num_nodes, k)
        self.k = self._clip_hop(k, 'k')
        self._set_groups(torch.ones(1, self.k + 1, dtype=torch.bool),
                         normalize)
        self.lin = Linear(in_channels, out_channels, bias=bias)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        self.lin.reset_parameters()

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                khop_distance: Tensor | None = None,
                khop_edge_index: Tensor | None = None) -> Tensor:
        self._check_features(x)
        agg = self.aggregate_hops(x, edge_index, khop_distance,
                                  khop_edge_index=khop_edge_index)
        return self.lin(agg.squeeze(-2))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'k={self.k})')

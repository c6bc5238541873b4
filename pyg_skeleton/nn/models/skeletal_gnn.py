r"""The networks of the `"Learning Skeletal Graph Neural Networks for Hard 3D
Pose Estimation" <https://arxiv.org/abs/2108.07181>`_ paper (ICCV 2021),
built from :class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv` (or
:class:`~pyg_skeleton.nn.conv.dynamic_hcsf_conv.DynamicHCSFConv` with
:obj:`dynamic=True`) for any :class:`~pyg_skeleton.Skeleton`, following the
supplementary's training details (Sec. 1.1.2 and 2.1.3):

* :class:`SkeletalGNN`: single-frame 2D-to-3D lifting;
* :class:`TemporalSkeletalGNN`: lifting of pose sequences;
* :class:`SkeletalGNNAction`: skeleton-based action recognition.

There is no official code: layer order inside blocks, residual placement
and the temporal strides are our choices, stated in each docstring.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._hops import HopConv
from pyg_skeleton.nn.conv.dynamic_hcsf_conv import DynamicHCSFConv
from pyg_skeleton.nn.conv.hcsf_conv import HCSFConv
from pyg_skeleton.nn.conv.khop_conv import KHopConv
from pyg_skeleton.nn.conv.mixhop_skeleton_conv import MixHopSkeletonConv
from pyg_skeleton.nn.conv.mshop_conv import MSHopConv
from pyg_skeleton.nn.models.semgcn import Graph, graph_parts, node_batch_norm
from pyg_skeleton.nn.topology import built_on_cpu
from pyg_skeleton.skeleton import Skeleton


def _skeleton(skeleton: Skeleton | str) -> Skeleton:
    return Skeleton.preset(skeleton) if isinstance(skeleton, str) else skeleton


#: Hop-based layers a Skeletal GNN network can be built from (the HCSF
#: layer and the baselines of the supplementary's Tab. 6), by name.
HOP_CONVS: dict[str, type] = {
    'hcsf': HCSFConv,
    'khop': KHopConv,
    'mixhop': MixHopSkeletonConv,
    'mshop': MSHopConv,
}


def hcsf_layer(in_channels: int, out_channels: int, graph: Graph, /,
               dynamic: bool = False, conv: str = 'hcsf',
               **kwargs: Any) -> HopConv:
    r"""Builds the layer :obj:`conv` of :obj:`HOP_CONVS` (an
    :class:`HCSFConv` by default, a :class:`DynamicHCSFConv` if
    :obj:`dynamic`) on :obj:`graph`; :obj:`kwargs` go to the layer.
    :obj:`graph` is positional only: :class:`DynamicHCSFConv` has an
    argument :obj:`graph` of its own (its initial graph, *e.g.*
    :obj:`'rand'`), which :obj:`kwargs` pass on.

    Args:
        in_channels (int): Input size per node.
        out_channels (int): Output size per node.
        graph (Skeleton or tuple): The graph: a
            :class:`~pyg_skeleton.Skeleton` or a bare graph
            :obj:`(edge_index, num_nodes)`, *e.g.* a mesh level (see
            :func:`~pyg_skeleton.nn.models.semgcn.graph_parts`; a centre,
            if given, is not used).
        dynamic (bool, optional): Build a :class:`DynamicHCSFConv`.
            (default: :obj:`False`)
        conv (str, optional): A name of :obj:`HOP_CONVS`.
            (default: :obj:`'hcsf'`)

    Raises:
        ValueError: If :obj:`conv` is not a name of :obj:`HOP_CONVS`,
            :obj:`dynamic` is set for another layer than :obj:`'hcsf'`, or
            :obj:`graph` is invalid (see
            :func:`~pyg_skeleton.nn.models.semgcn.graph_parts`).
    """
    if conv not in HOP_CONVS:
        raise ValueError(f"Unknown hop layer '{conv}' (choose from "
                         f"{sorted(HOP_CONVS)})")
    if dynamic and conv != 'hcsf':
        raise ValueError(f"Dynamic hop graphs need the 'hcsf' layer "
                         f"(got '{conv}')")
    cls = DynamicHCSFConv if dynamic else HOP_CONVS[conv]
    edge_index, num_nodes, _ = graph_parts(graph)
    return cls(in_channels, out_channels, edge_index, num_nodes, **kwargs)


def _conv_kwargs(conv: str, defaults: dict[str, Any],
                 kwargs: dict[str, Any]) -> dict[str, Any]:
    # The hop settings S, L, d exist only for HCSF layers.
    return {**defaults, **kwargs} if conv == 'hcsf' else dict(kwargs)


class TemporalConv(torch.nn.Module):
    r"""A convolution over time with kernel :math:`(F, 1)` on
    :obj:`[B, T, N, C]` features (zero padding
    :math:`\lfloor \mathrm{dil}(F - 1) / 2 \rfloor`, so that :math:`T` is kept
    for odd :math:`F` and stride one)."""
    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = torch.nn.Conv2d(
            in_channels, out_channels, (kernel_size, 1), (stride, 1),
            (dilation * (kernel_size - 1) // 2, 0), (dilation, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class _HCSFBlock(torch.nn.Module):
    # HCSF layer, batch normalisation, LeakyReLU and dropout.
    def __init__(self, in_channels: int, out_channels: int,
                 skeleton: Skeleton, dynamic: bool, dropout: float,
                 negative_slope: float, conv: str,
                 conv_kwargs: dict[str, Any]):
        super().__init__()
        self.conv = hcsf_layer(in_channels, out_channels, skeleton, dynamic,
                               conv, **conv_kwargs)
        self.bn = torch.nn.BatchNorm1d(out_channels)
        self.act = torch.nn.LeakyReLU(negative_slope)
        self.dropout = torch.nn.Dropout(dropout)

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                khop_distance: Tensor | None = None,
                khop_edge_index: Tensor | None = None) -> Tensor:
        x = self.conv(x, edge_index, khop_distance,
                      khop_edge_index=khop_edge_index)
        return self.dropout(self.act(node_batch_norm(self.bn, x)))


class SkeletalGNN(torch.nn.Module):
    r"""The single-frame 2D-to-3D lifting network of the Skeletal GNN paper
    (supplementary Sec. 1.1.2): a first layer, :obj:`num_blocks` cascaded
    residual blocks and a last layer, six HCSF layers with the defaults.

    The first layer and every layer inside a block is an HCSF layer followed
    by batch normalisation (statistics over samples and joints), LeakyReLU
    (slope :math:`0.2`) and dropout (:math:`0.25`); a block is two such
    layers with an identity skip connection around them; the last layer is
    an HCSF layer alone. Widths are :obj:`hidden_channels` (:math:`128`; the
    paper's ablations use :math:`64`) and the hop settings default to the
    paper's Human3.6M values :math:`S=1, L=2, d=1/8`.

    Args:
        skeleton (Skeleton or str): The skeleton, or the name of a preset.
        in_channels (int, optional): Input size per joint. (default: :obj:`2`)
        hidden_channels (int, optional): Hidden size. (default: :obj:`128`)
        out_channels (int, optional): Output size per joint.
            (default: :obj:`3`)
        num_blocks (int, optional): Residual blocks. (default: :obj:`2`)
        dynamic (bool, optional): Use :class:`DynamicHCSFConv` (Eq. 8)
            instead of static hop graphs. (default: :obj:`False`)
        dropout (float, optional): Dropout. (default: :obj:`0.25`)
        negative_slope (float, optional): LeakyReLU slope.
            (default: :obj:`0.2`)
        conv (str, optional): The layer, a name of :obj:`HOP_CONVS`
            (:obj:`'khop'`, :obj:`'mixhop'`, :obj:`'mshop'`: the
            supplementary's Tab. 6 baselines; the :obj:`S, L, d` defaults
            apply to :obj:`'hcsf'` only). (default: :obj:`'hcsf'`)
        **conv_kwargs (optional): Arguments of every HCSF layer, *e.g.*
            :obj:`S`, :obj:`L`, :obj:`d`, :obj:`fusion`, :obj:`graph`.

    Shapes:
        - **input:** 2D joints :math:`(*, N, F_{in})`, or :math:`(B N,
          F_{in})` with the one-hop :obj:`edge_index` of a disjoint batch
          (whole copies of the skeleton take the static path, dropped
          edges their own hop sets), or with hop pairs
          (:obj:`khop_edge_index` and :obj:`khop_distance`, see
          :class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv`)
        - **output:** 3D joints of the same leading shape, :math:`F_{out}`
          channels
    """
    @built_on_cpu
    def __init__(self, skeleton: Skeleton | str, in_channels: int = 2,
                 hidden_channels: int = 128, out_channels: int = 3,
                 num_blocks: int = 2, dynamic: bool = False,
                 dropout: float = 0.25, negative_slope: float = 0.2,
                 conv: str = 'hcsf', **conv_kwargs: Any):
        super().__init__()
        skeleton = _skeleton(skeleton)
        conv_kwargs = _conv_kwargs(conv, {'S': 1, 'L': 2, 'd': 1 / 8},
                                   conv_kwargs)
        self.skeleton = skeleton
        self.num_blocks = num_blocks
        block = dict(skeleton=skeleton, dynamic=dynamic, dropout=dropout,
                     negative_slope=negative_slope, conv=conv,
                     conv_kwargs=conv_kwargs)
        self.input = _HCSFBlock(in_channels, hidden_channels, **block)
        self.blocks = torch.nn.ModuleList([
            torch.nn.ModuleList([
                _HCSFBlock(hidden_channels, hidden_channels, **block)
                for _ in range(2)
            ]) for _ in range(num_blocks)
        ])
        self.output = hcsf_layer(hidden_channels, out_channels, skeleton,
                                 dynamic, conv, **conv_kwargs)

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                khop_distance: Tensor | None = None,
                khop_edge_index: Tensor | None = None) -> Tensor:
        graph = dict(edge_index=edge_index, khop_distance=khop_distance,
                     khop_edge_index=khop_edge_index)
        x = self.input(x, **graph)
        for first, second in self.blocks:
            x = x + second(first(x, **graph), **graph)
        return self.output(x, **graph)


class TemporalSkeletalGNN(torch.nn.Module):
    r"""The temporal 2D-to-3D lifting network of the Skeletal GNN paper
    (supplementary Sec. 1.1.2, "each cascaded block consists of one HCSF
    layer and one TCN layer"), sequence to sequence.

    A first HCSF layer (with batch normalisation, LeakyReLU and dropout),
    :obj:`num_blocks` residual blocks of one HCSF layer and one
    :obj:`TemporalConv` (kernel :obj:`temporal_kernel`, zero padding so
    that the :math:`T` frames are kept), each followed by batch
    normalisation, LeakyReLU and dropout, and a last HCSF layer. With
    :obj:`dynamic=True` the layers are :class:`DynamicHCSFConv` with
    temporal-aware offsets over :obj:`offset_kernel` frames (the paper's
    best setting is :math:`3`).

    Args:
        skeleton (Skeleton or str): The skeleton, or the name of a preset.
        in_channels (int, optional): Input size per joint. (default: :obj:`2`)
        hidden_channels (int, optional): Hidden size. (default: :obj:`128`)
        out_channels (int, optional): Output size per joint.
            (default: :obj:`3`)
        num_blocks (int, optional): Residual blocks. (default: :obj:`2`)
        temporal_kernel (int, optional): Kernel of the temporal
            convolutions. (default: :obj:`3`)
        dynamic (bool, optional): Use dynamic hop graphs.
            (default: :obj:`False`)
        offset_kernel (int, optional): Temporal kernel :math:`F` of the
            dynamic offsets. (default: :obj:`3`)
        dropout (float, optional): Dropout. (default: :obj:`0.25`)
        negative_slope (float, optional): LeakyReLU slope.
            (default: :obj:`0.2`)
        conv (str, optional): The layer, a name of :obj:`HOP_CONVS`.
            (default: :obj:`'hcsf'`)
        **conv_kwargs (optional): Arguments of every HCSF layer.

    Shapes:
        - **input:** 2D pose sequences :math:`(B, T, N, F_{in})`
        - **output:** 3D pose sequences :math:`(B, T, N, F_{out})`
    """
    @built_on_cpu
    def __init__(self, skeleton: Skeleton | str, in_channels: int = 2,
                 hidden_channels: int = 128, out_channels: int = 3,
                 num_blocks: int = 2, temporal_kernel: int = 3,
                 dynamic: bool = False, offset_kernel: int = 3,
                 dropout: float = 0.25, negative_slope: float = 0.2,
                 conv: str = 'hcsf', **conv_kwargs: Any):
        super().__init__()
        skeleton = _skeleton(skeleton)
        conv_kwargs = _conv_kwargs(conv, {'S': 1, 'L': 2, 'd': 1 / 8},
                                   conv_kwargs)
        if dynamic:
            conv_kwargs.setdefault('temporal_kernel', offset_kernel)
        self.skeleton = skeleton
        block = dict(skeleton=skeleton, dynamic=dynamic, dropout=dropout,
                     negative_slope=negative_slope, conv=conv,
                     conv_kwargs=conv_kwargs)
        self.input = _HCSFBlock(in_channels, hidden_channels, **block)
        self.graph_layers = torch.nn.ModuleList([
            _HCSFBlock(hidden_channels, hidden_channels, **block)
            for _ in range(num_blocks)
        ])
        self.temporal_layers = torch.nn.ModuleList([
            TemporalConv(hidden_channels, hidden_channels, temporal_kernel)
            for _ in range(num_blocks)
        ])
        self.temporal_bns = torch.nn.ModuleList([
            torch.nn.BatchNorm1d(hidden_channels) for _ in range(num_blocks)
        ])
        self.act = torch.nn.LeakyReLU(negative_slope)
        self.dropout = torch.nn.Dropout(dropout)
        self.output = hcsf_layer(hidden_channels, out_channels, skeleton,
                                 dynamic, conv, **conv_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"'{self.__class__.__name__}' expects pose "
                             f"sequences of shape [B, T, N, C] (got "
                             f"{list(x.size())})")
        x = self.input(x)
        for graph, temporal, bn in zip(self.graph_layers,
                                       self.temporal_layers,
                                       self.temporal_bns):
            h = temporal(graph(x))
            x = x + self.dropout(self.act(node_batch_norm(bn, h)))
        return self.output(x)


class _ActionBlock(torch.nn.Module):
    # HCSF, BN, ReLU, temporal conv, BN, residual, ReLU.
    def __init__(self, in_channels: int, out_channels: int,
                 skeleton: Skeleton, stride: int, temporal_kernel: int,
                 dynamic: bool, dropout: float, conv: str,
                 conv_kwargs: dict[str, Any]):
        super().__init__()
        self.conv = hcsf_layer(in_channels, out_channels, skeleton, dynamic,
                               conv, **conv_kwargs)
        self.bn1 = torch.nn.BatchNorm1d(out_channels)
        self.tcn = TemporalConv(out_channels, out_channels, temporal_kernel,
                                stride)
        self.bn2 = torch.nn.BatchNorm1d(out_channels)
        self.dropout = torch.nn.Dropout(dropout)
        if in_channels == out_channels and stride == 1:
            self.residual: torch.nn.Module | None = None
        else:
            self.residual = TemporalConv(in_channels, out_channels, 1, stride)
            self.bn_res = torch.nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = node_batch_norm(self.bn1, self.conv(x)).relu()
        h = node_batch_norm(self.bn2, self.tcn(self.dropout(h)))
        res = (x if self.residual is None else node_batch_norm(
            self.bn_res, self.residual(x)))
        return (h + res).relu()


class SkeletalGNNAction(torch.nn.Module):
    r"""The skeleton-based action-recognition backbone of the Skeletal GNN
    paper (supplementary Sec. 2.1.3): input batch normalisation, nine blocks
    and a classifier.

    Each block is an HCSF layer, batch normalisation, ReLU, a
    :math:`9 \times 1` temporal convolution and batch normalisation, wrapped
    in a residual connection (identity, or a strided :math:`1 \times 1`
    convolution with batch normalisation where the width or frame rate
    changes), followed by ReLU after the sum, as in ST-GCN. Widths are
    64, 64, 64, 128, 128, 128, 256, 256, 256; the temporal stride is
    :math:`2` in the first 128- and 256-wide blocks (our choice, following
    ST-GCN; the supplementary gives no strides). Features are averaged over
    frames, joints and persons, then a linear classifier gives the logits.
    Hop settings default to the paper's NTU values :math:`S=5, L=7, d=1/8`.

    Args:
        skeleton (Skeleton or str): The skeleton, or the name of a preset.
        num_classes (int): The number of action classes.
        in_channels (int, optional): Input size per joint.
            (default: :obj:`3`)
        channels (sequence of int, optional): Block widths.
            (default: the paper's nine)
        strides (sequence of int, optional): Temporal strides of the blocks.
            (default: :obj:`(1, 1, 1, 2, 1, 1, 2, 1, 1)`)
        temporal_kernel (int, optional): Kernel of the temporal
            convolutions. (default: :obj:`9`)
        dynamic (bool, optional): Use dynamic hop graphs.
            (default: :obj:`False`)
        dropout (float, optional): Dropout before each temporal convolution.
            (default: :obj:`0.0`)
        conv (str, optional): The layer, a name of :obj:`HOP_CONVS`
            (:obj:`'khop'` with :obj:`k=1` is ST-GCN's static 1-hop graph
            convolution). (default: :obj:`'hcsf'`)
        **conv_kwargs (optional): Arguments of every layer.

    Shapes:
        - **input:** skeleton sequences :math:`(B, T, N, F_{in})` or, with
          :math:`M` persons, :math:`(B, M, T, N, F_{in})`
        - **output:** logits :math:`(B, \text{num\_classes})`
    """
    @built_on_cpu
    def __init__(self, skeleton: Skeleton | str, num_classes: int,
                 in_channels: int = 3,
                 channels: Sequence[int] = (64, 64, 64, 128, 128, 128, 256,
                                            256, 256),
                 strides: Sequence[int] = (1, 1, 1, 2, 1, 1, 2, 1, 1),
                 temporal_kernel: int = 9, dynamic: bool = False,
                 dropout: float = 0.0, conv: str = 'hcsf',
                 **conv_kwargs: Any):
        super().__init__()
        skeleton = _skeleton(skeleton)
        if len(channels) != len(strides):
            raise ValueError(f"'{self.__class__.__name__}' needs one stride "
                             f"per block (got {len(channels)} widths and "
                             f"{len(strides)} strides)")
        conv_kwargs = _conv_kwargs(conv, {'S': 5, 'L': 7, 'd': 1 / 8},
                                   conv_kwargs)
        self.skeleton = skeleton
        self.in_channels = in_channels
        self.data_bn = torch.nn.BatchNorm1d(skeleton.num_joints * in_channels)
        widths = [in_channels] + list(channels)
        self.blocks = torch.nn.ModuleList([
            _ActionBlock(widths[i], widths[i + 1], skeleton, strides[i],
                         temporal_kernel, dynamic, dropout, conv,
                         conv_kwargs)
            for i in range(len(channels))
        ])
        self.fc = torch.nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(1)
        n, c = self.skeleton.num_joints, self.in_channels
        if x.dim() != 5 or x.shape[-2:] != (n, c):
            raise ValueError(f"'{self.__class__.__name__}' expects skeleton "
                             f"sequences of shape [B, (M,) T, {n}, {c}] "
                             f"(got {list(x.size())})")
        b, m, t = x.shape[:3]
        x = x.reshape(b * m, t, n * c)
        x = self.data_bn(x.transpose(1, 2)).transpose(1, 2)
        x = x.reshape(b * m, t, n, c)
        for block in self.blocks:
            x = block(x)
        x = x.reshape(b, -1, x.size(-1)).mean(dim=1)
        return self.fc(x)

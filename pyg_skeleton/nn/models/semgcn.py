from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch_geometric import is_compiling
from torch_geometric.typing import Adj, SparseTensor

from pyg_skeleton.nn._inference_cache import inference_cached, unobserved
from pyg_skeleton.nn.conv import (
    ConvStyleConv,
    FullSharingConv,
    NoSharingConv,
    PostAggConv,
    PreAggConv,
    SemGraphConv,
)
from pyg_skeleton.nn.non_local import (
    DENSE_MAX_KEYS,
    NonLocalBlock,
    mesh_groups,
)
from pyg_skeleton.nn.topology import built_on_cpu, fixed_graph
from pyg_skeleton.skeleton import Skeleton

#: What the layer builders (:obj:`GRAPH_CONVS`, :func:`build_conv`,
#: :func:`~pyg_skeleton.nn.models.skeletal_gnn.hcsf_layer`) take: a
#: :class:`~pyg_skeleton.Skeleton`, or a bare graph :obj:`(edge_index,
#: num_nodes)`, *e.g.* a mesh level, or :obj:`(edge_index, num_nodes,
#: centre)` for a layer that needs a centre node (:obj:`'conv_style'`).
Graph = (Skeleton | tuple[Tensor | SparseTensor, int]
         | tuple[Tensor | SparseTensor, int, int | None])


def graph_parts(graph: Graph) -> tuple[Tensor, int, int | None]:
    r"""Returns the :obj:`edge_index`, the number of nodes and the centre
    node (:obj:`None` when there is none) of a :obj:`Graph`: the one place
    where the layer builders read their graph.

    A bare graph's :obj:`edge_index` may also be a
    :class:`torch_sparse.SparseTensor` or a :obj:`torch.sparse` tensor
    (PyG's :obj:`adj_t`); it is returned as a CPU :obj:`int64`
    :obj:`edge_index` of shape :obj:`[2, E]`.

    Raises:
        ValueError: If :obj:`graph` is neither a skeleton nor a tuple of
            two or three entries, its :obj:`edge_index` is not a tensor of
            shape :obj:`[2, E]` with integer node ids in
            :obj:`[0, num_nodes - 1]`, :obj:`num_nodes` is not a positive
            integer (see :func:`~pyg_skeleton.nn.topology.fixed_graph`), or
            the centre is neither :obj:`None` nor an integer.
    """
    if isinstance(graph, Skeleton):
        return graph.edge_index, graph.num_joints, graph.centre
    if not isinstance(graph, tuple) or len(graph) not in (2, 3):
        got = (f'a tuple of length {len(graph)}' if isinstance(graph, tuple) else
               type(graph).__name__)
        raise ValueError(f"A graph must be a Skeleton, (edge_index, "
                         f"num_nodes) or (edge_index, num_nodes, centre) "
                         f"(got {got})")
    edge_index, num_nodes, centre = graph if len(graph) == 3 else (*graph,
                                                                   None)
    if not isinstance(edge_index, (Tensor, SparseTensor)):
        raise ValueError(f"A graph's 'edge_index' must be a tensor (got "
                         f"{type(edge_index).__name__})")
    if num_nodes is None:  # fixed_graph would infer it: a tuple states it
        raise ValueError("'num_nodes' must be an integer (got None)")
    edge_index, num_nodes = fixed_graph(edge_index, num_nodes)
    if centre is None:
        return edge_index, num_nodes, None
    try:  # an int, NumPy integer or 0-d integer tensor; no bool, no float
        if isinstance(centre, bool):
            raise TypeError
        centre = operator.index(centre)
    except TypeError:
        raise ValueError(f"A graph's centre must be a node index (got "
                         f"{centre!r})") from None
    return edge_index, num_nodes, centre


def _edges(graph: Graph) -> tuple[Tensor, int]:
    edge_index, num_nodes, _ = graph_parts(graph)
    return edge_index, num_nodes


def _conv_style(in_channels: int, out_channels: int,
                graph: Graph) -> ConvStyleConv:
    edge_index, num_nodes, centre = graph_parts(graph)
    if centre is None:
        how = ('give the skeleton one, e.g. Skeleton(..., centre=7)'
               if isinstance(graph, Skeleton) else
               'pass the graph as (edge_index, num_nodes, centre)')
        raise ValueError(f"The graph convolution 'conv_style' needs a "
                         f"centre node to tell closer from farther "
                         f"neighbours; {how}")
    return ConvStyleConv(in_channels, out_channels, edge_index, centre,
                         num_nodes)


#: Graph convolutions a :class:`SemGCN` backbone can be built with, by name.
#: Each entry builds a layer ``(in_channels, out_channels, graph)`` on any
#: :obj:`Graph`; :obj:`'conv_style'` needs its centre node.
GRAPH_CONVS: dict[str, Callable[[int, int, Graph], torch.nn.Module]] = {
    'sem': lambda i, o, g: SemGraphConv(i, o, *_edges(g)),
    'sem_channelwise': lambda i, o, g: SemGraphConv(i, o, *_edges(g),
                                                    channelwise=True),
    # The weight-sharing schemes of Liu et al. (ECCV 2020):
    'vanilla': lambda i, o, g: FullSharingConv(i, o, *_edges(g)),
    'full_decoupled': lambda i, o, g: FullSharingConv(i, o, *_edges(g),
                                                      decoupled=True),
    'pre_agg': lambda i, o, g: PreAggConv(i, o, *_edges(g)),
    'pre_agg_decoupled': lambda i, o, g: PreAggConv(i, o, *_edges(g),
                                                    decoupled=True),
    'post_agg': lambda i, o, g: PostAggConv(i, o, *_edges(g)),
    'post_agg_decoupled': lambda i, o, g: PostAggConv(i, o, *_edges(g),
                                                      decoupled=True),
    'conv_style': _conv_style,
    'no_sharing': lambda i, o, g: NoSharingConv(i, o, *_edges(g)),
}

ConvSpec = str | Callable[[int, int, Any], torch.nn.Module]


def node_batch_norm(bn: torch.nn.BatchNorm1d, x: Tensor) -> Tensor:
    r"""Applies :obj:`bn` over the last (channel) dimension of
    :obj:`[..., N, C]` features, with statistics over all samples and nodes,
    as SemGCN's official code (which normalises :obj:`[B, C, N]`).

    In evaluation mode a plain :class:`torch.nn.BatchNorm1d` with running
    statistics is the affine map :math:`\mathbf{x} \odot \mathbf{s} +
    \mathbf{t}` with :math:`\mathbf{s} = \boldsymbol{\gamma} /
    \sqrt{\boldsymbol{\sigma}^2 + \epsilon}` and :math:`\mathbf{t} =
    \boldsymbol{\beta} - \boldsymbol{\mu} \odot \mathbf{s}`, which is
    applied directly in eager mode when nothing observes the module (no
    hooks) and the features are full precision and of the statistics'
    dtype: the same numbers up to rounding, with :math:`\mathbf{s},
    \mathbf{t}` kept between calls in inference. At one pose per call,
    BatchNorm's dispatch and the reshapes around it cost more than the
    arithmetic (see ``docs/design_notes.rst``). Everything else, compiled
    and exported graphs included, calls :obj:`bn`.
    """
    mean = bn.running_mean
    # Compiled and exported graphs keep BatchNorm, which the compiler fuses
    # and the exporters map to their own operator.
    if (not bn.training and not is_compiling()
            and type(bn) is torch.nn.BatchNorm1d
            and mean is not None and x.dtype is mean.dtype
            and x.dtype in _FULL_PRECISION and x.size(-1) == bn.num_features
            and unobserved(bn)):
        scale, shift = inference_cached(
            bn, 'affine', _batch_norm_tensors(bn),
            lambda: _batch_norm_affine(bn))
        return torch.addcmul(shift, x, scale)
    return bn(x.reshape(-1, x.size(-1))).view(x.shape)


_FULL_PRECISION = (torch.float32, torch.float64)


def _batch_norm_tensors(bn: torch.nn.BatchNorm1d) -> tuple[Tensor, ...]:
    # What the affine map of node_batch_norm is computed from.
    if bn.weight is None:
        return bn.running_mean, bn.running_var
    return bn.running_mean, bn.running_var, bn.weight, bn.bias


def _batch_norm_affine(bn: torch.nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    scale = (bn.running_var + bn.eps).rsqrt()
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


class GraphConvBlock(torch.nn.Module):
    r"""Graph convolution, batch normalisation, ReLU and optional dropout.

    :obj:`skeleton` is the graph the convolution is built on (see
    :func:`build_conv`): any :obj:`Graph` for a named :obj:`conv`, *e.g.* a
    :class:`~pyg_skeleton.Skeleton` or a mesh graph :obj:`(edge_index,
    num_nodes)`, or anything a callable :obj:`conv` takes (HGN's branches
    pass a mesh level to a callable)."""
    def __init__(self, in_channels: int, out_channels: int,
                 skeleton: Graph, conv: ConvSpec = 'sem',
                 dropout: float | None = None):
        super().__init__()
        self.conv = build_conv(conv, in_channels, out_channels, skeleton)
        self.bn = torch.nn.BatchNorm1d(out_channels)
        self.dropout = torch.nn.Dropout(dropout) if dropout else None

    def forward(self, x: Tensor, edge_index: Adj | None = None) -> Tensor:
        # In place: the normalised features are a fresh tensor that batch
        # normalisation's backward does not read (one allocation less).
        x = node_batch_norm(self.bn, self.conv(x, edge_index)).relu_()
        return x if self.dropout is None else self.dropout(x)


class ResGraphBlock(torch.nn.Module):
    r"""Two :class:`GraphConvBlock` layers with an identity skip connection
    (no activation after the sum), on a graph as :class:`GraphConvBlock`."""
    def __init__(self, channels: int, skeleton: Graph,
                 conv: ConvSpec = 'sem', dropout: float | None = None):
        super().__init__()
        self.block1 = GraphConvBlock(channels, channels, skeleton, conv,
                                     dropout)
        self.block2 = GraphConvBlock(channels, channels, skeleton, conv,
                                     dropout)

    def forward(self, x: Tensor, edge_index: Adj | None = None) -> Tensor:
        return x + self.block2(self.block1(x, edge_index), edge_index)


def build_conv(conv: ConvSpec, in_channels: int, out_channels: int,
               skeleton: Graph) -> torch.nn.Module:
    r"""Builds a graph convolution from a name of :obj:`GRAPH_CONVS` or a
    callable :obj:`(in_channels, out_channels, graph) -> layer`, on
    :obj:`skeleton` as it is.

    The built-in entries of :obj:`GRAPH_CONVS` take any :obj:`Graph` (a
    :class:`~pyg_skeleton.Skeleton`, :obj:`(edge_index, num_nodes)` or
    :obj:`(edge_index, num_nodes, centre)`, read by :func:`graph_parts`).
    An entry registered by a user that reads a skeleton's attributes keeps
    working on a skeleton (:class:`SemGCN` passes its
    :class:`~pyg_skeleton.Skeleton`); to take bare graphs as well, it reads
    them with :func:`graph_parts`.

    Raises:
        ValueError: If :obj:`conv` is not a name of :obj:`GRAPH_CONVS`, or
            as :func:`graph_parts` for a named :obj:`conv` on an invalid
            graph (and :obj:`'conv_style'` on a graph without a centre).
    """
    if isinstance(conv, str):
        if conv not in GRAPH_CONVS:
            raise ValueError(f"Unknown graph convolution '{conv}' (choose "
                             f"from {sorted(GRAPH_CONVS)})")
        conv = GRAPH_CONVS[conv]
    return conv(in_channels, out_channels, skeleton)


class SemGCN(torch.nn.Module):
    r"""The Semantic Graph Convolutional Network from the `"Semantic Graph
    Convolutional Networks for 3D Human Pose Regression"
    <https://arxiv.org/abs/1904.03345>`_ paper, for 2D-to-3D pose lifting on
    any skeleton.

    As in the official code: an input graph convolution block
    (:class:`~pyg_skeleton.nn.SemGraphConv`, batch normalisation, ReLU),
    :obj:`num_layers` residual blocks of two such blocks, and an output
    graph convolution without normalisation or activation. With
    :obj:`non_local=True`, a :class:`~pyg_skeleton.nn.NonLocalBlock`
    follows the input block and every residual block (five non-local
    blocks for four residual blocks), pooling its keys over the skeleton's
    :attr:`~pyg_skeleton.Skeleton.groups` when it has them. A graph of more
    than :obj:`DENSE_MAX_KEYS` (256) nodes without groups, *e.g.* a mesh,
    has its keys max-pooled per cluster of a coarse heavy-edge-matching
    level of at most 256 clusters
    (:func:`~pyg_skeleton.nn.mesh_groups`); smaller graphs
    without groups keep one key per node.

    On the Human3.6M skeletons with the defaults the model has 267,373
    (17 joints) or 267,343 (16 joints) parameters, 434,733 and 434,703 with
    non-local blocks, as the official model.

    Args:
        skeleton (Skeleton or str): The skeleton, or the name of a preset.
        in_channels (int, optional): Input size per joint. (default: :obj:`2`)
        hidden_channels (int, optional): Hidden size. (default: :obj:`128`)
        out_channels (int, optional): Output size per joint.
            (default: :obj:`3`)
        num_layers (int, optional): Number of residual blocks.
            (default: :obj:`4`)
        non_local (bool, optional): Interleave non-local blocks.
            (default: :obj:`False`)
        dropout (float, optional): Dropout after every hidden block.
            (default: :obj:`None`)
        conv (str or callable, optional): The graph convolution: a name of
            :obj:`GRAPH_CONVS` or a callable
            :obj:`(in_channels, out_channels, skeleton) -> layer`.
            (default: :obj:`'sem'`)

    Shapes:
        - **input:** 2D joints :math:`(*, N, F_{in})`, or :math:`(B N,
          F_{in})` with the batched :obj:`edge_index` and :obj:`batch`
          vector of a disjoint :class:`~torch_geometric.data.Batch`
        - **output:** 3D joints :math:`(*, N, F_{out})` or
          :math:`(B N, F_{out})`
    """
    @built_on_cpu
    def __init__(self, skeleton: Skeleton | str, in_channels: int = 2,
                 hidden_channels: int = 128, out_channels: int = 3,
                 num_layers: int = 4, non_local: bool = False,
                 dropout: float | None = None, conv: ConvSpec = 'sem'):
        super().__init__()
        if isinstance(skeleton, str):
            skeleton = Skeleton.preset(skeleton)
        self.skeleton = skeleton
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.non_local = non_local

        self.input = GraphConvBlock(in_channels, hidden_channels, skeleton,
                                    conv, dropout)
        self.blocks = torch.nn.ModuleList([
            ResGraphBlock(hidden_channels, skeleton, conv, dropout)
            for _ in range(num_layers)
        ])
        groups = skeleton.groups
        if non_local and groups is None and (skeleton.num_joints >
                                             DENSE_MAX_KEYS):
            # A mesh: keys pooled per surface region (see mesh_groups).
            groups = mesh_groups(skeleton.edge_index, skeleton.num_joints)
        self.non_locals = torch.nn.ModuleList([
            NonLocalBlock(hidden_channels, groups=groups)
            for _ in range(num_layers + 1)
        ] if non_local else [])
        self.output = build_conv(conv, hidden_channels, out_channels,
                                 skeleton)

    @classmethod
    def from_official(cls, source, skeleton: Skeleton | str | None = None,
                      conv: str | None = None, **kwargs) -> SemGCN:
        r"""A SemGCN with the weights of an official checkpoint:
        garyzhao/SemGCN's :obj:`ckpt_*.pth.tar` (:obj:`{'state_dict': ...,
        'epoch': ..., ...}`) or the decoupled pre-aggregation model of the
        weight-sharing fork RufusDing/3D-HPE-using-GCN, read with
        :obj:`torch.load(..., weights_only=True)`.

        Sizes, the number of residual blocks and the non-local blocks are
        read from the checkpoint; the convolution from the stacked weight
        (:obj:`[2, F_in, F_out]`: :obj:`'sem'`; :obj:`[2N, F_in, F_out]`:
        :obj:`'pre_agg_decoupled'`). Outputs equal the official model's to
        rounding, except with non-local blocks on unequal groups (the
        fork's 17 joints), which the official code pools across group
        boundaries (see :class:`~pyg_skeleton.nn.NonLocalBlock`). The model
        is returned in evaluation mode.

        Args:
            source (str, Path or dict): The checkpoint file, or a loaded
                checkpoint or state dict.
            skeleton (Skeleton or str, optional): The skeleton, in the
                official joint order. (default: :obj:`None`: :obj:`'h36m16'`
                or :obj:`'h36m17'` by the number of edge logits)
            conv (str, optional): :obj:`'sem'` or
                :obj:`'pre_agg_decoupled'`. (default: :obj:`None`, from the
                weights)
            **kwargs (optional): Further arguments of :class:`SemGCN`, *e.g.*
                :obj:`dropout`.

        Raises:
            ValueError: if the file is not a tensor checkpoint, or its keys
                or shapes do not fit (named in the message).
        """
        from pyg_skeleton.nn.models.official import semgcn_from_official
        return semgcn_from_official(cls, source, skeleton, conv, **kwargs)

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                batch: Tensor | None = None) -> Tensor:
        if self.non_local and edge_index is not None and batch is None:
            raise ValueError("'SemGCN' with non-local blocks needs the "
                             "'batch' vector of a disjoint batch")
        x = self.input(x, edge_index)
        # Iterated, not indexed: at one pose every module access shows.
        if self.non_local:
            x = self.non_locals[0](x, batch)
            for block, non_local in zip(self.blocks, self.non_locals[1:]):
                x = non_local(block(x, edge_index), batch)
        else:
            for block in self.blocks:
                x = block(x, edge_index)
        return self.output(x, edge_index)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.skeleton.name!r}, '
                f'{self.in_channels}, {self.out_channels}, '
                f'hidden_channels={self.hidden_channels}, '
                f'num_layers={self.num_layers}, non_local={self.non_local})')

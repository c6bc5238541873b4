from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._hops import HopConv, check_hop, squeezed_widths
from pyg_skeleton.nn.topology import built_on_cpu

FUSIONS = ('concat', 'add', 'mul')


class HCSFConv(HopConv):
    r"""The hierarchical channel-squeezing fusion (HCSF) layer from the
    `"Learning Skeletal Graph Neural Networks for Hard 3D Pose Estimation"
    <https://arxiv.org/abs/2108.07181>`_ paper (ICCV 2021), with the static
    hop graphs :math:`\mathcal{G}_k` (the supplementary's "Static"
    setting; see
    :class:`~pyg_skeleton.nn.conv.dynamic_hcsf_conv.DynamicHCSFConv` for
    Eq. 8)

    .. math::
        \mathbf{h}_{i,k} &= \mathbf{W}_k^{\top} \sum_{j \in
        \mathcal{N}_k(i)} a^{(k)}_{ij} \mathbf{x}_j,
        \qquad \mathbf{W}_k \in \mathbb{R}^{F_{in} \times C_k}, \quad
        C_k = \begin{cases} F_{out} & k \le S \\
        \max(1, \mathrm{round}(F_{out} d^{\,k - S})) & S < k \le L
        \end{cases}

        \mathbf{h}_{i,S} &= \mathcal{F}_k(\mathbf{h}_{i,0}, \dots,
        \mathbf{h}_{i,S})

        \mathbf{x}^{\prime}_i &= \mathcal{F}_a(\mathbf{h}_{i,S},
        \mathbf{h}_{i,S+1}, \dots, \mathbf{h}_{i,L}) + \mathbf{b},

    where :math:`\mathcal{N}_k(i) = \{ j : d(j, i) = k \}` is the hop set
    at shortest-path distance exactly :math:`k` (:math:`\mathcal{N}_0(i) =
    \{ i \}`) and :math:`a^{(k)}_{ij} = 1 / |\mathcal{N}_k(i)|` (or
    :math:`1` with :obj:`normalize=False`).

    Interpretation (the paper has no official code; the choices below are
    ours, made to fit the supplementary's settings :math:`S=1, L=2,
    d=1/8` on Human3.6M and :math:`S=5, L=7, d=1/8` on NTU RGB+D):

    * **Groups.** The close hops :math:`0..S` (the node itself included)
      form one group whose hops each get a full-width :math:`\mathbf{W}_k`
      and are combined by :math:`\mathcal{F}_k`; every far hop
      :math:`S < k \le L` is a group of its own with the squeezed width
      :math:`C_k`, so its :math:`\mathbf{W}_k` is a rank-:math:`C_k`
      bottleneck. With :math:`d = 1` nothing is squeezed.
    * **Order.** Hop features are aggregated, then transformed (the order
      of the paper's figure, and the cheaper one); both are linear, so the
      order does not change the function.
    * **Fusion** (:obj:`fusion`, one name for both :math:`\mathcal{F}_k`
      and :math:`\mathcal{F}_a` or a pair :obj:`(F_k, F_a)`):

      - :obj:`'concat'` (default): concatenation followed by a bias-free
        linear projection, :math:`\mathcal{F}_k = \mathbf{P}_k [
        \mathbf{h}_{i,0} \Vert \dots \Vert \mathbf{h}_{i,S}]` from
        :math:`(S+1) F_{out}` to :math:`F_{out}` (absent when :math:`S = 0`)
        and :math:`\mathcal{F}_a = \mathbf{P}_a [\mathbf{h}_{i,S} \Vert
        \mathbf{h}_{i,S+1} \Vert \dots \Vert \mathbf{h}_{i,L}]` from
        :math:`F_{out} + \sum_{k>S} C_k` to :math:`F_{out}` (absent when
        :math:`L = S`).
      - :obj:`'add'` / :obj:`'mul'`: element-wise sum / product. The close
        hops already have width :math:`F_{out}`; each squeezed far hop is
        first projected back to :math:`F_{out}` by its own bias-free
        :math:`\mathbf{U}_k \in \mathbb{R}^{C_k \times F_{out}}` (so it
        still passes a rank-:math:`C_k` bottleneck), then added /
        multiplied. A product of many terms can shrink or grow quickly;
        the paper reports only that these options exist.

      Without :obj:`'mul'` the whole layer is linear in the hop aggregates
      and is computed with one folded :obj:`[(L+1) F_{in}, F_{out}]`
      matrix; the stored parameters are still the separate
      :math:`\mathbf{W}_k`, :math:`\mathbf{P}` and :math:`\mathbf{U}_k`.
      The layer has no activation: the paper's blocks put BN and an
      activation after it.
    * **Initialisation.** All maps are bias-free
      :class:`~torch_geometric.nn.dense.Linear` layers with their default (Kaiming-uniform, as
      :class:`torch.nn.Linear`) initialisation; the single output bias
      starts at zero.
    * **Widths** use Python's :func:`round` (halves to even), *e.g.*
      :math:`F_{out} = 128, S=1, L=2, d=1/8`: :math:`C_2 = 16`;
      :math:`F_{out} = 64, S=5, L=7, d=1/8`: :math:`C_6 = 8, C_7 = 1`.
    * **Hops beyond the graph.** If :obj:`L` (or :obj:`S`) exceeds the
      graph's furthest hop, the empty hop sets are dropped: the value is
      clipped to the furthest hop with a :class:`UserWarning`, and
      :obj:`L` / :obj:`S` hold the clipped values. Note that the
      supplementary quotes furthest hops of 6 (Human3.6M) and 13 (NTU),
      whereas our :obj:`'h36m17'` and :obj:`'ntu25'` presets have
      :attr:`~pyg_skeleton.Skeleton.max_hop` 8 and 12; the paper's
      topologies are not published, so we do not try to match them.
      The paper's settings (:math:`L = 2` and :math:`L = 7`) are below
      both, and are unaffected.

    The layer is called as PyG's convolutions are:

    * :obj:`conv(x)` with :obj:`x` of shape :obj:`[..., N, F_in]` (one
      graph, a static batch :obj:`[B, N, F_in]` or a sequence
      :obj:`[B, T, N, F_in]`) on the layer's graph;
    * :obj:`conv(x, edge_index)` with the *one-hop* :obj:`edge_index` of a
      disjoint :class:`~torch_geometric.data.Batch` of copies of the
      layer's graph (node :math:`bN + v` of :obj:`x` :obj:`[B N, F_in]` is
      node :math:`v` of copy :math:`b`): whole copies take the static
      kernel (the same result as the static batch), any subset of their
      edges (*e.g.* dropped edges) its own hop sets, from its shortest
      paths;
    * :obj:`conv(x, khop_edge_index=..., khop_distance=...)` (or
      :obj:`conv(x, khop_edge_index, khop_distance)`) on any graph given
      by its hop pairs (see :func:`~pyg_skeleton.transforms.khop_edges`),
      *e.g.* a disjoint :class:`~torch_geometric.data.Batch` of other
      graphs transformed by :class:`~pyg_skeleton.transforms.KHopEdges`
      (pairs beyond :obj:`L` are ignored). The hop weights
      :math:`a^{(k)}_{ij}` are computed from the given pairs, so the layer
      is not tied to its graph here. A PyG explainer's edge mask weights
      these pairs.

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The graph (undirected:
            both directions), *e.g.* :obj:`Skeleton.preset('h36m17')
            .edge_index`.
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`, inferred from :obj:`edge_index`)
        S (int, optional): The largest close hop. (default: :obj:`1`)
        L (int, optional): The largest hop. (default: :obj:`2`)
        d (float, optional): The channel-squeezing ratio in :math:`(0, 1]`.
            (default: :obj:`1/8`)
        fusion (str or (str, str), optional): :obj:`'concat'`, :obj:`'add'`
            or :obj:`'mul'` for both fusions, or a pair
            :obj:`(F_k, F_a)`. (default: :obj:`'concat'`)
        normalize (bool, optional): Average over each hop set instead of
            summing. (default: :obj:`True`)
        bias (bool, optional): If set to :obj:`False`, the layer will not
            learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node features :math:`(*, |\mathcal{V}|, F_{in})`,
          edge indices :math:`(2, |\mathcal{E}|)` *(optional)* or
          hop pairs :math:`(2, |\mathcal{E}_L|)` and their hops
          :math:`(|\mathcal{E}_L|)` *(optional)*
        - **output:** node features :math:`(*, |\mathcal{V}|, F_{out})`

    With :obj:`'concat'` the layer has :math:`(S+1) F_{in} F_{out} +
    F_{in} \sum_{k>S} C_k + [S > 0] (S+1) F_{out}^2 + [L > S] (F_{out} +
    \sum_{k>S} C_k) F_{out} + F_{out}` parameters; with :obj:`'add'` or
    :obj:`'mul'` the two projections are replaced by
    :math:`\sum_{k>S} C_k F_{out}`.
    """
    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None, S: int = 1, L: int = 2,
                 d: float = 1 / 8,
                 fusion: str | tuple[str, str] = 'concat',
                 normalize: bool = True, bias: bool = True, **kwargs):
        super().__init__(in_channels, out_channels, **kwargs)
        name = self.__class__.__name__
        S = check_hop(S, 'S', 0, name)
        L = check_hop(L, 'L', 0, name)
        if S > L:
            raise ValueError(f"'{name}' needs S <= L (got S={S}, L={L})")
        if not 0.0 < float(d) <= 1.0:
            raise ValueError(f"'{name}' needs a squeezing ratio d in (0, 1] "
                             f"(got {d})")
        fusion = (fusion, fusion) if isinstance(fusion, str) else tuple(fusion)
        if len(fusion) != 2 or any(f not in FUSIONS for f in fusion):
            raise ValueError(f"'{name}' got an unknown fusion {fusion} "
                             f"(choose from {FUSIONS}, or a pair of them)")
        self._build_hops(edge_index, num_nodes, L)
        self.L = self._clip_hop(L, 'L')
        self.S = self._clip_hop(S, 'S')
        self.d = float(d)
        self.fusion: tuple[str, str] = (fusion[0], fusion[1])
        self._set_groups(torch.eye(self.L + 1, dtype=torch.bool), normalize)

        self.squeezed: list[int] = squeezed_widths(out_channels, self.S,
                                                   self.L, self.d)
        widths = [out_channels] * (self.S + 1) + self.squeezed
        self.lins = torch.nn.ModuleList(
            [Linear(in_channels, w, bias=False) for w in widths])
        fuse_k, fuse_a = self.fusion
        self.lin_close = (Linear((self.S + 1) * out_channels, out_channels,
                                 bias=False)
                          if fuse_k == 'concat' and self.S > 0 else None)
        far = self.L > self.S
        self.lin_fuse = (Linear(out_channels + sum(self.squeezed),
                                out_channels, bias=False)
                         if fuse_a == 'concat' and far else None)
        self.lins_up = torch.nn.ModuleList(
            [Linear(w, out_channels, bias=False) for w in self.squeezed]
            if fuse_a != 'concat' else [])
        if bias:
            self.bias = torch.nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter('bias', None)
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        for lin in self.lins:
            lin.reset_parameters()
        for lin in self.lins_up:
            lin.reset_parameters()
        if self.lin_close is not None:
            self.lin_close.reset_parameters()
        if self.lin_fuse is not None:
            self.lin_fuse.reset_parameters()
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    # ------------------------------------------------------------ weights

    def _close_maps(self, fold_fuse: bool) -> list[Tensor]:
        # [F_in, F_out] maps of the close hops, up to F_k's product.
        out = self.out_channels
        maps = [lin.weight.t() for lin in self.lins[:self.S + 1]]
        if self.lin_close is not None:
            proj = self.lin_close.weight
            maps = [m @ proj[:, k * out:(k + 1) * out].t()
                    for k, m in enumerate(maps)]
        if fold_fuse and self.lin_fuse is not None:
            head = self.lin_fuse.weight[:, :out].t()
            maps = [m @ head for m in maps]
        return maps

    def _far_maps(self) -> list[Tensor]:
        # [F_in, F_out] maps of the far hops, through P_a or U_k.
        maps: list[Tensor] = []
        if self.L == self.S:
            return maps
        if self.lin_fuse is not None:
            offset = self.out_channels
            for k, width in enumerate(self.squeezed):
                lin = self.lins[self.S + 1 + k]
                block = self.lin_fuse.weight[:, offset:offset + width]
                maps.append(lin.weight.t() @ block.t())
                offset += width
        else:
            for k, up in enumerate(self.lins_up):
                lin = self.lins[self.S + 1 + k]
                maps.append(lin.weight.t() @ up.weight.t())
        return maps

    def folded_weight(self) -> Tensor:
        r"""The :obj:`[(L+1) F_in, F_out]` matrix that maps the concatenated
        hop aggregates to the output when no fusion is :obj:`'mul'`."""
        return torch.cat(self._close_maps(True) + self._far_maps(), dim=0)

    # ------------------------------------------------------------ forward

    def combine(self, agg: Tensor) -> Tensor:
        r"""Applies the per-hop transforms and the fusions to hop aggregates
        :obj:`[..., N, L+1, F_in]`."""
        fuse_k, fuse_a = self.fusion
        if fuse_k != 'mul' and fuse_a != 'mul':
            out = agg.flatten(-2) @ self.folded_weight()
        else:
            close = torch.einsum(
                '...kc,kcd->...kd', agg[..., :self.S + 1, :],
                torch.stack(self._close_maps(False)))
            out = close.prod(-2) if fuse_k == 'mul' else close.sum(-2)
            if self.L > self.S:
                if self.lin_fuse is not None:
                    out = out @ self.lin_fuse.weight[:, :self.out_channels].t()
                far = torch.einsum('...kc,kcd->...kd', agg[..., self.S + 1:, :],
                                   torch.stack(self._far_maps()))
                out = (out * far.prod(-2) if fuse_a == 'mul' else
                       out + far.sum(-2))
        if self.bias is not None:
            out = out + self.bias
        return out

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                khop_distance: Tensor | None = None,
                khop_edge_index: Tensor | None = None) -> Tensor:
        self._check_features(x)
        agg = self.aggregate_hops(x, edge_index, khop_distance,
                                  khop_edge_index=khop_edge_index)
        return self.combine(agg)

    def __repr__(self) -> str:
        fusion = (self.fusion[0] if self.fusion[0] == self.fusion[1] else
                  self.fusion)
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'S={self.S}, L={self.L}, d={self.d:g}, '
                f'squeezed={self.squeezed}, fusion={fusion})')

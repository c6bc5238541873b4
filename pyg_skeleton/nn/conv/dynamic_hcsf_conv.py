from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric import is_compiling
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj

from pyg_skeleton.nn.conv._hops import check_hop
from pyg_skeleton.nn.conv.hcsf_conv import HCSFConv
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.topology import built_on_cpu, checks_data, propagate_static
from pyg_skeleton.utils import edge_key, edge_lookup

GRAPH_INITS = ('ori', 'dense', 'rand')

#: candidates='auto' learns all N^2 pairs per hop on graphs of at most this
#: many nodes (skeletons), only the hop pairs on larger ones (meshes). It
#: sets the shape of the learned graph weight, so it stays fixed: it is not
#: the dense-kernel threshold.
ALL_CANDIDATES_MAX_NODES = 128
CANDIDATES = ('auto', 'all', 'hop')


class DynamicHCSFConv(HCSFConv):
    r"""The HCSF layer with the (temporal-aware) dynamic hop graphs of the
    `"Learning Skeletal Graph Neural Networks for Hard 3D Pose Estimation"
    <https://arxiv.org/abs/2108.07181>`_ paper (Eq. 8, D-HCSF)

    .. math::
        \mathbf{A}_k = \mathbf{M}_k + \alpha \mathbf{O}_k, \qquad
        (\mathbf{O}_k)_{ij} = \tanh\Big( \frac{1}{T'} \sum_{t=1}^{T'}
        \big\langle \theta_k(\mathbf{X})_{t,i}, \phi_k(\mathbf{X})_{t,j}
        \big\rangle \Big),

    replacing the static :math:`a^{(k)}_{ij}` of
    :class:`~pyg_skeleton.nn.conv.hcsf_conv.HCSFConv` (whose hop transforms, squeezed widths and
    fusions it inherits unchanged) by :math:`(\mathbf{A}_k)_{ij}` for every
    target :math:`i`, source :math:`j` and hop :math:`k = 0..L`.

    Interpretation (no official code exists):

    * **Candidate pairs** (:obj:`candidates`). :math:`\mathbf{M}_k` and
      :math:`\mathbf{O}_k` live on the pairs :math:`(j, i)` that hop
      :math:`k` may use: all :math:`N^2` ordered pairs (:obj:`'all'`, the
      default for graphs of at most :obj:`ALL_CANDIDATES_MAX_NODES` (128)
      nodes, *i.e.* skeletons: every hop may learn connections outside its
      hop set) or
      only the hop-:math:`k` pairs (:obj:`'hop'`, the default for larger
      graphs such as meshes; no :math:`N \times N` matrix is built, the
      offsets are computed per pair).
    * :math:`\mathbf{M}_k` (:obj:`graph`) is a learnable weight per
      candidate pair, initialised from the physical topology
      (:obj:`'ori'`: the static HCSF weights :math:`1 / |\mathcal{N}_k(i)|`
      on the hop-:math:`k` pairs, zero elsewhere, so the layer starts as
      :class:`HCSFConv` when :math:`\alpha = 0`), uniformly
      (:obj:`'dense'`: :math:`1 / c_{i,k}` on all :math:`c_{i,k}`
      candidates of target :math:`i`) or randomly (:obj:`'rand'`:
      :math:`\mathcal{U}(0, 1)` divided by its sum over the candidates of
      each target and hop). With :obj:`normalize=False` the divisions are
      left out. With :obj:`candidates='hop'`, :obj:`'ori'` and
      :obj:`'dense'` coincide. :obj:`graph=None` drops
      :math:`\mathbf{M}_k` ("only :math:`\mathbf{O}_k`").
    * :math:`\mathbf{O}_k` (:obj:`offset`) is computed from the layer's
      input by two embeddings per hop, :math:`\theta_k` (of the target)
      and :math:`\phi_k` (of the source), each a convolution with kernel
      :math:`(F, 1)` over time (:obj:`temporal_kernel`, with
      :obj:`temporal_stride`, :obj:`temporal_dilation` and zero padding
      :math:`\lfloor \mathrm{dil}(F-1)/2 \rfloor`) from :math:`F_{in}` to
      :obj:`embed_channels` :math:`C_h` channels, with bias. As in the
      paper's figure, one :math:`N \times N` offset per *sample* is formed
      from the embeddings flattened over channels and the :math:`T'`
      output frames; we divide the inner product by :math:`T'` so that the
      offsets do not saturate with the clip length (for single frames,
      :math:`T' = 1`, this is the figure's :math:`\tanh(\theta^{\top}
      \phi)`). The figure, read literally, gives :math:`\theta` to the
      source and :math:`\phi` to the target; swapping the names of the two
      learnable maps changes nothing.
    * :math:`\alpha` (:obj:`alpha`): :obj:`'learn'` makes it a learnable
      scalar initialised to :obj:`alpha_init` (Eq. 8; default :math:`0`, so
      training starts from :math:`\mathbf{M}_k`); a number fixes it
      (:obj:`alpha=1.0` is the supplementary's
      ":math:`\mathbf{M}_k + \mathbf{O}_k`" row).
    * :math:`\mathbf{A}_k` is used as is (no softmax or re-normalisation).

    The supplementary's ablation rows (Tab. 2) are :obj:`graph='ori'|
    'dense'|'rand', offset=False` ("only :math:`\mathbf{M}_k`"),
    :obj:`graph=None, alpha=1.0` ("only :math:`\mathbf{O}_k`"),
    :obj:`alpha=1.0` (":math:`\mathbf{M}_k + \mathbf{O}_k`"), the defaults
    (Eq. 8) and :obj:`temporal_kernel=3` ("Eq. 8 w/T").

    Inputs are :obj:`[N, F_in]` (one sample), :obj:`[B, N, F_in]` (:math:`B`
    single-frame samples, one offset each) or :obj:`[..., T, N, F_in]`
    (clips of :math:`T` frames, one offset per clip, *e.g.* :obj:`[B, T, N,
    F_in]`). A disjoint :class:`~torch_geometric.data.Batch` of :math:`B`
    copies of the layer's graph, each in the layer's node order (node
    :math:`bN + v` is node :math:`v` of sample :math:`b`), is processed as
    :obj:`[B, N, F_in]` single-frame samples, called the PyG way,
    :obj:`conv(batch.x, batch.edge_index)` with the one-hop graph: whole
    copies take the static path (the same result as the static batch),
    any subset of their edges (*e.g.* dropped edges) the hop pairs of its
    own shortest paths. Hop pairs can also be given, :obj:`conv(batch.x,
    khop_edge_index=batch.khop_edge_index,
    khop_distance=batch.khop_distance)` (see
    :class:`~pyg_skeleton.transforms.KHopEdges`), each inside one copy. On a given set of pairs,
    :math:`\mathbf{A}_k` weights each pair :math:`(j, i)` at its given hop
    :math:`k` (with :obj:`candidates='hop'` it must be a hop-:math:`k`
    pair of the layer's graph) in place of the layer's own hop sets, so
    a pair left out contributes nothing; the self-loops, and with
    :obj:`candidates='all'` the connections outside the hop sets, do not
    depend on the graph and are kept. A PyG explainer's edge mask weights
    the given pairs.

    Args:
        in_channels (int): Size of each input sample :math:`F_{in}`.
        out_channels (int): Size of each output sample :math:`F_{out}`.
        edge_index (torch.Tensor or SparseTensor): The graph.
        num_nodes (int, optional): The number of nodes :math:`N`.
        S (int, optional): The largest close hop. (default: :obj:`1`)
        L (int, optional): The largest hop. (default: :obj:`2`)
        d (float, optional): The squeezing ratio. (default: :obj:`1/8`)
        fusion (str or (str, str), optional): See :class:`HCSFConv`.
            (default: :obj:`'concat'`)
        graph (str, optional): Initialisation of :math:`\mathbf{M}_k`,
            :obj:`'ori'`, :obj:`'dense'` or :obj:`'rand'`, or :obj:`None`
            for no :math:`\mathbf{M}_k`. (default: :obj:`'ori'`)
        offset (bool, optional): Add the offsets :math:`\mathbf{O}_k`.
            (default: :obj:`True`)
        alpha (str or float, optional): :obj:`'learn'` or a fixed value.
            (default: :obj:`'learn'`)
        alpha_init (float, optional): Initial learnable :math:`\alpha`.
            (default: :obj:`0.0`)
        embed_channels (int, optional): :math:`C_h`. (default:
            :obj:`max(4, in_channels // 4)`)
        temporal_kernel (int, optional): :math:`F`. (default: :obj:`1`)
        temporal_stride (int, optional): Stride over time. (default: :obj:`1`)
        temporal_dilation (int, optional): Dilation over time.
            (default: :obj:`1`)
        candidates (str, optional): :obj:`'auto'`, :obj:`'all'` or
            :obj:`'hop'`. (default: :obj:`'auto'`)
        normalize (bool, optional): See above. (default: :obj:`True`)
        bias (bool, optional): Learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(N, F_{in})`, :math:`(B, N,
          F_{in})`, :math:`(*, T, N, F_{in})` or :math:`(B N, F_{in})` with
          edge indices :math:`(2, |\mathcal{E}|)` or hop pairs
        - **output:** node features of the input's shape with
          :math:`F_{out}` channels

    On top of :class:`HCSFConv`'s parameters the layer has
    :math:`(L+1) N^2` (:obj:`'all'`) or :math:`N + |\mathcal{E}_L|`
    (:obj:`'hop'`) for :math:`\mathbf{M}_k`, :math:`2 (L+1) C_h (F F_{in} +
    1)` for :math:`\theta_k, \phi_k`, and one for a learnable
    :math:`\alpha`. :math:`\mathbf{M}_k` is :obj:`graph_weight`, laid out
    as :obj:`[N, L+1, N]` (target, hop, source) with :obj:`'all'`, and with
    :obj:`'hop'` as :obj:`[N + |E_L|]`, one weight per pair of
    :obj:`hop_edge_index` at its :obj:`hop`, sorted by target, then source.
    That is the layout of saved weights, kept so that every state dict
    loads as it was written; the layer reads the weights in the order of
    its :class:`~pyg_skeleton.nn.topology.Topology`'s slots (the order of
    :obj:`hop_edge_index`: self-loops and edges first, then hop 2, 3, ...)
    through one permutation.
    """
    # PyG compiles 'propagate' per class and keeps the uncompiled one, which
    # explain mode needs, as the class's 'propagate' at that time: for a
    # subclass of an already compiled HCSFConv that would be HCSFConv's
    # compiled one, which ignores edge masks. Declaring it here keeps
    # MessagePassing's.
    propagate = MessagePassing.propagate

    @built_on_cpu
    def __init__(self, in_channels: int, out_channels: int, edge_index: Adj,
                 num_nodes: int | None = None, S: int = 1, L: int = 2,
                 d: float = 1 / 8,
                 fusion: str | tuple[str, str] = 'concat',
                 graph: str | None = 'ori', offset: bool = True,
                 alpha: str | float = 'learn', alpha_init: float = 0.0,
                 embed_channels: int | None = None,
                 temporal_kernel: int = 1, temporal_stride: int = 1,
                 temporal_dilation: int = 1, candidates: str = 'auto',
                 normalize: bool = True, bias: bool = True, **kwargs):
        name = self.__class__.__name__
        if graph is not None and graph not in GRAPH_INITS:
            raise ValueError(f"'{name}' got an unknown graph initialisation "
                             f"'{graph}' (choose from {GRAPH_INITS} or None)")
        if graph is None and not offset:
            raise ValueError(f"'{name}' needs M_k (graph) or O_k (offset); "
                             f"use 'HCSFConv' for static hop graphs")
        if candidates not in CANDIDATES:
            raise ValueError(f"'{name}' got unknown candidates "
                             f"'{candidates}' (choose from {CANDIDATES})")
        if not (alpha == 'learn' or isinstance(alpha, (int, float))):
            raise ValueError(f"'{name}' needs alpha='learn' or a number "
                             f"(got {alpha!r})")
        temporal_kernel = check_hop(temporal_kernel, 'temporal_kernel', 1,
                                    name)
        temporal_stride = check_hop(temporal_stride, 'temporal_stride', 1,
                                    name)
        temporal_dilation = check_hop(temporal_dilation, 'temporal_dilation',
                                      1, name)
        super().__init__(in_channels, out_channels, edge_index, num_nodes, S,
                         L, d, fusion, normalize, bias, **kwargs)
        if candidates == 'auto':
            candidates = ('all' if self.num_nodes <= ALL_CANDIDATES_MAX_NODES
                          else 'hop')
        self.graph = graph
        self.offset = offset
        self.candidates = candidates
        self.embed_channels = (max(4, in_channels // 4)
                               if embed_channels is None else embed_channels)
        self.temporal_kernel = temporal_kernel
        self.temporal_stride = temporal_stride
        self.temporal_dilation = temporal_dilation
        n, k = self.num_nodes, self.num_hop_slots

        if graph is not None:
            if candidates == 'all':
                # The parameter and its initial value, float32.
                check_memory(name, 2 * 4 * n * k * n,
                             f'a {n} x {k} x {n} graph weight',
                             "use candidates='hop'")
            shape = (n, k, n) if candidates == 'all' else (self._num_pairs, )
            self.graph_weight = Parameter(torch.empty(shape))
        else:
            self.register_parameter('graph_weight', None)
        if offset:
            conv = dict(kernel_size=(temporal_kernel, 1),
                        stride=(temporal_stride, 1),
                        dilation=(temporal_dilation, 1),
                        padding=(temporal_dilation * (temporal_kernel - 1) //
                                 2, 0))
            self.theta = torch.nn.Conv2d(in_channels,
                                         k * self.embed_channels, **conv)
            self.phi = torch.nn.Conv2d(in_channels, k * self.embed_channels,
                                       **conv)
            if alpha == 'learn':
                self.alpha = Parameter(torch.tensor(float(alpha_init)))
            else:
                self.register_buffer('alpha', torch.tensor(float(alpha)))
        else:
            self.theta = self.phi = None
            self.register_parameter('alpha', None)
        # With 'hop' candidates: the pairs' keys sorted by target, then
        # source (for edge_lookup, and the layout of graph_weight), the slot
        # of each and the rank of each slot (graph_weight in slot order is
        # graph_weight[_slot_rank]). With 'all': the candidates outside the
        # layer's hop sets (a disjoint batch's hop sets come from the given
        # pairs).
        if candidates == 'hop':
            key, slot = torch.sort(edge_key(self.hop_edge_index, n))
            rank = torch.empty_like(slot).index_copy_(
                0, slot, torch.arange(slot.numel()))
            self_slot = slot[edge_lookup(key, torch.arange(n) * (n + 1))]
            outside = None
        else:
            key = slot = rank = self_slot = None
            outside = torch.ones(n, k, n)
            (src, dst), hop = self.hop_edge_index, self.hop
            far = hop > 0
            outside[dst[far], hop[far], src[far]] = 0.0
        self.register_buffer('_pair_key', key, persistent=False)
        self.register_buffer('_pair_slot', slot, persistent=False)
        self.register_buffer('_slot_rank', rank, persistent=False)
        self.register_buffer('_self_slot', self_slot, persistent=False)
        self.register_buffer('_outside_hop_sets', outside, persistent=False)
        self.alpha_mode = alpha if alpha == 'learn' else float(alpha)
        self.alpha_init = float(alpha_init)
        self._dynamic_ready = True
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        if not getattr(self, '_dynamic_ready', False):
            return  # called by HCSFConv.__init__ before our parameters exist
        if self.graph_weight is not None:
            self.graph_weight.data.copy_(self._initial_graph())
        if self.theta is not None:
            self.theta.reset_parameters()
            self.phi.reset_parameters()
        if isinstance(self.alpha, Parameter):
            torch.nn.init.constant_(self.alpha, self.alpha_init)

    def graph_weight_pairs(self) -> tuple[Tensor, Tensor]:
        r"""The pair and hop of every entry of :obj:`graph_weight` with
        :obj:`candidates='hop'`, in its layout (by target, then source):
        :obj:`(edge_index, hop)` of shapes :obj:`[2, N + |E_L|]` and
        :obj:`[N + |E_L|]` (row 0 sources, row 1 targets), so that
        :obj:`graph_weight[r]` is the weight of source
        :obj:`edge_index[0, r]` at hop :obj:`hop[r]` of target
        :obj:`edge_index[1, r]`.

        Raises:
            ValueError: With :obj:`candidates='all'`, whose
                :obj:`graph_weight` is laid out :obj:`[N, L+1, N]`.
        """
        if self._pair_slot is None:
            raise ValueError("'graph_weight_pairs' applies to candidates="
                             "'hop'; with 'all' graph_weight is laid out "
                             "[N, L+1, N] (target, hop, source)")
        return (self.hop_edge_index[:, self._pair_slot],
                self.hop[self._pair_slot])

    def _initial_graph(self) -> Tensor:
        n, k = self.num_nodes, self.num_hop_slots
        (src, dst), hop = self.hop_edge_index, self.hop
        # On the device of the graph's buffers, which the index arithmetic
        # below mixes with the new tensors (the module may have been moved).
        like = dict(dtype=self.group_norm.dtype, device=dst.device)
        if self.candidates == 'all':
            if self.graph == 'ori':
                value = torch.zeros(n, k, n, **like)
                value[dst, hop, src] = self.group_norm[dst, hop]
                return value
            value = (torch.ones(n, k, n, **like) if self.graph == 'dense'
                     else torch.rand(n, k, n, **like))
            if self.normalize:
                value = value / value.sum(-1, keepdim=True)
            return value
        # In the layout of graph_weight: by target, then source.
        dst, hop = dst[self._pair_slot], hop[self._pair_slot]
        if self.graph in ('ori', 'dense'):
            return self.group_norm[dst, hop].clone()
        value = torch.rand(hop.numel(), **like)
        if self.normalize:
            total = torch.zeros(n * k, **like).index_add_(0, dst * k + hop,
                                                          value)
            value = value / total[dst * k + hop]
        return value

    # ------------------------------------------------------------ forward

    def offsets(self, x: Tensor) -> Tensor:
        r"""Returns the offsets :math:`\mathbf{O}_k` of :obj:`x`
        :obj:`[B, T, N, F_in]`: :obj:`[B, N, L+1, N]` (target, hop, source)
        with :obj:`candidates='all'`, else :obj:`[B, N + |E_L|]` in the
        order of :obj:`hop_edge_index`."""
        assert self.theta is not None and self.phi is not None
        b, n, k, c = x.size(0), self.num_nodes, self.num_hop_slots, \
            self.embed_channels
        xt = x.permute(0, 3, 1, 2)  # [B, F_in, T, N]
        theta = self.theta(xt)  # [B, K * C_h, T', N]
        phi = self.phi(xt)
        frames = theta.size(2)
        theta = theta.view(b, k, c, frames, n)
        phi = phi.view(b, k, c, frames, n)
        if self.candidates == 'all':
            return torch.tanh(
                torch.einsum('bkcti,bkctj->bikj', theta, phi) / frames)
        # Per pair: rows (node, hop) of the flattened embeddings.
        theta = theta.permute(0, 4, 1, 2, 3).reshape(b, n * k, c * frames)
        phi = phi.permute(0, 4, 1, 2, 3).reshape(b, n * k, c * frames)
        (src, dst), hop = self.hop_edge_index, self.hop
        t_e = theta.index_select(1, dst * k + hop)
        p_e = phi.index_select(1, src * k + hop)
        return torch.tanh((t_e * p_e).sum(-1) / frames)

    def hop_graphs(self, x: Tensor) -> Tensor:
        r"""Returns :math:`\mathbf{A}_k` for :obj:`x` :obj:`[B, T, N, F_in]`,
        laid out as :meth:`offsets` (with a leading dimension of one when
        there is no offset)."""
        weight: Tensor | None = None
        if self.graph_weight is not None:
            weight = (self.graph_weight if self._slot_rank is None else
                      self.graph_weight[self._slot_rank]).unsqueeze(0)
        if self.theta is not None:
            assert self.alpha is not None
            off = self.alpha * self.offsets(x)
            weight = off if weight is None else weight + off
        assert weight is not None
        return weight

    def _dynamic(self, x: Tensor) -> Tensor:
        # x: [B, T, N, F_in] -> [B, T, N, F_out]
        n, k = self.num_nodes, self.num_hop_slots
        self._check_dynamic(x)
        adj = self.hop_graphs(x)
        if self.candidates == 'all':
            # The product with every sample's hop graphs is
            # message_and_aggregate, so that PyG's hooks see it.
            agg = propagate_static(
                self, x=x, graph=adj.reshape(adj.size(0), 1, n * k, n))
        else:
            weight = adj.view(adj.size(0), 1, -1, 1)
            agg = self.hop_sums(x, self.hop_edge_index, self.hop, weight)
        return self.combine(agg)

    def message_and_aggregate(self, adj_t: Tensor | None, x: Tensor,
                              graph: Tensor) -> Tensor:
        r"""The aggregation of the static path with :obj:`candidates='all'`:
        :obj:`x`, :obj:`[B, T, N, F_in]`, multiplied by every sample's hop
        graphs :math:`\mathbf{A}_k` stacked as :obj:`graph`,
        :obj:`[B, 1, N K, N]`; returns :obj:`[B, T, N, K, F_in]`
        (:obj:`adj_t` is :meth:`Topology.adj_t
        <pyg_skeleton.nn.topology.Topology.adj_t>` or :obj:`None`, and is
        not read)."""
        return (graph @ x).unflatten(-2, (self.num_nodes,
                                          self.num_hop_slots))

    def _check_dynamic(self, x: Tensor):
        # x: [B, T, N, F_in]. What grows with the candidate pairs: the
        # offsets of every sample (their product, tanh, scaled and summed
        # copies: four per pair, plus the embeddings gathered per pair with
        # candidates='hop'), and with candidates='hop' the messages (gathered
        # and weighted: two per pair and channel).
        b, t = x.size(0), x.size(1)
        n, k = self.num_nodes, self.num_hop_slots
        offsets = self.theta is not None
        if self.candidates == 'all':
            if not offsets:
                return  # the graph weight is a parameter: [B, N K, C] only
            num_bytes = 4 * b * n * k * n
            what = f'{b} x {n} x {k} x {n} dynamic hop graphs'
            alternative = "use candidates='hop'"
        else:
            pairs = self._num_pairs
            num_bytes = 2 * b * t * pairs * x.size(-1)
            if offsets:
                num_bytes += b * pairs * (4 + 3 * self.embed_channels * t)
            what = f'messages and offsets over {pairs} hop pairs'
            alternative = 'use a smaller batch, fewer hops (L) or HCSFConv'
        check_memory(self.__class__.__name__, num_bytes * x.element_size(),
                     what, alternative)

    def forward(self, x: Tensor, edge_index: Adj | None = None,
                khop_distance: Tensor | None = None,
                khop_edge_index: Tensor | None = None) -> Tensor:
        self._check_features(x)
        n = self.num_nodes
        if (edge_index is not None or khop_edge_index is not None) and (
                x.size(-2) % n != 0 and not is_compiling()):
            raise ValueError(f"'{self.__class__.__name__}': the input "
                             f"has {x.size(-2)} nodes, which is not a "
                             f"multiple of the {n} nodes of the layer's "
                             f"graph")
        static, pairs, distance = self.hop_input(x, edge_index,
                                                 khop_distance,
                                                 khop_edge_index)
        if static is not None and static.dim() != x.dim():
            if x.dim() == 2:
                # Whole copies of the graph: B single-frame samples.
                return self._dynamic(static.unsqueeze(1)).flatten(0, 2)
            if static.size(-3) == 1:
                # Samples [..., N, F_in] with the layer's own graph.
                static = x
            else:
                static = None
        if static is None:
            # Frames or clips carry one offset per sample: their copies
            # cannot share a row of the disjoint layout.
            if x.dim() != 2:
                raise ValueError(f"'{self.__class__.__name__}' expects a "
                                 f"disjoint batch of shape [B * {n}, "
                                 f"{self.in_channels}] with a graph of "
                                 f"several copies (got {list(x.size())})")
            assert pairs is not None and distance is not None
            return self._on_pairs(x, pairs, distance)
        self._check_num_nodes(x)
        if x.dim() == 2:
            xs = x.view(1, 1, n, -1)
        elif x.dim() == 3:
            xs = x.unsqueeze(1)
        else:
            xs = x.reshape((-1, ) + x.shape[-3:])
        out = self._dynamic(xs)
        return out.view(x.shape[:-1] + (self.out_channels, ))

    def _on_pairs(self, x: Tensor, khop_edge_index: Tensor,
                  khop_distance: Tensor) -> Tensor:
        # A disjoint batch [B N, F_in] of B single-frame samples on the
        # given hop pairs, each inside one copy of the layer's graph: A_k on
        # the given pairs (at their given hop) replaces A_k on the layer's
        # hop sets, which a pair left out (a dropped edge) no longer
        # reaches; the self-loops, and with candidates='all' the
        # connections outside the hop sets, are learned for every pair of
        # nodes and are kept. The given pairs go through message passing,
        # so that a PyG explainer's edge mask weights each of them.
        name = self.__class__.__name__
        n, k = self.num_nodes, self.num_hop_slots
        b = x.size(0) // n
        xs = x.view(b, 1, n, -1)
        self._check_dynamic(xs)
        adj = self.hop_graphs(xs)
        adj = adj.expand((b, ) + adj.shape[1:])
        src, dst = khop_edge_index
        inside = khop_distance <= self.L
        hop = torch.where(inside, khop_distance, 0)
        sample, i, j = dst // n, dst % n, src % n
        check = checks_data(khop_edge_index)
        if check and bool(((src // n) != sample).any()):
            raise ValueError(f"'{name}': the hop pairs join different "
                             f"copies of the layer's graph")
        if self.candidates == 'all':
            weight = adj[sample, i, hop, j]
            # The layer's hop sets (without the self-loops) and the given
            # pairs come through the pairs; pairs beyond the layer's hops
            # keep their entry (at hop 0, a candidate no pair takes).
            rest = adj * self._outside_hop_sets
            rest = rest.index_put((sample, i, hop, j),
                                  torch.where(inside, 0.0, weight))
            rest = rest.reshape(b, 1, n * k, n)
            agg = (rest @ xs).view(b * n, k, -1)
        else:
            rank = edge_lookup(self._pair_key, i * n + j)
            slot = self._pair_slot[rank]
            if check:
                found = ((self._pair_key[rank] == i * n + j)
                         & (self.hop[slot] == hop)) | ~inside
                if not bool(found.all()):
                    p = int((~found).nonzero()[0, 0])
                    raise ValueError(
                        f"'{name}': the pair ({int(src[p])} -> "
                        f"{int(dst[p])}) at hop {int(khop_distance[p])} is "
                        f"not a hop pair of the layer's graph, which holds "
                        f"the weights of candidates='hop'; use "
                        f"candidates='all'")
            weight = adj[sample, slot]
            agg = torch.zeros(b * n, k, x.size(-1), dtype=weight.dtype,
                              device=x.device)
            agg[:, 0] = adj[:, self._self_slot].reshape(-1, 1) * x
        weight = torch.where(inside, weight, 0.0)
        agg = agg + self.hop_sums(x, khop_edge_index, hop, weight.view(-1, 1))
        return self.combine(agg.view(b, 1, n, k, -1)).reshape(b * n, -1)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_nodes={self.num_nodes}, '
                f'S={self.S}, L={self.L}, d={self.d:g}, '
                f'squeezed={self.squeezed}, graph={self.graph}, '
                f'offset={self.offset}, alpha={self.alpha_mode}, '
                f'temporal_kernel={self.temporal_kernel}, '
                f'candidates={self.candidates})')

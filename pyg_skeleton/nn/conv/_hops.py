r"""What the hop-aware convolutions share: hop sets of a fixed graph and the
aggregation over groups of them.

Every operator here first aggregates, for each node :math:`i`, the features of
*groups* of hop sets :math:`\mathcal{N}_k(i) = \{ j : d(j, i) = k \}`
(:math:`\mathcal{N}_0(i) = \{ i \}`, :math:`d` the shortest-path length),

.. math::
    \mathbf{s}_{i,g} = \frac{1}{n_{i,g}} \sum_{k \in \mathcal{K}_g}
    \sum_{j \in \mathcal{N}_k(i)} \mathbf{x}_j, \qquad
    n_{i,g} = \sum_{k \in \mathcal{K}_g} |\mathcal{N}_k(i)|

(or without the :math:`1 / n_{i,g}` when :obj:`normalize=False`), and then
applies its own linear maps to the :math:`\mathbf{s}_{i,g}`: HCSF uses one
group per hop, :math:`k`-hop aggregation one group :math:`\{0..k\}`, MixHop
and MS-Hop the nested groups :math:`\{0..k_1\}, \{0..k_2\}, \dots`.

Aggregating before transforming is the order of the HCSF figure (the input
is multiplied by the hop matrices, then channel-squeezed) and lets the
operators fold their per-hop weights and fusion projections into one matrix.
"""
from __future__ import annotations

import math
import warnings
from numbers import Real

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.typing import Adj
from torch_geometric.utils import coalesce, remove_self_loops

from pyg_skeleton.nn._export_guard import NoTorchScript, check_not_jit_traced
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.topology import (
    DENSE_MAX_NODES,
    Topology,
    _csr_matmul,
    _csr_pattern,
    _sparse_kernel_ok,
    check_channels,
    dense_product_safe,
    edge_index_of,
    fixed_graph,
    propagate_static,
)
from pyg_skeleton.transforms.khop import khop_edges


def check_hop(value, name: str, minimum: int, owner: str) -> int:
    # Checked before int(): int(inf) raises OverflowError, int(nan) a
    # ValueError that names neither the argument nor the layer.
    if isinstance(value, bool) or not isinstance(value, Real) or (
            not math.isfinite(value)) or int(value) != value or (
                value < minimum):
        raise ValueError(f"'{owner}' needs an integer {name} >= {minimum} "
                         f"(got {value})")
    return int(value)


class HopConv(NoTorchScript, MessagePassing):
    r"""Base class of the hop-aware convolutions.

    Takes the fixed graph's hop pairs up to the largest hop the operator
    needs from its :class:`~pyg_skeleton.nn.topology.Topology`, in the
    topology's slot order (:attr:`hop_edge_index`, :attr:`hop`), and
    offers :meth:`aggregate_hops`, which returns the group aggregates
    :math:`\mathbf{s}_{i,g}` of shape :obj:`[..., N, G, F_in]` either for
    the layer's own graph (a dense :obj:`[N G, N]` product for graphs of at
    most :obj:`DENSE_MAX_NODES` nodes with finite features, message passing
    over the stored hop pairs for those with a NaN or Inf, so that it stays
    within the hops; on larger graphs the same :obj:`[N G, N]` matrix as a
    sparse CSR product, whose memory is linear in the pairs and in
    :obj:`N G C`, with message passing only when tracing for
    :func:`torch.compile`) or for any graph given as hop pairs, *e.g.* the
    :obj:`khop_edge_index` and :obj:`khop_distance` of a disjoint
    :class:`~torch_geometric.data.Batch` built with
    :class:`~pyg_skeleton.transforms.KHopEdges`.

    Every path is PyG message passing: the dense and CSR products of the
    layer's own graph are :meth:`message_and_aggregate` on the graph's
    sparse adjacency (PyG's :meth:`propagate` runs it whenever a hook can
    see it, see ``propagate_static``), the others :meth:`propagate` over
    hop pairs.

    Subclasses call :meth:`_build_hops`, clip their hyperparameters with
    :meth:`_clip_hop`, then call :meth:`_set_groups`.
    """
    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        kwargs.setdefault('aggr', 'add')
        kwargs.setdefault('node_dim', -2)
        super().__init__(**kwargs)
        check_channels(self.__class__.__name__, in_channels, out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels

    # ------------------------------------------------------------ building

    def _build_hops(self, edge_index: Adj, num_nodes: int | None,
                    max_hop: int):
        edge_index, num_nodes = fixed_graph(edge_index, num_nodes)
        # The hop sets ignore self-loops and repeated edges; the Topology
        # takes each edge once.
        edge_index = coalesce(remove_self_loops(edge_index)[0],
                              num_nodes=num_nodes)
        self.num_nodes = num_nodes
        try:
            # The one structure of the fixed graph: one-hop slots (the
            # edges the layer takes as PyG's edge_index), then the pairs up
            # to max_hop.
            self.topology = Topology(edge_index, num_nodes,
                                     max_hop=max(max_hop, 1))
        except MemoryError as e:
            # The same one line, naming the operator and its choices.
            raise MemoryError(
                f"'{self.__class__.__name__}' (hops up to {max_hop}): "
                f"{e} (here: a smaller k, L or hops), or SemGraphConv "
                f"(one hop)") from None
        found = self.topology.furthest
        # If fewer hops than asked for exist, `found` is the graph's furthest
        # hop (its diameter, per connected component); otherwise the graph
        # reaches at least `max_hop`.
        self._furthest = found if found < max_hop else None

    def _clip_hop(self, value: int, name: str) -> int:
        if self._furthest is not None and value > self._furthest:
            warnings.warn(
                f"'{self.__class__.__name__}': {name}={value} is beyond the "
                f"furthest hop {self._furthest} of the graph, whose farther "
                f"hop sets are empty; clipping {name} to {self._furthest}",
                UserWarning, stacklevel=3)
            return self._furthest
        return value

    def _set_groups(self, membership: Tensor, normalize: bool):
        r"""Takes the topology's hop pairs up to
        :obj:`membership.size(1) - 1` with the self-loops as hop 0, and
        stores the aggregation into groups
        (:obj:`membership[g, k]` is :obj:`True` if hop :obj:`k` belongs to
        group :obj:`g`)."""
        n = self.num_nodes
        num_groups, num_slots = membership.shape
        self.max_hop_used = num_slots - 1
        self.num_hop_slots = num_slots
        self.num_groups = num_groups
        self.normalize = normalize
        self._identity_groups = bool(
            num_groups == num_slots
            and torch.equal(membership, torch.eye(num_slots, dtype=torch.bool)))

        # The Topology's slots come one hop first, then hop 2, 3, ...: the
        # slots within max_hop_used >= 1 hops are a prefix of them.
        self._num_pairs = int((self.topology.hop <= self.max_hop_used).sum())
        (src, dst), hop = self.hop_edge_index, self.hop

        count = torch.zeros(n * num_slots).index_add_(
            0, dst * num_slots + hop, torch.ones(dst.numel())).view(
                n, num_slots)
        group_count = count @ membership.float().t()  # [N, G]
        norm = (1.0 / group_count.clamp(min=1)
                if normalize else torch.ones_like(group_count))
        self.register_buffer('hop_count', count, persistent=False)
        self.register_buffer('membership', membership.float(),
                             persistent=False)
        self.register_buffer('group_norm', norm, persistent=False)
        if n <= DENSE_MAX_NODES:
            # Row i * G + g holds the weights of group g of target i.
            dense = torch.zeros(n, num_groups, n)
            member = membership[:, hop]  # [G, E]: edge e in group g
            g_idx, e_idx = member.nonzero(as_tuple=True)
            dense[dst[e_idx], g_idx, src[e_idx]] = norm[dst[e_idx], g_idx]
            self.register_buffer('dense_adj', dense.view(n * num_groups, n),
                                 persistent=False)
            csr = (None, ) * 6
        else:
            self.register_buffer('dense_adj', None, persistent=False)
            # The same [N G, N] matrix in CSR, for the fused sparse kernel:
            # memory of the pair list and of the [..., N G, C] output, where
            # message passing held one [..., C] message per pair and group
            # member (about 170 per vertex for hops up to 7 on a mesh).
            member = membership[:, hop]  # [G, E]
            g_idx, e_idx = member.nonzero(as_tuple=True)
            row = dst[e_idx] * num_groups + g_idx
            col = src[e_idx]
            # CSR wants (row, column) order; the slots come by hop first.
            order = torch.argsort(row * n + col)
            row, col = row[order], col[order]
            value = norm[row // num_groups, row % num_groups]
            crow, crow_t, col_t, perm_t = _csr_pattern(row, col,
                                                       n * num_groups, n)
            csr = (value, crow, col, crow_t, col_t, perm_t)
        for name, t in zip(('csr_value', 'csr_crow', 'csr_col', 'csr_crow_t',
                            'csr_col_t', 'csr_perm_t'), csr):
            self.register_buffer(name, t, persistent=False)

    def _slots(self) -> slice | Tensor:
        # The Topology's slots the layer aggregates over: a prefix (a view)
        # from one hop on; hop 0 alone is the self-loops, which lie among
        # the one-hop slots.
        if self.max_hop_used == 0:
            return self.topology.self_slot
        return slice(0, self._num_pairs)

    @property
    def hop_edge_index(self) -> Tensor:
        r"""The hop pairs within :attr:`max_hop_used` hops, self-loops
        included, :obj:`[2, N + num_hop_pairs]`: the slots of the layer's
        :class:`~pyg_skeleton.nn.topology.Topology`
        (:obj:`topology.hop_edge_index`) in slot order, one-hop slots first,
        then hop 2, 3, and so on."""
        return self.topology.hop_edge_index[:, self._slots()]

    @property
    def hop(self) -> Tensor:
        r"""The hop of each pair of :attr:`hop_edge_index` (0 for the
        self-loops), :obj:`[N + num_hop_pairs]`."""
        return self.topology.hop[self._slots()]

    @property
    def num_hop_pairs(self) -> int:
        r"""The number of directed pairs within :attr:`max_hop_used` hops,
        without the self-loops."""
        return self._num_pairs - self.num_nodes

    # --------------------------------------------------------- aggregation

    def _check_features(self, x: Tensor):
        check_not_jit_traced(self.__class__.__name__)
        if x.dim() < 2 or x.size(-1) != self.in_channels:
            raise ValueError(f"'{self.__class__.__name__}' expects node "
                             f"features of shape [..., num_nodes, "
                             f"{self.in_channels}] (got {list(x.size())})")

    def _check_num_nodes(self, x: Tensor):
        if x.size(-2) != self.num_nodes:
            raise ValueError(
                f"'{self.__class__.__name__}' was built for a graph of "
                f"{self.num_nodes} nodes but got {x.size(-2)}; pass the "
                f"'edge_index' of a disjoint batch, or hop pairs "
                f"('khop_edge_index' and 'khop_distance') for another "
                f"graph")

    def hop_sums(self, x: Tensor, edge_index: Tensor, hop: Tensor,
                 edge_weight: Tensor | None) -> Tensor:
        r"""Returns :math:`\sum_{j \in \mathcal{N}_k(i)} w_{ji}
        \mathbf{x}_j` for every node and hop slot :math:`k`, as
        :obj:`[..., num_nodes, K, F]`; :obj:`edge_index` includes the
        self-loops (hop 0)."""
        # propagate_type: (x: Tensor, hop: Tensor, edge_weight: Optional[Tensor])  # noqa: E501
        out = self.propagate(edge_index, x=x, hop=hop,
                             edge_weight=edge_weight)
        return out.unflatten(-2, (x.size(-2), self.num_hop_slots))

    def hop_input(self, x: Tensor, edge_index: Adj | None = None,
                  khop_distance: Tensor | None = None,
                  khop_edge_index: Tensor | None = None,
                  ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        r"""Reads the graph arguments of :meth:`forward` (PyG's protocol):
        returns :obj:`(static, pairs, distance)`, where :obj:`static` is
        :obj:`x` on the layer's own graph (no :obj:`edge_index`: a static
        batch :obj:`[..., N, F]`) or viewed as a static batch
        :obj:`[..., B, N, F]` (an :obj:`edge_index` holding every edge of
        each of the :math:`B` copies of the layer's graph), and otherwise
        :obj:`None`, with the hop pairs and their hops to aggregate over:

        * :obj:`edge_index` alone is the *one-hop* graph of a disjoint
          batch of copies of the layer's graph (node :math:`bN + v` is node
          :math:`v` of copy :math:`b`), any subset of its edges: its hop
          pairs up to the layer's hops come from its own shortest paths
          (:func:`~pyg_skeleton.transforms.khop_edges`);
        * :obj:`edge_index` with :obj:`khop_distance`, or
          :obj:`khop_edge_index` with :obj:`khop_distance`, are the hop
          pairs of any graph (*e.g.* of
          :class:`~pyg_skeleton.transforms.KHopEdges`), used as given.

        The operators' :meth:`forward` takes :obj:`(x, edge_index,
        khop_distance, khop_edge_index)`, so the older call
        :obj:`conv(x, khop_edge_index, khop_distance)` keeps its meaning;
        :obj:`khop_edge_index` is not keyword-only because the TorchScript
        ONNX exporter passes every parameter by position (and must reach
        the operators' clear error).

        Raises:
            ValueError: If the hop pairs come without their hops or twice,
                the hops without pairs, or a one-hop :obj:`edge_index`
                is not made of the layer's graph (see
                :meth:`~pyg_skeleton.nn.topology.Topology.lookup`) or comes
                in a PyG explainer's explain mode, whose edge mask must
                weight the pairs that are aggregated.
        """
        name = self.__class__.__name__
        if khop_edge_index is not None:
            if edge_index is not None:
                raise ValueError(f"'{name}' takes the hop pairs once: as "
                                 f"'khop_edge_index' or as 'edge_index' "
                                 f"with 'khop_distance', not both")
            if khop_distance is None:
                raise ValueError(f"'{name}' needs 'khop_distance' with "
                                 f"'khop_edge_index'")
            return None, khop_edge_index, khop_distance
        if edge_index is None:
            if khop_distance is not None:
                raise ValueError(f"'{name}' got 'khop_distance' without "
                                 f"the hop pairs ('edge_index' or "
                                 f"'khop_edge_index')")
            return x, None, None
        if khop_distance is not None:
            return None, edge_index_of(edge_index), khop_distance
        if self.explain:
            raise ValueError(
                f"'{name}' aggregates over hop pairs, which an edge mask of "
                f"the one-hop 'edge_index' does not weight; explain the hop "
                f"pairs: pass 'edge_index=data.khop_edge_index' and "
                f"'khop_distance=data.khop_distance' (KHopEdges)")
        # Explain mode has raised above: the fast path is always open here.
        static = self.topology.as_static(x, edge_index)
        if static is not None:
            return static, None, None
        num_nodes = x.size(-2)
        edge_index, _, _ = self.topology.lookup(edge_index, num_nodes)
        pairs, distance = khop_edges(edge_index, num_nodes,
                                     max(self.max_hop_used, 1))
        return None, pairs, distance

    def aggregate_hops(self, x: Tensor, edge_index: Adj | None = None,
                       khop_distance: Tensor | None = None, *,
                       khop_edge_index: Tensor | None = None) -> Tensor:
        r"""Returns the group aggregates :math:`\mathbf{s}_{i,g}`,
        :obj:`[..., num_nodes, G, F_in]`, on the graph given as in
        :meth:`hop_input`."""
        static, pairs, distance = self.hop_input(x, edge_index,
                                                 khop_distance,
                                                 khop_edge_index)
        if static is not None:
            out = self._aggregate_own(static)
            # Whole copies: [..., B, N, G, F] back to [..., B N, G, F].
            return out if static.dim() == x.dim() else out.flatten(-4, -3)
        assert pairs is not None and distance is not None
        return self._aggregate_pairs(x, pairs, distance)

    def _aggregate_own(self, x: Tensor) -> Tensor:
        # On the layer's graph: x is [..., N, F_in].
        self._check_num_nodes(x)
        # With a NaN or Inf in x, the dense product would spread it to
        # every node (0 * NaN); message passing keeps it to the hops.
        if (self.dense_adj is not None and dense_product_safe(x)) or (
                self.csr_value is not None and _sparse_kernel_ok(x)):
            # The static kernel is message_and_aggregate on the graph's
            # sparse adjacency, so that PyG's hooks see it.
            return propagate_static(self, x=x)
        # Non-finite features or tracing: one message per stored pair
        # and channel, and its gradient.
        check_memory(self.__class__.__name__,
                     2 * self._num_pairs * math.prod(x.shape[:-2]) *
                     x.size(-1) * x.element_size(),
                     f'messages over {self._num_pairs} hop pairs',
                     'use finite features (the sparse product) or a '
                     'smaller batch')
        sums = self.hop_sums(x, self.hop_edge_index, self.hop, None)
        return self._grouped(sums, self.group_norm)

    def message_and_aggregate(self, adj_t: Tensor | None,
                              x: Tensor) -> Tensor:
        r"""The static kernel: the group aggregates of :obj:`x`,
        :obj:`[..., N, F_in]` on the layer's graph, as one product with the
        :obj:`[N G, N]` matrix of the groups' normalised hop weights, dense
        on graphs of at most ``DENSE_MAX_NODES`` nodes and sparse CSR
        above; returns :obj:`[..., N, G, F_in]` (:obj:`adj_t` is
        :meth:`Topology.adj_t <pyg_skeleton.nn.topology.Topology.adj_t>` or
        :obj:`None`, and is not read)."""
        if self.dense_adj is not None:
            out = self.dense_adj.to(x.dtype) @ x
            return out.unflatten(-2, (self.num_nodes, self.num_groups))
        # Leading size by product: a batch of no samples leaves -1
        # undetermined.
        x3 = x.reshape(math.prod(x.shape[:-2]), self.num_nodes, x.size(-1))
        # The output and its gradient, [B, N G, C] each:
        check_memory(self.__class__.__name__,
                     2 * x3.numel() * self.num_groups * x.element_size(),
                     f'{self.num_groups} hop aggregates of '
                     f'{list(x3.shape)} features',
                     'use a smaller batch or fewer hop groups')
        out = _csr_matmul(self.csr_value, x3, None, None, self.csr_crow,
                          self.csr_col, self.csr_crow_t, self.csr_col_t,
                          self.csr_perm_t)
        return out.view(x.shape[:-2] + (self.num_nodes, self.num_groups,
                                        x.size(-1)))

    def _aggregate_pairs(self, x: Tensor, khop_edge_index: Tensor,
                         khop_distance: Tensor) -> Tensor:
        # On any graph given by its hop pairs (without self-loops).
        num_nodes = x.size(-2)
        node = torch.arange(num_nodes, device=x.device)
        # The self-loops (hop 0) after the pairs, where a PyG
        # explainer's edge mask expects the loops an operator adds.
        edge_index = torch.cat([khop_edge_index,
                                node.view(1, -1).expand(2, -1)], dim=1)
        hop = torch.cat([khop_distance, torch.zeros_like(node)])
        # Pairs beyond the layer's hops (a transform with a larger
        # max_hop) take part with weight zero: no data-dependent shapes.
        inside = hop <= self.max_hop_used
        hop = torch.where(inside, hop, 0)
        weight = inside.to(x.dtype)
        # One message per pair and channel, and its gradient:
        check_memory(self.__class__.__name__,
                     2 * edge_index.size(1) * math.prod(x.shape[:-2]) *
                     x.size(-1) * x.element_size(),
                     f'messages over {edge_index.size(1)} hop pairs',
                     'for copies of one graph pass a static batch '
                     '[B, N, C] or their one-hop edge_index (one sparse '
                     'product), or build the pairs with a smaller max_hop')
        sums = self.hop_sums(x, edge_index, hop, weight.view(-1, 1))
        count = torch.zeros(num_nodes * self.num_hop_slots,
                            dtype=x.dtype, device=x.device).index_add(
                                0, edge_index[1] * self.num_hop_slots +
                                hop, weight)
        group_count = count.view(num_nodes, -1) @ self.membership.to(
            x.dtype).t()
        norm = (1.0 / group_count.clamp(min=1) if self.normalize else
                torch.ones_like(group_count))
        return self._grouped(sums, norm)

    def _grouped(self, sums: Tensor, norm: Tensor) -> Tensor:
        # Per-hop sums [..., N, K, F] to normalised groups [..., N, G, F].
        if not self._identity_groups:
            sums = torch.einsum('...nkc,gk->...ngc', sums,
                                self.membership.to(sums.dtype))
        return sums * norm.to(sums.dtype).unsqueeze(-1)

    def message(self, x_j: Tensor, edge_weight: Tensor | None) -> Tensor:
        return x_j if edge_weight is None else x_j * edge_weight

    def aggregate(self, inputs: Tensor, index: Tensor, hop: Tensor,
                  dim_size: int | None = None) -> Tensor:
        # One output row per (target, hop slot): row i * K + k.
        assert dim_size is not None
        return self.aggr_module(inputs, index * self.num_hop_slots + hop,
                                dim_size=dim_size * self.num_hop_slots,
                                dim=self.node_dim)


def squeezed_widths(out_channels: int, S: int, L: int, d: float) -> list[int]:
    r"""The widths :math:`\max(1, \mathrm{round}(C_{out} d^{k - S}))` of the
    far hops :math:`k = S+1..L` (Python's :func:`round`, halves to even)."""
    return [max(1, round(out_channels * d**(k - S)))
            for k in range(S + 1, L + 1)]

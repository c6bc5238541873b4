from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Parameter
from torch.utils.checkpoint import checkpoint
from torch_geometric.utils import to_dense_batch

from pyg_skeleton.nn._export_guard import NoTorchScript, check_not_jit_traced
from pyg_skeleton.nn.memory import check_memory
from pyg_skeleton.nn.topology import built_on_cpu
from pyg_skeleton.utils import check_batch, check_partition, whole_graphs

AFFINITIES = ('concatenation', 'embedded_gaussian')


# Once the affinity of one graph has more than DENSE_MAX_KEYS ** 2 entries
# (N K), the concatenation affinity is evaluated by sorting the keys (exact,
# O((N + K) log K)) instead of through the dense [B, N, K] affinity: the
# two take the same time at about this size, and the sorted form pulls ahead
# as the graph grows (timings in docs/design_notes.rst).
DENSE_MAX_KEYS = 256

# The embedded Gaussian is evaluated over blocks of queries, recomputed in
# the backward pass, when its [B, N, K] affinity would exceed this many
# elements (256 MB in float32).
CHUNK_ELEMENTS = 2**26


def _concat_dense(a: Tensor, b: Tensor, g: Tensor,
                  key_mask: Tensor | None) -> Tensor:
    r"""The concatenation affinity's :math:`\mathbf{y}_i = \frac{1}{K}
    \sum_k \mathrm{ReLU}(a_i + b_k) \mathbf{g}_k` through the dense
    :obj:`[B, N, K]` affinity."""
    f = F.relu(a.unsqueeze(-1) + b.unsqueeze(-2))  # [B, N, K]
    if key_mask is None:
        f = f / b.size(1)
    else:
        f = f * key_mask.unsqueeze(-2).to(f.dtype)
        num_keys = key_mask.sum(dim=1).clamp(min=1).to(f.dtype)
        f = f / num_keys.view(-1, 1, 1)
    return f @ g  # [B, N, F']


def _concat_sorted(a: Tensor, b: Tensor, g: Tensor,
                   key_mask: Tensor | None) -> Tensor:
    r""":func:`_concat_dense` in :math:`O(K \log K + N \log K)` time and
    :math:`O((N + K) F')` memory, exact up to rounding.

    :math:`\mathrm{ReLU}(a_i + b_k)` is non-zero exactly for the keys with
    :math:`b_k > -a_i` (in IEEE arithmetic with gradual underflow,
    :math:`a + b > 0` if and only if :math:`b > -a`), a prefix of the keys
    sorted by decreasing :math:`b`. So with prefix sums :math:`\mathbf{S}_p
    = \sum_{q < p} \mathbf{g}_{(q)}` and :math:`\mathbf{T}_p =
    \sum_{q < p} b_{(q)} \mathbf{g}_{(q)}`, :math:`\mathbf{y}_i =
    (a_i \mathbf{S}_{p_i} + \mathbf{T}_{p_i}) / K` with :math:`p_i` the
    number of keys with :math:`b_k > -a_i`. Autograd through the sums
    gives the dense form's gradients, ReLU's zero derivative at zero
    included (a key with :math:`b_k = -a_i` is left out)."""
    if key_mask is not None:
        # Padded keys sort last (-inf) and carry no value; b itself stays
        # finite in the sums (0 * -inf would be NaN).
        g = g * key_mask.unsqueeze(-1).to(g.dtype)
        order_key = b.masked_fill(~key_mask, float('-inf'))
    else:
        order_key = b
    # Descending, so that the keys of every query are a prefix and the
    # suffix sums are plain cumulative sums.
    sorted_key, order = order_key.sort(dim=1, descending=True)  # [B, K]
    g_sorted = g.gather(1, order.unsqueeze(-1).expand_as(g))  # [B, K, F']
    both = torch.cat([g_sorted, b.gather(1, order).unsqueeze(-1) * g_sorted],
                     dim=-1)  # [B, K, 2F']
    # Prefix sums with a zero row 0 for queries that meet no key:
    prefix = F.pad(both, (0, 0, 1, 0)).cumsum(1)  # [B, K + 1, 2F']
    # Key k counts for query i iff -b_k < a_i (negation is exact, so this is
    # ReLU's a_i + b_k > 0); -b sorted descending by b is ascending.
    count = torch.searchsorted(sorted_key.neg(), a.contiguous())  # [B, N]
    picked = prefix.gather(
        1, count.unsqueeze(-1).expand(-1, -1, prefix.size(-1)))
    s_g, s_bg = picked.split(g.size(-1), dim=-1)
    y = torch.addcmul(s_bg, a.unsqueeze(-1), s_g)
    if key_mask is None:
        return y / b.size(1)
    num_keys = key_mask.sum(dim=1).clamp(min=1).to(y.dtype)
    return y / num_keys.view(-1, 1, 1)


def _gaussian_dense(theta: Tensor, phi: Tensor, g: Tensor,
                    key_mask: Tensor | None) -> Tensor:
    r"""The embedded Gaussian's :math:`\mathbf{y}_i = \sum_k
    \mathrm{softmax}_k(\boldsymbol{\theta}_i^{\top}
    \boldsymbol{\phi}_k) \mathbf{g}_k` through the dense
    :obj:`[B, N, K]` affinity."""
    logits = theta @ phi.transpose(-1, -2)  # [B, N, K]
    if key_mask is not None:
        # A finite fill keeps the rows of empty graphs NaN-free:
        logits = logits.masked_fill(~key_mask.unsqueeze(-2),
                                    torch.finfo(logits.dtype).min)
    return torch.softmax(logits, dim=-1) @ g


def _gaussian_chunked(theta: Tensor, phi: Tensor, g: Tensor,
                      key_mask: Tensor | None) -> Tensor:
    r""":func:`_gaussian_dense` over blocks of queries, each recomputed in
    the backward pass, so that at most :obj:`CHUNK_ELEMENTS` affinities
    exist at a time: :math:`O(B \cdot \mathrm{chunk} \cdot K)` memory
    instead of :math:`O(B N K)` (the time stays quadratic: the softmax
    couples every query to every key)."""
    size = max(1, CHUNK_ELEMENTS // (theta.size(0) * phi.size(1)))
    return torch.cat([
        checkpoint(_gaussian_dense, q, phi, g, key_mask, use_reentrant=False)
        for q in theta.split(size, dim=1)
    ], dim=1)


# Clusters of the key groups of non-local blocks on meshes (mesh_groups).
MESH_KEY_GROUPS = 256


def mesh_groups(edge_index: Tensor, num_nodes: int,
                max_groups: int = MESH_KEY_GROUPS) -> list[list[int]]:
    r"""Groups of the nodes of a mesh for the keys of a
    :class:`NonLocalBlock`: the clusters of the first heavy-edge-matching
    level (:func:`~pyg_skeleton.mesh.hem_coarsen`) with at most
    :obj:`max_groups` nodes, each a list of the fine nodes it gathers.

    Max-pooled per cluster, the keys and values summarise regions of the
    surface, as the paper's groups of symmetric joints summarise body parts.

    Args:
        edge_index (torch.Tensor): The mesh graph :obj:`[2, E]`.
        num_nodes (int): Its number of nodes.
        max_groups (int, optional): The most groups. (default: :obj:`256`)

    Raises:
        ValueError: If the graph has more connected components than
            :obj:`max_groups` (from :func:`~pyg_skeleton.mesh.hem_coarsen`).
    """
    # Imported here: pyg_skeleton.mesh imports the models' package.
    from pyg_skeleton.mesh import hem_coarsen
    coarsening = hem_coarsen(edge_index, num_nodes, max_nodes=max_groups)
    cluster = torch.arange(num_nodes)
    for step in coarsening.clusters:
        cluster = step[cluster]
    order = torch.argsort(cluster, stable=True)
    counts = torch.bincount(cluster, minlength=coarsening.num_nodes[-1])
    return [group.tolist() for group in order.split(counts.tolist())
            if group.numel()]


class NonLocalBlock(NoTorchScript, torch.nn.Module):
    r"""The non-local block from the `"Semantic Graph Convolutional Networks
    for 3D Human Pose Regression" <https://arxiv.org/abs/1904.03345>`_ paper
    (after Wang et al., `"Non-local Neural Networks"
    <https://arxiv.org/abs/1711.07971>`_), Eq. 4, as implemented by the
    official SemGCN code

    .. math::
        \mathbf{z}_i = \mathbf{x}_i + \mathrm{BN} \left( \mathbf{W}_{out}
        \mathbf{y}_i + \mathbf{b}_{out} \right), \qquad
        \mathbf{y}_i = \sum_{k=1}^{K} f_{ik} \, \mathbf{g}_k,

    where :math:`\boldsymbol{\theta}_i = \mathbf{W}_{\theta} \mathbf{x}_i +
    \mathbf{b}_{\theta}` is the query of node :math:`i` and
    :math:`\boldsymbol{\phi}_k`, :math:`\mathbf{g}_k` are the :math:`K` keys
    and values. Without :obj:`groups` the keys and values are those of every
    node, :math:`\boldsymbol{\phi}_j = \mathbf{W}_{\phi} \mathbf{x}_j +
    \mathbf{b}_{\phi}` and :math:`\mathbf{g}_j = \mathbf{W}_g \mathbf{x}_j +
    \mathbf{b}_g`, and :math:`K = N`. With :obj:`groups`
    :math:`\mathcal{G}_1, \ldots, \mathcal{G}_K` (a partition of the nodes),
    they are max-pooled per group (the paper's node grouping, supplement
    A.3):

    .. math::
        \boldsymbol{\phi}_k = \max_{j \in \mathcal{G}_k}
        \left( \mathbf{W}_{\phi} \mathbf{x}_j + \mathbf{b}_{\phi} \right),
        \qquad
        \mathbf{g}_k = \max_{j \in \mathcal{G}_k}
        \left( \mathbf{W}_g \mathbf{x}_j + \mathbf{b}_g \right)

    (elementwise maxima). The affinity :math:`f_{ik}` is either the
    :obj:`"concatenation"` form of the paper (Eq. 10) and the official code,

    .. math::
        f_{ik} = \frac{1}{K} \mathrm{ReLU} \left( \mathbf{w}^{\top}
        \left[ \boldsymbol{\theta}_i \, \Vert \, \boldsymbol{\phi}_k \right]
        \right),

    computed as :math:`\mathbf{w}_{\theta}^{\top} \boldsymbol{\theta}_i +
    \mathbf{w}_{\phi}^{\top} \boldsymbol{\phi}_k` without forming the
    concatenation, or the :obj:`"embedded_gaussian"` form of Wang et al.,
    :math:`f_{ik} = \mathrm{softmax}_k(\boldsymbol{\theta}_i^{\top}
    \boldsymbol{\phi}_k)`.

    :math:`\mathrm{BN}` is a :class:`torch.nn.BatchNorm1d` over the
    :obj:`in_channels` features, with statistics over all nodes of all
    graphs. Its weight and bias start at zero, so that the block is exactly
    the identity at initialisation (the paper's zero-initialised
    :math:`\mathbf{W}_x`); with :obj:`batch_norm=False`,
    :math:`\mathbf{W}_{out}` and :math:`\mathbf{b}_{out}` start at zero
    instead. All other projection weights are drawn by Kaiming-normal
    initialisation (fan-in, gain :math:`\sqrt{2}`) and their biases start at
    zero, as in the official code.

    The block accepts a static batch :obj:`x` of shape :obj:`[B, N, F]` (or
    a single graph :obj:`[N, F]`) that shares one node set, or a disjoint
    :class:`~torch_geometric.data.Batch` given as :obj:`x` of shape
    :obj:`[N_1 + ... + N_B, F]` with its :obj:`batch` vector. Attention never
    crosses graphs: every node attends to the keys of its own graph only, and
    :math:`K` is counted per graph. With :obj:`groups` the node indices of
    the groups refer to positions within each graph, so every graph must
    then have exactly the number of nodes the groups cover.

    On large graphs, *e.g.* on a mesh, the :obj:`[B, N, K]` affinity is
    never formed. Once the affinity of one graph would have more than
    :math:`256^2` entries (:math:`N K`, :obj:`DENSE_MAX_KEYS` squared) the
    concatenation affinity is evaluated exactly by
    sorting the keys by :math:`\mathbf{w}_{\phi}^{\top}
    \boldsymbol{\phi}_k` (the keys with a positive :math:`f_{ik}` are a
    prefix of the decreasing order, so prefix sums of :math:`\mathbf{g}_k`
    and :math:`(\mathbf{w}_{\phi}^{\top} \boldsymbol{\phi}_k)
    \mathbf{g}_k` give every :math:`\mathbf{y}_i`), in :math:`O(N \log N)`
    time and linear memory. The embedded Gaussian runs over blocks of
    queries, recomputed in the backward pass, once its affinity would hold
    more than :obj:`CHUNK_ELEMENTS` (:math:`2^{26}`) entries (memory of one
    block, quadratic time). Both equal the dense evaluation up to
    floating-point rounding; the paper's grouped keys (a few per skeleton)
    always take the dense form.

    .. note::
        Differences from the official code (:obj:`GraphNonLocal`): the
        official code reorders the joints by the flattened groups and
        max-pools consecutive runs of the *first* group's size, so unequal
        groups (*e.g.* the 17-joint groups with one group of three) silently
        pool joints across group boundaries and drop joints from the keys.
        This block takes the maximum over each group's own nodes and so
        handles groups of any size correctly; for equal consecutive
        groups both agree. It works directly on :obj:`[*, N, F]` node
        features (no reordering or transposition), and also offers the
        embedded Gaussian affinity and disjoint batches of graphs of
        different sizes.

    Args:
        in_channels (int): Size of each input sample :math:`F`.
        inter_channels (int, optional): Size of the queries, keys and values.
            (default: :obj:`None`, *i.e.* :obj:`max(in_channels // 2, 1)`)
        groups (Sequence[Sequence[int]], optional): A partition of the node
            indices :obj:`0, ..., N-1` into non-empty groups (any sizes) over
            which keys and values are max-pooled, *e.g.*
            :obj:`[[2, 3], [5, 6], [1, 4], [0, 7], [8, 9], [14, 15],
            [11, 12], [10, 13]]` for SemGCN's 16 joints.
            (default: :obj:`None`, one key per node)
        affinity (str, optional): The pairwise function :math:`f`,
            :obj:`"concatenation"` or :obj:`"embedded_gaussian"`.
            (default: :obj:`"concatenation"`)
        batch_norm (bool, optional): If set to :obj:`False`, the output
            projection is not followed by batch normalisation.
            (default: :obj:`True`)

    Shapes:
        - **input:**
          node features :math:`(B, N, F)` or :math:`(N, F)`, or
          :math:`(N_1 + \ldots + N_B, F)` with
          batch vector :math:`(N_1 + \ldots + N_B)` *(optional)*
        - **output:** node features of the same shape as the input

    With the concatenation affinity and batch normalisation the block has
    :math:`3 (F F' + F') + 2 F' + (F' F + F) + 2 F` parameters for
    :math:`F' =` :obj:`inter_channels`: :math:`33{,}472` for :math:`F = 128`.
    """
    @built_on_cpu
    def __init__(
        self,
        in_channels: int,
        inter_channels: int | None = None,
        groups: Sequence[Sequence[int]] | None = None,
        affinity: str = 'concatenation',
        batch_norm: bool = True,
    ):
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) \
                or in_channels <= 0:
            raise ValueError(f"'{self.__class__.__name__}' needs a positive "
                             f"'in_channels' (got {in_channels!r})")
        if inter_channels is None:
            inter_channels = max(in_channels // 2, 1)
        if (isinstance(inter_channels, bool)
                or not isinstance(inter_channels, int) or inter_channels <= 0):
            raise ValueError(f"'{self.__class__.__name__}' needs a positive "
                             f"'inter_channels' (got {inter_channels!r})")
        if affinity not in AFFINITIES:
            raise ValueError(f"Unknown affinity {affinity!r} in "
                             f"'{self.__class__.__name__}' (expected one of "
                             f"{', '.join(repr(a) for a in AFFINITIES)})")

        self.in_channels = in_channels
        self.inter_channels = inter_channels
        self.affinity = affinity
        self.batch_norm = batch_norm

        self.groups: list[list[int]] | None = None
        self.num_nodes: int | None = None
        self.num_groups: int | None = None
        if groups is not None:
            self.groups = check_partition(groups)
            self.num_groups = len(self.groups)
            self.num_nodes = sum(len(group) for group in self.groups)
            # Groups as rows of a [K, S] table of node indices, shorter
            # groups padded with their first node and masked out, so that
            # pooling is one gather and one max (faster than a scatter-max
            # over a group-id vector, with identical results; timings in
            # docs/design_notes.rst).
            size = max(len(group) for group in self.groups)
            slots = torch.tensor([group + group[:1] * (size - len(group))
                                  for group in self.groups])
            pad = torch.tensor([[s >= len(group) for s in range(size)]
                                for group in self.groups])
            self.register_buffer('group_slots', slots, persistent=False)
            self.register_buffer('group_pad', pad if bool(pad.any()) else
                                 None, persistent=False)
        else:
            self.register_buffer('group_slots', None, persistent=False)
            self.register_buffer('group_pad', None, persistent=False)

        self.theta = Linear(in_channels, inter_channels)
        self.phi = Linear(in_channels, inter_channels)
        self.g = Linear(in_channels, inter_channels)
        if affinity == 'concatenation':
            # w = [w_theta ; w_phi], the bias-free projection of Eq. 10:
            self.concat_weight = Parameter(torch.empty(2 * inter_channels))
        else:
            self.register_parameter('concat_weight', None)
        self.out = Linear(inter_channels, in_channels)
        self.bn = BatchNorm1d(in_channels) if batch_norm else None

        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module (and the running
        statistics of its batch normalisation)."""
        for lin in (self.theta, self.phi, self.g, self.out):
            torch.nn.init.kaiming_normal_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
        if self.concat_weight is not None:
            # Kaiming-normal for a 1x1 convolution 2F' -> 1 (fan-in 2F'):
            std = math.sqrt(2.0 / self.concat_weight.numel())
            with torch.no_grad():
                self.concat_weight.normal_(0.0, std)
        if self.bn is not None:
            self.bn.reset_running_stats()
            torch.nn.init.zeros_(self.bn.weight)
            torch.nn.init.zeros_(self.bn.bias)
        else:
            torch.nn.init.zeros_(self.out.weight)
            torch.nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        r"""Runs the block.

        Args:
            x (torch.Tensor): Node features :obj:`[B, N, F]` or :obj:`[N, F]`
                (a static batch or one graph), or :obj:`[N_1 + ... + N_B, F]`
                for a disjoint batch.
            batch (torch.Tensor, optional): The batch vector of a disjoint
                batch, assigning every row of :obj:`x` to its graph (sorted,
                as in :class:`~torch_geometric.data.Batch`).
                (default: :obj:`None`)
        """
        check_not_jit_traced(self.__class__.__name__)
        if x.dim() not in (2, 3):
            raise ValueError(f"'{self.__class__.__name__}' expects node "
                             f"features of shape [N, F] or [B, N, F] (got "
                             f"{x.dim()} dimensions, shape {tuple(x.shape)})")
        if x.size(-1) != self.in_channels:
            raise ValueError(f"'{self.__class__.__name__}' expects "
                             f"{self.in_channels} input channels (got "
                             f"{x.size(-1)}, shape {tuple(x.shape)})")

        if batch is None:
            if self.num_nodes is not None and x.size(-2) != self.num_nodes:
                raise ValueError(f"The groups of '{self.__class__.__name__}' "
                                 f"cover {self.num_nodes} nodes, but the "
                                 f"input has {x.size(-2)} nodes (shape "
                                 f"{tuple(x.shape)})")
            x_dense = x if x.dim() == 3 else x.unsqueeze(0)
            h = self._attend(x_dense, None)  # [B, N, F]
            h = h.reshape(-1, self.in_channels)
            if self.bn is not None:
                h = self.bn(h)
            return x + h.view(x.shape)

        # Disjoint batch of graphs:
        if x.dim() != 2:
            raise ValueError(f"'{self.__class__.__name__}' expects node "
                             f"features of shape [N_1 + ... + N_B, F] with a "
                             f"'batch' vector (got shape {tuple(x.shape)})")
        owner = self.__class__.__name__
        if self.num_nodes is not None:
            # The groups fix the node set: a batch of whole graphs, viewed
            # as the static batch.
            whole_graphs(batch, x.size(0), self.num_nodes, owner)
            h = self._attend(x.view(-1, self.num_nodes, x.size(-1)), None)
            h = h.reshape(-1, self.in_channels)
        else:
            check_batch(batch, x.size(0), owner)
            # [B, N_max, F], [B, N_max]
            x_dense, mask = to_dense_batch(x, batch)
            h = self._attend(x_dense, mask)[mask]  # [N_1 + ... + N_B, F]
        if self.bn is not None:
            h = self.bn(h)
        return x + h

    def _attend(self, x: Tensor, key_mask: Tensor | None) -> Tensor:
        r"""Computes :math:`\mathbf{W}_{out} \mathbf{y} + \mathbf{b}_{out}` on
        dense node features :obj:`[B, N, F]`; :obj:`key_mask` of shape
        :obj:`[B, N]` marks the real (non-padded) nodes."""
        theta = self.theta(x)  # [B, N, F']
        phi = self.phi(x)  # [B, N, F']
        g = self.g(x)  # [B, N, F']
        if self.group_slots is not None:
            phi = self._pool(phi)  # [B, K, F']
            g = self._pool(g)  # [B, K, F']

        if self.concat_weight is not None:  # concatenation
            w_theta, w_phi = self.concat_weight.split(self.inter_channels)
            a = theta @ w_theta  # [B, N]
            b = phi @ w_phi  # [B, K]
            if theta.size(1) * phi.size(1) > DENSE_MAX_KEYS**2:
                y = _concat_sorted(a, b, g, key_mask)
            else:
                self._check_dense(theta, phi)
                y = _concat_dense(a, b, g, key_mask)
        elif theta.size(0) * theta.size(1) * phi.size(1) > CHUNK_ELEMENTS:
            y = _gaussian_chunked(theta, phi, g, key_mask)
        else:
            self._check_dense(theta, phi)
            y = _gaussian_dense(theta, phi, g, key_mask)
        return self.out(y)  # [B, N, F]

    def _check_dense(self, theta: Tensor, phi: Tensor) -> None:
        # The dense affinity and the two [B, N, K] tensors autograd keeps of
        # it (a disjoint batch of many graphs can make them large even with
        # few keys per graph).
        b, n, k = theta.size(0), theta.size(1), phi.size(1)
        check_memory(self.__class__.__name__,
                     3 * b * n * k * theta.element_size(),
                     f'{b} x {n} x {k} affinities',
                     "split the batch, or pass 'groups' to pool the keys")

    def _pool(self, h: Tensor) -> Tensor:
        r"""Max-pools :obj:`[B, N, F']` over the groups: :obj:`[B, K, F']`."""
        h = h[:, self.group_slots]  # [B, K, S, F']
        if self.group_pad is not None:
            # -inf rather than a repeated member, so that a padded slot never
            # shares the gradient of a maximum with its original.
            h = h.masked_fill(self.group_pad.unsqueeze(-1), float('-inf'))
        return h.amax(dim=2)

    def __repr__(self) -> str:
        groups = None if self.groups is None else self.num_groups
        extra = '' if self.batch_norm else ', batch_norm=False'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'inter_channels={self.inter_channels}, groups={groups}, '
                f'affinity={self.affinity!r}{extra})')

r"""Fixed graph topologies with per-edge learnable parameters.

Several operators of this package (SemGCN's semantic graph convolution, the
weight-sharing convolutions) learn one parameter per edge of a *fixed* graph:
a skeleton or a mesh given at construction. :class:`Topology` stores that
graph once, in the order in which those parameters are laid out, and offers
the two things every such operator needs:

* :meth:`Topology.lookup` maps the edges of an input :obj:`edge_index`
  (one graph, a static batch, or a disjoint PyG
  :class:`~torch_geometric.data.Batch` of copies of the graph) back to their
  parameter slots, so that learnable edge weights survive batching;
* :meth:`Topology.aggregate` computes
  :math:`\mathbf{y}_i = \sum_{j \in \mathcal{N}(i)} a_{ij} \mathbf{h}_j` on a
  static batch :math:`\mathbf{H} \in \mathbb{R}^{\dots \times N \times C}`,
  choosing a dense matrix product for small graphs and a sparse CSR product
  with a hand-written backward for large ones;
* :meth:`Topology.aggregate_pair` does the same for a self-loop term and a
  neighbour term computed from different feature maps (SemGCN's
  :math:`\mathbf{W}_{\mathrm{self}}` and
  :math:`\mathbf{W}_{\mathrm{neighbor}}`) in one product.

The dense products of small graphs multiply every feature by a weight,
zeros included, and :math:`0 \cdot \mathrm{NaN} = \mathrm{NaN}`: one
non-finite feature would reach every node. ``dense_product_safe``
tells the dense paths (here and in the hop-aware operators) when to fall
back to gathering over the edges, so that a NaN or Inf at node :math:`j`
reaches only the nodes whose receptive field holds :math:`j`, as on the
message-passing path.

Input checks cost host synchronisations (on a GPU, every data-dependent
check waits for the device): :func:`set_validation` turns them off for
production, where inputs are known to be well formed.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from numbers import Integral

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric import is_compiling
from torch_geometric.typing import Adj, SparseTensor
from torch_geometric.utils import (
    add_self_loops,
    is_torch_sparse_tensor,
    remove_self_loops,
    softmax,
    to_edge_index,
)

from pyg_skeleton.utils import bfs, check_positive_int, edge_key, edge_lookup

#: The one dense threshold: graphs of at most this many nodes aggregate
#: with a dense matrix product, larger ones with the sparse CSR product
#: (:class:`Topology` and the hop-aware operators of
#: :mod:`~pyg_skeleton.nn.conv._hops`). The crossover lies between 32 and
#: 48 nodes for one-hop and k-hop graphs alike (timings in
#: ``docs/design_notes.rst``).
DENSE_MAX_NODES = 32


def __getattr__(name: str):
    # The former name of the one threshold, TOPOLOGY_DENSE_MAX_NODES, kept
    # for code that imports it.
    if name == 'TOPOLOGY_DENSE_MAX_NODES':
        warnings.warn("'TOPOLOGY_DENSE_MAX_NODES' is deprecated; use "
                      "'pyg_skeleton.nn.topology.DENSE_MAX_NODES' (the same "
                      "value)", DeprecationWarning, stacklevel=2)
        return DENSE_MAX_NODES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Whether a CSR tensor was built here yet (see :func:`_csr_tensor`).
_CSR_BUILT = False


def _csr_tensor(crow: Tensor, col: Tensor, value: Tensor,
                size: tuple[int, int]) -> Tensor:
    r"""The CSR tensor of a pattern built here, on the values' device
    (without one, the default device is used)."""
    global _CSR_BUILT

    def build() -> Tensor:
        return torch.sparse_csr_tensor(crow, col, value, size,
                                       device=value.device,
                                       check_invariants=False)

    if _CSR_BUILT:
        return build()
    # PyTorch warns on the first CSR construction of a process that CSR
    # support is in beta, which says nothing to our users (the patterns are
    # valid by construction). Silenced for that construction only: the
    # process's filters stay as they are, and later calls pay nothing (a
    # catch_warnings on every call shows in the time of a one-pose forward,
    # and is not thread-safe).
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support '
                                'is in beta state')
        adj = build()
    _CSR_BUILT = True
    return adj


_VALIDATION = True


def set_validation(enabled: bool) -> bool:
    r"""Turns the data-dependent input checks of the operators on or off,
    and returns the previous setting.

    With the checks on (the default), the operators verify that an
    :obj:`edge_index` lies within the input, joins nodes of one copy of the
    layer's graph and uses only the graph's edges; they drop its self-loops,
    detect whether it holds whole copies of the graph (to use the static
    kernel), and keep a NaN or Inf feature within its receptive field on
    the dense path. Each of these reads a value computed on the device, a
    host synchronisation that stalls a GPU.

    With the checks off, none of them runs, and the operators trust the
    declared layout: an :obj:`edge_index` with as many edges as whole copies
    of the graph is taken to *be* whole copies, and it must have no
    self-loops and no edges outside the graph (a wrong one gives a wrong
    result, not an error); small graphs always take the dense product, so a
    non-finite feature reaches every node of its graph. On well-formed
    inputs the outputs are identical. Checks on shapes (which cost nothing)
    stay on.

    Args:
        enabled (bool): :obj:`True` to check inputs, :obj:`False` to trust
            them.

    Returns:
        bool: The setting before the call.

    Example::

        previous = pyg_skeleton.set_validation(False)
        try:
            out = model(x, edge_index)
        finally:
            pyg_skeleton.set_validation(previous)

    or, for a block of code, :func:`validation`.
    """
    global _VALIDATION
    if not isinstance(enabled, bool):
        raise ValueError(f"'set_validation' takes True or False (got "
                         f"{enabled!r})")
    previous, _VALIDATION = _VALIDATION, enabled
    return previous


@contextlib.contextmanager
def validation(enabled: bool) -> Iterator[None]:
    r"""A context manager that sets :func:`set_validation` for the code
    within it and restores the previous setting on exit::

        with pyg_skeleton.validation(False):
            out = model(x, edge_index)
    """
    previous = set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def validation_enabled() -> bool:
    r"""Returns :obj:`True` if the input checks are on (see
    :func:`set_validation`)."""
    return _VALIDATION


def trusts_layout(tensor: Tensor) -> bool:
    r"""Returns :obj:`True` if an operator takes the layout of
    :obj:`tensor` as declared, without computing anything from its values:
    with :func:`set_validation` off, or on the :obj:`meta` device (which
    has no values)."""
    return not _VALIDATION or tensor.is_meta


def checks_data(tensor: Tensor) -> bool:
    r"""Returns :obj:`True` if an operator may look at the values of
    :obj:`tensor` (a host synchronisation): not under
    :func:`torch.compile` and not when it trusts the layout
    (:func:`trusts_layout`)."""
    return not is_compiling() and not trusts_layout(tensor)


def explain_message_without_loops(conv, inputs: Tensor) -> Tensor:
    r"""Weights the messages :obj:`inputs` of :obj:`conv` by the edge mask
    a PyG explainer set (see
    :meth:`torch_geometric.nn.conv.MessagePassing.explain_message`), for
    the operators whose :meth:`Topology.lookup` drops the self-loops of
    their input: the mask's entries of those loops are dropped as well
    (each node's self term has a weight of its own and is not explained).
    """
    edge_mask = conv._edge_mask
    if edge_mask is None:
        raise ValueError(f"'{conv.__class__.__name__}' is in explain mode "
                         f"but has no edge mask; set one with "
                         f"'torch_geometric.explain.algorithm.utils."
                         f"set_masks'")
    if conv._apply_sigmoid:
        edge_mask = edge_mask.sigmoid()
    if inputs.size(conv.node_dim) != edge_mask.size(0):
        edge_mask = edge_mask[conv._loop_mask]
    size = [1] * inputs.dim()
    size[conv.node_dim] = -1
    return inputs * edge_mask.view(size)


def built_on_cpu(init):
    r"""Decorates a module's :obj:`__init__` so that it works under any
    default device (:obj:`with torch.device(...)`,
    :func:`torch.set_default_device`): the graph structures are computed on
    the CPU (they read index values, which the :obj:`meta` device does not
    have), and the finished module is then moved to the default device, so
    that :obj:`with torch.device('meta'): SemGCN('h36m17')` gives a module on
    the :obj:`meta` device for shape inference, and :obj:`'cuda'` one on the
    GPU. Nested modules built this way are moved once, by the outermost."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        device = torch.get_default_device()
        with torch.device('cpu'):
            init(self, *args, **kwargs)
        if device.type != 'cpu':
            self.to(device)

    return wrapper


def check_channels(owner: str, in_channels, out_channels) -> None:
    r"""Raises a :class:`ValueError` unless both channel sizes are
    positive integers (a float or NaN size would fail later, deep inside a
    linear map)."""
    for size in (in_channels, out_channels):
        if isinstance(size, bool) or not isinstance(size, Integral) or (
                size <= 0):
            raise ValueError(f"'{owner}' needs positive channel sizes, "
                             f"as integers (got {in_channels!r} -> "
                             f"{out_channels!r})")


def dense_product_safe(h: Tensor) -> bool:
    r"""Returns :obj:`True` if a dense ``A @ h`` computes the same as a
    sum over the edges of :math:`\mathbf{A}`, that is, if :obj:`h` holds
    no NaN or Inf (a zero weight times a non-finite feature is NaN, and
    would reach nodes outside the receptive field).

    One reduction over :obj:`h` (its sum is finite exactly when no entry is
    NaN or Inf, unless finite entries overflow, which only costs the slower
    path). With :func:`set_validation` off it returns :obj:`True` without
    looking at the data, traced or not, so a compiled or exported model
    holds the dense product only. Otherwise, under :func:`torch.compile`
    it returns :obj:`False`: the graph must not depend on the data, and the
    edge path is always right. On the :obj:`meta` device it returns
    :obj:`True`.
    """
    if not _VALIDATION:
        return True
    if is_compiling():
        return False
    if not checks_data(h):
        return True
    # One reduction and one host read (a tensor isfinite would add a
    # kernel launch, which shows at one pose per call).
    return math.isfinite(float(h.detach().sum()))


def edge_index_of(adj: Adj) -> Tensor:
    r"""Returns :obj:`adj` as an :obj:`edge_index` of shape :obj:`[2, E]`
    (row 0 holds sources, row 1 targets). Accepts an :obj:`edge_index`, a
    :class:`torch_sparse.SparseTensor` or a :obj:`torch.sparse` tensor,
    the last two in PyG's transposed :obj:`adj_t` convention (rows are
    targets).
    """
    if isinstance(adj, SparseTensor):
        row, col, _ = adj.coo()
        return torch.stack([col, row], dim=0)
    if is_torch_sparse_tensor(adj):
        if adj.layout == torch.sparse_coo:
            adj = adj.coalesce()
        adj_t_index, _ = to_edge_index(adj)
        return adj_t_index.flip(0)
    if adj.dim() != 2 or adj.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, num_edges] "
                         f"(got {list(adj.size())})")
    return adj


def fixed_graph(edge_index: Adj,
                num_nodes: int | None = None) -> tuple[Tensor, int]:
    r"""Validates the graph an operator is built for and returns it as a
    CPU :obj:`edge_index` with its number of nodes (inferred from
    :obj:`edge_index` when :obj:`None`).

    Raises:
        ValueError: if :obj:`num_nodes` is not a positive integer, the
            graph has no node, its indices are not integers, or it refers to
            nodes outside :obj:`[0, num_nodes - 1]`.
    """
    edge_index = edge_index_of(edge_index)
    if edge_index.is_floating_point() or edge_index.is_complex():
        raise ValueError(f"'edge_index' must hold integer node ids (got "
                         f"{edge_index.dtype})")
    edge_index = edge_index.long().cpu()
    if num_nodes is not None:
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, Integral):
            raise ValueError(f"'num_nodes' must be an integer (got "
                             f"{num_nodes!r})")
        num_nodes = int(num_nodes)
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
    if num_nodes <= 0:
        raise ValueError("A graph needs at least one node")
    if edge_index.numel() and (edge_index.min() < 0
                               or edge_index.max() >= num_nodes):
        raise ValueError(f"'edge_index' refers to nodes outside "
                         f"[0, {num_nodes - 1}]")
    return edge_index, num_nodes


class _CSRMatmul(torch.autograd.Function):
    r"""``A @ H[b] + bias`` for every sample ``b``, with a fixed ``[R, K]``
    sparsity pattern and learnable values, where ``H[b]`` is ``x[b]`` (of
    shape ``[K, C]``) or, given a ``weight``, the linear map
    ``x[b] @ weight^T`` read as ``[K, C]``.

    PyTorch's own autograd for sparse CSR products materialises dense
    intermediates in the backward pass, which is what makes it slow on
    meshes. Here the pattern is fixed, so the backward is two more sparse
    kernels: ``A^T @ G[b]`` with the transposed pattern (its values are a
    permutation of ``A``'s) and the sampled products ``G[b] @ H[b]^T`` at the
    pattern's positions for the gradient of the values.

    Why one sample at a time: each product works on the caller's
    ``[B, K, C]`` layout and writes into its slice of the output. A single
    product over all samples would need node-major ``[K, B C]`` copies of
    the features, the output and both gradients. With a ``weight``, ``H``
    is never held for the whole batch either: the backward recomputes it per
    sample (a small extra matrix product), which saves the largest buffers
    of the layer. On the 13,380-vertex MakeHuman mesh (B = 8, C = 64) fresh
    buffers of that size cost as much as the sparse products themselves,
    as every one of their pages is faulted in anew.
    """
    @staticmethod
    def forward(ctx, value: Tensor, x: Tensor, weight: Tensor | None,
                bias: Tensor | None, crow: Tensor, col: Tensor,
                crow_t: Tensor, col_t: Tensor, perm_t: Tensor) -> Tensor:
        x = x.contiguous()
        size = (crow.numel() - 1, crow_t.numel() - 1)
        adj = _csr_tensor(crow, col, value, size)
        h = _Features(x, weight, size[1])
        out = x.new_empty(x.size(0), size[0], h.channels)
        # beta=0 lets the kernel write into the slice: mm(..., out=) with a
        # sparse operand computes into scratch memory and copies it over.
        beta = 0 if bias is None else 1
        bias = x.new_zeros(()) if bias is None else bias
        for b in range(x.size(0)):
            torch.addmm(bias, adj, h[b], beta=beta, out=out[b])
        ctx.save_for_backward(value, x, weight, crow, col, crow_t, col_t,
                              perm_t)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        value, x, weight, crow, col, crow_t, col_t, perm_t = ctx.saved_tensors
        need_value, need_x, need_weight, need_bias = ctx.needs_input_grad[:4]
        size = (crow.numel() - 1, crow_t.numel() - 1)
        grad_out = grad_out.contiguous()
        h = _Features(x, weight, size[1])
        grad_value = grad_x = grad_weight = grad_bias = None
        if need_value:
            acc = _csr_tensor(crow, col, torch.zeros_like(value), size)
        if need_x or need_weight:
            adj_t = _csr_tensor(crow_t, col_t, value[perm_t], size[::-1])
            grad_x = torch.empty_like(x) if need_x else None
            if weight is None:
                grad_h = grad_x
            else:
                grad_h = x.new_empty(1, size[1], h.channels)
                grad_weight = torch.zeros_like(weight) if need_weight else None
            zero = x.new_zeros(())
        for b in range(x.size(0)):
            if need_value:
                acc = torch.sparse.sampled_addmm(acc, grad_out[b], h[b].t())
            if not (need_x or need_weight):
                continue
            gh = grad_h[b if weight is None else 0]
            torch.addmm(zero, adj_t, grad_out[b], beta=0, out=gh)
            if weight is None:
                continue
            gh = gh.view(x.size(1), -1)
            if need_x:
                torch.mm(gh, weight, out=grad_x[b])
            if need_weight:
                grad_weight.addmm_(gh.t(), x[b])
        if need_value:
            grad_value = acc.values()
        if need_bias:
            grad_bias = grad_out.sum((0, 1))
        return (grad_value, grad_x, grad_weight, grad_bias, None, None, None,
                None, None)


def _csr_matmul(value: Tensor, x: Tensor, weight: Tensor | None,
                bias: Tensor | None, *pattern: Tensor) -> Tensor:
    r"""Applies :class:`_CSRMatmul` in any floating dtype and under
    :func:`torch.autocast`.

    The sparse kernels take one dtype for all operands, and MKL's CPU kernel
    has no bfloat16 or float16 (nor do all of cuSPARSE's), so the product
    runs with autocast off, in the operands' promoted dtype, raised to
    float32 from a half-precision one: the sums over a node's neighbours
    then round once, at the end. The result comes back in the promoted dtype,
    or, under autocast, in autocast's dtype, as a dense matrix product's
    would; autograd casts the gradients back to each operand's dtype.
    """
    dtype = value.dtype
    for t in (x, weight, bias):
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    out_dtype = dtype
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type) and dtype == torch.float32:
        out_dtype = torch.get_autocast_dtype(device_type)
    if dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32

    def cast(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(dtype)

    with torch.autocast(device_type, enabled=False):
        out = _CSRMatmul.apply(cast(value), cast(x), cast(weight), cast(bias),
                               *pattern)
    return out.to(out_dtype)


def _sparse_kernel_ok(h: Tensor) -> bool:
    r"""Returns :obj:`True` if :class:`_CSRMatmul` can run on :obj:`h`: not
    while tracing for :func:`torch.compile` and not on the :obj:`meta`
    device, which has no sparse CSR kernels (the gather path computes the
    same shapes)."""
    return not is_compiling() and not h.is_meta


class _Features:
    r"""The per-sample operand ``H[b]`` of :class:`_CSRMatmul`: ``x[b]``, or
    ``x[b] @ weight^T`` read as ``[K, C]``, computed on demand into one
    reused buffer."""
    def __init__(self, x: Tensor, weight: Tensor | None, rows: int):
        self.x, self.weight = x, weight
        if weight is None:
            self.channels = x.size(-1)
        else:
            self.buf = x.new_empty(x.size(1), weight.size(0))
            self.rows = rows
            self.channels = self.buf.numel() // rows

    def __getitem__(self, b: int) -> Tensor:
        if self.weight is None:
            return self.x[b]
        torch.mm(self.x[b], self.weight.t(), out=self.buf)
        return self.buf.view(self.rows, self.channels)


def _csr_pattern(row: Tensor, col: Tensor, num_rows: int,
                 num_cols: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""The CSR pattern of entries :obj:`(row, col)` sorted row-major, and of
    its transpose: :obj:`(crow, crow_t, col_t, perm_t)`, with
    :obj:`perm_t` carrying values over to the transpose."""
    crow = torch.zeros(num_rows + 1, dtype=torch.long)
    crow[1:] = torch.bincount(row, minlength=num_rows).cumsum(0)
    perm_t = (col * num_rows + row).argsort()
    crow_t = torch.zeros(num_cols + 1, dtype=torch.long)
    crow_t[1:] = torch.bincount(col, minlength=num_cols).cumsum(0)
    return crow, crow_t, row[perm_t], perm_t


class Topology(torch.nn.Module):
    r"""A fixed directed graph with self-loops, laid out for per-edge
    parameters.

    The edge set is the input graph plus one self-loop per node, sorted
    row-major by (target :math:`i`, source :math:`j`): slot :math:`k` is the
    :math:`k`-th non-zero of the dense mask :math:`\mathbf{A} + \mathbf{I}`
    read row by row. This is the layout of the official SemGCN edge logits,
    so their weights load unchanged.

    With :obj:`max_hop` :math:`L > 1` the topology also holds every pair
    :math:`(j, i)` at shortest-path distance :math:`2 \le d(j, i) \le L`
    (edges followed from row 0 to row 1, one
    :func:`~pyg_skeleton.utils.bfs`), for the hop-aware operators: after
    the one-hop slots above, in their exact order, come the pairs of hop 2,
    then hop 3, and so on, each hop row-major. :obj:`hop` gives every
    slot's hop (0 for the self-loops, 1 for the edges), and
    :obj:`hop_edge_index` (:obj:`[2, num_hop_slots]`, rows
    :obj:`hop_src` / :obj:`hop_dst`) its source and target (the one-hop
    :obj:`src` / :obj:`dst`, then :obj:`far_src` / :obj:`far_dst`); the
    one-hop attributes (:obj:`key`, :obj:`src`, :obj:`dst`,
    :obj:`num_slots`, :obj:`num_edges`, the CSR patterns) and everything
    built on them (:obj:`lookup`, :obj:`tiles`, :obj:`softmax`,
    :obj:`aggregate`) describe the one-hop slots only, so with
    :math:`L = 1` the topology is what it always was.

    Args:
        edge_index (torch.Tensor or SparseTensor): The graph, without or with
            self-loops (they are added where missing).
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`, inferred from :obj:`edge_index`)
        max_hop (int, optional): The largest hop :math:`L \geq 1` of the
            slots. (default: :obj:`1`)

    Raises:
        ValueError: If the graph is invalid (see ``fixed_graph``), has
            duplicate edges, or :obj:`max_hop` is not a positive integer.
        MemoryError: If the pairs within :obj:`max_hop` hops would not fit
            in memory.
    """
    @built_on_cpu
    def __init__(self, edge_index: Adj, num_nodes: int | None = None,
                 max_hop: int = 1):
        super().__init__()
        max_hop = check_positive_int(max_hop, 'max_hop')
        edge_index, num_nodes = fixed_graph(edge_index, num_nodes)
        edge_index, _ = remove_self_loops(edge_index)
        edge_index, _ = add_self_loops(edge_index, num_nodes=num_nodes)
        key = torch.unique(edge_key(edge_index, num_nodes))
        if key.numel() != edge_index.size(1):
            raise ValueError("'edge_index' contains duplicate edges")
        self.num_nodes = num_nodes

        dst, src = key // num_nodes, key % num_nodes
        is_self = src == dst
        nbr = (~is_self).nonzero().view(-1)
        # Slots of the self-loops and of the other edges within the layout:
        self.register_buffer('key', key, persistent=False)
        self.register_buffer('src', src, persistent=False)
        self.register_buffer('dst', dst, persistent=False)
        self.register_buffer('self_slot', is_self.nonzero().view(-1),
                             persistent=False)
        self.register_buffer('nbr_slot', nbr, persistent=False)
        # CSR pattern of the neighbour edges (rows = targets), and of its
        # transpose with the permutation that carries values over:
        nbr_src, nbr_dst = src[nbr], dst[nbr]
        crow, crow_t, col_t, perm_t = _csr_pattern(nbr_dst, nbr_src,
                                                   num_nodes, num_nodes)
        self.register_buffer('crow', crow, persistent=False)
        self.register_buffer('col', nbr_src, persistent=False)
        self.register_buffer('crow_t', crow_t, persistent=False)
        self.register_buffer('col_t', col_t, persistent=False)
        self.register_buffer('perm_t', perm_t, persistent=False)
        # The same for all slots over paired features (see
        # aggregate_pair): slot (j -> i) reads row 2j (self-loop) or
        # 2j + 1 (neighbour) of [2N, C], so slot order stays CSR order.
        pair_col = 2 * src + (~is_self).long()
        crow, crow_t, col_t, perm_t = _csr_pattern(dst, pair_col, num_nodes,
                                                   2 * num_nodes)
        self.register_buffer('pair_crow', crow, persistent=False)
        self.register_buffer('pair_col', pair_col, persistent=False)
        self.register_buffer('pair_crow_t', crow_t, persistent=False)
        self.register_buffer('pair_col_t', col_t, persistent=False)
        self.register_buffer('pair_perm_t', perm_t, persistent=False)

        self.max_hop = max_hop
        hop = (~is_self).long()
        source = torch.empty(0, dtype=torch.long)
        target = torch.empty(0, dtype=torch.long)
        if max_hop > 1:
            source, target, far_hop = bfs(edge_index, num_nodes,
                                          max_hop=max_hop, owner='Topology')
            far = far_hop >= 2
            source, target, far_hop = source[far], target[far], far_hop[far]
            order = torch.argsort(
                far_hop * num_nodes**2 + edge_key(
                    torch.stack([source, target]), num_nodes))
            hop = torch.cat([hop, far_hop[order]])
            source, target = source[order], target[order]
        self.register_buffer('hop', hop, persistent=False)
        # The pairs of all slots in one tensor, so that the hop operators
        # take views of its prefixes rather than a copy per call:
        self.register_buffer('hop_edge_index',
                             torch.stack([torch.cat([src, source]),
                                          torch.cat([dst, target])]),
                             persistent=False)
        found = int(hop.max()) if hop.numel() else 0
        #: The largest hop of any slot: :obj:`max_hop`, or the graph's
        #: furthest hop (its diameter, per connected component) if that is
        #: smaller.
        self.furthest = found

    @property
    def num_hop_slots(self) -> int:
        r"""The number of slots within :obj:`max_hop` hops, self-loops
        included."""
        return self.hop.numel()

    @property
    def hop_src(self) -> Tensor:
        r"""The source of every slot within :obj:`max_hop` hops."""
        return self.hop_edge_index[0]

    @property
    def hop_dst(self) -> Tensor:
        r"""The target of every slot within :obj:`max_hop` hops."""
        return self.hop_edge_index[1]

    @property
    def far_src(self) -> Tensor:
        r"""The source of every slot beyond one hop."""
        return self.hop_edge_index[0, self.num_slots:]

    @property
    def far_dst(self) -> Tensor:
        r"""The target of every slot beyond one hop."""
        return self.hop_edge_index[1, self.num_slots:]

    @property
    def num_slots(self) -> int:
        r"""The number of edges including self-loops,
        :math:`N + |\mathcal{E}|`."""
        return self.key.numel()

    @property
    def num_edges(self) -> int:
        r"""The number of directed edges without self-loops."""
        return self.nbr_slot.numel()

    @property
    def edge_index(self) -> Tensor:
        r"""The edges including self-loops in slot order, :obj:`[2, N+E]`."""
        return torch.stack([self.src, self.dst], dim=0)

    def lookup(self, edge_index: Adj,
               num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
        r"""Maps the edges of a graph built from copies of this topology back
        to their slots.

        The graph has :obj:`num_nodes` :math:`= B \cdot N` nodes: node
        :math:`b N + v` is node :math:`v` of copy :math:`b`, which is the
        layout of a :class:`~torch_geometric.data.Batch` of graphs that each
        have this topology's nodes in this order (:math:`B = 1` for a single
        graph or a static batch). Any subset of the topology's edges may be
        given, so edge dropping works; self-loops in the input are ignored
        (every node gets its own self-loop slot).

        Returns:
            :obj:`(edge_index, slot, self_slot)`: the input edges without
            self-loops, the slot of each, and the slot of each node's
            self-loop.

        Raises:
            ValueError: if :obj:`num_nodes` is not a multiple of :math:`N`,
                a node id lies outside :obj:`[0, num_nodes - 1]`, an edge
                joins two different copies, or an edge is not in the
                topology. The checks on values are skipped under
                :func:`torch.compile`, on the :obj:`meta` device and with
                :func:`~pyg_skeleton.set_validation` off; in the last two
                cases the self-loops are not removed either: the input must
                then have none.
        """
        n = self.num_nodes
        edge_index = edge_index_of(edge_index)
        check = checks_data(edge_index)
        if check and edge_index.numel():
            lo, hi = (int(v) for v in torch.aminmax(edge_index))
            if lo < 0 or hi >= num_nodes:
                raise ValueError(
                    f"'edge_index' has node ids out of range: they must lie "
                    f"in [0, {num_nodes - 1}] for an input of {num_nodes} "
                    f"nodes (got [{lo}, {hi}])")
        if num_nodes % n != 0 and not is_compiling():
            raise ValueError(f"The input has {num_nodes} nodes, which is "
                             f"not a multiple of the {n} nodes of the "
                             f"layer's graph")
        if not trusts_layout(edge_index):
            # Selecting the edges that are not loops needs their count on
            # the host.
            edge_index, _ = remove_self_loops(edge_index)
        src, dst = edge_index[0], edge_index[1]
        query = edge_key(edge_index % n, n)
        pos = edge_lookup(self.key, query)
        if check:
            if bool(((src // n) != (dst // n)).any()):
                raise ValueError("'edge_index' has edges between different "
                                 "copies of the layer's graph")
            missing = self.key[pos] != query
            if bool(missing.any()):
                k = int(missing.nonzero()[0, 0])
                raise ValueError(
                    f"Edge ({int(src[k])} -> {int(dst[k])}) is not an edge "
                    f"of the layer's graph (local nodes {int(src[k]) % n} -> "
                    f"{int(dst[k]) % n})")
        node = torch.arange(num_nodes, device=self.key.device)
        return edge_index, pos, self.self_slot[node % n]

    def tiles(self, edge_index: Adj, num_nodes: int) -> bool:
        r"""Returns :obj:`True` if :obj:`edge_index` holds every edge of
        each of the :obj:`num_nodes / N` copies of this topology exactly
        once, in any order and without self-loops: the
        :obj:`edge_index` of a :class:`~torch_geometric.data.Batch` of
        whole copies, on which an operator computes the same as on a static
        batch. Edges that are not in the topology raise as in
        :meth:`lookup`.

        Without :func:`~pyg_skeleton.set_validation` (and on the
        :obj:`meta` device) only the number of edges is compared: an
        :obj:`edge_index` with the edge count of whole copies is trusted to
        be whole copies, which takes no host synchronisation."""
        n = self.num_nodes
        edge_index = edge_index_of(edge_index)
        copies = num_nodes // n
        expected = copies * self.num_edges
        # The edge count rules out dropped edges before any lookup.
        if num_nodes % n != 0 or edge_index.size(1) != expected:
            return False
        if trusts_layout(edge_index):
            return True
        edge_index, slot, _ = self.lookup(edge_index, num_nodes)
        if slot.numel() != expected:  # self-loops took some places
            return False
        key = (edge_index[1] // n) * self.num_slots + slot
        return expected == 0 or bool(torch.bincount(key).max() == 1)

    def as_static(self, x: Tensor, edge_index: Adj | None,
                  explain: bool = False) -> Tensor | None:
        r"""The one whole-copies fast path of the operators on this
        topology: returns the disjoint features :obj:`x`,
        :obj:`[..., B N, C]`, viewed as a static batch :obj:`[..., B, N, C]`
        when :obj:`edge_index` holds every edge of each copy (see
        :meth:`tiles`), and :obj:`None` otherwise, or when the answer would
        depend on the data while tracing for :func:`torch.compile`, or in a
        PyG explainer's explain mode (:obj:`explain=True`), whose edge mask
        must weight the input's own edges.

        An operator calls itself on the view and flattens the result back
        with :obj:`out.flatten(-3, -2)`."""
        if edge_index is None or explain or is_compiling():
            return None
        if not self.tiles(edge_index, x.size(-2)):
            return None
        return x.unflatten(-2, (-1, self.num_nodes))

    def softmax(
        self,
        logits: Tensor,
        edge_index: Adj | None = None,
        num_nodes: int | None = None,
    ) -> tuple[Tensor | None, Tensor, Tensor]:
        r"""Normalises per-slot logits with a softmax over each target's
        incoming edges and its self-loop (SemGCN's :math:`\rho_i`).

        Args:
            logits (torch.Tensor): One logit per slot, :obj:`[N + E]` or
                :obj:`[N + E, C]`.
            edge_index (torch.Tensor or SparseTensor, optional): The edges
                taking part (see :meth:`lookup`); :obj:`None` for the whole
                topology. (default: :obj:`None`)
            num_nodes (int, optional): The number of nodes of
                :obj:`edge_index`. (default: :obj:`None`)

        Returns:
            :obj:`(edge_index, a_neighbor, a_self)`: :obj:`edge_index` is
            :obj:`None` for the whole topology, whose neighbour weights come
            in slot order (the order :meth:`aggregate` takes), or else the
            input edges without self-loops with one weight each;
            :obj:`a_self` holds each node's self-loop weight.
        """
        if edge_index is None:
            alpha = softmax(logits, self.dst, num_nodes=self.num_nodes)
            return None, alpha[self.nbr_slot], alpha[self.self_slot]
        if num_nodes is None:
            raise ValueError("'Topology.softmax' needs 'num_nodes' with "
                             "'edge_index'")
        edge_index, slot, self_slot = self.lookup(edge_index, num_nodes)
        num_edges = edge_index.size(1)
        index = torch.cat([
            edge_index[1],
            torch.arange(num_nodes, device=edge_index.device),
        ])
        alpha = softmax(torch.cat([logits[slot], logits[self_slot]]), index,
                        num_nodes=num_nodes)
        return edge_index, alpha[:num_edges], alpha[num_edges:]

    def aggregate(self, value: Tensor, h: Tensor,
                  self_value: Tensor | None = None) -> Tensor:
        r"""Computes :math:`\mathbf{y}_i = \sum_{j \in \mathcal{N}(i)}
        a_{ij} \mathbf{h}_j` over the neighbour edges, plus
        :math:`a_{ii} \mathbf{h}_i` when :obj:`self_value` is given.

        Args:
            value (torch.Tensor): Edge weights :math:`a_{ij}` of the
                neighbour edges in slot order, :obj:`[E]` (shared by all
                channels) or :obj:`[E, C]` (one per channel).
            h (torch.Tensor): Node features :obj:`[..., N, C]`.
            self_value (torch.Tensor, optional): Self-loop weights
                :math:`a_{ii}`, :obj:`[N]` or :obj:`[N, C]`. On small graphs
                they join the same dense product. (default: :obj:`None`)

        A NaN or Inf feature at node :math:`j` reaches only :math:`j`'s
        out-neighbours (and :math:`j` itself with :obj:`self_value`): small
        graphs then gather over the edges instead of the dense product
        (see ``dense_product_safe``).
        """
        n = self.num_nodes
        if h.dim() < 2 or h.size(-2) != n or value.size(0) != self.num_edges:
            raise ValueError(f"'Topology.aggregate' expects {self.num_edges} "
                             f"edge weights and features [..., {n}, C] (got "
                             f"{list(value.shape)} and {list(h.shape)})")
        if n <= DENSE_MAX_NODES and dense_product_safe(h):
            dense_key = self.key[self.nbr_slot]
            if self_value is not None:
                dense_key = torch.cat([dense_key, self.key[self.self_slot]])
                value = torch.cat([value, self_value])
            adj = value.new_zeros((n * n, ) + value.shape[1:])
            adj = adj.index_copy(0, dense_key, value).view((n, n) +
                                                           value.shape[1:])
            if value.dim() == 2:
                return torch.einsum('ijc,...jc->...ic', adj, h)
            if h.dim() == 2:
                return adj @ h
            # A bmm with the matrix expanded over the batch is about twice as
            # fast as a broadcasting matmul, which copies h into a transposed
            # layout to make one skinny product.
            h3 = h.reshape(-1, n, h.size(-1))
            out = torch.bmm(adj.expand(h3.size(0), n, n), h3)
            return out.view(h.shape)
        if value.dim() == 1 and n > DENSE_MAX_NODES and (
                _sparse_kernel_ok(h)):
            # Leading size by product, not -1: the weight-sharing layers
            # pass [N, L C], and a batch of no samples (L = 0) leaves -1
            # undetermined.
            h3 = h.reshape(math.prod(h.shape[:-2]), n, h.size(-1))
            out = _csr_matmul(value, h3, None, None, self.crow, self.col,
                              self.crow_t, self.col_t,
                              self.perm_t).view(h.shape)
        else:
            # One weight per channel, tracing for torch.compile, the meta
            # device, or a small graph with non-finite features: gather,
            # weight and scatter along the node dimension.
            src, dst = self.col, self.dst[self.nbr_slot]
            msg = h.index_select(-2, src)
            msg = msg * (value if value.dim() == 2 else value.unsqueeze(-1))
            # In the product's dtype: under autocast the weights may be
            # float32 and the features bfloat16.
            out = msg.new_zeros(h.shape).index_add(-2, dst, msg)
        if self_value is None:
            return out
        if self_value.dim() == 1:
            self_value = self_value.unsqueeze(-1)
        return out.addcmul(self_value, h)

    def pair_matrix(self, alpha: Tensor) -> Tensor:
        r"""The dense :obj:`[N, 2N]` (or :obj:`[N, 2N, C]`) matrix of
        :meth:`aggregate_pair` on small graphs: entry :obj:`(i, 2j)` holds
        the self-loop weight of :math:`j = i`, entry :obj:`(i, 2j + 1)` the
        weight of edge :math:`(j, i)`, from slot weights :obj:`alpha`."""
        n = self.num_nodes
        adj = alpha.new_zeros((n * 2 * n, ) + alpha.shape[1:])
        return adj.index_copy(0, self.dst * (2 * n) + self.pair_col,
                              alpha).view((n, 2 * n) + alpha.shape[1:])

    def aggregate_pair(self, alpha: Tensor, x: Tensor, weight: Tensor,
                       bias: Tensor | None = None,
                       pair_matrix: Tensor | None = None) -> Tensor:
        r"""Computes :math:`\mathbf{y}_i = a_{ii} \mathbf{s}_i +
        \sum_{j \in \mathcal{N}(i)} a_{ij} \mathbf{t}_j + \mathbf{b}` for
        two linear maps of the node features,
        :math:`[\mathbf{s}_i \,\|\, \mathbf{t}_i] = \mathbf{W}
        \mathbf{x}_i`, :math:`\mathbf{s}` for the self-loop and
        :math:`\mathbf{t}` for the neighbours, in one sparse (or, on small
        graphs, dense) product.

        Taking both maps at once lets a layer compute them with a single
        linear map, and spares the separate pass over memory that adding the
        self term would take. On graphs above
        ``DENSE_MAX_NODES`` nodes the linear map runs one
        sample at a time inside the sparse kernel, and its backward computes
        it again rather than keeping it for the whole batch.

        Non-finite features stay within the receptive field as in
        :meth:`aggregate`.

        Args:
            alpha (torch.Tensor): Weights of all slots in slot order (see
                :meth:`softmax`), :obj:`[N + E]` or :obj:`[N + E, C]`.
            x (torch.Tensor): Node features :obj:`[..., N, F]`.
            weight (torch.Tensor): :math:`\mathbf{W}`, :obj:`[2 C, F]`, the
                self-loop map in its first :math:`C` rows and the neighbour
                map in its last :math:`C`.
            bias (torch.Tensor, optional): :math:`\mathbf{b}`, :obj:`[C]`.
                (default: :obj:`None`)
            pair_matrix (torch.Tensor, optional): :meth:`pair_matrix` of
                :obj:`alpha`, when the caller keeps it between calls.
                (default: :obj:`None`)

        Returns:
            :obj:`[..., N, C]`.
        """
        n, c = self.num_nodes, weight.size(0) // 2
        if x.dim() < 2 or x.size(-2) != n or alpha.size(0) != self.num_slots:
            raise ValueError(f"'Topology.aggregate_pair' expects "
                             f"{self.num_slots} slot weights and features "
                             f"[..., {n}, F] (got {list(alpha.shape)} and "
                             f"{list(x.shape)})")
        lead = x.shape[:-2]
        if alpha.dim() == 1 and n > DENSE_MAX_NODES and (
                _sparse_kernel_ok(x)):
            out = _csr_matmul(alpha, x.reshape(-1, n, x.size(-1)), weight,
                              bias, self.pair_crow, self.pair_col,
                              self.pair_crow_t, self.pair_col_t,
                              self.pair_perm_t)
            return out.view(lead + (n, c))
        h = F.linear(x, weight)
        if n <= DENSE_MAX_NODES and dense_product_safe(h):
            adj = (self.pair_matrix(alpha)
                   if pair_matrix is None else pair_matrix)
            h2 = h.reshape(-1, 2 * n, c)
            if alpha.dim() == 2:
                out = torch.einsum('ijc,bjc->bic', adj, h2)
                out = out if bias is None else out + bias
            elif bias is None:
                out = torch.bmm(adj.expand(h2.size(0), n, 2 * n), h2)
            else:
                # bmm with the matrix expanded over the batch is about twice
                # as fast as a broadcasting matmul, which copies h into a
                # transposed layout to make one skinny product.
                out = torch.baddbmm(bias, adj.expand(h2.size(0), n, 2 * n),
                                    h2)
            return out.view(lead + (n, c))
        # One weight per channel, tracing for torch.compile, the meta
        # device, or a small graph with non-finite features: gather, weight
        # and scatter along the node dimension.
        h2 = h.reshape(lead + (2 * n, c))
        msg = h2.index_select(-2, self.pair_col)
        msg = msg * (alpha if alpha.dim() == 2 else alpha.unsqueeze(-1))
        out = msg.new_zeros(lead + (n, c)).index_add(-2, self.dst, msg)
        return out if bias is None else out + bias

    def __repr__(self) -> str:
        hops = f', max_hop={self.max_hop}' if self.max_hop > 1 else ''
        return (f'{self.__class__.__name__}(num_nodes={self.num_nodes}, '
                f'num_edges={self.num_edges}{hops})')

    @property
    def neighbor_edge_index(self) -> Tensor:
        r"""The edges without self-loops in slot order, :obj:`[2, E]`: the
        edges of a static input, in the order of :meth:`adj_t` (sorted by
        target, then source). A PyG explainer's edge mask for a static call
        :obj:`conv(x)` follows this order."""
        return torch.stack([self.col, self.dst[self.nbr_slot]], dim=0)

    def adj_t(self) -> Tensor:
        r"""The graph without self-loops as a sparse CSR adjacency in PyG's
        transposed :obj:`adj_t` form, :obj:`[N, N]` (row :math:`i` holds
        the sources of target :math:`i`, in slot order, with value
        :math:`1`).

        The operators on this topology pass it to
        :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` on a
        static batch (see ``propagate_static``), so that PyG's hooks
        and tools see that path too: a
        sparse adjacency makes PyG call the operator's
        :obj:`message_and_aggregate`, which runs :meth:`aggregate` or
        :meth:`aggregate_pair` (the values are not read). Built once and
        kept until the buffers move to another device."""
        cached = self.__dict__.get('_adj_t')
        if cached is not None and cached[0] is self.crow:
            return cached[1]
        n = self.num_nodes
        adj = _csr_tensor(self.crow, self.col,
                          torch.ones(self.num_edges, device=self.crow.device),
                          (n, n))
        # Kept outside the buffers: a sparse CSR buffer has no storage to
        # save, copy or move, and this one is derived from the buffers.
        self.__dict__['_adj_t'] = (self.crow, adj)
        return adj

    def __getstate__(self) -> dict:
        # Pickling (torch.save of a module, deepcopy) cannot read a sparse
        # CSR tensor's storage: adj_t is rebuilt on first use instead.
        state = super().__getstate__().copy()
        state.pop('_adj_t', None)
        return state


def propagate_static(conv, **kwargs) -> Tensor:
    r"""Runs the fused static kernel of :obj:`conv` (an operator with a
    :obj:`topology`) as PyG's
    :meth:`~torch_geometric.nn.conv.MessagePassing.propagate` runs it on
    the topology's sparse adjacency (:meth:`Topology.adj_t`): its
    :obj:`message_and_aggregate` with :obj:`kwargs`, then :obj:`update`.

    :obj:`propagate` itself is called whenever anything can see the
    difference: a propagate or message-and-aggregate hook registered on
    :obj:`conv`, or :obj:`propagate` replaced on the instance. Otherwise
    the two calls are made here, with no adjacency (:obj:`None`: the
    kernels read the topology's own structure), which spares PyG's dispatch
    (a few microseconds, about 8% of a SemGraphConv layer at one pose, see
    ``docs/design_notes.rst``). While compiling PyG runs no hook either, and
    dynamo could not trace the sparse adjacency. Explain mode weights
    messages and never comes here.
    """
    if ('propagate' in conv.__dict__
            or conv._propagate_forward_pre_hooks
            or conv._propagate_forward_hooks
            or conv._message_and_aggregate_forward_pre_hooks
            or conv._message_and_aggregate_forward_hooks) and (
                not is_compiling()):
        return conv.propagate(conv.topology.adj_t(), **kwargs)
    return conv.update(conv.message_and_aggregate(None, **kwargs))

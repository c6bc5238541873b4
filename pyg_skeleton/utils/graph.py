r"""Graph algorithms and input checks shared by the skeletons, the meshes,
the transforms and the operators.

Every graph is an :obj:`edge_index` of shape :obj:`[2, E]` in PyG's
convention (row 0 holds the sources :math:`j`, row 1 the targets :math:`i`)
with :math:`N` nodes; faces are :obj:`[3, F]` (PyG's :obj:`Data.face`).

* :func:`check_edge_index`, :func:`as_index_tensor` and
  :func:`check_partition` are the input checks;
* :func:`bfs` is the breadth-first search behind :func:`hop_counts` and
  :func:`~pyg_skeleton.transforms.khop_edges`;
* :func:`edge_key` and :func:`edge_lookup` map edges to their positions in
  a sorted edge table (the slots of
  :class:`~pyg_skeleton.nn.topology.Topology`);
* :func:`connected_components` and :func:`faces_to_edges` complete the set.
"""
from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import FaceToEdge
from torch_geometric.utils import remove_self_loops, to_undirected

#: :func:`bfs` runs its searches in blocks of sources whose visited table
#: (:obj:`[sources, N]` booleans) has at most this many entries, 16 MiB: the
#: working memory stays bounded on meshes of any size, and the output is
#: linear in the number of pairs found.
BFS_BLOCK_ENTRIES = 2**24


def check_positive_int(value: Any, name: str) -> int:
    r"""Returns :obj:`value` as an :obj:`int` if it is a positive integer
    (an integral float such as :obj:`2.0` included).

    Raises:
        ValueError: If :obj:`value` is a boolean, not a real number, NaN,
            infinite, not integral or smaller than one; the message names
            :obj:`name`.
    """
    # int(inf) raises OverflowError and int(nan) ValueError with messages
    # that do not name the argument; bools are not counts.
    if isinstance(value, bool) or not isinstance(value, Real) or \
            not math.isfinite(value) or int(value) != value or value < 1:
        raise ValueError(f"'{name}' must be a positive integer (got {value!r})")
    return int(value)


def as_index_tensor(values: Any, what: str) -> Tensor:
    r"""Returns :obj:`values` as an :obj:`int64` tensor, refusing
    non-integral values (a plain cast would truncate :obj:`1.5` to :obj:`1`
    and turn NaN into an arbitrary integer).

    Args:
        values (array-like): Integers, or floats with integral values.
        what (str): The name used in the error message.

    Raises:
        ValueError: If a value is not an integer (the message names
            :obj:`what`).
    """
    t = torch.as_tensor(values)
    if t.dtype == torch.bool:
        raise ValueError(f"{what} must hold integers (got booleans)")
    if t.is_floating_point() or t.is_complex():
        bad = ~torch.isfinite(t) | (t != torch.round(t)) if \
            t.is_floating_point() else torch.ones_like(t, dtype=torch.bool)
        if bool(bad.any()):
            first = t.reshape(-1)[bad.reshape(-1)][0].item()
            raise ValueError(f"{what} must hold integers (got {first})")
    return t.to(torch.long)


def check_edge_index(edge_index: Any, num_nodes: int | None = None) -> tuple[Tensor, int]:
    r"""Validates a graph and returns it as an :obj:`int64`
    :obj:`edge_index` (on its device) with its number of nodes.

    Args:
        edge_index (torch.Tensor): The edges :obj:`[2, E]`.
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`, the largest index plus one)

    Returns:
        :obj:`(edge_index, num_nodes)`.

    Raises:
        ValueError: If :obj:`num_nodes` is not a positive integer,
            :obj:`edge_index` is not an integer tensor (floats, complex
            numbers and booleans are refused; integer dtypes cannot hold NaN
            or infinity) of shape :obj:`[2, E]`, refers to a node outside
            :obj:`[0, num_nodes)`, or the graph has no node.
    """
    if num_nodes is not None and (isinstance(num_nodes, bool)
                                  or not isinstance(num_nodes, Integral) or num_nodes < 1):
        raise ValueError(f"'num_nodes' must be a positive integer (got {num_nodes!r})")
    if not isinstance(edge_index, Tensor) or edge_index.is_floating_point() \
            or edge_index.is_complex() or edge_index.dtype == torch.bool:
        raise ValueError("'edge_index' must be an integer tensor")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must have shape [2, num_edges] (got "
                         f"{list(edge_index.size())})")
    edge_index = edge_index.long()
    if num_nodes is None:
        num_nodes = int(edge_index.max()) + 1 if edge_index.numel() else 0
        if num_nodes == 0:
            raise ValueError("A graph needs at least one node")
    num_nodes = int(num_nodes)
    if edge_index.numel():
        lo, hi = (int(v) for v in torch.aminmax(edge_index))
        if lo < 0 or hi >= num_nodes:
            raise ValueError(f"'edge_index' refers to nodes outside [0, {num_nodes})")
    return edge_index, num_nodes


def check_partition(groups: Any, num_nodes: int | None = None, *,
                    node: str = "node") -> list[list[int]]:
    r"""Validates that :obj:`groups` partitions the nodes
    :math:`0, \dots, N - 1` into non-empty groups (of any sizes) and returns
    it as a list of lists of Python integers.

    Args:
        groups (sequence of sequence of int or torch.Tensor): The groups.
        num_nodes (int, optional): The number of nodes :math:`N`.
            (default: :obj:`None`, the number of indices in :obj:`groups`)
        node (str, optional): What a node is called in the error messages,
            *e.g.* :obj:`"joint"`. (default: :obj:`"node"`)

    Raises:
        ValueError: If :obj:`groups` is not a non-empty sequence of
            non-empty sequences of integers, or a node lies outside
            :obj:`[0, N)`, is in more than one group or in none; the message
            names the first offending group or node.
    """
    if isinstance(groups, Tensor):
        groups = groups.tolist()
    if isinstance(groups, (str, bytes)) or not isinstance(groups, Sequence):
        raise ValueError(f"'groups' must be a sequence of {node}-index sequences "
                         f"(got {type(groups).__name__})")
    if len(groups) == 0:
        raise ValueError("'groups' must hold at least one group")
    out: list[list[int]] = []
    for k, group in enumerate(groups):
        if isinstance(group, Tensor):
            group = group.tolist()
        if isinstance(group, (str, bytes)) or not isinstance(group, Sequence) or not group:
            raise ValueError(f"Group {k} of 'groups' is empty or not a sequence of {node} "
                             f"indices (got {group!r})")
        members = []
        for v in group:
            try:
                if isinstance(v, bool):
                    raise TypeError
                members.append(operator.index(v))
            except TypeError:
                raise ValueError(f"Group {k} of 'groups' holds a non-integer {node} index "
                                 f"{v!r}") from None
        out.append(members)

    n = sum(len(group) for group in out) if num_nodes is None else num_nodes
    seen: set[int] = set()
    for group in out:
        for v in group:
            if not 0 <= v < n:
                raise ValueError(f"groups must partition the {node}s: {node} {v} is outside "
                                 f"[0, {n})")
            if v in seen:
                raise ValueError(f"groups must partition the {node}s: {node} {v} is in more "
                                 "than one group")
            seen.add(v)
    if len(seen) < n:
        missing = min(set(range(n)) - seen)
        raise ValueError(f"groups must partition the {node}s: {node} {missing} is in no group")
    return out


# ---------------------------------------------------------------------------
# Breadth-first search


def _csr(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    # The out-neighbours of every node (rows = sources), without self-loops
    # and duplicates: (rowptr [N + 1], col [E']).
    n = num_nodes
    src, dst = edge_index
    keep = src != dst
    key = torch.unique(src[keep] * n + dst[keep])  # sorted by source
    rowptr = torch.zeros(n + 1, dtype=torch.long)
    rowptr[1:] = torch.bincount(key // n, minlength=n).cumsum(0)
    return rowptr, key % n


def bfs(edge_index: Tensor, num_nodes: int, sources: Tensor | None = None,
        max_hop: int | None = None, *,
        owner: str = 'bfs') -> tuple[Tensor, Tensor, Tensor]:
    r"""Breadth-first search from several sources at once: every node
    reachable from each source within :obj:`max_hop` hops, with its hop
    count (the length of a shortest path along the edges, followed from row
    0 to row 1 of :obj:`edge_index`).

    All searches advance together, one hop per step: each step gathers the
    out-neighbours of every frontier node from a CSR view of the graph and
    keeps those not yet visited. Time and output are linear in the number
    of (source, node) pairs found times the degree; the visited tables of
    blocks of sources hold at most :data:`BFS_BLOCK_ENTRIES` entries, so no
    :math:`N \times N` table is built unless the caller asks for all pairs
    (:func:`hop_counts`). Self-loops and duplicate edges are ignored.

    Args:
        edge_index (torch.Tensor): The edges :obj:`[2, E]`.
        num_nodes (int): The number of nodes :math:`N`.
        sources (torch.Tensor, optional): The start nodes :obj:`[S]`.
            (default: :obj:`None`, every node in order)
        max_hop (int, optional): The largest hop :math:`L \geq 1` to
            search. (default: :obj:`None`, no limit)
        owner (str, optional): The caller named by a :class:`MemoryError`.
            (default: :obj:`"bfs"`)

    Returns:
        :obj:`(row, node, hop)`, each of shape :obj:`[P]`: :obj:`node` lies
        :obj:`hop` hops (:math:`1 \le` :obj:`hop` :math:`\le L`) from
        :obj:`sources[row]`; each pair is listed once, the start nodes
        themselves (hop 0) never. Ordered by hop, then row, then node within
        each block of sources; on the device of :obj:`edge_index`.

    Raises:
        ValueError: If the graph is invalid (see :func:`check_edge_index`),
            :obj:`sources` is not a 1-D integer tensor of nodes in
            :obj:`[0, N)`, or :obj:`max_hop` is not a positive integer.
        MemoryError: If a hop's neighbour steps would not fit in memory
            (``pyg_skeleton.nn.memory.check_memory``), before they
            are gathered.
    """
    # Imported here: pyg_skeleton.nn imports this module.
    from pyg_skeleton.nn.memory import check_memory

    edge_index, num_nodes = check_edge_index(edge_index, num_nodes)
    if max_hop is not None:
        max_hop = check_positive_int(max_hop, "max_hop")
    n, device = num_nodes, edge_index.device
    if sources is None:
        sources = torch.arange(n)
    elif (not isinstance(sources, Tensor) or sources.dim() != 1 or sources.is_floating_point()
          or sources.is_complex() or sources.dtype == torch.bool):
        raise ValueError("'sources' must be a 1-D integer tensor")
    sources = sources.long().cpu()
    if sources.numel() and not 0 <= int(sources.min()) <= int(sources.max()) < n:
        raise ValueError(f"'sources' refers to nodes outside [0, {n})")
    rowptr, col = _csr(edge_index.cpu(), n)
    degree = rowptr[1:] - rowptr[:-1]

    rows, nodes, hops = [], [], []
    block = max(1, BFS_BLOCK_ENTRIES // n)
    for first in range(0, sources.numel(), block):
        node = sources[first:first + block]
        # Each search is a row of `visited`; its entries are keyed
        # row * N + node.
        origin = torch.arange(node.numel())
        visited = torch.zeros(node.numel() * n, dtype=torch.bool)
        visited[origin * n + node] = True
        hop = 0
        while max_hop is None or hop < max_hop:
            hop += 1
            # Step every frontier entry (origin, node) to all out-neighbours.
            count = degree[node]
            total = int(count.sum())
            if total == 0:
                break
            # About ten int64 arrays of `total` entries (the gathers, the
            # keys and their sort) before the new pairs are known.
            check_memory(owner, 80 * total,
                         f'hop {hop} of the {n}-node graph ({total} neighbour '
                         f'steps from {node.numel()} pairs)', 'use a smaller max_hop')
            start = (rowptr[node] - count.cumsum(0) + count).repeat_interleave(
                count, output_size=total)
            nbr = col[start + torch.arange(total)]
            key = origin.repeat_interleave(count, output_size=total) * n + nbr
            key = torch.unique(key[~visited[key]])
            if key.numel() == 0:
                break
            visited[key] = True
            origin, node = key // n, key % n
            rows.append(origin + first)
            nodes.append(node)
            hops.append(torch.full_like(node, hop))
    if not rows:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty.clone(), empty.clone()
    return (torch.cat(rows).to(device), torch.cat(nodes).to(device),
            torch.cat(hops).to(device))


def hop_counts(edge_index: Tensor, num_nodes: int, sources: Tensor) -> Tensor:
    r"""Returns the hop counts of shortest paths from each node of
    :obj:`sources` to every node, following the edges of :obj:`edge_index`
    from source (row 0) to target (row 1): the dense table of :func:`bfs`.

    Args:
        edge_index (torch.Tensor): The edges, :obj:`[2, E]`.
        num_nodes (int): The number of nodes :obj:`N`.
        sources (torch.Tensor): The start nodes, :obj:`[S]`.

    Returns:
        torch.Tensor: :obj:`[S, N]` long tensor; :obj:`0` at the start node,
        :obj:`-1` where a node cannot be reached.

    Raises:
        ValueError: As :func:`bfs`.
    """
    row, node, hop = bfs(edge_index, num_nodes, sources)
    sources = sources.long().to(hop.device)
    out = torch.full((sources.numel(), int(num_nodes)), -1, dtype=torch.long,
                     device=hop.device)
    out[torch.arange(sources.numel(), device=hop.device), sources] = 0
    out[row, node] = hop
    return out


# ---------------------------------------------------------------------------
# Edge lookup


def edge_key(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Returns the key :math:`i N + j` of every edge :math:`(j \to i)` of
    :obj:`edge_index`: sorted keys order the edges by target, then source
    (the row-major order of :math:`\mathbf{A}` with rows as targets, PyG's
    :obj:`adj_t` CSR order and the slot order of
    :class:`~pyg_skeleton.nn.topology.Topology`).

    Args:
        edge_index (torch.Tensor): The edges :obj:`[2, E]`.
        num_nodes (int): The number of nodes :math:`N`.

    Returns:
        torch.Tensor: :obj:`[E]`.
    """
    return edge_index[1] * num_nodes + edge_index[0]


def edge_lookup(key: Tensor, query: Tensor) -> Tensor:
    r"""Returns the position of every :obj:`query` key in the sorted table
    :obj:`key` (both from :func:`edge_key`).

    A query that is not in the table gets some valid position, not an error
    (checking costs a gather and a host synchronisation, which callers that
    know their queries are present skip): :obj:`key[pos] != query` marks
    the missing ones.

    Args:
        key (torch.Tensor): Sorted, non-empty table of keys :obj:`[K]`.
        query (torch.Tensor): Keys to find, of any shape.

    Returns:
        torch.Tensor: Positions in :obj:`[0, K)`, shaped like :obj:`query`.
    """
    return torch.searchsorted(key, query).clamp_(max=key.numel() - 1)


# ---------------------------------------------------------------------------
# Components and faces


def connected_components(edge_index: Tensor, num_nodes: int) -> tuple[int, Tensor]:
    r"""Returns the connected components of a graph whose edges are taken
    as undirected.

    Vectorised hooking and pointer jumping: every pass hooks the root of
    each edge's larger end onto the smaller root, then compresses the
    parent pointers to the roots; a few passes over the edges, no Python
    loop over nodes. Each component's root is its smallest node.

    Args:
        edge_index (torch.Tensor): The edges :obj:`[2, E]`.
        num_nodes (int): The number of nodes :math:`N`.

    Returns:
        :obj:`(count, labels)`: the number of components and the component
        of every node, :obj:`[N]`, numbered :obj:`0..count-1` in the order
        of each component's smallest node.

    Raises:
        ValueError: If the graph is invalid (see :func:`check_edge_index`).
    """
    edge_index, num_nodes = check_edge_index(edge_index, num_nodes)
    parent = torch.arange(num_nodes, device=edge_index.device)
    u, v = edge_index
    while True:
        pu, pv = parent[u], parent[v]
        diff = pu != pv
        if not bool(diff.any()):
            break
        low = torch.minimum(pu[diff], pv[diff])
        high = torch.maximum(pu[diff], pv[diff])
        parent.scatter_reduce_(0, high, low, reduce="amin")
        while True:
            grand = parent[parent]
            if torch.equal(grand, parent):
                break
            parent = grand
    roots, labels = torch.unique(parent, return_inverse=True)
    return roots.numel(), labels


def faces_to_edges(face: Any, num_nodes: int | None = None, *, name: str = "face") -> Tensor:
    r"""Returns the undirected, coalesced :obj:`edge_index` of the boundary
    edges of polygon faces in PyG's layout :obj:`[k, F]` (:obj:`k = 3` for
    triangles): both directions of every edge, duplicates removed.

    Triangles go through PyG's
    :class:`~torch_geometric.transforms.FaceToEdge`, whose self-loops (from
    a degenerate face's repeated vertex) are then removed; other polygons
    through their boundary loop (FaceToEdge reads :obj:`[4, F]` as
    tetrahedra, all six vertex pairs, not as quads).

    Args:
        face (torch.Tensor or array-like): The faces :obj:`[k, F]`,
            :math:`k \ge 2`, integers or integral floats.
        num_nodes (int, optional): The number of nodes. (default:
            :obj:`None`, the largest index plus one)
        name (str, optional): The argument's name in the error messages.
            (default: :obj:`"face"`)

    Raises:
        ValueError: If :obj:`face` is not :obj:`[k, F]` with
            :math:`k \ge 2`, holds non-integral values, or an index outside
            :obj:`[0, num_nodes)`.
    """
    face = as_index_tensor(face, f"'{name}'")
    if face.dim() != 2 or face.size(0) < 2:
        raise ValueError(f"'{name}' must have shape [k, F] with k >= 2 "
                         f"(got {list(face.shape)})")
    if face.numel() and int(face.min()) < 0:
        raise ValueError(f"'{name}' holds the negative index {int(face.min())}")
    if num_nodes is None:
        num_nodes = int(face.max()) + 1 if face.numel() else 0
    elif face.numel() and int(face.max()) >= num_nodes:
        raise ValueError(f"'{name}' holds the index {int(face.max())}, "
                         f"out of range for {num_nodes} nodes")
    if face.size(0) == 3:
        data = FaceToEdge(remove_faces=False)(Data(face=face, num_nodes=num_nodes))
        # Filtering keeps to_undirected's sorted, duplicate-free order.
        return remove_self_loops(data.edge_index)[0]
    # Edge (corner r -> corner r + 1) of every face, around the polygon.
    edge_index = torch.stack([face.reshape(-1), face.roll(-1, dims=0).reshape(-1)])
    edge_index, _ = remove_self_loops(edge_index)
    return to_undirected(edge_index, num_nodes=num_nodes)

r"""Multi-level heavy edge matching (HEM) graph coarsening.

This is the Graclus-style coarsening of Defferrard et al. (2016) in the
variant that Pose2Mesh and HGN use (Bresson's "Xavier" HEM). At every level
each vertex is matched with at most one neighbour; a matched pair becomes one
coarse vertex, an unmatched vertex stays a singleton. The coarse graph has
the summed edge weights :math:`\mathbf{W}' = \mathbf{P}^{\top} \mathbf{W}
\mathbf{P}` (:math:`\mathbf{P}` the 0/1 cluster indicator), so edges inside
a pair become a diagonal self-loop of the coarse vertex.

**Score.** With degrees :math:`d_i = \sum_j W_{ij}` (self-loops included)
the pair :math:`(i, j)` scores

* :obj:`score='xavier'` (HGN, Pose2Mesh):
  :math:`(2 W_{ij} + W_{ii} + W_{jj}) / (d_i + d_j)`, the share of the pair's
  total weight that stays inside the merged vertex;
* :obj:`score='graclus'` (Defferrard's cnn_graph):
  :math:`W_{ij} (1 / d_i + 1 / d_j)`.

**Visiting order.** :obj:`order='degree'` (default, deterministic) ranks the
vertices by ascending degree, ties by index (a stable sort; HGN's official
code uses NumPy's unstable default sort, see :obj:`method='official'`
below). :obj:`order='random'` draws a random rank with :obj:`seed`;
:obj:`order='index'` uses the vertex index.

**Two matching schemes, one result.**

* :obj:`method='greedy'` is the official sequential scheme: visit the
  vertices in rank order; an unmatched vertex takes its unmatched neighbour
  of highest score (ties: the lowest rank), else stays a singleton. It is a
  tight Python loop over vertices (reference and small graphs).
* :obj:`method='parallel'` (default) is vectorised. Every edge gets a strict
  priority: the lower rank of its two endpoints first (the endpoint the
  greedy visits first), then the higher score, then the lower rank of the
  other endpoint. In each round every unmatched vertex points at its
  incident edge of highest priority among edges to unmatched vertices; an
  edge both endpoints point at is *locally dominant* and is matched. Rounds
  repeat until no edge joins two unmatched vertices (the edge of globally
  highest priority is always matched, so it ends). The result is the
  matching of the greedy algorithm that scans the *edges* in decreasing
  priority (Preis; Manne & Bisseling), and with this priority that scan
  makes the same choices as the vertex-order greedy, so both methods give
  **the same clusters**. The number of rounds is the length of the longest
  chain of edges that each wait for a neighbour of higher priority: a few
  on a randomly numbered mesh, but one per ring on a mesh numbered in rings
  or a spiral (4,680 rounds on a 100 x 100 grid numbered in rings, 147 s).
  So a round that removes less than a tenth of the remaining edges ends the
  rounds, and the remaining edges are matched by one sequential pass of
  that edge scan (a Python loop, under a microsecond per edge),
  which finishes the same matching. A level then takes at most
  :math:`1 + \log |E| / -\log 0.9` rounds, whose total cost is at most ten
  times the first round's, and the cost no longer depends on the vertex
  numbering.

In both schemes the coarse vertices are numbered in rank order of their
lowest-ranked member, which is the official numbering.

**The official code.** :obj:`method='official'` reproduces HGN's (and
Pose2Mesh's) coarsening cluster for cluster, whatever NumPy is installed
(tested against the official code under NumPy 1.24.4 on the MakeHuman
body, the MHR levels of detail and generated meshes). It differs from
:obj:`'greedy'` in five details of the official loop, none of them a
design choice:

1. *Visiting order*: NumPy's default :obj:`argsort` of the degrees, which
   before NumPy 1.25 is an unstable introsort; equal degrees (most of a
   mesh) come out in an order that depends on the whole array, and NumPy
   1.25 and later sort with SIMD code in another order. It is ported in
   :func:`legacy_argsort`, so the result does not depend on NumPy.
2. :math:`W_{ii}` *is the first stored entry of row* :math:`i` (the
   smallest column), the diagonal only when it is stored and comes first;
   at the first level, without self-loops, it is the weight of an edge.
3. *The score denominator is* :math:`d_i + d_j + 10^{-9}` (a guard
   against zero degrees that shifts no comparison on integer weights but
   is kept for exactness).
4. *Row lengths off by one*: the official loop counts row lengths with a
   counter bumped before it moves to the next row, so row :math:`0` also
   reads the first entry of row :math:`1` (node :math:`0` may merge with a
   node it has no edge to) and the last row misses its last entry.
5. *Ties go to the first candidate in the row* (the lowest index, by a
   strict :math:`>`), not to the lowest rank.

It needs every node to have an edge at every level (the official code
indexes its rows by a running count, which is wrong past an empty row),
and :obj:`score='xavier'`, :obj:`order='degree'`. Weights are compared in
float64; with the official binary mesh graph (integer weights) every sum
is exact, as in the official float32 code. The input graph is taken as
given: the official mesh graph (``build_graph``) is the binary edge graph
of the faces except on non-manifold meshes, where an edge listed three or
more times in one direction gets a weight above one; give such weights
with :obj:`edge_weight`.

Optionally, :func:`binary_tree_permutations` adds the fake nodes of
Defferrard et al. so that each coarse vertex has exactly two children in a
padded ordering (the 96/48 padded sizes of HGN).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import coalesce

from .io import as_index_tensor

SCORES = ('xavier', 'graclus')
ORDERS = ('degree', 'random', 'index')
METHODS = ('parallel', 'greedy', 'official')


@dataclass
class Coarsening:
    r"""The result of :func:`hem_coarsen`.

    Attributes:
        num_nodes (list of int): :obj:`L + 1` node counts, finest first.
        clusters (list of Tensor): :obj:`L` maps, :obj:`clusters[l][i]` the
            node of level :obj:`l + 1` that node :obj:`i` of level :obj:`l`
            belongs to.
        rounds (list of int): Vectorised matching rounds per level
            (parallel scheme; the edges left when the rounds stall, or
            fewer than 256, are matched by one sequential pass).
        graphs (list of tuple): Each level's graph as :obj:`(u, v, w, diag)`:
            undirected edges :math:`u < v` with weights, and the self-loop
            weight of every node.

    :obj:`edge_index` and :obj:`edge_weight` give each level's graph in
    PyG's layout (both directions, coalesced, with the self-loops of merged
    pairs); they are built on first access.
    """
    num_nodes: list[int]
    clusters: list[Tensor]
    rounds: list[int]
    graphs: list[tuple[Tensor, Tensor, Tensor, Tensor]]
    _full: list[tuple[Tensor, Tensor]] | None = None

    @property
    def num_levels(self) -> int:
        return len(self.clusters)

    def _build(self) -> list[tuple[Tensor, Tensor]]:
        if self._full is None:
            self._full = [_full_edge_index(u, v, w, d, n) for (u, v, w, d), n
                          in zip(self.graphs, self.num_nodes)]
        return self._full

    @property
    def edge_index(self) -> list[Tensor]:
        return [ei for ei, _ in self._build()]

    @property
    def edge_weight(self) -> list[Tensor]:
        return [ew for _, ew in self._build()]


def _ranks(degree: Tensor, order: str, generator: torch.Generator | None
           ) -> Tensor:
    n = degree.numel()
    if order == 'degree':
        perm = torch.from_numpy(np.argsort(degree.numpy(), kind='stable'))
    elif order == 'random':
        perm = torch.randperm(n, generator=generator)
    elif order == 'index':
        perm = torch.arange(n)
    else:
        raise ValueError(f"Unknown order '{order}' (choose from {ORDERS})")
    rank = torch.empty(n, dtype=torch.long)
    rank[perm] = torch.arange(n)
    return rank


def _undirected(edge_index: Tensor, edge_weight: Tensor, n: int,
                reduce: str = 'amax') -> tuple[Tensor, Tensor, Tensor]:
    r"""One entry :math:`u < v` per undirected edge (self-loops dropped;
    parallel edges merged by :obj:`reduce`), sorted by :math:`(u, v)`."""
    row, col = edge_index
    keep = row != col
    a = torch.minimum(row, col)[keep]
    b = torch.maximum(row, col)[keep]
    key, inv = torch.unique(a * n + b, return_inverse=True)
    w = torch.zeros(key.numel(), dtype=torch.float64)
    w = w.scatter_reduce_(0, inv, edge_weight[keep], reduce,
                          include_self=False)
    return key // n, key % n, w


def _full_edge_index(u: Tensor, v: Tensor, w: Tensor, diag: Tensor, n: int
                     ) -> tuple[Tensor, Tensor]:
    r"""Both directions plus the non-zero diagonal, sorted row-major."""
    loops = (diag != 0).nonzero().view(-1)
    row = torch.cat([u, v, loops])
    col = torch.cat([v, u, loops])
    weight = torch.cat([w, w, diag[loops]])
    perm = torch.argsort(row * n + col)
    return torch.stack([row[perm], col[perm]]), weight[perm]


def _scores(u: Tensor, v: Tensor, w: Tensor, degree: Tensor, diag: Tensor,
            score: str) -> Tensor:
    if score == 'xavier':
        return (2 * w + diag[u] + diag[v]) / (degree[u] + degree[v])
    if score == 'graclus':
        return w * (1.0 / degree[u] + 1.0 / degree[v])
    raise ValueError(f"Unknown score '{score}' (choose from {SCORES})")


def _degree(u: Tensor, v: Tensor, w: Tensor, diag: Tensor) -> Tensor:
    return diag.clone().index_add_(0, u, w).index_add_(0, v, w)


def _number_clusters(partner: Tensor, rank: Tensor) -> Tensor:
    r"""Cluster ids from a partner array (-1 for singletons), numbered by
    the rank of each cluster's lowest-ranked member."""
    n = partner.numel()
    idx = torch.arange(n)
    mate = torch.where(partner >= 0, partner, idx)
    key = torch.minimum(rank, rank[mate])  # the cluster's lowest rank
    leader = rank <= rank[mate]  # one leader per cluster
    # leaders in order of their cluster's lowest rank (ranks are a
    # permutation, so a bucket array replaces a sort)
    slot = torch.full((n, ), -1, dtype=torch.long)
    slot[key[leader]] = idx[leader]
    leaders = slot[slot >= 0]
    cid = torch.empty(n, dtype=torch.long)
    cid[leaders] = torch.arange(leaders.numel())
    follower = ~leader
    cid[follower] = cid[mate[follower]]
    return cid


def match_parallel(u: Tensor, v: Tensor, w: Tensor, diag: Tensor,
                   rank: Tensor, score: str = 'xavier') -> tuple[Tensor, int]:
    r"""One level of vectorised locally-dominant matching (see the module
    docstring) on undirected edges :math:`u < v` with weights :obj:`w` and
    self-loop weights :obj:`diag`. Returns :obj:`(partner, rounds)`,
    :obj:`partner[i] = -1` for singletons; :obj:`rounds` counts the
    vectorised rounds (see :data:`_MIN_PROGRESS`), the rest of the matching
    is finished by :func:`_scan`."""
    n = diag.numel()
    degree = _degree(u, v, w, diag)
    s = _scores(u, v, w, degree, diag, score)
    ru, rv = rank[u], rank[v]
    lo, hi = torch.minimum(ru, rv), torch.maximum(ru, rv)
    # strict total order: lower min-rank first (the endpoint visited first),
    # then higher score, then lower max-rank, as one int64 key when it fits
    levels, sr = torch.unique(s, return_inverse=True)
    num_s = levels.numel()
    if n * n * max(num_s, 1) < 2**62:
        prio = ((n - 1 - lo) * num_s + sr) * n + (n - 1 - hi)
    else:  # two stable sorts
        order = torch.argsort(sr * n + (n - 1 - hi), stable=True)
        order = order[torch.argsort(lo[order], stable=True)]
        prio = torch.empty(u.numel(), dtype=torch.long)
        prio[order] = torch.arange(u.numel() - 1, -1, -1)

    partner = torch.full((n, ), -1, dtype=torch.long)
    rounds = 0
    best = torch.empty(n, dtype=torch.long)
    while u.numel() > _SCAN_EDGES:
        rounds += 1
        best.fill_(-1)
        best.scatter_reduce_(0, u, prio, 'amax')
        best.scatter_reduce_(0, v, prio, 'amax')
        hit = (best[u] == prio) & (best[v] == prio)
        mu, mv = u[hit], v[hit]
        partner[mu] = mv
        partner[mv] = mu
        free = partner < 0
        alive = free[u] & free[v]
        left = int(alive.sum())
        stalled = left > (1 - _MIN_PROGRESS) * u.numel()
        u, v, prio = u[alive], v[alive], prio[alive]
        if stalled:
            break
    _scan(u, v, prio, partner)
    return partner, rounds


#: A parallel round must remove at least this share of the remaining edges;
#: a round that removes less hands the rest to :func:`_scan`, so a level
#: takes at most :math:`1 + \log |E| / -\log 0.9` rounds.
_MIN_PROGRESS = 0.1
#: Below this many remaining edges one Python pass beats a vectorised round.
_SCAN_EDGES = 256


def _scan(u: Tensor, v: Tensor, prio: Tensor, partner: Tensor) -> None:
    r"""Finishes a matching sequentially: scans the remaining edges (both
    endpoints free) in decreasing priority and matches an edge when both
    endpoints are still free, writing :obj:`partner` in place.

    This is the edge-order greedy whose result the parallel rounds compute
    (an edge matched by a round is the first of its conflicts in this
    scan), so finishing with it gives the same matching whatever the number
    of rounds. The rounds need one round per link of the longest chain of
    edges that each wait for a higher-priority neighbour: on a mesh numbered
    in rings or a spiral that chain spans the mesh (thousands of rounds),
    while this scan costs one pass over the edges whatever the numbering.
    """
    if u.numel() == 0:
        return
    # The priorities are distinct, so a stable sort gives the same order;
    # it is the faster kernel, and the remaining edges are often nearly
    # sorted already (a structured numbering is what stalls the rounds).
    order = torch.argsort(prio, descending=True, stable=True)
    taken = bytearray(partner.numel())
    mu: list[int] = []
    mv: list[int] = []
    # Iterating memoryviews of the int64 arrays creates each Python int on
    # the fly: about half the time of building two lists with tolist().
    for a, b in zip(memoryview(u[order].numpy()),
                    memoryview(v[order].numpy())):
        if taken[a] or taken[b]:
            continue
        taken[a] = taken[b] = 1
        mu.append(a)
        mv.append(b)
    a = torch.tensor(mu, dtype=torch.long)
    b = torch.tensor(mv, dtype=torch.long)
    partner[a] = b
    partner[b] = a


def match_greedy(u: Tensor, v: Tensor, w: Tensor, diag: Tensor,
                 rank: Tensor, score: str = 'xavier') -> Tensor:
    r"""One level of the official sequential vertex-order HEM (a Python loop
    over the vertices in rank order; neighbours compared with NumPy).
    Ties between equal scores go to the lowest-ranked neighbour."""
    n = diag.numel()
    degree = _degree(u, v, w, diag)
    s = _scores(u, v, w, degree, diag, score)
    row, col, s = torch.cat([u, v]), torch.cat([v, u]), torch.cat([s, s])
    perm = torch.argsort(row * n + col)
    row, col, s = row[perm].numpy(), col[perm].numpy(), s[perm].numpy()
    ptr = np.searchsorted(row, np.arange(n + 1))
    rk = rank.numpy()
    visit = np.argsort(rk)
    marked = np.zeros(n, dtype=bool)
    partner = np.full(n, -1, dtype=np.int64)
    for i in visit.tolist():
        if marked[i]:
            continue
        marked[i] = True
        a, b = ptr[i], ptr[i + 1]
        if a == b:
            continue
        nb = col[a:b]
        free = ~marked[nb]
        if not free.any():
            continue
        nb, sc = nb[free], s[a:b][free]
        cand = nb[sc == sc.max()]
        j = cand[np.argmin(rk[cand])]
        marked[j] = True
        partner[i], partner[j] = j, i
    return torch.from_numpy(partner)


#: NumPy's ``SMALL_QUICKSORT``: a partition with ``pr - pl <= 15`` (at
#: most 16 elements) is finished by insertion sort.
_SMALL_QUICKSORT = 15


def _aheapsort(v: list, a: list[int], lo: int, n: int) -> None:
    r"""NumPy's index heapsort of ``a[lo:lo + n]`` by the keys :obj:`v`
    (the introsort fallback), with its 1-based heap indexing."""
    def sift(tmp: int, i: int, size: int) -> None:
        j = 2 * i
        while j <= size:
            if j < size and v[a[lo + j - 1]] < v[a[lo + j]]:
                j += 1
            if v[tmp] < v[a[lo + j - 1]]:
                a[lo + i - 1] = a[lo + j - 1]
                i = j
                j += j
            else:
                break
        a[lo + i - 1] = tmp

    for l in range(n >> 1, 0, -1):
        sift(a[lo + l - 1], l, n)
    while n > 1:
        tmp = a[lo + n - 1]
        a[lo + n - 1] = a[lo]
        n -= 1
        sift(tmp, 1, n)


def legacy_argsort(values) -> np.ndarray:
    r"""NumPy's :obj:`argsort(kind='quicksort')` before NumPy 1.25, the
    visiting order of HGN's official HEM, computed without NumPy's sort.

    It is an introsort on an index array: median-of-three quicksort
    (pivot swapped next to the right end, both scans stop on equal keys),
    the larger partition pushed on a stack, insertion sort for partitions of
    at most 16 elements, and a heapsort fallback for a partition more than
    :math:`2 \lfloor \log_2 n \rfloor` levels deep. It is not stable: equal
    keys come out in an order that depends on the whole array. From NumPy
    1.25 on, :obj:`argsort` uses SIMD sorts on processors that have them
    (AVX-512 first), with another tie order, so the official coarsening
    changes with the NumPy version and the processor; this port pins the
    pre-1.25 order.

    Args:
        values: A 1-D array of finite numbers.

    Returns:
        The :obj:`int64` permutation that sorts :obj:`values`.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not bool(np.isfinite(v).all()):
        raise ValueError("legacy_argsort needs finite values")
    return np.asarray(_introsort(v.tolist()), dtype=np.int64)


def _introsort(v: list) -> list[int]:
    r"""The index introsort of :func:`legacy_argsort` on any list whose
    items compare with :obj:`<`."""
    num = len(v)
    a = list(range(num))
    if num < 2:
        return a
    pl, pr = 0, num - 1
    stack: list[tuple[int, int, int]] = []
    depth = 2 * (num.bit_length() - 1)  # npy_get_msb(num) * 2
    while True:
        if depth < 0:
            _aheapsort(v, a, pl, pr - pl + 1)
        else:
            while pr - pl > _SMALL_QUICKSORT:
                pm = pl + ((pr - pl) >> 1)
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                if v[a[pr]] < v[a[pm]]:
                    a[pr], a[pm] = a[pm], a[pr]
                if v[a[pm]] < v[a[pl]]:
                    a[pm], a[pl] = a[pl], a[pm]
                vp = v[a[pm]]
                pi, pj = pl, pr - 1
                a[pm], a[pj] = a[pj], a[pm]
                while True:
                    pi += 1
                    while v[a[pi]] < vp:
                        pi += 1
                    pj -= 1
                    while vp < v[a[pj]]:
                        pj -= 1
                    if pi >= pj:
                        break
                    a[pi], a[pj] = a[pj], a[pi]
                pk = pr - 1
                a[pi], a[pk] = a[pk], a[pi]
                depth -= 1
                # the larger partition waits on the stack
                if pi - pl < pr - pi:
                    stack.append((pi + 1, pr, depth))
                    pr = pi - 1
                else:
                    stack.append((pl, pi - 1, depth))
                    pl = pi + 1
            for pi in range(pl + 1, pr + 1):
                vi = a[pi]
                vp = v[vi]
                pj = pi
                while pj > pl and vp < v[a[pj - 1]]:
                    a[pj] = a[pj - 1]
                    pj -= 1
                a[pj] = vi
        if not stack:
            break
        pl, pr, depth = stack.pop()
    return a


def match_official(u: Tensor, v: Tensor, w: Tensor, diag: Tensor,
                   level: int) -> Tensor:
    r"""One level of HGN's official HEM, detail for detail (see
    :func:`hem_coarsen`, :obj:`method='official'`). Returns the cluster of
    every node, numbered in visiting order.

    Raises:
        ValueError: If a node has no edge (the official code indexes its
            rows by a running count, which goes wrong past an empty row).
    """
    n = diag.numel()
    degree = _degree(u, v, w, diag)
    loops = (diag != 0).nonzero().view(-1)
    row = torch.cat([u, v, loops])
    col = torch.cat([v, u, loops])
    val = torch.cat([w, w, diag[loops]])
    perm = torch.argsort(row * n + col)
    row, col, val = row[perm], col[perm].tolist(), val[perm].tolist()
    length = torch.bincount(row, minlength=n)
    if n == 0 or bool((length == 0).any()):
        what = 'is empty' if n == 0 else 'has isolated nodes'
        raise ValueError(f"method='official' needs every node to have an "
                         f"edge (level {level} {what})")
    start = (torch.cumsum(length, 0) - length).tolist()
    # the official row lengths: the counter is bumped before it moves on to
    # the next row, so row 0 reads one entry of row 1 and the last row
    # misses its last entry
    rowlength = length.tolist()
    if n > 1:
        rowlength[0] += 1
        rowlength[-1] -= 1
    d = degree.tolist()
    marked = [False] * n
    cluster = [0] * n
    count = 0
    for tid in legacy_argsort(degree.numpy()).tolist():
        if marked[tid]:
            continue
        marked[tid] = True
        rs = start[tid]
        w_ii = val[rs]  # the first stored entry of the row
        wmax, best = 0.0, -1
        for k in range(rs, rs + rowlength[tid]):
            nid = col[k]
            if marked[nid]:
                continue
            score = ((2.0 * val[k] + w_ii + val[start[nid]])
                     / (d[tid] + d[nid] + 1e-9))
            if score > wmax:  # ties: the first in the row, the lowest index
                wmax, best = score, nid
        cluster[tid] = count
        if best > -1:
            cluster[best] = count
            marked[best] = True
        count += 1
    return torch.tensor(cluster, dtype=torch.long)


def _coarsen(u: Tensor, v: Tensor, w: Tensor, diag: Tensor, cluster: Tensor,
             n_coarse: int):
    r""":math:`\mathbf{P}^{\top} \mathbf{W} \mathbf{P}` on the undirected
    representation: an intra-cluster edge adds :math:`2 w` (both directions)
    to the coarse diagonal."""
    cu, cv = cluster[u], cluster[v]
    intra = cu == cv
    new_diag = torch.zeros(n_coarse, dtype=torch.float64)
    new_diag.index_add_(0, cluster, diag)
    new_diag.index_add_(0, cu[intra], 2 * w[intra])
    inter = ~intra
    a = torch.minimum(cu, cv)[inter]
    b = torch.maximum(cu, cv)[inter]
    key, inv = torch.unique(a * n_coarse + b, return_inverse=True)
    new_w = torch.zeros(key.numel(), dtype=torch.float64).index_add_(
        0, inv, w[inter])
    return key // n_coarse, key % n_coarse, new_w, new_diag


def coarsen_graph(edge_index: Tensor, edge_weight: Tensor, cluster: Tensor,
                  num_clusters: int) -> tuple[Tensor, Tensor]:
    r"""The coarse graph :math:`\mathbf{P}^{\top} \mathbf{W} \mathbf{P}`
    of a symmetric weighted graph (both directions given): edges relabelled
    by :obj:`cluster` and summed (intra-cluster edges become self-loops)."""
    ei = cluster[edge_index]
    return coalesce(ei, edge_weight.double(), num_nodes=num_clusters,
                    reduce='sum')


def hem_coarsen(edge_index: Tensor, num_nodes: int, *,
                levels: int | None = None,
                max_nodes: int | None = None,
                edge_weight: Tensor | None = None,
                score: str = 'xavier', order: str = 'degree',
                method: str = 'parallel',
                seed: int | None = None) -> Coarsening:
    r"""Coarsens a graph by repeated heavy edge matching.

    Args:
        edge_index (Tensor): Undirected graph ``[2, E]`` (one or both
            directions); parallel edges are merged (their largest weight is
            kept, which clips a binary mesh graph to 0/1 as the official
            code), self-loops of the input are dropped.
        num_nodes (int): Number of nodes.
        levels (int, optional): Number of coarsening steps.
        max_nodes (int, optional): Coarsen until the coarsest graph has at
            most this many nodes (with :obj:`levels`, whichever comes
            first). One of the two is required.
        edge_weight (Tensor, optional): Edge weights (default: ones, as the
            binary mesh graph of the official code).
        score (str): :obj:`'xavier'` or :obj:`'graclus'`.
        order (str): :obj:`'degree'`, :obj:`'random'` or :obj:`'index'`.
        method (str): :obj:`'parallel'` or :obj:`'greedy'` (same result,
            see the module docstring), or :obj:`'official'` (HGN's code,
            detail for detail: see the module docstring).
        seed (int, optional): Seed of :obj:`order='random'`.

    Raises:
        ValueError: If :obj:`edge_index` is not ``[2, E]`` of integer node
            indices in ``[0, num_nodes)``, :obj:`edge_weight` is not ``[E]``
            of finite positive weights, or :obj:`max_nodes` cannot be
            reached because no edge is left to match (a graph with more
            components than :obj:`max_nodes`). With
            :obj:`method='official'`: a node without edges, or another
            :obj:`score` or :obj:`order`.
    """
    if levels is None and max_nodes is None:
        raise ValueError("Give 'levels' or 'max_nodes'")
    if method not in METHODS:
        raise ValueError(f"Unknown method '{method}' (choose from {METHODS})")
    if score not in SCORES:
        raise ValueError(f"Unknown score '{score}' (choose from {SCORES})")
    if order not in ORDERS:
        raise ValueError(f"Unknown order '{order}' (choose from {ORDERS})")
    if method == 'official' and (score, order) != ('xavier', 'degree'):
        raise ValueError(f"method='official' is HGN's code, with the xavier "
                         f"score and the degree order (got score='{score}', "
                         f"order='{order}')")
    num_nodes = int(as_index_tensor(num_nodes, "'num_nodes'"))
    if num_nodes < 0:
        raise ValueError(f"'num_nodes' must be non-negative (got {num_nodes})")
    edge_index = as_index_tensor(edge_index, "'edge_index'").cpu()
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"'edge_index' must be [2, E] (got "
                         f"{list(edge_index.shape)})")
    if edge_index.numel() and (edge_index.min() < 0
                               or edge_index.max() >= num_nodes):
        raise ValueError(f"'edge_index' holds nodes outside [0, {num_nodes})")
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), dtype=torch.float64)
    edge_weight = torch.as_tensor(edge_weight, dtype=torch.float64).cpu()
    if edge_weight.shape != (edge_index.size(1), ):
        raise ValueError(f"'edge_weight' must be [{edge_index.size(1)}] "
                         f"(got {list(edge_weight.shape)})")
    # NaN compares false with everything, so test for the good values
    if not bool(((edge_weight > 0) & torch.isfinite(edge_weight)).all()):
        raise ValueError("HEM needs finite positive edge weights (got NaN, "
                         "infinite, zero or negative ones)")
    u, v, w = _undirected(edge_index, edge_weight, num_nodes)
    diag = torch.zeros(num_nodes, dtype=torch.float64)
    generator = None
    if order == 'random':
        generator = torch.Generator().manual_seed(
            seed if seed is not None else torch.seed() % 2**63)

    out = Coarsening([num_nodes], [], [], [(u, v, w, diag)])
    n = num_nodes
    while True:
        if levels is not None and out.num_levels >= levels:
            break
        if max_nodes is not None and n <= max_nodes:
            break
        if method == 'official':
            cluster = match_official(u, v, w, diag, out.num_levels)
            n_coarse, rounds = int(cluster.max()) + 1, 0
            unmatched = n_coarse == n
        else:
            rank = _ranks(_degree(u, v, w, diag), order, generator)
            if method == 'parallel':
                partner, rounds = match_parallel(u, v, w, diag, rank, score)
            else:
                partner, rounds = match_greedy(u, v, w, diag, rank, score), 0
            unmatched = bool((partner < 0).all())
            cluster = _number_clusters(partner, rank)
            n_coarse = int(cluster.max()) + 1 if n else 0
        if levels is None and unmatched:
            raise ValueError(f"Cannot coarsen below {n} nodes: no edge is "
                             f"left to match (the graph has {n} "
                             f"components); lower 'max_nodes'")
        u, v, w, diag = _coarsen(u, v, w, diag, cluster, n_coarse)
        n = n_coarse
        out.num_nodes.append(n)
        out.graphs.append((u, v, w, diag))
        out.clusters.append(cluster)
        out.rounds.append(rounds)
    return out


def binary_tree_permutations(clusters: list[Tensor], num_nodes: list[int]
                             ) -> list[Tensor]:
    r"""Defferrard et al.'s binary-tree ordering with fake nodes.

    From the coarsest level (identity order) down, every coarse position
    gets two child positions: a matched pair's two nodes (ascending index),
    a singleton and one fake node, or, below a fake node, two fake nodes.
    Fake nodes are numbered :math:`n_l, n_l + 1, \dots` in position order,
    so position :math:`k` of level :math:`l` holds a real node iff
    :obj:`perm[l][k] < num_nodes[l]`, and its parent sits at position
    :math:`\lfloor k / 2 \rfloor` of level :math:`l + 1`. Level :math:`l`
    has :math:`n_L 2^{L - l}` padded positions.

    Returns :obj:`L + 1` permutations, finest first.
    """
    L = len(clusters)
    perms = [torch.arange(num_nodes[L])]
    for level in range(L - 1, -1, -1):
        n_fine, n_coarse = num_nodes[level], num_nodes[level + 1]
        cluster = clusters[level]
        order = torch.argsort(cluster * n_fine + torch.arange(n_fine))
        counts = torch.bincount(cluster, minlength=n_coarse)
        start = torch.cumsum(counts, 0) - counts
        first = torch.full((n_coarse, ), -1, dtype=torch.long)
        second = torch.full((n_coarse, ), -1, dtype=torch.long)
        first[counts > 0] = order[start[counts > 0]]
        two = counts > 1
        second[two] = order[start[two] + 1]
        if bool((counts > 2).any()) or bool((counts == 0).any()):
            raise ValueError("binary-tree ordering needs clusters of one or "
                             "two nodes")
        above = perms[0]
        real = above < n_coarse
        pairs = torch.full((above.numel(), 2), -1, dtype=torch.long)
        pairs[real, 0] = first[above[real]]
        pairs[real, 1] = second[above[real]]
        flat = pairs.view(-1)
        fake = flat < 0
        flat[fake] = n_fine + torch.arange(int(fake.sum()))
        perms.insert(0, flat)
    return perms

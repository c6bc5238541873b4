r"""Graph algorithms and input checks: breadth-first search and hop counts,
edge lookup, connected components, faces to edges, and the validators of
graphs, index arrays, node partitions and batch vectors."""
from __future__ import annotations

from .batch import check_batch, whole_graphs
from .graph import (
    BFS_BLOCK_ENTRIES,
    as_index_tensor,
    bfs,
    check_edge_index,
    check_partition,
    check_positive_int,
    connected_components,
    edge_key,
    edge_lookup,
    faces_to_edges,
    hop_counts,
)

__all__ = [
    'BFS_BLOCK_ENTRIES',
    'as_index_tensor',
    'bfs',
    'check_batch',
    'check_edge_index',
    'check_partition',
    'check_positive_int',
    'connected_components',
    'edge_key',
    'edge_lookup',
    'faces_to_edges',
    'hop_counts',
    'whole_graphs',
]

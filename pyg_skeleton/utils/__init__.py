r"""Graph algorithms and input checks: breadth-first search and hop counts,
edge lookup, connected components, faces to edges, and the validators of
graphs, index arrays and node partitions."""
from __future__ import annotations

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
    'check_edge_index',
    'check_partition',
    'check_positive_int',
    'connected_components',
    'edge_key',
    'edge_lookup',
    'faces_to_edges',
    'hop_counts',
]

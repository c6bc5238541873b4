r"""Graph transforms for skeletons and meshes."""
from __future__ import annotations

from .khop import KHopEdges, khop_edges

__all__ = [
    'KHopEdges',
    'khop_edges',
]

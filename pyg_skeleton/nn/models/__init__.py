from .semgcn import GRAPH_CONVS, SemGCN

__all__ = [
    'GRAPH_CONVS',
    'SemGCN',
]

from .sem_graph_conv import SemGraphConv

__all__ = [
    'SemGraphConv',
]

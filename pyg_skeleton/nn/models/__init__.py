from .semgcn import GRAPH_CONVS, SemGCN
from .hgn import HGN, HGNLoss, MultiScaleFusion, NodeMap
from .skeletal_gnn import SkeletalGNN, SkeletalGNNAction, TemporalSkeletalGNN

__all__ = [
    'GRAPH_CONVS',
    'HGN',
    'HGNLoss',
    'MultiScaleFusion',
    'NodeMap',
    'SemGCN',
    'SkeletalGNN',
    'SkeletalGNNAction',
    'TemporalSkeletalGNN',
]

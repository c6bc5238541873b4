from .semgcn import GRAPH_CONVS, SemGCN
from .hgn import HGN, HGNLoss, MultiScaleFusion, NodeMap
from .self_adaptive import LatentLifter, MotionAE, PoseAAE, RelationNet
from .skeletal_gnn import SkeletalGNN, SkeletalGNNAction, TemporalSkeletalGNN

__all__ = [
    'GRAPH_CONVS',
    'HGN',
    'HGNLoss',
    'MultiScaleFusion',
    'NodeMap',
    'LatentLifter',
    'MotionAE',
    'PoseAAE',
    'RelationNet',
    'SemGCN',
    'SkeletalGNN',
    'SkeletalGNNAction',
    'TemporalSkeletalGNN',
]

from __future__ import annotations

from .hgn import HGN, HGNLoss, MultiScaleFusion, NodeMap
from .official import load_official_state_dict
from .self_adaptive import LatentLifter, MotionAE, PoseAAE, RelationNet
from .semgcn import GRAPH_CONVS, SemGCN
from .skeletal_gnn import SkeletalGNN, SkeletalGNNAction, TemporalSkeletalGNN

__all__ = [
    'GRAPH_CONVS',
    'HGN',
    'HGNLoss',
    'MultiScaleFusion',
    'NodeMap',
    'LatentLifter',
    'load_official_state_dict',
    'MotionAE',
    'PoseAAE',
    'RelationNet',
    'SemGCN',
    'SkeletalGNN',
    'SkeletalGNNAction',
    'TemporalSkeletalGNN',
]

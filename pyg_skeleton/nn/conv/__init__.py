from __future__ import annotations

from .conv_style_conv import ConvStyleConv
from .dynamic_hcsf_conv import DynamicHCSFConv
from .full_sharing_conv import FullSharingConv
from .hcsf_conv import HCSFConv
from .khop_conv import KHopConv
from .mixhop_skeleton_conv import MixHopSkeletonConv
from .mshop_conv import MSHopConv
from .no_sharing_conv import NoSharingConv
from .post_agg_conv import PostAggConv
from .pre_agg_conv import PreAggConv
from .sem_graph_conv import SemGraphConv

__all__ = [
    'SemGraphConv',
    'FullSharingConv',
    'PreAggConv',
    'PostAggConv',
    'ConvStyleConv',
    'NoSharingConv',
    'HCSFConv',
    'DynamicHCSFConv',
    'KHopConv',
    'MixHopSkeletonConv',
    'MSHopConv',
]

from .sem_graph_conv import SemGraphConv
from .full_sharing_conv import FullSharingConv
from .pre_agg_conv import PreAggConv
from .post_agg_conv import PostAggConv
from .conv_style_conv import ConvStyleConv
from .no_sharing_conv import NoSharingConv
from .hcsf_conv import HCSFConv
from .dynamic_hcsf_conv import DynamicHCSFConv
from .khop_conv import KHopConv
from .mixhop_skeleton_conv import MixHopSkeletonConv
from .mshop_conv import MSHopConv

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

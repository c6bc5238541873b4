from .topology import Topology
from .non_local import NonLocalBlock, mesh_groups
from .conv import *  # noqa: F401,F403
from .conv import __all__ as conv_all
from .models import *  # noqa: F401,F403
from .models import __all__ as models_all
from .loss import SemGCNLoss
from .norm import DistBatchNorm1d, convert_dist_batchnorm
from .models.registry import MODELS, build_model, register_model

__all__ = ['Topology', 'NonLocalBlock', 'mesh_groups', 'SemGCNLoss', 'DistBatchNorm1d',
           'convert_dist_batchnorm', 'MODELS', 'build_model', 'register_model'] + conv_all + models_all

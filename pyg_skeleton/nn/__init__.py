from __future__ import annotations

from .conv import *  # noqa: F401,F403
from .conv import __all__ as conv_all
from .loss import SemGCNLoss
from .models import *  # noqa: F401,F403
from .models import __all__ as models_all
from .models.registry import MODELS, build_model, register_model
from .non_local import NonLocalBlock, mesh_groups
from .norm import DistBatchNorm1d, convert_dist_batchnorm
from .topology import Topology

__all__ = ['Topology', 'NonLocalBlock', 'mesh_groups', 'SemGCNLoss', 'DistBatchNorm1d',
           'convert_dist_batchnorm', 'MODELS', 'build_model', 'register_model'
           ] + conv_all + models_all

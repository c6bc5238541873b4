"""PyTorch Geometric operators, models and graph builders for human skeletons and body meshes."""

__version__ = "0.1.0"

from .skeleton import Skeleton
from . import datasets, kinematics, metrics, mesh, transforms  # noqa: E402

__all__ = ['Skeleton', 'datasets', 'kinematics', 'metrics', 'mesh',
           'transforms', '__version__']

"""PyTorch Geometric operators, models and graph builders for human skeletons and body meshes."""

__version__ = "0.1.0"

from .skeleton import Skeleton
from . import datasets, keypoints, kinematics, metrics, mesh, nn, transforms  # noqa: E402
from .inference import LiftResult, lift  # noqa: E402
from .lifter import Lifter, pretrained_lifters  # noqa: E402

__all__ = ['Skeleton', 'datasets', 'keypoints', 'kinematics', 'metrics', 'mesh', 'nn',
           'transforms', 'lift', 'LiftResult', 'Lifter', 'pretrained_lifters', '__version__']

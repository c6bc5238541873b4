"""PyTorch Geometric operators, models and graph builders for human skeletons and body meshes."""

__version__ = "0.1.0"

from .skeleton import Skeleton
from . import datasets, keypoints, kinematics, metrics, mesh, nn, transforms  # noqa: E402
from .inference import LiftResult, lift  # noqa: E402
from .lifter import Lifter, evaluate_lifter, pretrained_lifters, train_lifter  # noqa: E402
from .nn.topology import set_validation, validation, validation_enabled  # noqa: E402

__all__ = ['Skeleton', 'datasets', 'keypoints', 'kinematics', 'metrics', 'mesh', 'nn',
           'transforms', 'lift', 'LiftResult', 'Lifter', 'pretrained_lifters', 'train_lifter',
           'evaluate_lifter', 'set_validation', 'validation', 'validation_enabled',
           '__version__']

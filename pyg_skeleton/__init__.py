"""PyTorch Geometric operators, models and graph builders for human skeletons and body meshes."""
from __future__ import annotations

__version__ = "0.1.0"

from . import datasets, keypoints, kinematics, mesh, metrics, nn, transforms  # noqa: E402
from .inference import LiftResult, lift  # noqa: E402
from .lifter import Lifter, evaluate_lifter, pretrained_lifters, train_lifter  # noqa: E402
from .nn.topology import set_validation, validation, validation_enabled  # noqa: E402
from .skeleton import Skeleton

__all__ = ['Skeleton', 'datasets', 'keypoints', 'kinematics', 'metrics', 'mesh', 'nn',
           'transforms', 'lift', 'LiftResult', 'Lifter', 'pretrained_lifters', 'train_lifter',
           'evaluate_lifter', 'set_validation', 'validation', 'validation_enabled',
           '__version__']

"""PyTorch Geometric operators, models and graph builders for human skeletons and body meshes."""

__version__ = "0.1.0"

from .skeleton import Skeleton

__all__ = ['Skeleton', '__version__']

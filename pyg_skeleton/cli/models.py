r"""The models of the command line: the library's registry,
:mod:`pyg_skeleton.nn.models.registry` (this module keeps its old import
path, ``pyg_skeleton.cli.models``, working)."""
from __future__ import annotations

from pyg_skeleton.nn.models.registry import (  # noqa: F401
    ALIASES,
    HIERARCHY_SUFFIXES,
    MODELS,
    ModelBuilder,
    ModelRegistry,
    PoseOutput,
    body_hierarchy,
    build_model,
    canonical_model_name,
    hgn_hierarchy,
    option,
    register_model,
)

__all__ = ['MODELS', 'ALIASES', 'build_model', 'register_model', 'canonical_model_name',
           'option', 'ModelBuilder', 'PoseOutput', 'hgn_hierarchy', 'body_hierarchy']

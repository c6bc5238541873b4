r"""Command line of ``pyg_skeleton``: ``pyg-skeleton train | evaluate | demo | lift | coarsen``.

Also runnable as ``python -m pyg_skeleton.cli``. See :mod:`.main` to add a
subcommand and :obj:`.models` to add a model.
"""
from __future__ import annotations

from .main import SUBCOMMANDS, CLIError, main, register_subcommand
from .models import MODELS, build_model

__all__ = ['main', 'CLIError', 'SUBCOMMANDS', 'register_subcommand', 'MODELS', 'build_model']

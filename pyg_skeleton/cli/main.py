r"""``pyg-skeleton``: the command line.

Subcommands are looked up in :data:`SUBCOMMANDS`: a name maps to
``"module"`` or ``"module:attribute"``, an object (module or namespace) with

* ``HELP`` -- a one-line description,
* ``add_arguments(parser)`` -- adds its options to an
  :class:`argparse.ArgumentParser`,
* ``run(args) -> int`` -- runs and returns the exit code.

Adding a subcommand is one line (or :func:`register_subcommand`)::

    SUBCOMMANDS['mine'] = 'my_package.my_cli'

Errors a user can fix (missing or malformed files, bad options, NaN inputs)
are raised as :class:`CLIError` (or :class:`ValueError` /
:class:`FileNotFoundError`) and reported as one line on stderr with exit
code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Dict, List, Optional, Union

__all__ = ['main', 'SUBCOMMANDS', 'register_subcommand', 'CLIError', 'build_parser']

PROG = 'pyg-skeleton'

#: Subcommand name -> ``"module[:attribute]"`` or an object with ``HELP``,
#: ``add_arguments`` and ``run``.
SUBCOMMANDS: Dict[str, Union[str, Any]] = {
    'train': 'pyg_skeleton.cli.train:train_command',
    'evaluate': 'pyg_skeleton.cli.train:evaluate_command',
    'demo': 'pyg_skeleton.cli.demo',
    'lift': 'pyg_skeleton.cli.lift',
    'coarsen': 'pyg_skeleton.mesh.coarsen_cli',
}


class CLIError(Exception):
    """An error reported as one line on stderr (exit code 2)."""


def register_subcommand(name: str, command: Union[str, Any]) -> None:
    """Adds a subcommand (see the module docs)."""
    SUBCOMMANDS[name] = command


def _resolve(spec: Union[str, Any]) -> Any:
    if not isinstance(spec, str):
        return spec
    module, _, attr = spec.partition(':')
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Train and evaluate skeleton models (PyTorch Geometric).')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, spec in SUBCOMMANDS.items():
        command = _resolve(spec)
        p = sub.add_parser(name, help=getattr(command, 'HELP', None),
                           description=getattr(command, 'HELP', None))
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, '_run', None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except (CLIError, ValueError, FileNotFoundError, KeyError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, KeyError):
            msg = msg.strip("'\"")
        print(f'{PROG} {args.command}: error: {msg}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f'{PROG} {args.command}: interrupted', file=sys.stderr)
        return 130

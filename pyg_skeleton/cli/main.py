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
are raised as :class:`CLIError` and reported as one line on stderr with exit
code 2, as are a missing file (:class:`FileNotFoundError`), a permission
error and a full or read-only disk (:class:`OSError` with ``ENOSPC``,
``EDQUOT``, ``EACCES``, ``EPERM`` or ``EROFS``). Anything else is a bug and
shows its traceback (exit code 1); ``--debug`` shows the traceback of every
error.

A command's ``run`` finds in ``args.given_options`` the set of option
destinations the user wrote on the command line (defaults excluded), for
commands such as ``train --resume`` that must tell a default from an
explicit choice.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import sys
import traceback
from typing import Any

from .. import __version__

__all__ = ['main', 'SUBCOMMANDS', 'register_subcommand', 'CLIError', 'build_parser',
           'user_error_message']

PROG = 'pyg-skeleton'

#: Subcommand name -> ``"module[:attribute]"`` or an object with ``HELP``,
#: ``add_arguments`` and ``run``.
SUBCOMMANDS: dict[str, str | Any] = {
    'train': 'pyg_skeleton.cli.train:train_command',
    'evaluate': 'pyg_skeleton.cli.train:evaluate_command',
    'demo': 'pyg_skeleton.cli.demo',
    'lift': 'pyg_skeleton.cli.lift',
    'coarsen': 'pyg_skeleton.mesh.coarsen_cli',
    'export': 'pyg_skeleton.cli.export',
}


class CLIError(Exception):
    """An error reported as one line on stderr (exit code 2)."""


def register_subcommand(name: str, command: str | Any) -> None:
    """Adds a subcommand (see the module docs)."""
    SUBCOMMANDS[name] = command


def _resolve(spec: str | Any) -> Any:
    if not isinstance(spec, str):
        return spec
    module, _, attr = spec.partition(':')
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description='Train and evaluate skeleton models (PyTorch Geometric).')
    parser.add_argument('--version', action='version', version=f'{PROG} {__version__}')
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of every error (by default, errors a user '
                             'can fix are one line)')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    parser.subcommand_parsers = {}
    for name, spec in SUBCOMMANDS.items():
        command = _resolve(spec)
        p = sub.add_parser(name, help=getattr(command, 'HELP', None),
                           description=getattr(command, 'HELP', None))
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
        parser.subcommand_parsers[name] = p
    return parser


def _given_options(argv: list[str], args: argparse.Namespace) -> set:
    """The options of :obj:`argv` written by the user: parsed again with
    every default of the subcommand replaced by a marker."""
    not_given = object()  # not a str: argparse would convert a str default
    parser = build_parser()
    sub = parser.subcommand_parsers[args.command]
    sub.set_defaults(**{k: not_given for k in vars(args)
                        if k not in ('_run', 'command', 'debug')})
    given = vars(parser.parse_args(argv))
    return {k for k, v in given.items()
            if v is not not_given and k not in ('_run', 'command', 'debug')}


#: ``errno`` codes of :class:`OSError` a user fixes (disk full, read-only,
#: permissions), reported as one line.
USER_ERRNOS = {errno.ENOSPC: 'disk full', errno.EDQUOT: 'disk quota exceeded',
               errno.EACCES: 'not writable (permission denied)',
               errno.EPERM: 'not permitted', errno.EROFS: 'not writable (read-only file system)'}


def user_error_message(e: BaseException) -> str | None:
    """The one-line message of an error the user can fix, :obj:`None` for
    any other (a bug, shown with its traceback)."""
    if isinstance(e, CLIError):
        msg = str(e).strip()
        return msg.splitlines()[0] if msg else type(e).__name__
    if isinstance(e, FileNotFoundError):
        return str(e) if e.filename is None else f"file not found: {e.filename}"
    if isinstance(e, OSError) and e.errno in USER_ERRNOS:
        where = f"{e.filename}: " if e.filename is not None else ''
        return f"{where}{USER_ERRNOS[e.errno]}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, '_run', None) is None:
        parser.print_help(sys.stderr)
        return 2
    args.given_options = _given_options(argv, args)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f'{PROG} {args.command}: interrupted', file=sys.stderr)
        return 130
    except Exception as e:
        msg = user_error_message(e)
        if args.debug or msg is None:
            traceback.print_exc()
            return 1 if msg is None else 2
        print(f'{PROG} {args.command}: error: {msg}', file=sys.stderr)
        return 2

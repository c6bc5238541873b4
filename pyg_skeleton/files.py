r"""Atomic output files: a kill leaves the old file or the new one, a
symbolic link at the output is replaced (never written through), and disk
errors name the file ("PATH: No space left on device") so the command line
reports them in one line."""
from __future__ import annotations

import io
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ['write_atomic', 'atomic_save', 'atomic_write_text', 'atomic_output',
           'cpu_state_dict']


def _os_error(e: OSError, path: Path) -> OSError:
    """:obj:`e` naming :obj:`path` (``os.write`` errors name no file), so
    the command line reports e.g. "PATH: disk full" in one line."""
    if e.filename is not None:
        return e
    return type(e)(e.errno, e.strerror or str(e), str(path))


def atomic_output(path: Path, draw: Callable[[str], Any]) -> None:
    """Atomically writes a file that :obj:`draw` writes by name (a plot, a
    ``.npz``, bytes): :obj:`draw` gets a fresh temporary path in the same
    folder (with the output's suffix, which picks the format), flushed to
    disk and renamed over :obj:`path`, so a kill leaves the old file or the
    new one and a symbolic link at :obj:`path` is replaced, never written
    through.

    Raises:
        OSError: Naming :obj:`path` (disk full, not writable, ...).
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=f'.tmp{path.suffix}',
                                   dir=path.parent)
    except OSError as e:
        raise _os_error(e, path) from None
    os.close(fd)
    try:
        # mkstemp makes the file private (0600): give it the mode a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        draw(tmp)
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _os_error(e, path) from None
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Writes :obj:`data` to :obj:`path` with :func:`atomic_output`."""
    atomic_output(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_save(obj: Any, path: Path) -> None:
    """Saves with :func:`torch.save` atomically (:func:`write_atomic`);
    serialised in memory first, so a full disk is an :class:`OSError`
    naming the file rather than an error of the zip writer."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def atomic_write_text(path: Path, text: str) -> None:
    """Writes :obj:`text` (UTF-8) to :obj:`path` with :func:`atomic_output`."""
    write_atomic(path, text.encode())


def cpu_state_dict(module: torch.nn.Module) -> OrderedDict[str, torch.Tensor]:
    r"""The state dict of :obj:`module` as detached CPU tensors for a file
    (on the CPU they share the module's storage: save them before the next
    step), with PyTorch's per-module metadata (each module's layout version), as
    ``torch.save(module.state_dict())`` keeps it: a module whose saved
    layout changes can then tell an old file from a new one on loading
    (:func:`torch.load` with ``weights_only=True`` reads it back)."""
    state = module.state_dict()
    out = OrderedDict((k, v.detach().cpu()) for k, v in state.items())
    out._metadata = state._metadata  # type: ignore[attr-defined]
    return out

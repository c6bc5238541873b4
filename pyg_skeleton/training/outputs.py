r"""The output folder of a training run: its checks (:func:`prepare_out`,
:func:`check_output_folder`), the console log kept in ``train.log``
(:class:`RunLog`), the per-epoch history files and the plots."""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from torch import Tensor

from pyg_skeleton.files import _os_error, atomic_write_text
from pyg_skeleton.skeleton import Skeleton

from .checkpoint import plain
from .config import TrainingError

__all__ = ['OUTPUT_NAMES', 'prepare_out', 'check_output_folder', 'probe_writable', 'RunLog',
           'write_history', 'run_config', 'plot_curves', 'plot_samples']

#: The files a training run writes in its output folder.
OUTPUT_NAMES = ('config.json', 'train.log', 'metrics.csv', 'metrics.json', 'report.json',
                'best.pt', 'last.pt', 'curves.png', 'samples.png')


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuses to write into an existing run unless asked to (:obj:`resume`
    needs its ``last.pt``).

    Raises:
        TrainingError: Naming the folder and the option to give.
    """
    out = Path(out)
    if resume:
        if not (out / 'last.pt').is_file():
            raise TrainingError(f"--resume: no checkpoint {out / 'last.pt'}")
        return
    if out.exists() and not out.is_dir():
        raise TrainingError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise TrainingError(f"output folder {out} already holds a run; use --resume to "
                                f"continue it or --overwrite to replace it")


def check_output_folder(out: Path) -> None:
    """Refuses outputs of :obj:`out` that are symbolic links, removes the
    temporary files a killed run left (``.NAME.*.tmp*`` of the output
    names) and checks that the folder takes a file (written, flushed and
    removed), so a read-only or full disk is reported before any work. A
    folder not created yet is not created: its nearest existing parent is
    checked.

    Raises:
        TrainingError: An output is a symbolic link.
        OSError: The folder is not writable or the disk is full.
    """
    out = Path(out)
    if not out.exists():
        probe_writable(out)
        return
    for name in OUTPUT_NAMES:
        if (out / name).is_symlink():
            raise TrainingError(f"{out / name} is a symbolic link; outputs are never written "
                                f"through links (remove it)")
    for name in OUTPUT_NAMES:
        for stale in out.glob(f'.{name}.*.tmp*'):
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
    probe_writable(out)


def probe_writable(path: Path) -> None:
    """Checks that a file can be written in folder :obj:`path`, or in its
    nearest existing parent when it does not exist yet (nothing is
    created): an anonymous temporary file is written, flushed to disk and
    dropped, so nothing is left behind even on a kill.

    Raises:
        TrainingError: The nearest existing path is not a folder.
        OSError: Naming the folder: not writable, disk full, ...
    """
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise TrainingError(f"cannot create {path}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b'\0' * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _os_error(e, folder) from None


class RunLog:
    """Prints lines on the console and keeps them in ``train.log``: lines
    said before :meth:`open` are written when the log opens, and every line
    is flushed as it is said (progress lines are not logged)."""

    def __init__(self):
        self.file, self.pending = None, []

    def open(self, path: Path, append: bool) -> None:
        self.file = open(path, 'a' if append else 'w', encoding='utf-8')
        self.file.write(''.join(self.pending))
        self.file.flush()
        self.pending = []

    def __call__(self, text: str = '', err: bool = False) -> None:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)
        if self.file is None:
            self.pending.append(text + '\n')
        else:
            self.file.write(text + '\n')
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def write_history(out: Path, history: list[dict], label: str) -> None:
    """``metrics.csv`` and ``metrics.json``: a row per epoch."""
    keys = list(history[0])
    text = io.StringIO(newline='')
    w = csv.DictWriter(text, fieldnames=keys)
    w.writeheader()
    for row in history:
        w.writerow(row)
    atomic_write_text(out / 'metrics.csv', text.getvalue())
    atomic_write_text(out / 'metrics.json', json.dumps({'label': label, 'epochs': history},
                                                       indent=1))


def run_config(config, skeleton: Skeleton, train, val, test, n_params: int, world: int,
               device, total_steps: int, global_step: int) -> dict[str, Any]:
    """The ``config.json`` of a run: every option of :obj:`config` (a
    :class:`~pyg_skeleton.training.TrainConfig`) and what they resolved to
    (version, model, skeleton, data, sizes)."""
    from pyg_skeleton import __version__
    options = dict(sorted(config.to_dict().items()))
    options['out'] = str(config.out_dir)
    return plain({'format': 'pyg_skeleton.train_config.v1', 'version': __version__,
                  'started': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'model': config.model,
                  'skeleton': {'name': skeleton.name, 'joints': list(skeleton.joint_names)},
                  'dataset': train.description, 'synthetic': bool(train.synthetic),
                  'samples': {'train': len(train), 'val': len(val) if val is not None else 0,
                              'test': len(test) if test is not None else 0},
                  'parameters': n_params, 'processes': world, 'device': str(device),
                  'total_steps': total_steps,
                  'resumed_at_step': global_step if config.resume else None,
                  'options': options})


def plot_curves(history: list[dict], path: Path, label: str) -> None:
    """``curves.png``: the training loss and the test (and validation)
    errors per epoch."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ep = [h['epoch'] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [h['train_loss'] for h in history], 'o-')
    a.set_xlabel('epoch')
    a.set_ylabel('training loss')
    a.set_yscale('log')
    b.plot(ep, [h['test_mpjpe'] for h in history], 'o-', label='MPJPE')
    b.plot(ep, [h['test_p_mpjpe'] for h in history], 's-', label='P-MPJPE')
    if any(h.get('val_mpjpe') is not None for h in history):
        b.plot(ep, [h.get('val_mpjpe') for h in history], '^--', label='validation MPJPE')
    if history and history[-1].get('baseline_mpjpe') is not None:
        b.axhline(history[-1]['baseline_mpjpe'], color='gray', ls='--', label='mean pose')
    b.set_xlabel('epoch')
    b.set_ylabel('error (mm)')
    b.legend()
    fig.suptitle(label)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_samples(pred: Tensor, target: Tensor, skeleton: Skeleton, path: Path,
                 label: str, inputs: Tensor) -> None:
    """Test samples: the 2D input beside the predicted 3D pose (upright, the
    ground truth in grey), with each sample's MPJPE."""
    from pyg_skeleton.plotting import plot_lifted
    err = (pred - target).norm(dim=-1).mean(-1) * 1000
    plot_lifted(inputs.numpy(), None, pred.numpy(), skeleton, path,
                titles=[f'test sample {i}, MPJPE {e:.0f} mm' for i, e in enumerate(err.tolist())],
                truth=target.numpy(), suptitle=label)

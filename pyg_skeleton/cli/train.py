r"""``pyg-skeleton train`` and ``evaluate``: the 2D-to-3D lifting trainer.

* Data: a dataset of :func:`pyg_skeleton.datasets.load_lifting` (the
  built-in ``synthetic`` poses by default, ``bandai``, ``h36m`` or an
  ``.npz`` path) rendered through virtual cameras; static tensor batches.
* Validation: ``--val-fraction`` (default 0.1) of the training data is held
  out (whole sequences or takes, see
  :func:`~pyg_skeleton.datasets.lifting.load_lifting_splits`); ``best.pt``
  is the checkpoint with the lowest **validation** MPJPE, never chosen on
  the test split. With ``--val-fraction 0`` there is no validation split and
  ``best.pt`` is the last epoch's checkpoint (``best.pt`` = ``last.pt``).
* Outputs in ``--out``: ``config.json`` (every resolved option, the
  version, model, skeleton and data; written before the first step),
  ``train.log`` (the console's lines, from the start), ``metrics.csv`` and
  ``metrics.json`` (per epoch), ``last.pt`` and ``best.pt`` checkpoints,
  ``report.json`` (test metrics of the last and the best checkpoint, per
  joint and per group), ``curves.png`` and ``samples.png`` (only with
  matplotlib: without it the run says so in one line). An existing
  non-empty folder is never written into unless ``--resume`` or
  ``--overwrite`` is given.
* Progress: a bar on a terminal; when standard error is not a terminal, a
  plain line per quarter epoch (:data:`PLAIN_PROGRESS_LINES`), no ``\r``.
* Every output is written atomically (temporary file, then
  :func:`os.replace`, which replaces a symbolic link rather than writing
  through it; outputs that are symbolic links are refused). The output
  folder is checked writable before any work (a full or read-only disk is
  one line), and temporary files a killed run left are removed.
* Checkpoints hold only tensors and plain containers, so
  ``torch.load(path, weights_only=True)`` reads them, and a SHA-256 digest
  of their content; loading checks the digest, the keys, the option
  values, the skeleton and that the weights are finite and plausible
  (:func:`load_checkpoint`). ``--resume`` continues from ``last.pt``
  (saved every epoch and every ``--checkpoint-every`` steps) and reaches
  the same weights as an uninterrupted run: the batch order depends only on
  the seed and the epoch. Options given with ``--resume`` are applied
  (``--epochs`` and ``--max-steps`` extend the run, ``--checkpoint-every``,
  ``--eval-batch-size``) or, for those that define the run, refused when
  they differ from the run's; data files are reopened only when given again.
* Divergence: a non-finite loss or non-finite weights stop the run with a
  one-line error (exit code 2) before anything non-finite is saved; an
  epoch whose validation (or, without validation, test) MPJPE exceeds
  :data:`EXPLODE_FACTOR` times the mean-pose baseline is reported as
  exploding and never becomes ``best.pt``.
* ``evaluate`` takes data files (``--data``, ``--inputs-2d``,
  ``--cameras``, a ``--dataset`` path, HGN's ``--mesh``) only from its
  command line, never from the checkpoint; the other settings it takes from
  the checkpoint are listed in its report. ``--test-actor all`` scores
  every actor of a Bandai-layout data set (a row each and their mean).
* Several processes: under ``torchrun`` the same command trains with
  :class:`~torch.nn.parallel.DistributedDataParallel` (``gloo`` on CPU,
  ``nccl`` on GPU); each rank takes its share of every global batch
  (``--batch-size`` is global), batch normalisation uses statistics over the
  global batch, and evaluation metrics are summed across ranks, so the run
  matches a single process with the same global batch. The initial
  weights, batch order and flips are the same on every rank; the dropout
  masks differ (each rank's random stream is seeded by its rank).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_skeleton.cli.main import CLIError
from pyg_skeleton.cli.models import MODELS, build_model, canonical_model_name
from pyg_skeleton.files import _os_error, atomic_output, atomic_save, atomic_write_text
from pyg_skeleton.nn.norm import convert_dist_batchnorm
from pyg_skeleton.plotting import NO_PLOTS
from pyg_skeleton.skeleton import Skeleton

CHECKPOINT_FORMAT = 'pyg_skeleton.lifting_checkpoint.v1'
#: Testing hook: exit hard (``os._exit``) after this many training steps of
#: the process, as a crash or a killed job would.
CRASH_ENV = 'PYG_SKELETON_CRASH_AFTER_STEPS'

#: An epoch whose selection MPJPE exceeds this many times the mean-pose
#: baseline's is flagged as exploding and never selected as ``best.pt``.
EXPLODE_FACTOR = 10.0
#: Largest magnitude of a checkpoint weight taken as plausible (a flipped
#: exponent bit of a float32 weight makes it ~1e38).
MAX_ABS_WEIGHT = 1e8
#: The files ``train`` writes in ``--out``.
OUTPUT_NAMES = ('config.json', 'train.log', 'metrics.csv', 'metrics.json', 'report.json',
                'best.pt', 'last.pt', 'curves.png', 'samples.png')
#: Progress lines per epoch when stderr is not a terminal (no progress bar).
PLAIN_PROGRESS_LINES = 4
CHECKPOINT_KEYS = ('model_name', 'model', 'optimizer', 'epoch', 'step_in_epoch', 'global_step',
                   'rng_torch', 'history', 'best_mpjpe', 'args', 'skeleton', 'mean_pose')

# Options that define a run; ``--resume`` takes them from the checkpoint.
RUN_OPTIONS = ('model', 'mesh', 'dataset', 'data', 'skeleton', 'test_actor', 'views', 'frame_step',
               'val_fraction', 'inputs_2d', 'cameras', 'max_frames', 'max_test_frames',
               'synthetic_train', 'synthetic_test', 'epochs', 'max_steps',
               'steps_per_epoch', 'batch_size', 'lr', 'lr_schedule', 'lr_decay', 'min_lr',
               'weight_decay', 'seed', 'hidden_channels', 'num_layers', 'dropout',
               'bone_weight', 'flip_augment', 'flip_test', 'checkpoint_every', 'eval_batch_size')
#: Options of :data:`RUN_OPTIONS` that ``--resume`` applies when given.
RESUME_ADJUSTABLE = ('epochs', 'max_steps', 'checkpoint_every', 'eval_batch_size')
#: Options that name data files: never taken from a checkpoint unasked.
DATA_PATH_OPTIONS = ('data', 'inputs_2d', 'cameras', 'mesh')

# name -> (type, lowest, highest, None allowed); float ranges are closed
# unless marked ')' (val_fraction, dropout: [0, 1)). The upper bounds of
# sizes keep a mistyped (or crafted) value from allocating without limit.
_SPECS = {
    'model': (str, None, None, False), 'dataset': (str, None, None, False),
    'data': (str, None, None, True), 'inputs_2d': (str, None, None, True),
    'cameras': (str, None, None, True), 'skeleton': (str, None, None, False),
    'mesh': (str, None, None, True),
    'test_actor': (int, 0, 10 ** 6, False), 'views': (int, 1, 1000, False),
    'frame_step': (int, 1, 10 ** 6, False), 'val_fraction': (float, 0, ')1', False),
    'max_frames': (int, 1, 10 ** 9, True), 'max_test_frames': (int, 1, 10 ** 9, True),
    'synthetic_train': (int, 1, 10 ** 7, False), 'synthetic_test': (int, 1, 10 ** 7, False),
    'epochs': (int, 1, 10 ** 6, False), 'max_steps': (int, 1, 10 ** 9, True),
    'steps_per_epoch': (int, 1, 10 ** 9, True), 'batch_size': (int, 1, 10 ** 6, False),
    'eval_batch_size': (int, 1, 10 ** 7, False), 'lr': (float, '(0', None, False),
    'lr_schedule': (('exp', 'cosine', 'constant'), None, None, False),
    'lr_decay': (float, '(0', None, False), 'min_lr': (float, 0, None, False),
    'weight_decay': (float, 0, None, False), 'seed': (int, 0, 2 ** 63 - 1, False),
    'hidden_channels': (int, 1, 65536, True), 'num_layers': (int, 1, 1000, True),
    'dropout': (float, 0, ')1', True), 'bone_weight': (float, 0, None, False),
    'flip_augment': (bool, None, None, False), 'flip_test': (bool, None, None, False),
    'checkpoint_every': (int, 0, 10 ** 9, False),
}


def _option_problem(name: str, value: Any) -> Optional[str]:
    kind, lo, hi, optional = _SPECS[name]
    if value is None:
        return None if optional else 'must be given'
    if isinstance(kind, tuple):
        return None if value in kind else f"must be one of {', '.join(kind)}"
    if kind is bool:
        return None if isinstance(value, bool) else 'must be true or false'
    if kind is str:
        return None if isinstance(value, str) and value else 'must be a non-empty string'
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            kind is int and not isinstance(value, int)):
        return f"must be {'a whole number' if kind is int else 'a number'}"
    if not math.isfinite(value):
        return 'must be finite'
    if lo == '(0' and not value > 0:
        return 'must be positive'
    if isinstance(lo, (int, float)) and value < lo:
        return f'must be at least {lo}'
    if hi == ')1' and not value < 1:
        return f'must be in [{lo}, 1)'
    if isinstance(hi, (int, float)) and value > hi:
        return f'must be at most {hi}'
    return None


def check_options(values: Dict[str, Any], where: Optional[str] = None) -> None:
    """Checks the type and range of every option of :obj:`values` that
    :data:`RUN_OPTIONS` knows.

    Args:
        values (dict): Option name to value.
        where (str, optional): The checkpoint the values come from (for the
            message); :obj:`None` for the command line.

    Raises:
        CLIError: Naming the first bad option.
    """
    for name, value in values.items():
        if name not in _SPECS:
            continue
        problem = _option_problem(name, value)
        if problem:
            if where is None:
                raise CLIError(f"--{name.replace('_', '-')} {problem} (got {value!r})")
            raise CLIError(f"{where}: stored option {name}={value!r} {problem}")


# ---------------------------------------------------------------- arguments

def add_data_arguments(p: argparse.ArgumentParser, defaults: bool = True,
                       training: bool = True) -> None:
    """The data options; without :obj:`defaults` they default to
    :obj:`None` (``evaluate``: taken from the checkpoint), and without
    :obj:`training` the options of the training split are left out."""
    d = (lambda v: v) if defaults else (lambda v: None)
    asked = '' if defaults else ' (default: as trained)'
    p.add_argument('--dataset', default=d('synthetic'),
                   help="'synthetic' (built-in), 'bandai', 'h36m', a name of "
                        "pyg_skeleton.datasets.lifting.register_dataset or an .npz path"
                        + (asked or ' (default: %(default)s)'))
    p.add_argument('--data', default=None,
                   help='data file: bandai2_h36m17.npz (default: ../shared/data/mocap when '
                        'present) or data_3d_h36m.npz for h36m (h36m files hold pickled '
                        'dicts: they are read with a restricted unpickler that only builds '
                        'dicts, lists, strings, numbers and arrays, never runs code)')
    if training:
        p.add_argument('--test-actor', type=int, default=2,
                       help='held-out Bandai actor (default: %(default)s)')
    else:
        p.add_argument('--test-actor', type=_actor, default=None,
                       help="held-out Bandai actor to score, or 'all': every actor, one "
                            "row each and their mean" + asked)
    p.add_argument('--views', type=int, default=d(4),
                   help='virtual camera views per pose' + (asked or ' (default: %(default)s)'))
    p.add_argument('--frame-step', type=int, default=d(1),
                   help='keep every k-th frame' + (asked or ' (default: %(default)s)'))
    if training:
        p.add_argument('--max-frames', type=int, default=None,
                       help='cap on the training frames (evenly strided)')
    p.add_argument('--max-test-frames', type=int, default=None,
                   help='cap on the test frames (evenly strided)' + asked)
    if training:
        p.add_argument('--synthetic-train', type=int, default=20000,
                       help='synthetic training poses (default: %(default)s)')
    p.add_argument('--synthetic-test', type=int, default=d(2000),
                   help='synthetic test poses' + (asked or ' (default: %(default)s)'))
    p.add_argument('--inputs-2d', default=None,
                   help='h36m only: real 2D keypoints, data_2d_h36m_<name>.npz (VideoPose3D '
                        'layout, read with the restricted unpickler; needs --cameras)')
    p.add_argument('--cameras', default=None,
                   help='h36m only: cameras JSON (format in pyg_skeleton.datasets.h36m) for '
                        '--inputs-2d')


def _actor(text: str):
    """``--test-actor`` of ``evaluate``: an actor number or ``all``."""
    if text == 'all':
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an actor number or 'all': {text!r}") from None


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--model', default='semgcn', metavar='MODEL',
                   help=f"model to train: {', '.join(MODELS)} (default: %(default)s)")
    p.add_argument('--list-models', action='store_true', help='list the models and exit')
    p.add_argument('--skeleton', default='h36m17', metavar='SKELETON',
                   help=f"skeleton of the model (and of the synthetic poses): a preset, "
                        f"{', '.join(Skeleton.presets())}, or a skeleton JSON file "
                        f"(Skeleton.save; synthetic poses need its \"body_map\") "
                        f"(default: %(default)s)")
    p.add_argument('--mesh', default=None, metavar='FILE',
                   help="model hgn only: body mesh of its mesh branches, an .obj, .ply or "
                        ".npz mesh (coarsened into 10 padded levels) or a hierarchy .pt of "
                        "`pyg-skeleton coarsen --padded` (default: the built-in MakeHuman "
                        "body)")
    add_data_arguments(p)
    p.add_argument('--val-fraction', type=float, default=0.1,
                   help='fraction of the training data (whole sequences/takes) held out for '
                        'validation; best.pt has the lowest validation MPJPE (0: no '
                        'validation, best.pt = last.pt)')
    p.add_argument('--epochs', type=int, default=10,
                   help='passes over the training data (default: %(default)s)')
    p.add_argument('--max-steps', type=int, default=None, help='stop after this many steps')
    p.add_argument('--steps-per-epoch', type=int, default=None,
                   help='cap on the steps of an epoch')
    p.add_argument('--batch-size', type=int, default=256, help='global batch size')
    p.add_argument('--eval-batch-size', type=int, default=2048,
                   help='batch size of validation and test (default: %(default)s)')
    p.add_argument('--lr', type=float, default=1e-3, help='learning rate (Adam)')
    p.add_argument('--lr-schedule', choices=['exp', 'cosine', 'constant'], default='exp',
                   help="'exp': lr * lr_decay ** epoch (continuous); 'cosine': to --min-lr")
    p.add_argument('--lr-decay', type=float, default=0.95, help='per-epoch factor of exp')
    p.add_argument('--min-lr', type=float, default=1e-5,
                   help='final learning rate of the cosine schedule (default: %(default)s)')
    p.add_argument('--weight-decay', type=float, default=0.0,
                   help='L2 weight decay of Adam (default: %(default)s)')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the weights, the batch order, the flips, the cameras and '
                        'the synthetic poses (default: %(default)s)')
    p.add_argument('--hidden-channels', type=int, default=128,
                   help='hidden features per joint (default: %(default)s)')
    p.add_argument('--num-layers', type=int, default=4,
                   help='residual blocks of the semgcn models (default: %(default)s)')
    p.add_argument('--dropout', type=float, default=None,
                   help="dropout probability (default: the model's own: none for semgcn, "
                        "0.25 for skeletal_gnn)")
    p.add_argument('--bone-weight', type=float, default=0.0,
                   help='weight of the bone-vector term of the SemGCN loss')
    p.add_argument('--flip-augment', action=argparse.BooleanOptionalAction, default=True,
                   help='random horizontal flips while training')
    p.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=True,
                   help='test-time flip augmentation')
    p.add_argument('--checkpoint-every', type=int, default=0,
                   help='also save last.pt every N steps (0: only per epoch)')
    p.add_argument('--out', default=None, help='output folder (default: runs/MODEL-DATASET)')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --out with its options; --epochs and '
                        '--max-steps extend it, data files must be given again, other '
                        'options that define the run are refused if they differ')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')
    p.add_argument('--no-progress', action='store_true',
                   help='no progress bars (when stderr is not a terminal, progress is a '
                        'plain line per quarter epoch)')
    p.add_argument('--no-plots', action='store_true', help='no PNG plots')
    p.add_argument('--samples', type=int, default=4,
                   help='test samples in samples.png (default: %(default)s)')


# ------------------------------------------------------------- distributed

def setup_distributed():
    """``(rank, world_size, device)`` from the torchrun environment."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        return 0, 1, dev
    rank = int(os.environ['RANK'])
    if torch.cuda.is_available():
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local)
        dev, backend = torch.device('cuda', local), 'nccl'
    else:
        dev, backend = torch.device('cpu'), 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return rank, world, dev


# --------------------------------------------------------------- utilities

def plain(value: Any) -> Any:
    """Values that ``torch.load(weights_only=True)`` and JSON accept."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def check_output_folder(out: Path) -> None:
    """Refuses outputs of :obj:`out` that are symbolic links, removes the
    temporary files a killed run left (``.NAME.*.tmp*`` of the output
    names) and checks that the folder takes a file (written, flushed and
    removed), so a read-only or full disk is reported before any work. A
    folder not created yet is not created: its nearest existing parent is
    checked.

    Raises:
        CLIError: An output is a symbolic link.
        OSError: The folder is not writable or the disk is full.
    """
    out = Path(out)
    if not out.exists():
        probe_writable(out)
        return
    for name in OUTPUT_NAMES:
        if (out / name).is_symlink():
            raise CLIError(f"{out / name} is a symbolic link; outputs are never written "
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
        CLIError: The nearest existing path is not a folder.
        OSError: Naming the folder: not writable, disk full, ...
    """
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CLIError(f"cannot create {path}: {folder} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b'\0' * 4096)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise _os_error(e, folder) from None


def checkpoint_digest(ckpt: Dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's content (every key but ``digest``), over
    the tensors' bytes and the plain values' text, in a fixed order."""
    h = hashlib.sha256()

    def feed(value):
        if isinstance(value, Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f'T{t.dtype}{list(t.shape)}'.encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            h.update(f'D{len(value)}'.encode())
            for k in sorted(value, key=str):
                h.update(repr(k).encode())
                feed(value[k])
        elif isinstance(value, (list, tuple)):
            h.update(f'L{len(value)}'.encode())
            for v in value:
                feed(v)
        else:
            h.update(repr(value).encode())
    feed({k: v for k, v in ckpt.items() if k != 'digest'})
    return h.hexdigest()


def _bad_tensor(t: Any, what: str, limit: float) -> Optional[str]:
    if not isinstance(t, Tensor):
        return f"{what} is not a tensor"
    if t.is_floating_point():
        if not torch.isfinite(t).all():
            return f"{what} holds NaN or infinite values"
        if t.numel() and float(t.abs().max()) > limit:
            return f"{what} holds implausible values (|x| up to {float(t.abs().max()):.3g})"
    return None


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Reads a checkpoint of ``train`` (``torch.load`` with
    ``weights_only=True``) and checks what it holds: the format, the keys
    and their types, the digest (when present), finite and plausible
    weights (|w| up to :data:`MAX_ABS_WEIGHT`) and mean pose, the skeleton,
    every stored option (:func:`check_options`) and, before any model is
    built, that ``hidden_channels`` and ``num_layers`` fit the weights.

    Raises:
        CLIError: Naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise CLIError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise CLIError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get('format') != CHECKPOINT_FORMAT:
        raise CLIError(f"{path} is not a pyg-skeleton lifting checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise CLIError(f"{path}: incomplete checkpoint, no {', '.join(missing)}")
    if 'digest' in ckpt and ckpt['digest'] != checkpoint_digest(ckpt):
        raise CLIError(f"{path}: the content does not match its digest (the file is "
                       f"corrupted)")
    types = {'model_name': str, 'model': dict, 'optimizer': dict, 'epoch': int,
             'step_in_epoch': int, 'global_step': int, 'history': list,
             'best_mpjpe': float, 'args': dict, 'skeleton': dict}
    for key, kind in types.items():
        value = ckpt[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (
                kind is int and value < 0):
            raise CLIError(f"{path}: {key} must be {'a non-negative ' if kind is int else ''}"
                           f"{kind.__name__}, got {type(value).__name__}")
    if not ckpt['model']:
        raise CLIError(f"{path}: the checkpoint holds no weights")
    rng = ckpt['rng_torch']
    if not isinstance(rng, Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise CLIError(f"{path}: rng_torch must be a 1-D uint8 tensor (a random generator state)")
    for name, t in ckpt['model'].items():
        problem = _bad_tensor(t, f"weight {name!r}", MAX_ABS_WEIGHT)
        if problem:
            raise CLIError(f"{path}: {problem}")
    try:
        skeleton = Skeleton.from_dict(ckpt['skeleton'])
    except Exception as e:
        raise CLIError(f"{path}: invalid skeleton: {str(e).splitlines()[0]}") from None
    mean_pose = ckpt['mean_pose']
    problem = _bad_tensor(mean_pose, 'mean_pose', 1e3)
    if problem or tuple(mean_pose.shape) != (skeleton.num_joints, 3):
        raise CLIError(f"{path}: " + (problem or f"mean_pose must be [{skeleton.num_joints}, 3] "
                                                 f"for its skeleton, got {list(mean_pose.shape)}"))
    check_options(ckpt['args'], str(path))
    _check_model_options(ckpt, path)
    return ckpt


def _check_model_options(ckpt: Dict[str, Any], path: Path) -> None:
    # Building a model allocates what its options ask for: a crafted
    # hidden_channels or num_layers could ask for gigabytes. Each layer has
    # weights in the file and the hidden size is one of their dimensions.
    weights = ckpt['model']
    hidden = ckpt['args'].get('hidden_channels')
    dims = {d for t in weights.values() if t.is_floating_point() for d in t.shape}
    if hidden is not None and hidden not in dims:
        raise CLIError(f"{path}: stored option hidden_channels={hidden} does not match the "
                       f"weights (no weight has a dimension of {hidden})")
    layers = ckpt['args'].get('num_layers')
    if layers is not None and layers > len(weights):
        raise CLIError(f"{path}: stored option num_layers={layers} does not match the "
                       f"{len(weights)} weight tensors")


def lr_at(args, step: float, steps_per_epoch: int, total_steps: int) -> float:
    if args.lr_schedule == 'constant':
        return args.lr
    if args.lr_schedule == 'exp':
        return args.lr * args.lr_decay ** (step / max(steps_per_epoch, 1))
    t = min(step / max(total_steps, 1), 1.0)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))


def get_skeleton(name: str) -> Skeleton:
    """A preset by name, or a skeleton JSON file."""
    if name in Skeleton.presets():
        return Skeleton.preset(name)
    if not (name.lower().endswith('.json') or Path(name).is_file()):
        raise CLIError(f"unknown skeleton {name!r} (choose from {', '.join(Skeleton.presets())}, "
                       f"or give a skeleton JSON file)")
    try:
        return Skeleton.load(name)
    except OSError as e:
        raise CLIError(f"cannot read skeleton file {name}: {e.strerror or e}") from None
    except ValueError as e:
        raise CLIError(str(e).splitlines()[0]) from None


def _data_skeleton(args, skeleton: Optional[Skeleton]):
    """The ``skeleton`` of :func:`load_lifting_splits`: a preset name, or the
    skeleton of a file (its synthetic poses need a ``body_map``)."""
    name = getattr(args, 'skeleton', None) or 'h36m17'
    if name in Skeleton.presets():
        return name
    skeleton = skeleton if skeleton is not None else get_skeleton(name)
    if args.dataset == 'synthetic' and skeleton.body_map is None:
        raise CLIError(f"skeleton {name} has no \"body_map\", so there are no synthetic poses "
                       f"for it: add one (a joint map onto the smpl24 body, see "
                       f"pyg_skeleton.datasets.synthetic), or train on poses of its joints with "
                       f"--dataset FILE.npz (a 'positions' array [F, "
                       f"{skeleton.num_joints}, 3] in metres)")
    return skeleton


def load_data(args, skeleton: Optional[Skeleton] = None):
    """``(train, val, test)`` of the run's data; ``val`` is :obj:`None` when
    ``--val-fraction`` is 0. :obj:`skeleton`: the run's skeleton when
    ``--skeleton`` is a file (else read from it)."""
    from pyg_skeleton.datasets.lifting import load_lifting_splits
    data_skeleton = _data_skeleton(args, skeleton)
    try:
        train, val, test = load_lifting_splits(
            args.dataset, args.data, val_fraction=getattr(args, 'val_fraction', 0.0) or 0.0,
            test_actor=args.test_actor, views=args.views,
            frame_step=args.frame_step, seed=args.seed, synthetic_train=args.synthetic_train,
            synthetic_test=args.synthetic_test, max_frames=args.max_frames,
            max_test_frames=getattr(args, 'max_test_frames', None),
            skeleton=data_skeleton,
            inputs_2d=getattr(args, 'inputs_2d', None), cameras=getattr(args, 'cameras', None))
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise CLIError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    for name, split in (('training data', train), ('validation data', val),
                        ('test data', test)):
        if split is None:
            continue
        if len(split) == 0:
            raise CLIError(f"{name} is empty" + (' (lower --val-fraction or use 0)'
                                                 if split is val else ''))
        try:
            split.check_finite(name)
        except ValueError as e:
            raise CLIError(str(e)) from None
    return train, val, test


def check_joints(skeleton: Skeleton, data, what: str = 'data') -> None:
    if data.num_joints != skeleton.num_joints:
        raise CLIError(f"{what} has {data.num_joints} joints but skeleton {skeleton.name!r} has "
                       f"{skeleton.num_joints} (skeleton/model joint-count mismatch)")


def make_model(name: str, skeleton: Skeleton, args, sample_x: Tensor) -> torch.nn.Module:
    try:
        model = build_model(name, skeleton, args)
    except ValueError as e:
        raise CLIError(str(e)) from None
    model.eval()
    with torch.no_grad():
        try:
            out = model(sample_x)
        except Exception as e:
            raise CLIError(f"model {name!r} failed on input {list(sample_x.shape)}: "
                           f"{str(e).splitlines()[0]}") from None
    expected = list(sample_x.shape[:-1]) + [3]
    if list(out.shape) != expected:
        raise CLIError(f"model {name!r} outputs {list(out.shape)} for input "
                       f"{list(sample_x.shape)}, expected {expected} (joint-count mismatch?)")
    model.train()
    return model


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuses to write into an existing run unless asked to."""
    if resume:
        if not (out / 'last.pt').is_file():
            raise CLIError(f"--resume: no checkpoint {out / 'last.pt'}")
        return
    if out.exists() and not out.is_dir():
        raise CLIError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise CLIError(f"output folder {out} already holds a run; use --resume to continue "
                           f"it or --overwrite to replace it")


# -------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, data, skeleton, batch_size: int, flip: bool, rank: int = 0,
             world: int = 1, device=torch.device('cpu')):
    """Metrics of :obj:`model` on :obj:`data`, sharded over ranks and
    summed across them (see :class:`~pyg_skeleton.metrics.MetricAccumulator`),
    with the model on :obj:`device` (where it is moved)."""
    from pyg_skeleton.datasets.camera import flip_test
    from pyg_skeleton.metrics import MetricAccumulator, process_group_device
    was_training = model.training
    model.eval()
    model.to(device)
    n = len(data)
    lo, hi = rank * n // world, (rank + 1) * n // world
    acc = MetricAccumulator(skeleton.num_joints, max(len(data.group_names), 1))
    bad = torch.zeros(1, device=process_group_device())  # NCCL reduces on the GPU
    for a in range(lo, hi, batch_size):
        x = data.x[a:min(a + batch_size, hi)].to(device)
        y = data.y[a:min(a + batch_size, hi)]
        pred = flip_test(model, x, skeleton) if flip else model(x)
        if not torch.isfinite(pred).all():
            bad += 1
            break
        acc.update(pred.cpu(), y, groups=data.group[a:min(a + batch_size, hi)])
    if world > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(bad)  # every rank stops, none waits in acc.all_reduce
    if bad.item():
        raise CLIError("the model predicts NaN or infinite values (diverged weights?)")
    acc.all_reduce()
    model.train(was_training)
    return acc.compute(data.group_names or None)


def mean_pose_baseline(mean_pose: Tensor, data, skeleton) -> Dict[str, Any]:
    """Metrics of always predicting the mean training pose."""
    from pyg_skeleton.metrics import MetricAccumulator
    acc = MetricAccumulator(skeleton.num_joints, max(len(data.group_names), 1))
    for a in range(0, len(data), 8192):
        y = data.y[a:a + 8192]
        acc.update(mean_pose.expand_as(y), y, groups=data.group[a:a + 8192])
    return acc.compute(data.group_names or None)


def report_table(metrics: Dict, baseline: Optional[Dict], title: str) -> str:
    rows = [('MPJPE (mm)', 'mpjpe'), ('P-MPJPE (mm)', 'p_mpjpe'), ('N-MPJPE (mm)', 'n_mpjpe'),
            ('PCK@150mm (%)', 'pck'), ('AUC 0-150mm (%)', 'auc')]
    lines = [title, '', f"| {'metric':<16} | {'model':>9} | {'mean-pose baseline':>18} |",
             f"|{'-' * 18}|{'-' * 11}|{'-' * 20}|"]
    for label, key in rows:
        base = f"{baseline[key]:18.1f}" if baseline else f"{'':18}"
        lines.append(f"| {label:<16} | {metrics[key]:9.1f} | {base} |")
    groups = metrics.get('per_group') or {}
    if len(groups) > 1:
        lines += ['', f"| {'group':<22} | {'MPJPE':>7} | {'P-MPJPE':>7} | {'baseline':>8} |",
                  f"|{'-' * 24}|{'-' * 9}|{'-' * 9}|{'-' * 10}|"]
        for g, m in groups.items():
            b = (baseline or {}).get('per_group', {}).get(g, {}).get('mpjpe', float('nan'))
            lines.append(f"| {g:<22} | {m['mpjpe']:7.1f} | {m['p_mpjpe']:7.1f} | {b:8.1f} |")
    return '\n'.join(lines)


# ------------------------------------------------------------------- plots

def plot_curves(history: List[Dict], path: Path, label: str) -> None:
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


# ----------------------------------------------------------------- training

def given_options(args) -> set:
    """The options the user wrote: ``args.given_options`` (set by
    :func:`pyg_skeleton.cli.main.main`), else, for a namespace built
    elsewhere, the options whose value differs from the default."""
    given = getattr(args, 'given_options', None)
    if given is not None:
        return set(given)
    p = argparse.ArgumentParser()
    add_train_arguments(p)
    defaults = vars(p.parse_args([]))
    return {k for k, v in defaults.items() if getattr(args, k, v) != v}


def _same_path(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if str(a) == str(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_file_dataset(name: Any) -> bool:
    from pyg_skeleton.datasets.lifting import DATASETS
    return isinstance(name, str) and name not in DATASETS


def _load_resume_args(args) -> Dict[str, Any]:
    """Takes the run's options from ``last.pt``; options the user gave are
    applied (:data:`RESUME_ADJUSTABLE`) or must equal the run's, and data
    files the run read are reopened only when given again. Returns the
    checkpoint."""
    path = Path(args.out) / 'last.pt'
    ckpt = load_checkpoint(path)
    stored = dict(ckpt['args'])
    if 'val_fraction' not in stored:  # a run of a version without validation
        stored['val_fraction'] = 0.0
    given = given_options(args)
    if 'overwrite' in given or args.overwrite:
        raise CLIError("--resume continues the run in --out and --overwrite replaces it: "
                       "give one of them")
    for key in RUN_OPTIONS:
        if key not in stored:
            continue
        opt = '--' + key.replace('_', '-')
        old, new = stored[key], getattr(args, key, None)
        is_path = key in DATA_PATH_OPTIONS or (key == 'dataset' and _is_file_dataset(old))
        if key in given:
            if key in RESUME_ADJUSTABLE:
                continue
            if (_same_path(old, new) if is_path else old == new):
                setattr(args, key, old)
                continue
            raise CLIError(f"--resume: {opt} {new} differs from the run's {old}; a resumed run "
                           f"keeps the options that define it (only "
                           f"{', '.join('--' + k.replace('_', '-') for k in RESUME_ADJUSTABLE)}"
                           f" may change)")
        if is_path and old is not None:
            raise CLIError(f"--resume: the run read {opt} {old}; give {opt} {old} again to "
                           f"reopen it (files named in a checkpoint are not opened unasked)")
        setattr(args, key, old)
    done_epochs, done_steps = int(ckpt['epoch']), int(ckpt['global_step'])
    if 'epochs' in given and args.epochs <= done_epochs:
        raise CLIError(f"--epochs {args.epochs}: the run has already trained {done_epochs} "
                       f"epochs (give more to extend it)")
    if 'max_steps' in given and args.max_steps is not None and args.max_steps <= done_steps:
        raise CLIError(f"--max-steps {args.max_steps}: the run has already trained "
                       f"{done_steps} steps (give more to extend it)")
    finished = done_epochs >= args.epochs or (args.max_steps and done_steps >= args.max_steps)
    if finished and (Path(args.out) / 'report.json').is_file():
        raise CLIError(f"the run in {args.out} is complete ({done_epochs} epochs, {done_steps} "
                       f"steps); give --epochs N (more than {done_epochs}) or --max-steps N "
                       f"(more than {done_steps}) to train further")
    return ckpt


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


def run_train(args) -> int:
    if getattr(args, 'list_models', False):
        print('\n'.join(MODELS))
        return 0
    if args.out is None:
        args.out = str(Path('runs') / f'{args.model}-{Path(str(args.dataset)).stem}')
    out = Path(args.out)
    prepare_out(out, args.resume, args.overwrite)
    if args.resume:
        _load_resume_args(args)
    if args.model not in MODELS:
        raise CLIError(f"unknown model {args.model!r} (choose from {', '.join(MODELS)})")
    log = RunLog()
    model = canonical_model_name(args.model)
    if model != args.model:
        log(f"note: model {args.model!r} is now called {model!r} (the same model)", err=True)
        args.model = model
    if getattr(args, 'mesh', None) is not None and args.model != 'hgn':
        raise CLIError(f"--mesh is an option of model hgn, not of {args.model!r}")
    check_options({k: getattr(args, k, None) for k in RUN_OPTIONS})
    if not isinstance(args.samples, int) or args.samples < 0:
        raise CLIError(f"--samples must be at least 0 (got {args.samples})")
    skeleton = get_skeleton(args.skeleton)
    if int(os.environ.get('RANK', '0')) == 0:
        # before any work: a read-only or full disk is found now, not after an epoch
        check_output_folder(out)

    rank, world, device = setup_distributed()
    try:
        return _train(args, out, skeleton, rank, world, device, log)
    finally:
        log.close()
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(args, out: Path, skeleton: Skeleton, rank: int, world: int, device,
           log: RunLog) -> int:
    from tqdm import tqdm

    from pyg_skeleton.datasets.lifting import TensorBatches
    from pyg_skeleton.nn.loss import SemGCNLoss

    main_rank = rank == 0
    if args.batch_size % world:
        raise CLIError(f"--batch-size {args.batch_size} is not divisible by the {world} "
                       f"processes")
    torch.manual_seed(args.seed)
    train, val, test = load_data(args)
    check_joints(skeleton, train, 'training data')
    check_joints(skeleton, test, 'test data')
    model = make_model(args.model, skeleton, args, train.x[:2])
    if world > 1:  # before the optimizer sees the parameters
        convert_dist_batchnorm(model)
    model.to(device)
    if len(train) < args.batch_size:
        raise CLIError(f"training data has {len(train)} samples, fewer than --batch-size "
                       f"{args.batch_size}")

    mean_pose = train.y.mean(0)
    loss_fn = SemGCNLoss(skeleton, bone_weight=args.bone_weight).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loader = TensorBatches(train, args.batch_size, shuffle=True, seed=args.seed, rank=rank,
                           world_size=world)
    steps_per_epoch = len(loader)
    if args.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
    total_steps = steps_per_epoch * args.epochs
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)

    start_epoch, start_step, global_step = 0, 0, 0
    history: List[Dict] = []
    best, best_epoch = float('inf'), 0
    if args.resume:
        ckpt = load_checkpoint(out / 'last.pt')
        try:
            model.load_state_dict(ckpt['model'])
            optimizer.load_state_dict(ckpt['optimizer'])
        except (RuntimeError, ValueError, KeyError) as e:
            raise CLIError(f"{out / 'last.pt'}: the weights or optimizer state do not fit "
                           f"model {args.model!r}: {str(e).splitlines()[0]}") from None
        torch.set_rng_state(ckpt['rng_torch'])
        start_epoch, start_step = int(ckpt['epoch']), int(ckpt['step_in_epoch'])
        global_step = int(ckpt['global_step'])
        history = list(ckpt['history'])
        best = float(ckpt['best_mpjpe'])
        best_epoch = int(ckpt.get('best_epoch', 0))
    if rank > 0:
        # Dropout must differ between ranks (they see different samples);
        # the initial weights were drawn above from the common seed, and
        # the batch order and flips have generators of their own. Rank 0
        # keeps the stream of a single process.
        torch.manual_seed((args.seed * 1_000_003 + rank * 7_919 + global_step) % 2 ** 63)

    if world > 1:
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == 'cuda' else None,
            broadcast_buffers=False)
    else:
        ddp = model

    label = f"{args.model} on {train.description}"
    if train.synthetic:
        label += ' [SYNTHETIC DATA]'
    if main_rank:
        out.mkdir(parents=True, exist_ok=True)
        check_output_folder(out)
        if args.overwrite and not args.resume:
            for name in OUTPUT_NAMES:
                (out / name).unlink(missing_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        # written before the first step: a run that dies early still says what it was
        atomic_write_text(out / 'config.json', json.dumps(run_config(
            args, skeleton, train, val, test, n_params, world, device, total_steps,
            global_step), indent=1))
        log.open(out / 'train.log', append=args.resume)
        log(f"pyg-skeleton train: {label}")
        log(f"  {len(train):,} training / "
            + (f"{len(val):,} validation / " if val is not None else '')
            + f"{len(test):,} test samples, {n_params:,} parameters, "
            f"{world} process(es), batch {args.batch_size}, {total_steps} steps"
            + (f", resuming at step {global_step}" if args.resume else ''))

    def check_finite(what: str) -> None:
        # on every rank (the weights agree), so that all of them stop
        for name, p in model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise CLIError(f"training diverged at step {global_step}: weight {name!r} is "
                               f"NaN or infinite {what} (lower --lr?); nothing non-finite "
                               f"was saved")

    def save(ck: Dict[str, Any], name: str) -> None:
        ck = dict(ck)
        ck['digest'] = checkpoint_digest(ck)
        atomic_save(ck, out / name)

    def state(epoch: int, step_in_epoch: int) -> Dict[str, Any]:
        return {'format': CHECKPOINT_FORMAT, 'model_name': args.model,
                'model': {k: v.detach().cpu() for k, v in model.state_dict().items()},
                'optimizer': optimizer.state_dict(), 'epoch': epoch,
                'step_in_epoch': step_in_epoch, 'global_step': global_step,
                'rng_torch': torch.get_rng_state(), 'history': plain(history),
                'best_mpjpe': best, 'best_epoch': best_epoch,
                'best_metric': 'val_mpjpe' if val is not None else 'last',
                'args': plain({k: getattr(args, k, None) for k in RUN_OPTIONS}),
                'skeleton': plain(skeleton.to_dict()), 'mean_pose': mean_pose.clone(),
                'group_names': list(train.group_names or test.group_names),
                'description': train.description, 'synthetic': bool(train.synthetic)}

    crash_after = int(os.environ.get(CRASH_ENV, '0') or 0)
    steps_this_process = 0
    flip_gen = torch.Generator()
    baseline = mean_pose_baseline(mean_pose, test, skeleton)
    val_baseline = mean_pose_baseline(mean_pose, val, skeleton) if val is not None else None
    epoch = start_epoch
    while epoch < args.epochs and global_step < total_steps:
        loader.set_epoch(epoch)
        # one flip decision per training sample and epoch, the same on every rank
        flip_gen.manual_seed(args.seed * 1_000_003 + epoch)
        flips = torch.rand(len(train), generator=flip_gen) < 0.5
        n_steps = min(steps_per_epoch, start_step + total_steps - global_step)
        # a bar on a terminal; in a redirected log, a few plain lines (no \r)
        plain_progress = main_rank and not args.no_progress and not sys.stderr.isatty()
        marks = ({round(n_steps * k / PLAIN_PROGRESS_LINES)
                  for k in range(1, PLAIN_PROGRESS_LINES)} - {0, n_steps}
                 if plain_progress else set())
        bar = tqdm(total=n_steps, initial=start_step, desc=f'epoch {epoch + 1}/{args.epochs}',
                   disable=not main_rank or args.no_progress or plain_progress, leave=False,
                   dynamic_ncols=True, file=sys.stderr, mininterval=0.5)
        loss_sum, loss_n, t0 = 0.0, 0, time.perf_counter()
        step = start_step
        for x, y, _, idx in loader.iterate(start_step):
            if step >= n_steps:
                break
            if args.flip_augment:
                f = flips[idx]
                if f.any():
                    x, y = x.clone(), y.clone()
                    x[f] = skeleton.flip(x[f], lateral_axis=0)
                    y[f] = skeleton.flip(y[f], lateral_axis=0)
            lr = lr_at(args, global_step, steps_per_epoch, total_steps)
            for g in optimizer.param_groups:
                g['lr'] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = loss_fn(ddp(x), y)
            total = loss.detach().clone()
            if world > 1:
                dist.all_reduce(total)  # every rank sees a non-finite loss of any
            if not torch.isfinite(total):
                raise CLIError(f"training diverged at step {global_step + 1}: the loss is "
                               f"{float(total)} (lower --lr?); last.pt keeps the last "
                               f"finite weights")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            global_step += 1
            step += 1
            steps_this_process += 1
            loss_sum += float(loss.detach())
            loss_n += 1
            elapsed = time.perf_counter() - t0
            if step in marks:
                print(f"epoch {epoch + 1}/{args.epochs}: step {step}/{n_steps}, loss "
                      f"{loss_sum / loss_n:.4f}, "
                      f"{loss_n * args.batch_size / max(elapsed, 1e-9):.0f} samples/s",
                      file=sys.stderr, flush=True)
            bar.update(1)
            bar.set_postfix(loss=f'{loss_sum / loss_n:.4f}',
                            samples_per_s=f'{loss_n * args.batch_size / max(elapsed, 1e-9):.0f}',
                            refresh=False)
            if crash_after and steps_this_process >= crash_after:
                os._exit(17)  # testing hook: die like a killed job, no cleanup
            if args.checkpoint_every and step % args.checkpoint_every == 0 and step < n_steps:
                check_finite('after the step')
                if main_rank:
                    save(state(epoch, step), 'last.pt')
        bar.close()
        seconds = time.perf_counter() - t0
        train_loss = loss_sum / max(loss_n, 1)
        if world > 1:
            from pyg_skeleton.metrics import process_group_device
            t = torch.tensor([loss_sum, float(loss_n)], dtype=torch.float64,
                             device=process_group_device())  # NCCL reduces on the GPU
            dist.all_reduce(t)
            train_loss = float(t[0] / t[1].clamp_min(1))
        net = ddp.module if world > 1 else model
        check_finite(f'at the end of epoch {epoch + 1}')
        vmetrics = (evaluate(net, val, skeleton, args.eval_batch_size, args.flip_test, rank,
                             world, device) if val is not None else None)
        metrics = evaluate(net, test, skeleton, args.eval_batch_size, args.flip_test, rank,
                           world, device)
        row = {'epoch': epoch + 1, 'global_step': global_step, 'lr': lr,
               'train_loss': train_loss,
               'val_mpjpe': vmetrics['mpjpe'] if vmetrics else None,
               'val_p_mpjpe': vmetrics['p_mpjpe'] if vmetrics else None,
               'test_mpjpe': metrics['mpjpe'],
               'test_p_mpjpe': metrics['p_mpjpe'], 'test_n_mpjpe': metrics['n_mpjpe'],
               'test_pck': metrics['pck'], 'test_auc': metrics['auc'],
               'baseline_mpjpe': baseline['mpjpe'],
               'samples_per_s': loss_n * args.batch_size / max(seconds, 1e-9),
               'seconds': seconds}
        history.append(row)
        # model selection on the validation split only; without one, best =
        # last; an exploding epoch is never selected
        check, check_base = ((vmetrics['mpjpe'], val_baseline['mpjpe']) if vmetrics
                             else (metrics['mpjpe'], baseline['mpjpe']))
        exploding = not check <= EXPLODE_FACTOR * check_base
        if exploding and main_rank:
            log(f"warning: epoch {epoch + 1}: {'validation' if vmetrics else 'test'} MPJPE "
                f"{check:.4g} mm is above {EXPLODE_FACTOR:g}x the mean-pose baseline "
                f"({check_base:.1f} mm): the run is exploding (lower --lr?); this epoch "
                f"is not selected as best.pt", err=True)
        select = vmetrics['mpjpe'] if vmetrics else float('-inf')
        improved = not exploding and (vmetrics is None or select < best)
        if improved:
            best, best_epoch = select, epoch + 1
        epoch += 1
        start_step = 0
        if main_rank:
            log(f"epoch {row['epoch']:3d}  step {global_step:6d}  loss {train_loss:.4f}  "
                + (f"val MPJPE {row['val_mpjpe']:.1f} mm  " if vmetrics else '')
                + f"test MPJPE {row['test_mpjpe']:.1f} mm  P-MPJPE "
                f"{row['test_p_mpjpe']:.1f} mm  {row['samples_per_s']:.0f} samples/s")
            ck = state(epoch, 0)
            if improved:
                save(ck, 'best.pt')
            save(ck, 'last.pt')
            write_history(out, history, label)
        if world > 1:
            dist.barrier()

    net = ddp.module if world > 1 else model
    final = evaluate(net, test, skeleton, args.eval_batch_size, args.flip_test, rank, world,
                     device)
    final_val = (evaluate(net, val, skeleton, args.eval_batch_size, args.flip_test, rank, world,
                          device) if val is not None else None)
    # test metrics of the best (validation-selected, not exploding) checkpoint;
    # none when every epoch exploded
    best_final, best_step = (final, global_step) if best_epoch else (None, None)
    if world > 1:
        dist.barrier()
    if best_epoch and (out / 'best.pt').is_file():
        best_ckpt = load_checkpoint(out / 'best.pt')
        best_step = int(best_ckpt['global_step'])
        if best_step != global_step:
            import copy
            best_model = copy.deepcopy(net)
            best_model.load_state_dict(best_ckpt['model'])
            best_final = evaluate(best_model, test, skeleton, args.eval_batch_size,
                                  args.flip_test, rank, world, device)
    if main_rank:
        report = {'label': label, 'dataset': train.description, 'synthetic': train.synthetic,
                  'model': args.model, 'steps': global_step, 'processes': world,
                  'final': final, 'baseline': baseline,
                  'last': {'epoch': epoch, 'step': global_step, 'test': final,
                           'val': final_val},
                  'best': {'epoch': best_epoch, 'step': best_step,
                           'selected_on': 'val_mpjpe' if val is not None else 'last',
                           'val_mpjpe': best if val is not None and best_epoch else None,
                           'test': best_final},
                  'validation': ({'samples': len(val), 'fraction': args.val_fraction}
                                 if val is not None else None),
                  'args': plain({k: getattr(args, k, None) for k in RUN_OPTIONS})}
        atomic_write_text(out / 'report.json', json.dumps(report, indent=1))
        if not args.no_plots:
            try:
                if history:
                    atomic_output(out / 'curves.png',
                                 lambda path: plot_curves(history, path, label))
                k = min(args.samples, len(test))
                idx = torch.linspace(0, len(test) - 1, k).long()
                model.eval()
                with torch.no_grad():
                    pred = model(test.x[idx].to(device)).cpu()
                atomic_output(out / 'samples.png',
                             lambda path: plot_samples(pred, test.y[idx], skeleton, path, label,
                                                       test.x[idx]))
            except ImportError as e:
                if not (e.name or '').startswith('matplotlib'):
                    raise
                log(NO_PLOTS, err=True)
        log(report_table(final, baseline, f"Final test metrics: {label}"))
        if not best_epoch:
            log('\nno best.pt: every epoch was exploding')
        elif val is not None:
            log(f"\nbest.pt: epoch {best_epoch} (lowest validation MPJPE {best:.1f} mm): "
                  f"test MPJPE {best_final['mpjpe']:.1f} mm, P-MPJPE "
                  f"{best_final['p_mpjpe']:.1f} mm")
        elif best_step != global_step:
            log(f'\nno validation split (--val-fraction 0): best.pt is the last checkpoint '
                f'that was not exploding (epoch {best_epoch})')
        else:
            log('\nno validation split (--val-fraction 0): best.pt is the last checkpoint')
        written = [name for name in OUTPUT_NAMES if (out / name).is_file()]
        log(f"\noutputs in {out}/ ({', '.join(sorted(written))})")
    return 0


def run_config(args, skeleton: Skeleton, train, val, test, n_params: int, world: int,
               device, total_steps: int, global_step: int) -> Dict[str, Any]:
    """The ``config.json`` of a run: every resolved option and what they
    resolved to (version, model, skeleton, data, sizes)."""
    from pyg_skeleton import __version__
    options = {k: v for k, v in sorted(vars(args).items())
               if not k.startswith('_') and k != 'given_options'}
    return plain({'format': 'pyg_skeleton.train_config.v1', 'version': __version__,
                  'started': time.strftime('%Y-%m-%dT%H:%M:%S%z'), 'model': args.model,
                  'skeleton': {'name': skeleton.name, 'joints': list(skeleton.joint_names)},
                  'dataset': train.description, 'synthetic': bool(train.synthetic),
                  'samples': {'train': len(train), 'val': len(val) if val is not None else 0,
                              'test': len(test)},
                  'parameters': n_params, 'processes': world, 'device': str(device),
                  'total_steps': total_steps,
                  'resumed_at_step': global_step if args.resume else None,
                  'options': options})


def write_history(out: Path, history: List[Dict], label: str) -> None:
    keys = list(history[0])
    text = io.StringIO(newline='')
    w = csv.DictWriter(text, fieldnames=keys)
    w.writeheader()
    for row in history:
        w.writerow(row)
    atomic_write_text(out / 'metrics.csv', text.getvalue())
    atomic_write_text(out / 'metrics.json', json.dumps({'label': label, 'epochs': history},
                                                       indent=1))


# --------------------------------------------------------------- evaluate

def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--checkpoint', required=True, help='a best.pt / last.pt of pyg-skeleton train')
    add_data_arguments(p, defaults=False, training=False)
    p.add_argument('--mesh', default=None, metavar='FILE',
                   help='model hgn trained with --mesh: the same mesh file again (files '
                        'named in a checkpoint are not opened)')
    p.add_argument('--batch-size', type=int, default=2048,
                   help='evaluation batch size (default: %(default)s)')
    p.add_argument('--flip-test', action=argparse.BooleanOptionalAction, default=None,
                   help='test-time flip augmentation (default: as trained)')
    p.add_argument('--out', default=None, help='write the metrics as JSON to this file')
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out file')
    p.add_argument('--device', default='cpu',
                   help="where the model runs: 'cpu', 'cuda', 'cuda:1', ... (default: cpu)")


def evaluation_options(ckpt: Dict[str, Any], args) -> argparse.Namespace:
    """The options of an evaluation: the checkpoint's run with the data
    options given on the command line; data files only from the command
    line (a checkpoint is data, not a permission to open files).

    Raises:
        CLIError: The run read a file that the command line does not give
            (naming the option to pass).
    """
    stored = ckpt['args']
    run = argparse.Namespace(**{k: stored.get(k) for k in RUN_OPTIONS})
    if args.dataset is None and _is_file_dataset(stored['dataset']):
        raise CLIError(f"the checkpoint was trained on the file {stored['dataset']}; give "
                       f"--dataset PATH to evaluate on it (files named in a checkpoint are "
                       f"not opened)")
    run.dataset = stored['dataset'] if args.dataset is None else args.dataset
    same_data = run.dataset == stored['dataset']
    for key in DATA_PATH_OPTIONS:
        opt = '--' + key.replace('_', '-')
        if getattr(args, key) is None and (same_data or key == 'mesh') \
                and stored.get(key) is not None:
            raise CLIError(f"the checkpoint's run read {opt} {stored[key]}; give {opt} PATH "
                           f"to evaluate on it (files named in a checkpoint are not opened)")
        setattr(run, key, getattr(args, key))
    for key in ('test_actor', 'views', 'frame_step', 'max_test_frames', 'synthetic_test'):
        if getattr(args, key, None) not in (None, 'all'):  # 'all': run_evaluate loops
            setattr(run, key, getattr(args, key))
    check_options(vars(run))
    run.synthetic_train, run.max_frames = 1, 1  # only the test split is used
    run.val_fraction = 0.0
    return run


def checkpoint_settings(args, run, flip: bool, actors: Optional[List[int]]) -> Dict[str, Any]:
    """The settings of an evaluation that the command line did not give and
    that come from the checkpoint's run (option name -> value), those that
    matter for its data set: reported, since they change the numbers."""
    synthetic = run.dataset == 'synthetic'
    keys = ['dataset'] + (['test_actor'] if actors is not None else []) + ['views'] + (
        ['synthetic_test'] if synthetic else ['frame_step', 'max_test_frames'])
    out = {k: getattr(run, k) for k in keys if getattr(args, k, None) is None}
    if args.flip_test is None:
        out['flip_test'] = flip
    out['seed'] = run.seed  # of the virtual cameras (and of the synthetic poses)
    out['skeleton'] = run.skeleton
    return out


def _settings_line(settings: Dict[str, Any]) -> str:
    def one(key, value):
        if isinstance(value, bool):
            return f"--{'' if value else 'no-'}{key.replace('_', '-')}"
        if key == 'skeleton':
            return f"skeleton {value}"
        return f"--{key.replace('_', '-')} {'all' if value is None else value}"
    return 'settings from the checkpoint: ' + ', '.join(one(k, v) for k, v in settings.items())


def actor_mean(rows: Dict[int, Dict[str, Any]]) -> Dict[str, float]:
    """The unweighted mean over actors of the main metrics (and the total
    sample count)."""
    mean = {k: sum(r['metrics'][k] for r in rows.values()) / len(rows)
            for k in ('mpjpe', 'p_mpjpe', 'n_mpjpe', 'pck', 'auc')}
    mean['baseline_mpjpe'] = sum(r['baseline']['mpjpe'] for r in rows.values()) / len(rows)
    mean['samples'] = sum(r['samples'] for r in rows.values())
    return mean


def actor_table(rows: Dict[int, Dict[str, Any]], trained: List[int], title: str) -> str:
    """One row per actor (MPJPE, P-MPJPE, PCK, the mean-pose baseline) and
    their unweighted mean; actors of the checkpoint's training data are
    marked."""
    lines = [title, '', f"| {'actor':<9} | {'samples':>8} | {'MPJPE':>7} | {'P-MPJPE':>7} | "
             f"{'PCK':>5} | {'baseline':>8} |",
             f"|{'-' * 11}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 7}|{'-' * 10}|"]
    for actor, r in rows.items():
        m, b = r['metrics'], r['baseline']
        name = f"{actor}{' *' if actor in trained else ''}"
        lines.append(f"| {name:<9} | {r['samples']:8,} | {m['mpjpe']:7.1f} | "
                     f"{m['p_mpjpe']:7.1f} | {m['pck']:5.1f} | {b['mpjpe']:8.1f} |")
    mean = actor_mean(rows)
    lines.append(f"| {'mean':<9} | {mean['samples']:8,} | {mean['mpjpe']:7.1f} | "
                 f"{mean['p_mpjpe']:7.1f} | {mean['pck']:5.1f} | {mean['baseline_mpjpe']:8.1f} |")
    lines.append('(MPJPE, P-MPJPE and the baseline in mm, PCK@150mm in %; the mean is over '
                 'actors, unweighted)')
    if trained:
        lines.append("* in the checkpoint's training data: in-sample, not a held-out score")
    return '\n'.join(lines)


def run_evaluate(args) -> int:
    from pyg_skeleton.datasets.bandai import bandai_label, default_bandai_path
    from pyg_skeleton.datasets.lifting import dataset_actors
    from pyg_skeleton.inference import resolve_device
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1 (got {args.batch_size})")
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        raise CLIError(f"--device: {e}") from None
    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise CLIError(f"--out {out} is a folder; give a file name for the JSON")
    if out is not None and _same_path(out, args.checkpoint):
        raise CLIError(f"--out {out} is the checkpoint; give another file")
    ckpt = load_checkpoint(Path(args.checkpoint))
    if out is not None and (out.exists() or out.is_symlink()) and not args.overwrite:
        raise CLIError(f"{out} exists; use --overwrite to replace it")
    if out is not None and out.is_symlink():
        raise CLIError(f"{out} is a symbolic link; outputs are never written through links")
    if out is not None:  # a read-only or full disk is found before the evaluation
        probe_writable(out.parent)
    run = evaluation_options(ckpt, args)
    skeleton = Skeleton.from_dict(ckpt['skeleton'])  # checked by load_checkpoint
    if ckpt['model_name'] not in MODELS:
        raise CLIError(f"checkpoint model {ckpt['model_name']!r} is not available "
                       f"(known: {', '.join(MODELS)})")
    try:
        actors = dataset_actors(run.dataset, run.data)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e).splitlines()[0]) from None
    all_actors = args.test_actor == 'all'
    if all_actors and actors is None:
        raise CLIError(f"--test-actor all: the dataset {run.dataset} has no actors (only "
                       f"bandai and files of its layout do)")
    stored = ckpt['args']
    # the actors the checkpoint trained on, when it trained on these data
    trained = ([a for a in actors if a != stored.get('test_actor')]
               if actors is not None and run.dataset == stored.get('dataset')
               and _same_path(run.data, stored.get('data')) else [])
    flip = run.flip_test if args.flip_test is None else args.flip_test
    settings = checkpoint_settings(args, run, flip, actors)
    model, rows = None, {}
    for actor in (actors if all_actors else [run.test_actor]):
        run.test_actor = actor
        _, _, test = load_data(run, skeleton)
        check_joints(skeleton, test, 'test data')
        if model is None:
            model = make_model(ckpt['model_name'], skeleton, run, test.x[:2])
            try:
                model.load_state_dict(ckpt['model'])
            except RuntimeError as e:
                raise CLIError(f"checkpoint weights do not fit model {ckpt['model_name']!r}: "
                               f"{str(e).splitlines()[0]}") from None
        rows[actor] = {'samples': len(test),
                       'metrics': evaluate(model, test, skeleton, args.batch_size, flip,
                                           device=device),
                       'baseline': mean_pose_baseline(ckpt['mean_pose'], test, skeleton)}
    if all_actors:
        path = (run.data or default_bandai_path()) if run.dataset == 'bandai' else run.dataset
        label = f"{ckpt['model_name']} on {bandai_label(path)}, every actor"
    else:
        label = f"{ckpt['model_name']} on {test.description}"
    if test.synthetic:
        label += ' [SYNTHETIC DATA]'
    print(f"pyg-skeleton evaluate: {label}")
    print(_settings_line(settings))
    print()
    if all_actors:
        print(actor_table(rows, trained, f"flip test {flip}"))
    else:
        r = rows[run.test_actor]
        print(report_table(r['metrics'], r['baseline'],
                           f"{r['samples']:,} test samples, flip test {flip}"))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        result = {'label': label, 'synthetic': test.synthetic,
                  'checkpoint': str(args.checkpoint), 'from_checkpoint': plain(settings)}
        if all_actors:
            result['per_actor'] = {str(a): dict(r, in_training_data=a in trained)
                                   for a, r in rows.items()}
            result['mean_over_actors'] = actor_mean(rows)
        else:
            r = rows[run.test_actor]
            result.update(metrics=r['metrics'], baseline=r['baseline'])
        atomic_write_text(out, json.dumps(result, indent=1))
    return 0


class _Command:
    def __init__(self, help: str, add_arguments, run):
        self.HELP, self.add_arguments, self.run = help, add_arguments, run


train_command = _Command('train a 2D-to-3D lifting model', add_train_arguments, run_train)
evaluate_command = _Command('evaluate a checkpoint of pyg-skeleton train',
                            add_evaluate_arguments, run_evaluate)

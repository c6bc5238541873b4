r"""``pyg-skeleton train`` and ``evaluate``: the command line of the 2D-to-3D
lifting trainer, :class:`pyg_skeleton.training.Trainer`.

``train`` builds a :class:`~pyg_skeleton.training.TrainConfig` from its
options (each long option is the field of its name with ``_`` for ``-``,
``--batch-size`` is ``batch_size``; see
:mod:`pyg_skeleton.training.trainer` for what a run does and writes) and
runs :meth:`Trainer.fit <pyg_skeleton.training.Trainer.fit>`.

* ``--config FILE.json``: options from a JSON file, an object whose keys
  are the fields of :class:`~pyg_skeleton.training.TrainConfig`
  (``{"epochs": 20, "lr": 0.0005}``); options written on the command line
  win over the file's. The file is data, never code: an unknown key or a
  value of the wrong type is one line naming the file and the key.
* Progress: a bar on a terminal; when standard error is not a terminal, a
  plain line per quarter epoch, no ``\r``.
* ``--resume`` continues the run in ``--out`` with the options stored in
  its ``last.pt``. Options given with ``--resume`` (on the command line or
  in ``--config``) are applied (``--epochs`` and ``--max-steps`` extend the
  run, ``--checkpoint-every``, ``--eval-batch-size``) or, for those that
  define the run, refused when they differ from the run's; data files are
  reopened only when given again.
* Errors a user can fix (bad options, data or checkpoints, a diverging
  run) are one line with exit code 2.
* ``evaluate`` takes data files (``--data``, ``--inputs-2d``,
  ``--cameras``, a ``--dataset`` path, HGN's ``--mesh``) only from its
  command line, never from the checkpoint; the other settings it takes from
  the checkpoint are listed in its report. ``--test-actor all`` scores
  every actor of a Bandai-layout data set (a row each and their mean).
* Several processes: under ``torchrun`` the same command trains with
  :class:`~torch.nn.parallel.DistributedDataParallel` (``--batch-size`` is
  global), see :mod:`pyg_skeleton.training.trainer`.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyg_skeleton.cli.main import CLIError
from pyg_skeleton.files import atomic_write_text
from pyg_skeleton.nn.models.registry import MODELS, canonical_model_name
from pyg_skeleton.skeleton import Skeleton
from pyg_skeleton.training.checkpoint import load_checkpoint, plain
from pyg_skeleton.training.config import (
    DATA_PATH_OPTIONS,
    RESUME_ADJUSTABLE,
    RUN_OPTIONS,
    ConfigError,
    TrainConfig,
    TrainingError,
    check_options,
    read_config_file,
)
from pyg_skeleton.training.evaluation import evaluate, mean_pose_baseline, report_table
from pyg_skeleton.training.outputs import RunLog, prepare_out, probe_writable
from pyg_skeleton.training.trainer import Trainer, check_joints, load_data, make_model


def cli_message(e: TrainingError) -> str:
    """The message of a library error on the command line: an option of
    the command line is named as written there, e.g. ``--batch-size``."""
    if isinstance(e, ConfigError) and e.where is None:
        return f"--{e.option.replace('_', '-')} {e.problem} (got {e.value!r})"
    return str(e)


def _user_errors(run: Callable[[argparse.Namespace], int]) -> Callable:
    """:obj:`run` with the library's :class:`TrainingError` raised as
    :class:`CLIError` (one line, exit code 2)."""
    @functools.wraps(run)
    def wrapped(args):
        try:
            return run(args)
        except TrainingError as e:
            raise CLIError(cli_message(e)) from None
    return wrapped


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
    p.add_argument('--config', default=None, metavar='FILE.json',
                   help='options from a JSON file, {"option_name": value, ...} (the long '
                        'options with _ for -); options on the command line win')
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
    p.add_argument('--batch-order', choices=['sampler', 'stream'], default='sampler',
                   help="'sampler': each epoch shuffled with a generator seeded by the seed "
                        "and the epoch; 'stream': successive shuffles of one generator "
                        "(default: %(default)s)")
    p.add_argument('--eval-batch-size', type=int, default=2048,
                   help='batch size of validation and test (default: %(default)s)')
    p.add_argument('--lr', type=float, default=1e-3, help='learning rate (Adam)')
    p.add_argument('--lr-schedule', choices=['exp', 'exp_to_min', 'cosine', 'constant'],
                   default='exp',
                   help="'exp': lr * lr_decay ** epoch (continuous); 'exp_to_min': "
                        "exponential to --min-lr, decayed at every step; 'cosine': to "
                        "--min-lr")
    p.add_argument('--lr-decay', type=float, default=0.95, help='per-epoch factor of exp')
    p.add_argument('--min-lr', type=float, default=1e-5,
                   help='final learning rate of the cosine and exp_to_min schedules '
                        '(default: %(default)s)')
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
    p.add_argument('--loss', choices=['semgcn', 'mse'], default='semgcn',
                   help="'semgcn': squared joint errors summed per pose (plus the bone term "
                        "of --bone-weight); 'mse': mean squared coordinate error "
                        "(default: %(default)s)")
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
    p.add_argument('--device', default=None,
                   help="where a single process trains: 'cpu', 'cuda', 'cuda:1', ... "
                        "(default: the GPU when there is one; under torchrun each process "
                        "uses its LOCAL_RANK GPU)")


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


def _load_resume_args(args) -> dict[str, Any]:
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


def apply_config_file(args) -> None:
    """Sets the options of ``args.config`` (a JSON file, see
    :func:`~pyg_skeleton.training.read_config_file`) that the command line
    does not give; they count as given (for ``--resume``)."""
    given = given_options(args)
    values = read_config_file(args.config)
    for key, value in values.items():
        if key not in given:
            setattr(args, key, value)
    args.given_options = given | set(values)


def train_config(args) -> TrainConfig:
    """The :class:`TrainConfig` of the parsed options :obj:`args`.

    Raises:
        CLIError: A bad option value (e.g. ``--epochs must be at least 1``).
    """
    try:
        return TrainConfig(**{k: getattr(args, k) for k in TrainConfig.fields()})
    except ConfigError as e:
        raise CLIError(cli_message(e)) from None


@_user_errors
def run_train(args) -> int:
    if getattr(args, 'list_models', False):
        print('\n'.join(MODELS))
        return 0
    if getattr(args, 'config', None) is not None:
        apply_config_file(args)
    if args.out is None:
        args.out = str(Path('runs') / f'{args.model}-{Path(str(args.dataset)).stem}')
    prepare_out(Path(args.out), args.resume, args.overwrite)
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
    Trainer(config=train_config(args), log=log).fit()
    return 0


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


def evaluation_options(ckpt: dict[str, Any], args) -> argparse.Namespace:
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


def checkpoint_settings(args, run, flip: bool, actors: list[int] | None) -> dict[str, Any]:
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


def _settings_line(settings: dict[str, Any]) -> str:
    def one(key, value):
        if isinstance(value, bool):
            return f"--{'' if value else 'no-'}{key.replace('_', '-')}"
        if key == 'skeleton':
            return f"skeleton {value}"
        return f"--{key.replace('_', '-')} {'all' if value is None else value}"
    return 'settings from the checkpoint: ' + ', '.join(one(k, v) for k, v in settings.items())


def actor_mean(rows: dict[int, dict[str, Any]]) -> dict[str, float]:
    """The unweighted mean over actors of the main metrics (and the total
    sample count)."""
    mean = {k: sum(r['metrics'][k] for r in rows.values()) / len(rows)
            for k in ('mpjpe', 'p_mpjpe', 'n_mpjpe', 'pck', 'auc')}
    mean['baseline_mpjpe'] = sum(r['baseline']['mpjpe'] for r in rows.values()) / len(rows)
    mean['samples'] = sum(r['samples'] for r in rows.values())
    return mean


def actor_table(rows: dict[int, dict[str, Any]], trained: list[int], title: str) -> str:
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


@_user_errors
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

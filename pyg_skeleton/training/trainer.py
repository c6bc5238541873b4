r"""The 2D-to-3D lifting trainer: :class:`Trainer` fits a model of
:data:`~pyg_skeleton.nn.MODELS` (or any pose model) on a dataset of
:func:`~pyg_skeleton.datasets.lifting.load_lifting_splits` with the options
of a :class:`~pyg_skeleton.training.TrainConfig`; ``pyg-skeleton train`` is
a command line over it.

* Data: the dataset's poses rendered through virtual cameras; static tensor
  batches (:class:`~pyg_skeleton.datasets.lifting.TensorBatches`, or
  :class:`~pyg_skeleton.training.StreamBatches` with
  ``batch_order='stream'``), Adam on the SemGCN loss (or ``loss='mse'``),
  random horizontal flips (``flip_augment``), an ``exp``, ``exp_to_min``,
  ``cosine`` or ``constant`` learning-rate schedule (:func:`lr_at`).
* Validation: ``val_fraction`` (default 0.1) of the training data is held
  out (whole sequences or takes); ``best.pt`` is the checkpoint with the
  lowest **validation** MPJPE, never chosen on the test split. With
  ``val_fraction=0`` there is no validation split and ``best.pt`` is the
  last epoch's checkpoint.
* Outputs in ``config.out_dir``: ``config.json`` (every resolved option,
  the version, model, skeleton and data; written before the first step),
  ``train.log`` (the console's lines, from the start), ``metrics.csv`` and
  ``metrics.json`` (per epoch), ``last.pt`` and ``best.pt`` checkpoints
  (:mod:`~pyg_skeleton.training.checkpoint`), ``report.json`` (test metrics
  of the last and the best checkpoint, per joint and per group),
  ``curves.png`` and ``samples.png`` (only with matplotlib). An existing
  non-empty folder is never written into unless ``resume`` or ``overwrite``
  is set. Every output is written atomically; outputs that are symbolic
  links are refused, the folder is checked writable before any work.
* Resume: ``resume`` continues from ``last.pt`` (saved every epoch and
  every ``checkpoint_every`` steps) and reaches the same weights as an
  uninterrupted run: the batch order depends only on the seed and the
  epoch.
* Divergence: a non-finite loss or non-finite weights stop the run with a
  one-line :class:`~pyg_skeleton.training.TrainingError` before anything
  non-finite is saved; an epoch whose validation (or, without validation,
  test) MPJPE exceeds :data:`EXPLODE_FACTOR` times the mean-pose baseline
  is reported as exploding and never becomes ``best.pt``.
* Several processes: under ``torchrun`` the same code trains with
  :class:`~torch.nn.parallel.DistributedDataParallel` (``gloo`` on CPU,
  ``nccl`` on GPU); each rank takes its share of every global batch
  (``batch_size`` is global), batch normalisation uses statistics over the
  global batch (:class:`~pyg_skeleton.nn.DistBatchNorm1d`), and evaluation
  metrics are summed across ranks, so the run matches a single process
  with the same global batch. The initial weights, batch order and flips
  are the same on every rank; the dropout masks differ (each rank's random
  stream is seeded by its rank).

Example::

    from pyg_skeleton.training import Trainer, TrainConfig

    config = TrainConfig(model='semgcn', epochs=2, synthetic_train=2000,
                         out='runs/mine')
    report = Trainer(config=config).fit()
    print(report['final']['mpjpe'])
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from pyg_skeleton.files import atomic_output, atomic_write_text, cpu_state_dict
from pyg_skeleton.nn.models.registry import MODELS, build_model
from pyg_skeleton.nn.norm import convert_dist_batchnorm
from pyg_skeleton.plotting import NO_PLOTS
from pyg_skeleton.skeleton import Skeleton

from .batches import make_batches
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, plain, save_checkpoint
from .config import RESUME_ADJUSTABLE, RUN_OPTIONS, ConfigError, TrainConfig, TrainingError
from .distributed import setup_distributed
from .evaluation import evaluate, mean_pose_baseline, report_table
from .outputs import (
    OUTPUT_NAMES,
    RunLog,
    check_output_folder,
    plot_curves,
    plot_samples,
    prepare_out,
    run_config,
    write_history,
)

__all__ = ['Trainer', 'CRASH_ENV', 'EXPLODE_FACTOR', 'PLAIN_PROGRESS_LINES', 'lr_at',
           'get_skeleton', 'load_data', 'check_joints', 'make_model']

#: Testing hook: exit hard (``os._exit``) after this many training steps of
#: the process, as a crash or a killed job would.
CRASH_ENV = 'PYG_SKELETON_CRASH_AFTER_STEPS'
#: An epoch whose selection MPJPE exceeds this many times the mean-pose
#: baseline's is flagged as exploding and never selected as ``best.pt``.
EXPLODE_FACTOR = 10.0
#: Progress lines per epoch when stderr is not a terminal (no progress bar).
PLAIN_PROGRESS_LINES = 4

Splits = tuple[Any, Any | None, Any]


def lr_at(config, step: float, steps_per_epoch: int, total_steps: int) -> float:
    r"""The learning rate of :obj:`config`'s schedule at :obj:`step`:
    ``constant``; ``exp``, :math:`\mathrm{lr} \cdot
    \mathrm{lr\_decay}^{\mathrm{step} / \mathrm{steps\_per\_epoch}}`
    (continuous); ``exp_to_min``, :math:`\mathrm{lr} \cdot
    \gamma^{\mathrm{step}}` with :math:`\gamma = (\mathrm{min\_lr} /
    \mathrm{lr})^{1 / \mathrm{total\_steps}}`, from ``lr`` to ``min_lr``
    over :obj:`total_steps` with a decay at every step (as
    :class:`~torch.optim.lr_scheduler.ExponentialLR` stepped once per
    step); ``cosine``, from ``lr`` to ``min_lr`` over :obj:`total_steps`."""
    if config.lr_schedule == 'constant':
        return config.lr
    if config.lr_schedule == 'exp':
        return config.lr * config.lr_decay ** (step / max(steps_per_epoch, 1))
    if config.lr_schedule == 'exp_to_min':
        gamma = (config.min_lr / config.lr) ** (1 / max(total_steps, 1))
        return config.lr * gamma ** step
    t = min(step / max(total_steps, 1), 1.0)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * t))


def get_skeleton(name: str) -> Skeleton:
    """A preset by name, or a skeleton JSON file.

    Raises:
        TrainingError: An unknown name, or an unreadable or invalid file.
    """
    if name in Skeleton.presets():
        return Skeleton.preset(name)
    if not (name.lower().endswith('.json') or Path(name).is_file()):
        raise TrainingError(f"unknown skeleton {name!r} (choose from "
                            f"{', '.join(Skeleton.presets())}, or give a skeleton JSON file)")
    try:
        return Skeleton.load(name)
    except OSError as e:
        raise TrainingError(f"cannot read skeleton file {name}: {e.strerror or e}") from None
    except ValueError as e:
        raise TrainingError(str(e).splitlines()[0]) from None


def _data_skeleton(config, skeleton: Skeleton | None):
    """The ``skeleton`` of :func:`load_lifting_splits`: a preset name, or the
    skeleton of a file (its synthetic poses need a ``body_map``)."""
    name = getattr(config, 'skeleton', None) or 'h36m17'
    if name in Skeleton.presets():
        return name
    skeleton = skeleton if skeleton is not None else get_skeleton(name)
    if config.dataset == 'synthetic' and skeleton.body_map is None:
        raise TrainingError(f"skeleton {name} has no \"body_map\", so there are no synthetic "
                            f"poses for it: add one (a joint map onto the smpl24 body, see "
                            f"pyg_skeleton.datasets.synthetic), or train on poses of its joints "
                            f"with --dataset FILE.npz (a 'positions' array [F, "
                            f"{skeleton.num_joints}, 3] in metres)")
    return skeleton


def load_data(config, skeleton: Skeleton | None = None) -> Splits:
    """``(train, val, test)`` of :obj:`config`'s data (a
    :class:`TrainConfig` or an object with its attributes); ``val`` is
    :obj:`None` when ``val_fraction`` is 0. :obj:`skeleton`: the run's
    skeleton when ``config.skeleton`` is a file (else read from it).

    Raises:
        TrainingError: Missing or bad data, an empty or non-finite split.
    """
    from pyg_skeleton.datasets.lifting import load_lifting_splits
    data_skeleton = _data_skeleton(config, skeleton)
    try:
        train, val, test = load_lifting_splits(
            config.dataset, config.data,
            val_fraction=getattr(config, 'val_fraction', 0.0) or 0.0,
            test_actor=config.test_actor, views=config.views,
            frame_step=config.frame_step, seed=config.seed,
            synthetic_train=config.synthetic_train,
            synthetic_test=config.synthetic_test, max_frames=config.max_frames,
            max_test_frames=getattr(config, 'max_test_frames', None),
            skeleton=data_skeleton,
            inputs_2d=getattr(config, 'inputs_2d', None),
            cameras=getattr(config, 'cameras', None))
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise TrainingError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    for name, split in (('training data', train), ('validation data', val),
                        ('test data', test)):
        if split is None:
            continue
        if len(split) == 0:
            raise TrainingError(f"{name} is empty" + (' (lower --val-fraction or use 0)'
                                                      if split is val else ''))
        try:
            split.check_finite(name)
        except ValueError as e:
            raise TrainingError(str(e)) from None
    return train, val, test


def check_joints(skeleton: Skeleton, data, what: str = 'data') -> None:
    """Raises :class:`TrainingError` when :obj:`data` has another number of
    joints than :obj:`skeleton`."""
    if data.num_joints != skeleton.num_joints:
        raise TrainingError(f"{what} has {data.num_joints} joints but skeleton "
                            f"{skeleton.name!r} has {skeleton.num_joints} (skeleton/model "
                            f"joint-count mismatch)")


def make_model(name: str, skeleton: Skeleton, config, sample_x: Tensor) -> torch.nn.Module:
    """The model :obj:`name` of :data:`~pyg_skeleton.nn.MODELS` with the
    options of :obj:`config`, checked on :obj:`sample_x` (it must give a
    3D pose per 2D one), in training mode.

    Raises:
        TrainingError: The model cannot be built or gives the wrong shape.
    """
    try:
        model = build_model(name, skeleton, config)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    model.eval()
    with torch.no_grad():
        try:
            out = model(sample_x)
        except Exception as e:
            raise TrainingError(f"model {name!r} failed on input {list(sample_x.shape)}: "
                                f"{str(e).splitlines()[0]}") from None
    expected = list(sample_x.shape[:-1]) + [3]
    if list(out.shape) != expected:
        raise TrainingError(f"model {name!r} outputs {list(out.shape)} for input "
                            f"{list(sample_x.shape)}, expected {expected} (joint-count "
                            f"mismatch?)")
    model.train()
    return model


@dataclass(eq=False)
class _Run:
    """The state that the steps of :meth:`Trainer.fit` share: the run's data,
    model, optimizer and batches, and where the run stands."""
    rank: int
    world: int
    device: torch.device
    train: Any
    val: Any
    test: Any
    model: torch.nn.Module
    model_name: str
    run_options: dict[str, Any]
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: Any
    steps_per_epoch: int
    total_steps: int
    mean_pose: Tensor
    net: torch.nn.Module | None = None  # the model, or its DistributedDataParallel wrapper
    label: str = ''
    epoch: int = 0
    start_step: int = 0  # the step of the epoch where training starts (resuming)
    global_step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = math.inf  # the selection metric of best.pt
    best_epoch: int = 0
    lr: float | None = None
    steps_this_process: int = 0
    crash_after: int = 0
    flip_gen: torch.Generator = field(default_factory=torch.Generator)
    baseline: dict[str, Any] | None = None
    val_baseline: dict[str, Any] | None = None

    @property
    def main_rank(self) -> bool:
        return self.rank == 0


class Trainer:
    r"""Trains a 2D-to-3D lifting model with the options of a
    :class:`TrainConfig` (see the module docs for what a run does and
    writes); ``pyg-skeleton train`` runs its ``fit()``.

    Args:
        model (torch.nn.Module, optional): The model, mapping 2D poses
            :math:`(*, J, 2)` to 3D poses :math:`(*, J, 3)`. (default:
            :obj:`None`: the model ``config.model`` of
            :data:`~pyg_skeleton.nn.MODELS`, built after the data are
            loaded, from the seed, as ``pyg-skeleton train`` does). A model
            of one's own is stored in the checkpoints under its class name,
            with ``hidden_channels``, ``num_layers`` and ``dropout``
            :obj:`None` (the options of the models of
            :data:`~pyg_skeleton.nn.MODELS` do not describe it). A callable
            without arguments that returns the model is called where
            :meth:`fit` draws the initial weights (after seeding with
            ``config.seed`` and loading the data), so that they depend on
            the seed only.
        config (TrainConfig, optional): The options. (default:
            :obj:`TrainConfig()`)
        data (tuple, optional): ``(train, val, test)``
            :class:`~pyg_skeleton.datasets.lifting.LiftingTensors` splits
            (``val`` may be :obj:`None`; so may ``test``: then nothing is
            scored on a test split, neither per epoch nor in the report,
            whose ``'final'`` is :obj:`None`, for those who score the
            model themselves). (default: :obj:`None`: those of
            :func:`load_data` for :obj:`config`)
        skeleton (pyg_skeleton.Skeleton, optional): The skeleton of the
            model and the data. (default: :obj:`None`: ``config.skeleton``)
        log (callable, optional): ``log(text, err=False)`` for the run's
            lines. (default: a ``RunLog``: the console and ``train.log``)
    """

    def __init__(self, model: torch.nn.Module | Callable[[], torch.nn.Module] | None = None,
                 config: TrainConfig | None = None, *, data: Splits | None = None,
                 skeleton: Skeleton | None = None,
                 log: Callable[..., None] | None = None):
        self.model = model
        self._own_model = model is not None
        self.config = config if config is not None else TrainConfig()
        self.data = data
        self.skeleton = skeleton
        self.log = log if log is not None else RunLog()
        self.history: list[dict[str, Any]] = []
        self.report: dict[str, Any] | None = None

    @property
    def out(self) -> Path:
        """The output folder (``config.out_dir``)."""
        return self.config.out_dir

    def _check(self) -> None:
        config = self.config
        if self.model is None and config.model not in MODELS:
            raise TrainingError(f"unknown model {config.model!r} (choose from "
                                f"{', '.join(MODELS)})")
        if config.mesh is not None and config.model != 'hgn':
            raise TrainingError(f"--mesh is an option of model hgn, not of {config.model!r}")
        if config.loss != 'semgcn' and config.bone_weight:
            raise TrainingError(f"--bone-weight is a term of the semgcn loss, not of "
                                f"--loss {config.loss}")
        if config.lr_schedule == 'exp_to_min' and not config.min_lr > 0:
            raise TrainingError("--lr-schedule exp_to_min decays to --min-lr, which must be "
                                "positive (got 0)")

    def _device(self) -> torch.device | None:
        """The device of ``config.device`` (checked), or :obj:`None` for
        :func:`setup_distributed`'s choice."""
        name = self.config.device
        if name is None:
            return None
        if int(os.environ.get('WORLD_SIZE', '1')) > 1:
            raise ConfigError('device', name, 'cannot be set when torchrun starts several '
                                              'processes: each trains on the GPU of its '
                                              'LOCAL_RANK, or on the CPU')
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            device = None
        if device is None or device.type not in ('cpu', 'cuda'):
            raise ConfigError('device', name, "must be 'cpu', 'cuda' or 'cuda:N'")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if device.type == 'cuda' and (device.index or 0) >= count:
            raise ConfigError('device', name, f"names a GPU this machine does not have "
                                              f"({count} CUDA device{'s' * (count != 1)})")
        return device

    def fit(self) -> dict[str, Any]:
        """Trains (or, with ``config.resume``, continues training) and
        writes the outputs.

        Returns:
            dict: The run's report (``report.json``): the test metrics of
            the last (``'final'``) and the best checkpoint, the mean-pose
            baseline, the options.

        Raises:
            TrainingError: Bad data or options, an output folder holding
                another run, a diverging run (one line each).
            OSError: The output folder is not writable or the disk full.
        """
        config = self.config
        prepare_out(self.out, config.resume, config.overwrite)
        self._check()
        if self.skeleton is None:
            self.skeleton = get_skeleton(config.skeleton)
        if int(os.environ.get('RANK', '0')) == 0:
            # before any work: a read-only or full disk is found now, not after an epoch
            check_output_folder(self.out)
        owned_group = not (dist.is_available() and dist.is_initialized())
        chosen = self._device()  # before a process group starts
        rank, world, device = setup_distributed()
        device = chosen if chosen is not None else device
        try:
            return self._fit(rank, world, device)
        finally:
            if isinstance(self.log, RunLog):
                self.log.close()
            if world > 1 and owned_group and dist.is_initialized():
                dist.destroy_process_group()

    def _fit(self, rank: int, world: int, device) -> dict[str, Any]:
        run = self._prepare(rank, world, device)
        while run.epoch < self.config.epochs and run.global_step < run.total_steps:
            loss_sum, loss_n, seconds = self._train_epoch(run)
            self._end_epoch(run, loss_sum, loss_n, seconds)
            if world > 1:
                dist.barrier()
        return self._finish(run)

    def _prepare(self, rank: int, world: int, device) -> _Run:
        """Everything before the first step: the seed, the data, the model,
        the loss, the optimizer, the batches, the state of a resumed run and
        the opening outputs."""
        from pyg_skeleton.nn.loss import SemGCNLoss

        args, skeleton = self.config, self.skeleton
        if args.batch_size % world:
            raise TrainingError(f"--batch-size {args.batch_size} is not divisible by the "
                                f"{world} processes")
        # the order of the draws: seed, data, initial weights (as before the library)
        torch.manual_seed(args.seed)
        if self.data is None:
            self.data = load_data(args)
        train, val, test = self.data
        check_joints(skeleton, train, 'training data')
        if test is not None:
            check_joints(skeleton, test, 'test data')
        # a model of one's own is stored under its class name, without the
        # options that build the models of MODELS (they do not describe it)
        run_options = {k: getattr(args, k) for k in RUN_OPTIONS}
        if self.model is None:
            self.model = make_model(args.model, skeleton, args, train.x[:2])
        elif not isinstance(self.model, torch.nn.Module):  # a builder: weights drawn now
            self.model = self.model()
            if not isinstance(self.model, torch.nn.Module):
                raise TrainingError(f"the model builder returned a "
                                    f"{type(self.model).__name__}, not a torch.nn.Module")
        if self._own_model:
            run_options.update(model=type(self.model).__name__, hidden_channels=None,
                               num_layers=None, dropout=None)
        model = self.model
        if world > 1:  # before the optimizer sees the parameters
            convert_dist_batchnorm(model)
        model.to(device)
        if len(train) < args.batch_size:
            raise TrainingError(f"training data has {len(train)} samples, fewer than "
                                f"--batch-size {args.batch_size}")
        mean_pose = train.y.reshape(-1, *train.y.shape[-2:]).mean(0)  # of poses, not clips
        loss_fn = (SemGCNLoss(skeleton, bone_weight=args.bone_weight) if args.loss == 'semgcn'
                   else torch.nn.MSELoss()).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr,
                                     weight_decay=args.weight_decay)
        loader = make_batches(args, train, rank, world)
        steps_per_epoch = len(loader)
        if args.steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
        total_steps = steps_per_epoch * args.epochs
        if args.max_steps:
            total_steps = min(total_steps, args.max_steps)
        run = _Run(rank=rank, world=world, device=device, train=train, val=val, test=test,
                   model=model, model_name=run_options['model'], run_options=run_options,
                   loss_fn=loss_fn, optimizer=optimizer, loader=loader,
                   steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                   mean_pose=mean_pose)
        if args.resume:
            self._resume(run)
        self.history = run.history
        if rank > 0:
            # Dropout must differ between ranks (they see different samples);
            # the initial weights were drawn above from the common seed, and
            # the batch order and flips have generators of their own. Rank 0
            # keeps the stream of a single process.
            torch.manual_seed((args.seed * 1_000_003 + rank * 7_919 + run.global_step) % 2 ** 63)
        if world > 1:
            run.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == 'cuda' else None,
                broadcast_buffers=False)
        else:
            run.net = model
        run.label = f"{run.model_name} on {train.description}"
        if train.synthetic:
            run.label += ' [SYNTHETIC DATA]'
        if run.main_rank:
            self._write_start(run.label, world, device, total_steps, run.global_step)
        run.crash_after = int(os.environ.get(CRASH_ENV, '0') or 0)
        run.baseline = mean_pose_baseline(mean_pose, test, skeleton) if test is not None else None
        run.val_baseline = (mean_pose_baseline(mean_pose, val, skeleton) if val is not None
                            else None)
        return run

    def _resume(self, run: _Run) -> None:
        """Continues from ``last.pt``: its weights, optimizer state, random
        state, position and history; the options that define the run must
        be the checkpoint's."""
        out = self.out
        ckpt = load_checkpoint(out / 'last.pt')
        for key in RUN_OPTIONS:
            old = ckpt['args'].get(key, run.run_options[key])
            if key not in RESUME_ADJUSTABLE and old != run.run_options[key]:
                raise TrainingError(f"{out / 'last.pt'}: the run has {key}={old!r}, not "
                                    f"{run.run_options[key]!r}; a resumed run keeps the options "
                                    f"that define it")
        try:
            run.model.load_state_dict(ckpt['model'])
            run.optimizer.load_state_dict(ckpt['optimizer'])
        except (RuntimeError, ValueError, KeyError) as e:
            raise TrainingError(f"{out / 'last.pt'}: the weights or optimizer state do not "
                                f"fit model {run.model_name!r}: {str(e).splitlines()[0]}") \
                from None
        torch.set_rng_state(ckpt['rng_torch'])
        run.epoch, run.start_step = int(ckpt['epoch']), int(ckpt['step_in_epoch'])
        run.global_step = int(ckpt['global_step'])
        run.history = list(ckpt['history'])
        run.best = float(ckpt['best_mpjpe'])
        run.best_epoch = int(ckpt.get('best_epoch', 0))

    def _train_epoch(self, run: _Run) -> tuple[float, int, float]:
        """The steps of epoch ``run.epoch`` (from ``run.start_step`` when
        resuming) with their progress display and mid-epoch checkpoints.
        Returns the summed loss, the number of steps and the seconds."""
        from tqdm import tqdm

        args, epoch = self.config, run.epoch
        run.loader.set_epoch(epoch)
        # one flip decision per training sample and epoch, the same on every rank
        run.flip_gen.manual_seed(args.seed * 1_000_003 + epoch)
        flips = torch.rand(len(run.train), generator=run.flip_gen) < 0.5
        n_steps = min(run.steps_per_epoch, run.start_step + run.total_steps - run.global_step)
        # a bar on a terminal; in a redirected log, a few plain lines (no \r)
        plain_progress = run.main_rank and not args.no_progress and not sys.stderr.isatty()
        marks = ({round(n_steps * k / PLAIN_PROGRESS_LINES)
                  for k in range(1, PLAIN_PROGRESS_LINES)} - {0, n_steps}
                 if plain_progress else set())
        bar = tqdm(total=n_steps, initial=run.start_step,
                   desc=f'epoch {epoch + 1}/{args.epochs}',
                   disable=not run.main_rank or args.no_progress or plain_progress,
                   leave=False, dynamic_ncols=True, file=sys.stderr, mininterval=0.5)
        loss_sum, loss_n, t0 = 0.0, 0, time.perf_counter()
        step = run.start_step
        for x, y, _, idx in run.loader.iterate(run.start_step):
            if step >= n_steps:
                break
            loss = self._step(run, x, y, flips[idx] if args.flip_augment else None)
            step += 1
            loss_sum += loss
            loss_n += 1
            elapsed = time.perf_counter() - t0
            if step in marks:
                print(f"epoch {epoch + 1}/{args.epochs}: step {step}/{n_steps}, loss "
                      f"{loss_sum / loss_n:.4f}, "
                      f"{loss_n * args.batch_size / max(elapsed, 1e-9):.0f} samples/s",
                      file=sys.stderr, flush=True)
            bar.update(1)
            bar.set_postfix(
                loss=f'{loss_sum / loss_n:.4f}',
                samples_per_s=f'{loss_n * args.batch_size / max(elapsed, 1e-9):.0f}',
                refresh=False)
            if run.crash_after and run.steps_this_process >= run.crash_after:
                os._exit(17)  # testing hook: die like a killed job, no cleanup
            if args.checkpoint_every and step % args.checkpoint_every == 0 and step < n_steps:
                self._check_finite(run, 'after the step')
                if run.main_rank:
                    save_checkpoint(self._state(run, epoch, step), self.out / 'last.pt')
        bar.close()
        return loss_sum, loss_n, time.perf_counter() - t0

    def _step(self, run: _Run, x: Tensor, y: Tensor, flips: Tensor | None) -> float:
        """One optimizer step on the batch :obj:`(x, y)`, its samples with
        a true entry of :obj:`flips` mirrored; returns the loss."""
        args = self.config
        if flips is not None and flips.any():
            x, y = x.clone(), y.clone()
            x[flips] = self.skeleton.flip(x[flips], lateral_axis=0)
            y[flips] = self.skeleton.flip(y[flips], lateral_axis=0)
        run.lr = lr_at(args, run.global_step, run.steps_per_epoch, run.total_steps)
        for g in run.optimizer.param_groups:
            g['lr'] = run.lr
        x, y = x.to(run.device, non_blocking=True), y.to(run.device, non_blocking=True)
        loss = run.loss_fn(run.net(x), y)
        total = loss.detach().clone()
        if run.world > 1:
            dist.all_reduce(total)  # every rank sees a non-finite loss of any
        if not torch.isfinite(total):
            raise TrainingError(f"training diverged at step {run.global_step + 1}: the loss "
                                f"is {float(total)} (lower --lr?); last.pt keeps the "
                                f"last finite weights")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()
        run.global_step += 1
        run.steps_this_process += 1
        return float(loss.detach())

    def _evaluate_split(self, run: _Run, data) -> dict[str, Any]:
        args = self.config
        return evaluate(run.model, data, self.skeleton, args.eval_batch_size, args.flip_test,
                        run.rank, run.world, run.device)

    def _end_epoch(self, run: _Run, loss_sum: float, loss_n: int, seconds: float) -> None:
        """After the steps of an epoch: its validation and test metrics, the
        selection of ``best.pt``, the log line, the checkpoints and the
        metrics files."""
        args, log = self.config, self.log
        train_loss = loss_sum / max(loss_n, 1)
        if run.world > 1:
            from pyg_skeleton.metrics import process_group_device
            t = torch.tensor([loss_sum, float(loss_n)], dtype=torch.float64,
                             device=process_group_device())  # NCCL reduces on the GPU
            dist.all_reduce(t)
            train_loss = float(t[0] / t[1].clamp_min(1))
        self._check_finite(run, f'at the end of epoch {run.epoch + 1}')
        vmetrics = self._evaluate_split(run, run.val) if run.val is not None else None
        metrics = self._evaluate_split(run, run.test) if run.test is not None else None
        row = {'epoch': run.epoch + 1, 'global_step': run.global_step, 'lr': run.lr,
               'train_loss': train_loss,
               'val_mpjpe': vmetrics['mpjpe'] if vmetrics else None,
               'val_p_mpjpe': vmetrics['p_mpjpe'] if vmetrics else None,
               **{f'test_{k}': metrics[k] if metrics else None
                  for k in ('mpjpe', 'p_mpjpe', 'n_mpjpe', 'pck', 'auc')},
               'baseline_mpjpe': run.baseline['mpjpe'] if metrics else None,
               'samples_per_s': loss_n * args.batch_size / max(seconds, 1e-9),
               'seconds': seconds}
        run.history.append(row)
        # model selection on the validation split only; without one, best =
        # last; an exploding epoch is never selected (without validation and
        # test splits nothing tells one)
        check, check_base = ((vmetrics['mpjpe'], run.val_baseline['mpjpe']) if vmetrics
                             else (metrics['mpjpe'], run.baseline['mpjpe']) if metrics
                             else (0.0, 0.0))
        exploding = not check <= EXPLODE_FACTOR * check_base
        if exploding and run.main_rank:
            log(f"warning: epoch {run.epoch + 1}: {'validation' if vmetrics else 'test'} MPJPE "
                f"{check:.4g} mm is above {EXPLODE_FACTOR:g}x the mean-pose baseline "
                f"({check_base:.1f} mm): the run is exploding (lower --lr?); this epoch "
                f"is not selected as best.pt", err=True)
        select = vmetrics['mpjpe'] if vmetrics else float('-inf')
        improved = not exploding and (vmetrics is None or select < run.best)
        if improved:
            run.best, run.best_epoch = select, run.epoch + 1
        run.epoch += 1
        run.start_step = 0
        if run.main_rank:
            log(f"epoch {row['epoch']:3d}  step {run.global_step:6d}  loss {train_loss:.4f}  "
                + (f"val MPJPE {row['val_mpjpe']:.1f} mm  " if vmetrics else '')
                + (f"test MPJPE {row['test_mpjpe']:.1f} mm  P-MPJPE "
                   f"{row['test_p_mpjpe']:.1f} mm  " if metrics else '')
                + f"{row['samples_per_s']:.0f} samples/s")
            ck = self._state(run, run.epoch, 0)
            if improved:
                save_checkpoint(ck, self.out / 'best.pt')
            save_checkpoint(ck, self.out / 'last.pt')
            write_history(self.out, run.history, run.label)

    def _finish(self, run: _Run) -> dict[str, Any]:
        """The test (and validation) metrics of the last and the best
        weights, and the report (written by the first process)."""
        args, out, val, test = self.config, self.out, run.val, run.test
        final = self._evaluate_split(run, test) if test is not None else None
        final_val = self._evaluate_split(run, val) if val is not None else None
        # test metrics of the best (validation-selected, not exploding) checkpoint;
        # none when every epoch exploded
        best_final, best_step = (final, run.global_step) if run.best_epoch else (None, None)
        if run.world > 1:
            dist.barrier()
        if run.best_epoch and (out / 'best.pt').is_file():
            best_ckpt = load_checkpoint(out / 'best.pt')
            best_step = int(best_ckpt['global_step'])
            if best_step != run.global_step and test is not None:
                best_model = copy.deepcopy(run.model)
                best_model.load_state_dict(best_ckpt['model'])
                best_final = evaluate(best_model, test, self.skeleton, args.eval_batch_size,
                                      args.flip_test, run.rank, run.world, run.device)
        report = {'label': run.label, 'dataset': run.train.description,
                  'synthetic': run.train.synthetic, 'model': run.model_name,
                  'steps': run.global_step, 'processes': run.world,
                  'final': final, 'baseline': run.baseline,
                  'last': {'epoch': run.epoch, 'step': run.global_step, 'test': final,
                           'val': final_val},
                  'best': {'epoch': run.best_epoch, 'step': best_step,
                           'selected_on': 'val_mpjpe' if val is not None else 'last',
                           'val_mpjpe': run.best if val is not None and run.best_epoch else None,
                           'test': best_final},
                  'validation': ({'samples': len(val), 'fraction': args.val_fraction}
                                 if val is not None else None),
                  'args': plain(run.run_options)}
        self.report = report
        if run.main_rank:
            self._write_report(report, val is not None, test, run.device)
        return report

    def _check_finite(self, run: _Run, what: str) -> None:
        # on every rank (the weights agree), so that all of them stop
        for name, p in run.model.state_dict().items():
            if p.is_floating_point() and not torch.isfinite(p).all():
                raise TrainingError(f"training diverged at step {run.global_step}: weight "
                                    f"{name!r} is NaN or infinite {what} (lower --lr?); "
                                    f"nothing non-finite was saved")

    def _state(self, run: _Run, epoch: int, step_in_epoch: int) -> dict[str, Any]:
        """The checkpoint of the run at :obj:`epoch` and :obj:`step_in_epoch`."""
        train, test = run.train, run.test
        return {'format': CHECKPOINT_FORMAT, 'model_name': run.model_name,
                'model': cpu_state_dict(run.model),
                'optimizer': run.optimizer.state_dict(), 'epoch': epoch,
                'step_in_epoch': step_in_epoch, 'global_step': run.global_step,
                'rng_torch': torch.get_rng_state(), 'history': plain(run.history),
                'best_mpjpe': run.best, 'best_epoch': run.best_epoch,
                'best_metric': 'val_mpjpe' if run.val is not None else 'last',
                'args': plain(run.run_options),
                'skeleton': plain(self.skeleton.to_dict()), 'mean_pose': run.mean_pose.clone(),
                'group_names': list(train.group_names
                                    or (test.group_names if test is not None else [])),
                'description': train.description, 'synthetic': bool(train.synthetic)}

    def _write_start(self, label: str, world: int, device, total_steps: int,
                     global_step: int) -> None:
        """The output folder, ``config.json`` and the opening lines of the
        log (``train.log``), before the first step."""
        args, out, log, model = self.config, self.out, self.log, self.model
        train, val, test = self.data
        out.mkdir(parents=True, exist_ok=True)
        check_output_folder(out)
        if args.overwrite and not args.resume:
            for name in OUTPUT_NAMES:
                (out / name).unlink(missing_ok=True)
        n_params = sum(p.numel() for p in model.parameters())
        # written before the first step: a run that dies early still says what it was
        atomic_write_text(out / 'config.json', json.dumps(run_config(
            args, self.skeleton, train, val, test, n_params, world, device, total_steps,
            global_step), indent=1))
        if isinstance(log, RunLog):
            log.open(out / 'train.log', append=args.resume)
        log(f"pyg-skeleton train: {label}")
        log(f"  {len(train):,} training / "
            + (f"{len(val):,} validation / " if val is not None else '')
            + (f"{len(test):,} test samples, " if test is not None else 'no test split, ')
            + f"{n_params:,} parameters, "
            f"{world} process(es), batch {args.batch_size}, {total_steps} steps"
            + (f", resuming at step {global_step}" if args.resume else ''))

    def _write_report(self, report: dict[str, Any], validated: bool, test, device) -> None:
        """``report.json``, the plots and the closing lines of the log."""
        args, out, log, label = self.config, self.out, self.log, report['label']
        atomic_write_text(out / 'report.json', json.dumps(report, indent=1))
        if not args.no_plots and test is not None:
            try:
                self._plot(label, test, device)
            except ImportError as e:
                if not (e.name or '').startswith('matplotlib'):
                    raise
                log(NO_PLOTS, err=True)
        if report['final'] is not None:
            log(report_table(report['final'], report['baseline'],
                             f"Final test metrics: {label}"))
        best = report['best']
        if not best['epoch']:
            log('\nno best.pt: every epoch was exploding')
        elif validated:
            log(f"\nbest.pt: epoch {best['epoch']} (lowest validation MPJPE "
                f"{best['val_mpjpe']:.1f} mm)" + (
                    f": test MPJPE {best['test']['mpjpe']:.1f} mm, P-MPJPE "
                    f"{best['test']['p_mpjpe']:.1f} mm" if best['test'] is not None else ''))
        elif best['step'] != report['steps']:
            log(f'\nno validation split (--val-fraction 0): best.pt is the last checkpoint '
                f'that was not exploding (epoch {best["epoch"]})')
        else:
            log('\nno validation split (--val-fraction 0): best.pt is the last checkpoint')
        written = [name for name in OUTPUT_NAMES if (out / name).is_file()]
        log(f"\noutputs in {out}/ ({', '.join(sorted(written))})")

    def _plot(self, label: str, test, device) -> None:
        """``curves.png`` and ``samples.png`` (needs matplotlib)."""
        history, model, skeleton = self.history, self.model, self.skeleton
        if history:
            atomic_output(self.out / 'curves.png', lambda path: plot_curves(history, path, label))
        k = min(self.config.samples, len(test))
        idx = torch.linspace(0, len(test) - 1, k).long()
        model.eval()
        with torch.no_grad():
            pred = model(test.x[idx].to(device)).cpu()
        atomic_output(self.out / 'samples.png',
                      lambda path: plot_samples(pred, test.y[idx], skeleton, path, label,
                                                test.x[idx]))

    def evaluate(self, checkpoint: Path | None = None, data=None,
                 flip: bool | None = None,
                 batch_size: int | None = None) -> dict[str, Any]:
        """Test metrics (:class:`~pyg_skeleton.metrics.MetricAccumulator`)
        of the trainer's model, or of the weights of a checkpoint of
        :meth:`fit` (read with :func:`load_checkpoint`, which checks them).

        Args:
            checkpoint (str or Path, optional): A ``best.pt`` or
                ``last.pt``. (default: :obj:`None`: the trainer's model)
            data (LiftingTensors, optional): The poses to score. (default:
                the test split)
            flip (bool, optional): Test-time flip augmentation. (default:
                ``config.flip_test``)
            batch_size (int, optional): (default: ``config.eval_batch_size``)

        The model runs on ``config.device`` (default: the CPU).

        Raises:
            TrainingError: A bad checkpoint, or weights that do not fit.
        """
        config = self.config
        if self.skeleton is None:
            self.skeleton = get_skeleton(config.skeleton)
        if data is None:
            if self.data is None:
                self.data = load_data(config)
            data = self.data[2]
            if data is None:
                raise TrainingError("no test split to evaluate: give data")
        check_joints(self.skeleton, data, 'test data')
        model = self.model
        if model is not None and not isinstance(model, torch.nn.Module):
            model = self.model = model()  # a builder (see the class docs)
        if checkpoint is not None:
            ckpt = load_checkpoint(Path(checkpoint))
            if model is None:  # the checkpoint's model with its run's options
                stored = {k: v for k, v in ckpt['args'].items() if k in TrainConfig.fields()}
                model = make_model(ckpt['model_name'], self.skeleton, config.replace(**stored),
                                   data.x[:2])
            else:
                model = copy.deepcopy(model)
            try:
                model.load_state_dict(ckpt['model'])
            except RuntimeError as e:
                raise TrainingError(f"{checkpoint}: the weights do not fit the model: "
                                    f"{str(e).splitlines()[0]}") from None
        if model is None:
            raise TrainingError("no model to evaluate: give a model, a checkpoint or fit first")
        device = self._device()
        return evaluate(model, data, self.skeleton,
                        batch_size if batch_size is not None else config.eval_batch_size,
                        config.flip_test if flip is None else flip,
                        device=device if device is not None else torch.device('cpu'))

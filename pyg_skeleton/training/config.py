r"""The options of a lifting training run, with their defaults and checks in
one place: :class:`TrainConfig`.

Every option is a field of :class:`TrainConfig`; the field's metadata gives
its type and range, checked when a config is made (:func:`check_options`
checks a plain dict the same way, e.g. the options stored in a checkpoint).
A JSON file of options (:func:`read_config_file`) names the fields as keys:
``{"epochs": 20, "lr": 0.0005}``; it is data, never code.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ['TrainConfig', 'TrainingError', 'ConfigError', 'RUN_OPTIONS', 'RESUME_ADJUSTABLE',
           'DATA_PATH_OPTIONS', 'option_problem', 'check_options', 'read_config_file']


class TrainingError(ValueError):
    """A problem of a training or evaluation run that its user can fix (bad
    options, data or checkpoint, a diverging run): one line."""


class ConfigError(TrainingError):
    """A bad option value, with attributes ``option`` (the field name),
    ``value``, ``problem`` (e.g. ``'must be at least 1'``) and ``where``
    (the file it comes from, or :obj:`None`)."""

    def __init__(self, option: str, value: Any, problem: str, where: str | None = None,
                 stored: bool = False):
        self.option, self.value, self.problem, self.where = option, value, problem, where
        if stored:  # a checkpoint's options
            text = f"{where}: stored option {option}={value!r} {problem}"
        else:
            text = f"{where + ': ' if where else ''}{option} {problem} (got {value!r})"
        super().__init__(text)


# The checks of a field, in its metadata: type (a type or a tuple of
# choices), lowest, highest, whether None is allowed, and whether the option
# defines the run (stored in checkpoints, see RUN_OPTIONS). Float ranges are
# closed unless marked: '(0' positive, ')1' below one. The upper bounds of
# sizes keep a mistyped (or crafted) value from allocating without limit.
def _opt(default: Any, kind: Any, lo: Any = None, hi: Any = None, none: bool = False,
         run: bool = True, help: str = '') -> Any:
    return field(default=default, metadata={'kind': kind, 'lo': lo, 'hi': hi, 'none': none,
                                            'run': run, 'help': help})


@dataclass
class TrainConfig:
    r"""The options of a 2D-to-3D lifting training run
    (:class:`~pyg_skeleton.training.Trainer`, ``pyg-skeleton train``), each
    with its default; a value out of range raises :class:`ConfigError`
    naming the option.

    The fields are the long options of ``pyg-skeleton train`` (with ``_``
    for ``-``); see ``pyg-skeleton train --help`` for each one's meaning.
    The options that define a run (:data:`RUN_OPTIONS`) are stored in its
    checkpoints; :obj:`out`, :obj:`resume`, :obj:`overwrite`,
    :obj:`no_progress`, :obj:`no_plots` and :obj:`samples` only steer
    outputs, and :obj:`device` only where a single process trains (a run
    may resume on another device).

    Raises:
        ConfigError: A value has the wrong type or is out of range.
    """
    model: str = _opt('semgcn', str, help='a name of pyg_skeleton.nn.MODELS')
    mesh: str | None = _opt(None, str, none=True, help='model hgn: its body mesh file')
    dataset: str = _opt('synthetic', str, help='a name of pyg_skeleton.datasets.DATASETS '
                                                'or an .npz path')
    data: str | None = _opt(None, str, none=True)
    skeleton: str = _opt('h36m17', str, help='a preset or a skeleton JSON file')
    test_actor: int = _opt(2, int, 0, 10 ** 6)
    views: int = _opt(4, int, 1, 1000)
    frame_step: int = _opt(1, int, 1, 10 ** 6)
    val_fraction: float = _opt(0.1, float, 0, ')1')
    inputs_2d: str | None = _opt(None, str, none=True)
    cameras: str | None = _opt(None, str, none=True)
    max_frames: int | None = _opt(None, int, 1, 10 ** 9, none=True)
    max_test_frames: int | None = _opt(None, int, 1, 10 ** 9, none=True)
    synthetic_train: int = _opt(20000, int, 1, 10 ** 7)
    synthetic_test: int = _opt(2000, int, 1, 10 ** 7)
    epochs: int = _opt(10, int, 1, 10 ** 6)
    max_steps: int | None = _opt(None, int, 1, 10 ** 9, none=True)
    steps_per_epoch: int | None = _opt(None, int, 1, 10 ** 9, none=True)
    batch_size: int = _opt(256, int, 1, 10 ** 6, help='global batch size (all processes)')
    batch_order: str = _opt('sampler', ('sampler', 'stream'),
                            help="'sampler': each epoch shuffled with seed + epoch; 'stream': "
                                 "successive shuffles of one generator")
    lr: float = _opt(1e-3, float, '(0')
    lr_schedule: str = _opt('exp', ('exp', 'exp_to_min', 'cosine', 'constant'))
    lr_decay: float = _opt(0.95, float, '(0')
    min_lr: float = _opt(1e-5, float, 0)
    weight_decay: float = _opt(0.0, float, 0)
    seed: int = _opt(0, int, 0, 2 ** 63 - 1)
    hidden_channels: int | None = _opt(128, int, 1, 65536, none=True)
    num_layers: int | None = _opt(4, int, 1, 1000, none=True)
    dropout: float | None = _opt(None, float, 0, ')1', none=True,
                                    help="None: the model's own")
    loss: str = _opt('semgcn', ('semgcn', 'mse'))
    bone_weight: float = _opt(0.0, float, 0)
    flip_augment: bool = _opt(True, bool)
    flip_test: bool = _opt(True, bool)
    checkpoint_every: int = _opt(0, int, 0, 10 ** 9)
    eval_batch_size: int = _opt(2048, int, 1, 10 ** 7)
    out: str | None = _opt(None, str, none=True, run=False,
                              help='output folder (default: runs/MODEL-DATASET)')
    resume: bool = _opt(False, bool, run=False)
    overwrite: bool = _opt(False, bool, run=False)
    no_progress: bool = _opt(False, bool, run=False)
    no_plots: bool = _opt(False, bool, run=False)
    samples: int = _opt(4, int, 0, 10 ** 6, run=False)
    device: str | None = _opt(None, str, none=True, run=False,
                              help="where one process trains: 'cpu', 'cuda', 'cuda:1', ... "
                                   "(default: the GPU when there is one)")

    def __post_init__(self):
        for f in dataclasses.fields(self):  # paths as the strings a checkpoint stores
            if f.metadata['kind'] is str and isinstance(getattr(self, f.name), os.PathLike):
                setattr(self, f.name, os.fspath(getattr(self, f.name)))
        check_options(dataclasses.asdict(self))

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The option names, in order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @property
    def out_dir(self) -> Path:
        """Where the run writes its outputs (``out``, by default
        ``runs/<model>-<dataset>``)."""
        if self.out is not None:
            return Path(self.out)
        return Path('runs') / f'{self.model}-{Path(str(self.dataset)).stem}'

    def to_dict(self) -> dict[str, Any]:
        """The options as a dict (JSON values)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with :obj:`changes` (checked)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """The options of a JSON file (:func:`read_config_file`), with
        :obj:`overrides` over them (as a command line over its ``--config``
        file)."""
        return cls(**{**read_config_file(path), **overrides})


_FIELDS = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}

#: Options that define a run, stored in its checkpoints; ``resume`` takes
#: them from the checkpoint.
RUN_OPTIONS: tuple[str, ...] = (
    'model', 'mesh', 'dataset', 'data', 'skeleton', 'test_actor', 'views', 'frame_step',
    'val_fraction', 'inputs_2d', 'cameras', 'max_frames', 'max_test_frames', 'synthetic_train',
    'synthetic_test', 'epochs', 'max_steps', 'steps_per_epoch', 'batch_size', 'batch_order',
    'lr', 'lr_schedule', 'lr_decay', 'min_lr', 'weight_decay', 'seed', 'hidden_channels',
    'num_layers', 'dropout', 'loss', 'bone_weight', 'flip_augment', 'flip_test',
    'checkpoint_every', 'eval_batch_size')
assert set(RUN_OPTIONS) == {k for k, m in _FIELDS.items() if m['run']}
#: Options of :data:`RUN_OPTIONS` that a resumed run may change.
RESUME_ADJUSTABLE = ('epochs', 'max_steps', 'checkpoint_every', 'eval_batch_size')
#: Options that name data files: never taken from a checkpoint unasked.
DATA_PATH_OPTIONS = ('data', 'inputs_2d', 'cameras', 'mesh')


def option_problem(name: str, value: Any) -> str | None:
    """What is wrong with :obj:`value` for the option :obj:`name` (e.g.
    ``'must be at least 1'``), or :obj:`None`."""
    spec = _FIELDS[name]
    kind, lo, hi = spec['kind'], spec['lo'], spec['hi']
    if value is None:
        return None if spec['none'] else 'must be given'
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


def check_options(values: dict[str, Any], where: str | None = None,
                  stored: bool = False) -> None:
    """Checks the type and range of every option of :obj:`values` that
    :class:`TrainConfig` knows (others are skipped).

    Args:
        values (dict): Option name to value.
        where (str, optional): The file the values come from (for the
            message).
        stored (bool, optional): The values are a checkpoint's (its
            message reads ``stored option NAME=VALUE``).

    Raises:
        ConfigError: Naming the first bad option.
    """
    for name, value in values.items():
        if name not in _FIELDS:
            continue
        problem = option_problem(name, value)
        if problem:
            raise ConfigError(name, value, problem, where, stored)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The options of a JSON config file: an object whose keys are
    :class:`TrainConfig` fields, e.g. ``{"epochs": 20, "lr": 0.0005}``,
    each value checked.

    Raises:
        FileNotFoundError: The file is missing.
        ConfigError: The file is not a JSON object, or a key is unknown or
            its value bad (one line naming the file and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, 'No such file', str(path))
    try:
        values = json.loads(path.read_text(encoding='utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainingError(f"{path}: not a JSON config file: {str(e).splitlines()[0]}") \
            from None
    if not isinstance(values, dict):
        raise TrainingError(f"{path}: a config file holds a JSON object of options, got "
                            f"{type(values).__name__}")
    for key, value in values.items():
        if key not in _FIELDS:
            raise ConfigError(key, value, f"is not an option (known: {', '.join(_FIELDS)})",
                              str(path))
        if _FIELDS[key]['kind'] is float and isinstance(value, int) \
                and not isinstance(value, bool):
            values[key] = value = float(value)  # JSON writes 1.0 as 1
    check_options(values, str(path))
    return values

r"""Checkpoints of lifting training runs: tensors and plain containers only
(``torch.load(path, weights_only=True)`` reads them), with a SHA-256 digest
of their content, written atomically (:func:`save_checkpoint`) and checked
when read (:func:`load_checkpoint`)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pyg_skeleton.files import atomic_save
from pyg_skeleton.skeleton import Skeleton

from .config import TrainingError, check_options

__all__ = ['CHECKPOINT_FORMAT', 'CHECKPOINT_KEYS', 'MAX_ABS_WEIGHT', 'plain',
           'checkpoint_digest', 'load_checkpoint', 'save_checkpoint']

CHECKPOINT_FORMAT = 'pyg_skeleton.lifting_checkpoint.v1'
#: Largest magnitude of a checkpoint weight taken as plausible (a flipped
#: exponent bit of a float32 weight makes it ~1e38).
MAX_ABS_WEIGHT = 1e8
CHECKPOINT_KEYS = ('model_name', 'model', 'optimizer', 'epoch', 'step_in_epoch', 'global_step',
                   'rng_torch', 'history', 'best_mpjpe', 'args', 'skeleton', 'mean_pose')


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


def checkpoint_digest(ckpt: dict[str, Any]) -> str:
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


def _bad_tensor(t: Any, what: str, limit: float) -> str | None:
    if not isinstance(t, Tensor):
        return f"{what} is not a tensor"
    if t.is_floating_point():
        if not torch.isfinite(t).all():
            return f"{what} holds NaN or infinite values"
        if t.numel() and float(t.abs().max()) > limit:
            return f"{what} holds implausible values (|x| up to {float(t.abs().max()):.3g})"
    return None


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Reads a checkpoint of ``train`` (``torch.load`` with
    ``weights_only=True``) and checks what it holds: the format, the keys
    and their types, the digest (when present), finite and plausible
    weights (magnitudes up to ``MAX_ABS_WEIGHT``) and mean pose, the skeleton,
    every stored option (:func:`check_options`) and, before any model is
    built, that ``hidden_channels`` and ``num_layers`` fit the weights.

    Raises:
        TrainingError: Naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise TrainingError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
    if not isinstance(ckpt, dict) or ckpt.get('format') != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a pyg-skeleton lifting checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise TrainingError(f"{path}: incomplete checkpoint, no {', '.join(missing)}")
    if 'digest' in ckpt and ckpt['digest'] != checkpoint_digest(ckpt):
        raise TrainingError(f"{path}: the content does not match its digest (the file is "
                            f"corrupted)")
    types = {'model_name': str, 'model': dict, 'optimizer': dict, 'epoch': int,
             'step_in_epoch': int, 'global_step': int, 'history': list,
             'best_mpjpe': float, 'args': dict, 'skeleton': dict}
    for key, kind in types.items():
        value = ckpt[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (
                kind is int and value < 0):
            raise TrainingError(f"{path}: {key} must be "
                                f"{'a non-negative ' if kind is int else ''}{kind.__name__}, "
                                f"got {type(value).__name__}")
    if not ckpt['model']:
        raise TrainingError(f"{path}: the checkpoint holds no weights")
    rng = ckpt['rng_torch']
    if not isinstance(rng, Tensor) or rng.dtype != torch.uint8 or rng.dim() != 1:
        raise TrainingError(f"{path}: rng_torch must be a 1-D uint8 tensor (a random "
                            f"generator state)")
    for name, t in ckpt['model'].items():
        problem = _bad_tensor(t, f"weight {name!r}", MAX_ABS_WEIGHT)
        if problem:
            raise TrainingError(f"{path}: {problem}")
    try:
        skeleton = Skeleton.from_dict(ckpt['skeleton'])
    except Exception as e:
        raise TrainingError(f"{path}: invalid skeleton: {str(e).splitlines()[0]}") from None
    mean_pose = ckpt['mean_pose']
    problem = _bad_tensor(mean_pose, 'mean_pose', 1e3)
    if problem or tuple(mean_pose.shape) != (skeleton.num_joints, 3):
        raise TrainingError(f"{path}: " + (
            problem or f"mean_pose must be [{skeleton.num_joints}, 3] for its skeleton, got "
                       f"{list(mean_pose.shape)}"))
    check_options(ckpt['args'], str(path), stored=True)
    _check_model_options(ckpt, path)
    return ckpt


def _check_model_options(ckpt: dict[str, Any], path: Path) -> None:
    # Building a model allocates what its options ask for: a crafted
    # hidden_channels or num_layers could ask for gigabytes. Each layer has
    # weights in the file and the hidden size is one of their dimensions.
    weights = ckpt['model']
    hidden = ckpt['args'].get('hidden_channels')
    dims = {d for t in weights.values() if t.is_floating_point() for d in t.shape}
    if hidden is not None and hidden not in dims:
        raise TrainingError(f"{path}: stored option hidden_channels={hidden} does not match "
                            f"the weights (no weight has a dimension of {hidden})")
    layers = ckpt['args'].get('num_layers')
    if layers is not None and layers > len(weights):
        raise TrainingError(f"{path}: stored option num_layers={layers} does not match the "
                            f"{len(weights)} weight tensors")


def save_checkpoint(ckpt: dict[str, Any], path: Path) -> None:
    """Writes :obj:`ckpt` with its digest to :obj:`path`, atomically."""
    ckpt = dict(ckpt)
    ckpt['digest'] = checkpoint_digest(ckpt)
    atomic_save(ckpt, Path(path))

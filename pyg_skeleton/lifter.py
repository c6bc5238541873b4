r"""Lifting 2D keypoints of any detector to 3D poses with bundled,
pretrained graph networks.

A :class:`Lifter` is a :class:`~pyg_skeleton.nn.SemGCN` backbone (semantic
graph convolutions, Zhao et al., CVPR 2019; or the no-sharing convolution of
Liu et al., ECCV 2020) on the ``h36m17`` skeleton whose input is the
normalised 2D pose plus a visibility mask
(:func:`~pyg_skeleton.datasets.wild.normalize_keypoints`, :obj:`[B, 17, 3]`)
and whose output is the root-relative 3D pose in the camera frame (x right,
y down, z forward), in metres, :obj:`[B, 17, 3]`.

The bundled lifters (:func:`pretrained_lifters`) were trained by
``python scripts/train_bundled.py`` on the built-in CMU motion
(:func:`~pyg_skeleton.datasets.builtin_motion`) seen through random
in-the-wild cameras, with random body proportions, keypoint noise and
missing joints (:mod:`pyg_skeleton.datasets.wild`). Each holds a model card
(:attr:`Lifter.card`): data, cameras, augmentation, metrics and the command.

Lifter files are read with :obj:`torch.load(weights_only=True)` and checked
before use: the format tag, a known architecture with options in range,
parameter shapes that match, and finite weights.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pyg_skeleton.datasets.wild import WildCameras, normalize_keypoints, render_wild
from pyg_skeleton.skeleton import Skeleton

__all__ = ['Lifter', 'ARCHITECTURES', 'LIFTER_FORMAT', 'PRETRAINED_DIR', 'pretrained_lifters',
           'train_lifter', 'evaluate_lifter', 'DEFAULT_LIFTER']

LIFTER_FORMAT = 'pyg_skeleton.lifter.v1'
PRETRAINED_DIR = Path(__file__).resolve().parent / 'data' / 'pretrained'
#: The lifter :func:`pyg_skeleton.lift` uses when none is named.
DEFAULT_LIFTER = 'nosharing'

#: Architecture name -> (graph convolution of :data:`GRAPH_CONVS`, default width).
ARCHITECTURES: dict[str, dict[str, Any]] = {
    'semgcn': {'conv': 'sem', 'hidden_channels': 128},
    # no sharing at SemGCN's parameter count: the most accurate family of
    # benchmarks/results/accuracy_weight_sharing.md
    'nosharing': {'conv': 'no_sharing', 'hidden_channels': 26},
}
_MAX_HIDDEN = 1024
_MAX_LAYERS = 16


class Lifter(torch.nn.Module):
    r"""2D keypoints plus visibility to root-relative 3D joints (see the
    module docs).

    Args:
        arch (str): ``'semgcn'`` or ``'nosharing'`` (``ARCHITECTURES``).
        hidden_channels (int, optional): Width (default: the architecture's).
        num_layers (int): Residual blocks. (default: :obj:`4`)
        card (dict, optional): The model card.

    Shapes:
        - **input:** :obj:`[*, 17, 3]` normalised keypoints and mask
        - **output:** :obj:`[*, 17, 3]` metres, camera frame, root at zero
    """

    def __init__(self, arch: str = 'semgcn', hidden_channels: int | None = None,
                 num_layers: int = 4, card: dict[str, Any] | None = None):
        super().__init__()
        from pyg_skeleton.nn.models.semgcn import SemGCN
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown lifter architecture {arch!r} "
                             f"(choose from {', '.join(ARCHITECTURES)})")
        hidden = ARCHITECTURES[arch]['hidden_channels'] if hidden_channels is None \
            else hidden_channels
        if not (isinstance(hidden, int) and 1 <= hidden <= _MAX_HIDDEN):
            raise ValueError(f"hidden_channels must be an integer in [1, {_MAX_HIDDEN}], "
                             f"got {hidden!r}")
        if not (isinstance(num_layers, int) and 1 <= num_layers <= _MAX_LAYERS):
            raise ValueError(f"num_layers must be an integer in [1, {_MAX_LAYERS}], "
                             f"got {num_layers!r}")
        self.arch, self.hidden_channels, self.num_layers = arch, hidden, num_layers
        self.skeleton = Skeleton.preset('h36m17')
        self.net = SemGCN(self.skeleton, in_channels=3, hidden_channels=hidden,
                          num_layers=num_layers, conv=ARCHITECTURES[arch]['conv'])
        self.card: dict[str, Any] = dict(card or {})

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return out - out[..., :1, :]

    @torch.no_grad()
    def lift(self, uv, mask=None, flip: bool = True, batch_size: int = 4096) -> Tensor:
        r"""Lifts pixels :obj:`[B, 17, 2]` (``h36m17`` order) with a
        visibility mask :obj:`[B, 17]` to :obj:`[B, 17, 3]` metres.

        Args:
            uv: Keypoints in pixels (any image size, any camera).
            mask: Visible joints (default: the finite ones).
            flip (bool): Test-time flip augmentation. (default: :obj:`True`)
            batch_size (int): Poses per forward pass.
        """
        was = self.training
        self.eval()
        x = normalize_keypoints(uv, mask)
        if x.dim() != 3 or x.shape[1:] != (17, 3):
            raise ValueError(f"expected keypoints [B, 17, 2], got {list(x.shape[:-1]) + [2]}")
        outs = []
        # The poses run on the lifter's device and come back to the CPU.
        device = next(self.parameters()).device
        for a in range(0, len(x), batch_size):
            xb = x[a:a + batch_size].to(device)
            if flip:
                both = self(torch.cat([xb, self.skeleton.flip(xb, lateral_axis=0)]))
                p, q = both.chunk(2)
                outs.append((0.5 * (p + self.skeleton.flip(q, lateral_axis=0))).cpu())
            else:
                outs.append(self(xb).cpu())
        self.train(was)
        return torch.cat(outs) if outs else x.new_zeros(0, 17, 3)

    # ------------------------------------------------------------- files

    def options(self) -> dict[str, Any]:
        return {'arch': self.arch, 'hidden_channels': self.hidden_channels,
                'num_layers': self.num_layers}

    def save(self, path: str | Path) -> None:
        """Writes the lifter (options, weights, card) for :meth:`load`."""
        from pyg_skeleton.files import atomic_save, cpu_state_dict
        atomic_save({'format': LIFTER_FORMAT, 'options': self.options(),
                     'state_dict': cpu_state_dict(self),
                     'card': self.card}, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Lifter:
        r"""Reads a file of :meth:`save` safely (see the module docs).

        Raises:
            FileNotFoundError: No such file.
            ValueError: Not a lifter file, or invalid content.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lifter file not found: {path}")
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: not a readable lifter file "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                             ) from None
        if not isinstance(obj, dict) or obj.get('format') != LIFTER_FORMAT:
            raise ValueError(f"{path}: not a pyg-skeleton lifter file (format tag "
                             f"{LIFTER_FORMAT!r} missing)")
        opts, state = obj.get('options'), obj.get('state_dict')
        if not isinstance(opts, dict) or set(opts) != {'arch', 'hidden_channels', 'num_layers'}:
            raise ValueError(f"{path}: options must name arch, hidden_channels and num_layers")
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise ValueError(f"{path}: state_dict must map names to tensors")
        try:
            lifter = cls(opts['arch'], opts['hidden_channels'], opts['num_layers'],
                         card=obj.get('card') if isinstance(obj.get('card'), dict) else None)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        expected = lifter.state_dict()
        if set(state) != set(expected):
            missing = sorted(set(expected) - set(state))[:3]
            extra = sorted(set(state) - set(expected))[:3]
            raise ValueError(f"{path}: weights do not fit the {opts['arch']} lifter "
                             f"(missing {missing}, unexpected {extra})")
        for k, v in state.items():
            if v.shape != expected[k].shape:
                raise ValueError(f"{path}: weight {k} has shape {list(v.shape)}, expected "
                                 f"{list(expected[k].shape)}")
            if v.is_floating_point() and not torch.isfinite(v).all():
                raise ValueError(f"{path}: weight {k} holds NaN or infinite values")
        lifter.load_state_dict(state)
        lifter.eval()
        return lifter

    @classmethod
    def pretrained(cls, name: str = DEFAULT_LIFTER) -> Lifter:
        """A bundled lifter by name (:func:`pretrained_lifters`)."""
        names = pretrained_lifters()
        if name not in names:
            raise ValueError(f"unknown pretrained lifter {name!r} (bundled: "
                             f"{', '.join(names) or 'none'})")
        return cls.load(PRETRAINED_DIR / f'{name}.pt')

    def extra_repr(self) -> str:
        return (f"arch={self.arch!r}, hidden_channels={self.hidden_channels}, "
                f"num_layers={self.num_layers}")


def pretrained_lifters() -> list[str]:
    """Names of the bundled lifters."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob('*.pt'))


def _mpjpe_mm(pred: Tensor, y: Tensor) -> Tensor:
    return (pred - y).norm(dim=-1).mean(-1) * 1000.0


@torch.no_grad()
def evaluate_lifter(lifter: Lifter, poses: np.ndarray, cameras: WildCameras, seed: int = 0,
                    noise_px: float = 0.0, drop: int = 0, flip: bool = True,
                    bone_scale: bool = False) -> dict[str, float]:
    r"""MPJPE and P-MPJPE (mm) of a lifter on world poses :obj:`[F, 17, 3]`
    seen through one random camera each (seeded), with optional Gaussian
    pixel noise and :obj:`drop` random joints masked per pose."""
    from pyg_skeleton.metrics import p_mpjpe
    rng = np.random.default_rng(seed)
    x, y, cam = render_wild(poses, rng, cameras, lifter.skeleton, bone_scale=bone_scale,
                            corrupt=False, flip=False)
    uv, mask = cam['pixels'], np.ones(y.shape[:2], bool)
    if noise_px:
        uv = uv + rng.normal(scale=noise_px, size=uv.shape)
    if drop:
        order = np.argsort(rng.random(mask.shape), axis=1)[:, :drop]
        np.put_along_axis(mask, order, False, axis=1)
    pred = lifter.lift(uv, mask, flip=flip)
    return {'mpjpe': float(_mpjpe_mm(pred, y).mean()),
            'p_mpjpe': float(p_mpjpe(pred, y) * 1000.0), 'poses': len(y)}


def train_lifter(lifter: Lifter, poses: np.ndarray, *, steps: int, batch_size: int = 256,
                 lr: float = 1e-3, final_lr: float = 1e-5, seed: int = 0,
                 cameras: WildCameras | None = None,
                 log: Callable[[str], None] | None = print, log_every: int = 500,
                 validate: Callable[[Lifter], float] | None = None) -> dict[str, Any]:
    r"""Trains a lifter on world poses :obj:`[F, 17, 3]` with fresh random
    views every step (:func:`~pyg_skeleton.datasets.wild.render_wild`): Adam,
    a cosine learning rate from :obj:`lr` to :obj:`final_lr`, MPJPE loss.

    Every :obj:`log_every` steps the mean loss is logged and, if
    :obj:`validate` is given, the lifter is scored; the weights with the best
    score are kept at the end. A non-finite loss stops training with an
    error (the weights are left as before that step).

    Returns:
        dict: ``history`` (per log: step, loss in mm, score), ``best_step``,
        ``seconds``.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be at least 1")
    cameras = cameras or WildCameras()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    poses = np.asarray(poses, dtype=np.float64)
    opt = torch.optim.Adam(lifter.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    best = (math.inf, 0, None)
    loss_sum, t0 = 0.0, time.perf_counter()
    lifter.train()
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g['lr'] = final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * step / steps))
        idx = rng.integers(0, len(poses), batch_size)
        x, y, _ = render_wild(poses[idx], rng, cameras, lifter.skeleton)
        loss = _mpjpe_mm(lifter(x), y).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training diverged at step {step} (loss {float(loss)})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += float(loss.detach())
        if step % log_every == 0 or step == steps:
            n = (step - 1) % log_every + 1
            row = {'step': step, 'loss_mm': loss_sum / n,
                   'seconds': time.perf_counter() - t0}
            loss_sum = 0.0
            if validate is not None:
                row['score'] = float(validate(lifter))
                lifter.train()
                if row['score'] < best[0]:
                    best = (row['score'], step, copy.deepcopy(lifter.state_dict()))
            history.append(row)
            if log:
                log(f"step {step:6d}  loss {row['loss_mm']:.1f} mm"
                    + (f"  validation {row['score']:.1f} mm" if 'score' in row else '')
                    + f"  {row['seconds']:.0f} s")
    if best[2] is not None:
        lifter.load_state_dict(best[2])
    lifter.eval()
    return {'history': history, 'best_step': best[1] or steps,
            'seconds': time.perf_counter() - t0}

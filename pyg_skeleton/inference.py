r"""3D poses from any 2D detector's keypoints: :func:`lift` (also the
command ``pyg-skeleton lift``).

The keypoints are read by :func:`pyg_skeleton.keypoints.read_keypoints`
(COCO results or annotation JSON, OpenPose JSON folders, MediaPipe
landmarks, ``.npy`` / ``.npz`` arrays), converted to the ``h36m17`` joints
with a visibility mask (synthesised pelvis, spine, thorax and head top;
joints below :obj:`min_confidence` masked), and lifted by a bundled or
user-trained :class:`~pyg_skeleton.lifter.Lifter`. The result holds one
root-relative 3D pose per person and frame, in metres, in the camera frame
(x right, y down, z forward).

Poses with fewer than :data:`MIN_VISIBLE` visible joints are not lifted:
their 3D joints are NaN and a warning gives their count. A warning also
says when the input looks unlike what the lifter was trained on: people
rotated in the image by more than the cameras' roll range (the median torso
angle of the input over 45 degrees), or, with known intrinsics, a subject far
off the optical axis or at an implausible distance.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pyg_skeleton.lifter import DEFAULT_LIFTER, Lifter

__all__ = ['lift', 'LiftResult', 'MIN_VISIBLE', 'gaussian_smooth', 'load_intrinsics', 'Stream']

#: Fewest visible joints (of 17) a pose needs to be lifted.
MIN_VISIBLE = 6
_PELVIS, _THORAX = 0, 8
# trained cameras (WildCameras defaults): roll within 30 degrees, the root within
# 0.6 of the half field of view of a 0.6-width focal length, 2.5-9 m away
_MAX_ROLL_DEG = 45.0
_MAX_OFF_AXIS_DEG = 35.0
_DISTANCE_RANGE = (1.5, 15.0)
_TORSO_M = 0.45   # pelvis to thorax, for the distance estimate


@dataclass
class LiftResult:
    r"""Lifted poses, one row per person and frame.

    Attributes:
        poses (numpy.ndarray): :obj:`[K, 17, 3]` float32 metres, camera
            frame, root (pelvis) at zero; NaN rows were not lifted.
        uv (numpy.ndarray): :obj:`[K, 17, 2]` the ``h36m17`` 2D input, pixels.
        mask (numpy.ndarray): :obj:`[K, 17]` visible input joints.
        frame, person (numpy.ndarray): :obj:`[K]` frame index and person.
        frame_names (list of str): Per frame.
        joint_names (list of str): The 17 ``h36m17`` joints.
        model (str): The lifter used.
        source (str): The input.
        smoothed (float): Temporal smoothing applied (Gaussian sigma in
            frames; 0: none).
        warnings (list of str): What :func:`lift` warned about.
    """
    poses: np.ndarray
    uv: np.ndarray
    mask: np.ndarray
    frame: np.ndarray
    person: np.ndarray
    frame_names: list[str]
    joint_names: list[str]
    model: str
    source: str
    smoothed: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.poses)

    @property
    def is_sequence(self) -> bool:
        """At least two frames, at most one person in each."""
        return len(self) > 1 and len(np.unique(self.frame)) == len(self.frame)

    def to_json(self) -> dict[str, Any]:
        def row(i):
            p = self.poses[i]
            return {'frame': int(self.frame[i]), 'frame_name': self.frame_names[self.frame[i]],
                    'person': int(self.person[i]),
                    'joints_3d': None if not np.isfinite(p).all()
                    else np.round(p.astype(float), 5).tolist(),
                    'visible_2d': self.mask[i].tolist()}
        return {'format': 'pyg_skeleton.lift.v1', 'model': self.model, 'source': self.source,
                'units': 'metres',
                'frame_of_reference': 'camera (x right, y down, z forward), root-relative '
                                      '(Hip = pelvis at the origin)',
                'smoothing_sigma_frames': self.smoothed, 'joint_names': self.joint_names,
                'poses': [row(i) for i in range(len(self))]}

    def save(self, out: str | Path, plots: bool = True) -> list[Path]:
        r"""Writes ``poses3d.npz`` and ``poses3d.json`` into the folder
        :obj:`out` (created), and with :obj:`plots` ``lift.png`` (up to 8
        poses: 2D input beside the upright 3D skeleton) and, for a
        sequence, ``lift.gif``. Returns the paths written."""
        from pyg_skeleton.files import atomic_output, atomic_write_text
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / 'poses3d.npz', out / 'poses3d.json']
        atomic_output(written[0], lambda path: np.savez_compressed(
            path, poses=self.poses, uv=self.uv, mask=self.mask, frame=self.frame,
            person=self.person, frame_names=np.array(self.frame_names, dtype=str),
            joint_names=np.array(self.joint_names), model=np.array(self.model)))
        atomic_write_text(written[1], json.dumps(self.to_json(), indent=1))
        if plots:
            written += self.plot(out)
        return written

    def _label(self, i: int) -> str:
        name = self.frame_names[self.frame[i]]
        name = f'frame {name}' if name.isdigit() else name
        return name if self.is_sequence else f'{name}, person {self.person[i]}'

    def plot(self, out: str | Path) -> list[Path]:
        """Draws ``lift.png`` (and ``lift.gif`` for a sequence) into :obj:`out`."""
        from pyg_skeleton.files import atomic_output
        from pyg_skeleton.plotting import animate_lifted, plot_lifted
        from pyg_skeleton.skeleton import Skeleton
        skeleton = Skeleton.preset('h36m17')
        ok = np.nonzero(np.isfinite(self.poses).all((1, 2)))[0]
        if len(ok) == 0:
            return []
        pick = ok[np.unique(np.linspace(0, len(ok) - 1, min(8, len(ok))).round().astype(int))]
        paths = [Path(out) / 'lift.png']
        atomic_output(paths[0], lambda path: plot_lifted(
            self.uv[pick], self.mask[pick], self.poses[pick], skeleton, path,
            titles=[self._label(i) for i in pick],
            suptitle=f"{Path(self.source).name}: lifted by {self.model}"))
        if self.is_sequence and len(ok) > 1:
            order = ok[np.argsort(self.frame[ok])]
            paths.append(Path(out) / 'lift.gif')
            atomic_output(paths[1], lambda path: animate_lifted(
                self.uv[order], self.mask[order], self.poses[order], skeleton, path,
                title=f"{Path(self.source).name}: lifted by {self.model}"))
        return paths


def gaussian_smooth(poses: np.ndarray, frame: np.ndarray, sigma: float) -> np.ndarray:
    r"""Gaussian smoothing over time of :obj:`[T, N, 3]` poses with frame
    indices :obj:`[T]` (one pose per frame): each run of consecutive frames
    is smoothed on its own, the kernel renormalised at the run's ends; NaN
    poses break runs and stay NaN."""
    if sigma <= 0 or len(poses) < 2:
        return poses.copy()
    order = np.argsort(frame)
    p, f = poses[order].astype(np.float64), frame[order]
    ok = np.isfinite(p).all((1, 2))
    breaks = np.nonzero((np.diff(f) != 1) | ~ok[1:] | ~ok[:-1])[0] + 1
    out = p.copy()
    radius = int(math.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    for run in np.split(np.arange(len(p)), breaks):
        if len(run) < 2 or not ok[run[0]]:
            continue
        # zero padding plus a padded count renormalises the kernel at the run's ends
        x = np.pad(p[run], ((radius, radius), (0, 0), (0, 0)))
        one = np.pad(np.ones(len(run)), radius)
        num = sum(w * x[k:k + len(run)] for k, w in enumerate(kernel))
        den = sum(w * one[k:k + len(run)] for k, w in enumerate(kernel))
        out[run] = num / den[:, None, None]
    result = np.empty_like(out)
    result[order] = out
    return result.astype(poses.dtype)


def load_intrinsics(spec: str | Path | dict[str, Any]) -> dict[str, Any]:
    r"""Camera intrinsics from a JSON file or dict: ``focal_length`` (one
    number or :math:`(f_x, f_y)`, pixels), ``center`` :math:`(c_x, c_y)`
    (default: the image centre) and optionally ``width`` and ``height``.

    Raises:
        ValueError: Missing or non-finite or non-positive values (one line,
            naming the file).
    """
    where = str(spec) if not isinstance(spec, dict) else 'intrinsics'
    if not isinstance(spec, dict):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"intrinsics file not found: {path}")
        if path.stat().st_size > 1 << 20:
            raise ValueError(f"{path}: an intrinsics file is at most 1 MiB")
        try:
            spec = json.loads(path.read_text(encoding='utf-8'))
        except (ValueError, RecursionError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON ({type(e).__name__})") from None
    if not isinstance(spec, dict) or 'focal_length' not in spec:
        raise ValueError(f"{where}: intrinsics need a 'focal_length' (pixels)")
    try:
        f = np.broadcast_to(np.asarray(spec['focal_length'], dtype=np.float64), (2,))
        c = (None if spec.get('center') is None
             else np.asarray(spec['center'], dtype=np.float64).reshape(2))
        size = [spec.get(k) for k in ('width', 'height')]
        size = None if None in size else np.asarray(size, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: focal_length, center, width and height must be numbers "
                         f"(center two of them)") from None
    for name, v in (('focal_length', f), ('center', c), ('width/height', size)):
        if v is not None and not (np.isfinite(v).all() and (name == 'center' or (v > 0).all())):
            raise ValueError(f"{where}: {name} must be finite"
                             + ('' if name == 'center' else ' and positive')
                             + f", got {v.tolist()}")
    return {'focal_length': f, 'center': c, 'image_size': size}


def _camera_warnings(uv: np.ndarray, mask: np.ndarray, ok: np.ndarray,
                     intrinsics: dict[str, Any] | None,
                     image_size: np.ndarray | None) -> list[str]:
    out = []
    both = ok & mask[:, _PELVIS] & mask[:, _THORAX]
    if both.any():
        v = uv[both, _THORAX] - uv[both, _PELVIS]
        # image v grows downwards: upright is (0, -1); the angle of the torso from it
        roll = np.degrees(np.abs(np.arctan2(v[:, 0], -v[:, 1])))
        # the median: single poses bend and lie down, a rotated camera turns them all
        if np.median(roll) > _MAX_ROLL_DEG:
            out.append(f"the torso is rotated by {np.median(roll):.0f} degrees in the image "
                       f"(median of {int(both.sum())} poses); the lifter was trained on camera "
                       f"rolls within 30 degrees of upright people: rotate the input upright")
    if intrinsics is not None and both.any():
        f = intrinsics['focal_length']
        c = intrinsics['center']
        if c is None:
            size = intrinsics['image_size'] if intrinsics['image_size'] is not None \
                else image_size
            c = None if size is None else np.asarray(size, dtype=np.float64) / 2
        if c is not None:
            ray = (uv[both, _PELVIS] - c) / f
            off = np.degrees(np.arctan(np.linalg.norm(ray, axis=-1)))
            n = int((off > _MAX_OFF_AXIS_DEG).sum())
            if n:
                out.append(f"{n} poses lie more than {_MAX_OFF_AXIS_DEG:.0f} degrees off the "
                           f"optical axis (up to {off.max():.0f}); the lifter was trained within "
                           f"about 24 degrees")
        # the torso's angular length (radians) against a typical 0.45 m torso
        torso = np.linalg.norm((uv[both, _THORAX] - uv[both, _PELVIS]) / f, axis=-1)
        dist = np.median(_TORSO_M / np.maximum(torso, 1e-9))
        lo, hi = _DISTANCE_RANGE
        if not lo <= dist <= hi:
            out.append(f"the person seems about {dist:.1f} m from the camera (from the torso's "
                       f"length in pixels and the focal length); the lifter was trained at "
                       f"2.5-9 m: check the intrinsics")
    return out


def resolve_device(device: str | torch.device | None) -> torch.device:
    r"""The :class:`torch.device` of :obj:`device` (a name such as
    :obj:`'cpu'`, :obj:`'cuda'` or :obj:`'cuda:1'`, a device, or :obj:`None`
    for the CPU).

    Raises:
        ValueError: An unknown device name, or a CUDA device that this
            machine does not have.
    """
    if device is None:
        return torch.device('cpu')
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r} (e.g. 'cpu', 'cuda', "
                         f"'cuda:1')") from None
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ValueError(f"device {str(device)!r} is not available (this "
                             f"machine has {count} CUDA device(s))")
    return device


def lift(source: Any, *, format: str | None = None,
         image_size: Sequence[float] | None = None,
         intrinsics: str | Path | dict[str, Any] | None = None,
         model: str | Lifter = DEFAULT_LIFTER, checkpoint: str | Path | None = None,
         min_confidence: float = 0.3, smooth: float = 0.0, flip: bool = True,
         device: str | torch.device | None = None) -> LiftResult:
    r"""Lifts 2D keypoints to root-relative 3D poses (see the module docs).

    Args:
        source: A keypoint file or folder (format detected), a
            :class:`~pyg_skeleton.keypoints.Keypoints`, or an array
            :obj:`[T, J, 2]` / :obj:`[T, J, 3]` (pixels, optional confidence;
            needs :obj:`format`).
        format (str, optional): The keypoint format
            (:func:`~pyg_skeleton.keypoints.keypoint_formats`); overrides
            detection.
        image_size ((float, float), optional): Image width and height in
            pixels: needed for normalised inputs (MediaPipe).
        intrinsics (str, Path or dict, optional): Camera intrinsics
            (``load_intrinsics``): only used to warn about cameras
            unlike the training ones.
        model (str or Lifter): A bundled lifter's name
            (:func:`~pyg_skeleton.lifter.pretrained_lifters`) or a lifter.
        checkpoint (str or Path, optional): A lifter file of
            :meth:`Lifter.save` (overrides :obj:`model`).
        min_confidence (float): Joints below it are masked.
            (default: :obj:`0.3`)
        smooth (float): Temporal Gaussian smoothing (sigma in frames) of
            sequences with at most one person per frame. (default: :obj:`0`)
        flip (bool): Test-time flip augmentation. (default: :obj:`True`)
        device (str or torch.device, optional): Where the lifter runs
            (:obj:`'cpu'`, :obj:`'cuda'`, ...); the lifter is moved there.
            (default: :obj:`None`, the CPU)

    Returns:
        LiftResult: The poses (:meth:`LiftResult.save` writes them).

    Raises:
        FileNotFoundError: The input or checkpoint is missing.
        ValueError: Unreadable input, unknown format or model, bad options.
    """
    from pyg_skeleton.keypoints import Keypoints, get_format, read_keypoints
    device = resolve_device(device)
    if not (math.isfinite(min_confidence) and 0 <= min_confidence <= 1):
        raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
    if not (math.isfinite(smooth) and smooth >= 0):
        raise ValueError(f"smooth must be a non-negative number of frames, got {smooth}")
    if image_size is not None:
        image_size = np.asarray(image_size, dtype=np.float64).reshape(-1)
        if image_size.shape != (2,) or not (np.isfinite(image_size).all()
                                            and (image_size > 0).all()):
            raise ValueError(f"image size must be two positive numbers (width height), got "
                             f"{image_size.tolist()}")
    cam = load_intrinsics(intrinsics) if intrinsics is not None else None
    if cam is not None and image_size is None and cam['image_size'] is not None:
        image_size = cam['image_size']
    size_arg = None if image_size is None else tuple(float(v) for v in image_size)

    if isinstance(source, Keypoints):
        kp = source
    elif isinstance(source, (str, Path)):
        kp = read_keypoints(source, format=format, image_size=size_arg)
    else:
        arr = np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source,
                         dtype=np.float64)
        if format is None:
            raise ValueError("an array input needs format= (e.g. 'coco17')")
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
            raise ValueError(f"expected keypoints [T, J, 2] or [T, J, 3], got {list(arr.shape)}")
        fmt = get_format(format)
        conf = arr[..., 2] if arr.shape[-1] == 3 else np.ones(arr.shape[:2])
        kp = Keypoints(arr[..., :2], conf, np.arange(len(arr)), np.zeros(len(arr)),
                       [str(i) for i in range(len(arr))], size_arg, fmt.name, 'array',
                       keypoint_format=fmt)
    if len(kp) == 0:
        raise ValueError(f"{kp.source}: no people with keypoints in the input")

    if checkpoint is not None:
        lifter, name = Lifter.load(checkpoint), str(checkpoint)
    elif isinstance(model, Lifter):
        lifter, name = model, model.card.get('name', 'lifter')
    else:
        lifter, name = Lifter.pretrained(model), model

    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        uv, mask = kp.convert('h36m17', min_confidence=min_confidence)
    messages += [str(w.message) for w in caught]
    visible = mask.sum(1)
    ok = visible >= MIN_VISIBLE
    if not ok.any():
        raise ValueError(f"{kp.source}: no pose has at least {MIN_VISIBLE} visible joints "
                         f"(keypoints missing, NaN or below min_confidence {min_confidence})")
    if (~ok).any():
        messages.append(f"{int((~ok).sum())} of {len(ok)} poses have fewer than {MIN_VISIBLE} "
                        f"visible joints and are not lifted (NaN in the output)")
    messages += _camera_warnings(uv, mask, ok, cam,
                                 None if image_size is None else np.asarray(image_size))
    poses = np.full(uv.shape[:2] + (3,), np.nan, dtype=np.float32)
    lifter.to(device)
    poses[ok] = lifter.lift(uv[ok], mask[ok], flip=flip).numpy()

    applied = 0.0
    if smooth > 0:
        if len(np.unique(kp.frame)) != len(kp.frame):
            messages.append("smoothing skipped: it needs at most one person per frame")
        else:
            poses = gaussian_smooth(poses, kp.frame, smooth)
            applied = float(smooth)
    for m in messages:
        warnings.warn(m, stacklevel=2)
    return LiftResult(poses=poses, uv=uv, mask=mask, frame=kp.frame.copy(),
                      person=kp.person.copy(), frame_names=list(kp.frame_names),
                      joint_names=list(lifter.skeleton.joint_names), model=name,
                      source=str(kp.source), smoothed=applied, warnings=messages)


class Stream:
    r"""Streaming inference: one frame in, one pose out, for real-time use
    (a webcam, a detector running frame by frame).

    * **Single-frame models** (:obj:`window=1`, *e.g.*
      :class:`~pyg_skeleton.nn.SemGCN` or a
      :class:`~pyg_skeleton.lifter.Lifter`): :meth:`push` runs the model on
      the one pose, :obj:`[1, N, C]`, without the batching of :func:`lift`.
      A :class:`~pyg_skeleton.lifter.Lifter` takes pixels :obj:`[17, 2]`
      and an optional visibility mask :obj:`[17]` and returns metres,
      exactly as :meth:`Lifter.lift <pyg_skeleton.lifter.Lifter.lift>` on
      that pose.
    * **Temporal models** (:obj:`window=T > 1`, *e.g.*
      :class:`~pyg_skeleton.nn.TemporalSkeletalGNN`, which maps
      :obj:`[B, T, N, C]` to :obj:`[B, T, N, C']`): a ring buffer keeps the
      last :math:`T` frames and :meth:`push` returns the model's output for
      the newest frame of that window. The stream is *causal*: frame
      :math:`t`'s pose depends on frames :math:`t - T + 1, \dots, t` only,
      so it is ready as soon as frame :math:`t` arrives, at the cost of
      a one-sided view (a model trained on centred windows sees its
      :math:`T - 1` past frames only). Until :math:`T` frames have come,
      the window is filled by repeating the first frame (the edge padding
      of offline sequence models).

    Each :meth:`push` costs one forward pass on a :math:`T`-frame window
    (:math:`T = 1` for single-frame models); see ``docs/deploy.rst`` for
    measured latencies.

    Args:
        model (torch.nn.Module): The model, run in evaluation mode without
            gradients.
        window (int): Frames per forward pass, :math:`T`. (default: :obj:`1`)
        flip (bool): For a :class:`~pyg_skeleton.lifter.Lifter`, test-time
            flip augmentation (two poses per pass). (default: :obj:`False`)

    Example::

        stream = Stream(Lifter.pretrained('nosharing'))
        for uv in detector:             # [17, 2] pixels per frame
            pose = stream.push(uv)      # [17, 3] metres
    """
    def __init__(self, model: torch.nn.Module, window: int = 1, flip: bool = False):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"'window' must be a positive integer (got {window!r})")
        if isinstance(model, Lifter) and window != 1:
            raise ValueError("a Lifter lifts single frames: use window=1")
        if flip and not isinstance(model, Lifter):
            raise ValueError("'flip' applies to a Lifter only")
        self.model, self.window, self.flip = model.eval(), window, flip
        self.reset()

    def reset(self) -> None:
        r"""Forgets the buffered frames (a new sequence starts)."""
        self._buffer: Tensor | None = None
        self._count = 0

    @property
    def frames_seen(self) -> int:
        r"""Frames pushed since the start or the last :meth:`reset`."""
        return self._count

    @torch.inference_mode()
    def push(self, x, mask=None) -> Tensor:
        r"""Feeds one frame and returns the pose for it.

        Args:
            x (Tensor or numpy.ndarray): One frame, :obj:`[N, C]` (a
                :class:`~pyg_skeleton.lifter.Lifter`: pixels :obj:`[17, 2]`).
            mask (Tensor or numpy.ndarray, optional): A
                :class:`~pyg_skeleton.lifter.Lifter`'s visibility mask
                :obj:`[17]` (default: the finite joints).

        Returns:
            :obj:`[N, C']`, the model's output for this frame.

        Raises:
            ValueError: If the frame is not :obj:`[N, C]`, or its shape
                differs from the buffered frames'.
        """
        x = torch.as_tensor(x)
        if x.dim() != 2:
            raise ValueError(f"'Stream.push' expects one frame [N, C] (got shape "
                             f"{list(x.shape)})")
        if isinstance(self.model, Lifter):
            m = None if mask is None else torch.as_tensor(mask).unsqueeze(0)
            self._count += 1
            return self.model.lift(x.unsqueeze(0), m, flip=self.flip)[0]
        if mask is not None:
            raise ValueError("'mask' applies to a Lifter only")
        if self.window == 1:
            self._count += 1
            return self.model(x.unsqueeze(0))[0]
        if self._buffer is None:
            # Edge padding: the first frame fills the window.
            self._buffer = x.unsqueeze(0).repeat(self.window, 1, 1)
        elif x.shape != self._buffer.shape[1:]:
            raise ValueError(f"frame of shape {list(x.shape)} after frames of shape "
                             f"{list(self._buffer.shape[1:])}; call reset() for a new "
                             f"sequence")
        # Oldest frame out, newest in: T N C values move, which is small
        # beside the forward pass on the window.
        self._buffer = torch.cat([self._buffer[1:], x.unsqueeze(0).to(self._buffer)])
        self._count += 1
        return self.model(self._buffer.unsqueeze(0))[0, -1]

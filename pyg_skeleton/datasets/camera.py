r"""Virtual cameras, normalisations and flip augmentation for 2D-to-3D lifting.

World poses are in metres with **y up** (the frame of every dataset of this
package). A virtual pinhole camera stands at a horizontal distance
(:obj:`distance`, 4--6 m is typical of studio captures) from the subject's
root at a yaw angle around it and a height above the floor, and looks at the
root: so a subject walking across a large capture area stays in view, as
with a camera operator following the actor. Camera coordinates are x right,
y down, z forward (OpenCV convention).

Intrinsics default to a 1000 x 1000 image with a 1000 px focal length and
the principal point at the centre, close to the Human3.6M cameras.

Normalisations (as used by VideoPose3D-style lifting code):

* 2D: :math:`u' = 2u/w - 1`, :math:`v' = 2v/w - h/w` (both by the image
  width, so the aspect ratio is kept);
* 3D: root-relative camera coordinates.

Flipping mirrors a pose horizontally in camera space (x and u' negated) and
swaps the skeleton's left/right joints; test-time flip augmentation averages
the prediction on the input with the flipped-back prediction on the flipped
input (:func:`flip_test`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ['CameraRig', 'look_at_rotation', 'project', 'normalize_screen',
           'denormalize_screen', 'root_relative', 'flip_pose', 'flip_test', 'ring_yaws']


def _check_positive(value, name: str) -> float:
    """A positive finite number (image sizes, focal lengths, distances)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name!r} must be a positive finite number (got {value!r})")
    return float(value)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name!r} must be a positive integer (got {value!r})")
    return int(value)


def ring_yaws(num_views: int, offset_deg: float = 45.0) -> np.ndarray:
    """:obj:`num_views` evenly spaced yaw angles (radians) around the subject."""
    _check_count(num_views, 'num_views')
    return np.deg2rad(offset_deg + 360.0 * np.arange(num_views) / num_views)


def look_at_rotation(cam_pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""World-to-camera rotations :obj:`[..., 3, 3]` (rows: right, down,
    forward) of cameras at :obj:`cam_pos` looking at :obj:`target` with the
    world y axis up."""
    f = target - cam_pos
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    up = np.broadcast_to(np.array([0.0, 1.0, 0.0]), f.shape)
    r = np.cross(f, up)
    r = r / np.linalg.norm(r, axis=-1, keepdims=True).clip(1e-12)
    d = np.cross(f, r)
    return np.stack([r, d, f], axis=-2)


def project(points_cam: np.ndarray, focal: float | tuple[float, float],
            center: tuple[float, float]) -> np.ndarray:
    """Pinhole projection of camera-frame points :obj:`[..., 3]` to pixels."""
    fx, fy = (focal, focal) if np.isscalar(focal) else focal
    fx, fy = _check_positive(fx, 'focal'), _check_positive(fy, 'focal')
    z = points_cam[..., 2:3]
    if np.any(z <= 1e-6):
        raise ValueError("a point lies behind the camera; increase the camera distance")
    uv = points_cam[..., :2] / z
    return uv * np.array([fx, fy]) + np.array(center)


def normalize_screen(uv, width: float, height: float):
    r"""Pixels to :math:`[-1, 1]` by the image width, keeping the aspect
    ratio: :math:`u' = 2u/w - 1`, :math:`v' = 2v/w - h/w`.

    Raises:
        ValueError: If :obj:`width` or :obj:`height` is not a positive
            finite number.
    """
    width = _check_positive(width, 'width')
    height = _check_positive(height, 'height')
    scale = 2.0 / width
    off = [1.0, height / width]
    if isinstance(uv, Tensor):
        return uv * scale - uv.new_tensor(off)
    return uv * scale - np.array(off)


def denormalize_screen(uv, width: float, height: float):
    """Inverse of :func:`normalize_screen` (same checks)."""
    width = _check_positive(width, 'width')
    height = _check_positive(height, 'height')
    off = [1.0, height / width]
    if isinstance(uv, Tensor):
        return (uv + uv.new_tensor(off)) * (width / 2.0)
    return (uv + np.array(off)) * (width / 2.0)


def root_relative(pose, root: int = 0):
    """Subtracts the root joint: :obj:`[..., N, D]`."""
    num_joints = pose.shape[-2]
    # A negative index would count from the end and pick another joint.
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or \
            not 0 <= root < num_joints:
        raise ValueError(f"'root' {root!r} is not a joint of {num_joints}-joint poses")
    return pose - pose[..., root:root + 1, :]


@dataclass
class CameraRig:
    r"""Subject-centred virtual cameras.

    Args:
        num_views (int): Views per pose. (default: :obj:`4`)
        distance (float or (float, float)): Horizontal distance to the root
            in metres, or a range sampled uniformly. (default: :obj:`5.0`)
        cam_height (float or (float, float)): Camera height above the floor
            (y = 0) in metres, or a range. (default: :obj:`1.4`)
        focal (float): Focal length in pixels. (default: :obj:`1000`)
        width, height (int): Image size in pixels. (default: :obj:`1000`)
        random_yaw (bool): Sample yaws uniformly instead of a fixed ring.
        look_at_joint (int): Joint the cameras aim at. (default: :obj:`0`)
        root (int): Joint the 3D targets are relative to: give
            :attr:`Skeleton.root <pyg_skeleton.Skeleton.root>` (joint 14,
            the pelvis, for ``mpi_inf_3dhp17``). (default: :obj:`0`)
    """
    num_views: int = 4
    distance: float | tuple[float, float] = 5.0
    cam_height: float | tuple[float, float] = 1.4
    focal: float = 1000.0
    width: int = 1000
    height: int = 1000
    random_yaw: bool = False
    look_at_joint: int = 0
    root: int = 0

    @classmethod
    def train(cls, num_views: int = 4, root: int = 0) -> CameraRig:
        """Randomised views for training: any yaw, 4--6 m, 0.8--1.8 m high."""
        _check_count(num_views, 'num_views')
        return cls(num_views, (4.0, 6.0), (0.8, 1.8), random_yaw=True, root=root)

    @classmethod
    def test(cls, num_views: int = 4, root: int = 0) -> CameraRig:
        """A fixed ring of views at 5 m and 1.4 m high, for evaluation."""
        _check_count(num_views, 'num_views')
        return cls(num_views, 5.0, 1.4, random_yaw=False, root=root)

    def _check(self, num_joints: int) -> None:
        """One-line errors for settings that would render nonsense."""
        _check_count(self.num_views, 'num_views')
        for name in ('distance', 'cam_height'):
            value = getattr(self, name)
            lo, hi = value if isinstance(value, (tuple, list)) else (value, value)
            if name == 'distance':
                _check_positive(lo, name)
                _check_positive(hi, name)
            elif not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"'cam_height' must be finite (got {value!r})")
            if lo > hi:
                raise ValueError(f"{name!r} range {value!r} has its low end above its high end")
        _check_positive(self.focal, 'focal')
        _check_positive(self.width, 'width')
        _check_positive(self.height, 'height')
        for name in ('look_at_joint', 'root'):
            joint = getattr(self, name)
            if isinstance(joint, bool) or not isinstance(joint, (int, np.integer)) or \
                    not 0 <= joint < num_joints:
                raise ValueError(f"{name!r} {joint!r} is not a joint of "
                                 f"{num_joints}-joint poses")

    def _draw(self, value, shape, rng):
        if isinstance(value, (tuple, list)):
            return rng.uniform(value[0], value[1], size=shape)
        return np.full(shape, float(value))

    def views(self, poses: np.ndarray, seed: int = 0):
        r"""Renders every pose from :obj:`num_views` cameras.

        Args:
            poses (numpy.ndarray): World poses :obj:`[F, N, 3]`, metres, y up.
            seed (int): Seed of the random camera placement.

        Returns:
            dict: ``x`` normalised 2D :obj:`[F*V, N, 2]`, ``y`` root-relative
            camera-frame 3D :obj:`[F*V, N, 3]`, ``pixels`` :obj:`[F*V, N, 2]`
            and ``frame`` :obj:`[F*V]` (source frame of each sample), all
            float32 / int64, ordered frame-major.

        Raises:
            ValueError: If :obj:`poses` is not :obj:`[F, N, 3]`, or a
                setting of the rig is out of range (no views, a
                non-positive distance, focal length or image size, a range
                with its ends swapped, :obj:`look_at_joint` or :obj:`root`
                not a joint).
        """
        poses = np.asarray(poses, dtype=np.float64)
        if poses.ndim != 3 or poses.shape[-1] != 3:
            raise ValueError(f"expected world poses [F, N, 3], got {list(poses.shape)}")
        F, N, _ = poses.shape
        self._check(N)
        V = self.num_views
        rng = np.random.default_rng(seed)
        yaw = (rng.uniform(-np.pi, np.pi, size=(F, V)) if self.random_yaw
               else np.broadcast_to(ring_yaws(V), (F, V)))
        dist = self._draw(self.distance, (F, V), rng)
        h = self._draw(self.cam_height, (F, V), rng)
        target = poses[:, self.look_at_joint]                        # [F, 3]
        target = np.broadcast_to(target[:, None], (F, V, 3))
        cam = np.stack([target[..., 0] + dist * np.sin(yaw), h,
                        target[..., 2] + dist * np.cos(yaw)], axis=-1)  # [F, V, 3]
        rot = look_at_rotation(cam, target)                          # [F, V, 3, 3]
        p_cam = np.einsum('fvab,fnb->fvna', rot, poses) - np.einsum('fvab,fvb->fva', rot,
                                                                    cam)[:, :, None]
        pix = project(p_cam, self.focal, (self.width / 2.0, self.height / 2.0))
        x = normalize_screen(pix, self.width, self.height)
        y = root_relative(p_cam, int(self.root))
        return {'x': x.reshape(F * V, N, 2).astype(np.float32),
                'y': y.reshape(F * V, N, 3).astype(np.float32),
                'pixels': pix.reshape(F * V, N, 2).astype(np.float32),
                'frame': np.repeat(np.arange(F), V)}


def flip_pose(pose: Tensor, skeleton) -> Tensor:
    r"""Horizontal mirror of normalised 2D (:obj:`[..., N, 2]`) or camera 3D
    (:obj:`[..., N, 3]`) poses: negates x / u' and swaps left and right
    joints with the skeleton's flip pairs."""
    return skeleton.flip(pose, lateral_axis=0)


def flip_test(model: Callable[[Tensor], Tensor], x: Tensor, skeleton) -> Tensor:
    r"""Test-time flip augmentation: the mean of :obj:`model(x)` and the
    flipped-back :obj:`model(flip(x))`. Both passes run as one batch."""
    both = model(torch.cat([x, flip_pose(x, skeleton)]))
    a, b = both.chunk(2)
    return 0.5 * (a + flip_pose(b, skeleton))

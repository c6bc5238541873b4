r"""In-the-wild 2D views of 3D motion, for lifters that must work on any
detector's keypoints: random cameras, body proportions, keypoint noise and
missing joints.

:class:`WildCameras` places a pinhole camera anywhere around the subject: at
a distance of :obj:`distance` metres from the root, at an elevation of
:obj:`elevation` degrees (positive: looking down), turned so that the root
appears off the image centre by up to :obj:`off_centre` of the half field of
view, and rolled about its optical axis by :obj:`roll` degrees. Its focal
length is :obj:`focal` image widths (0.6: wide angle, 2.5: telephoto). Camera
coordinates are x right, y down, z forward, as everywhere in the package.

:func:`scale_bones` changes the body's proportions per bone (left and right
together). The ranges of ``BONE_SCALE`` span the joint conventions of
public motion-capture sets, whose hip, clavicle, spine and neck joints sit in
different places: e.g. hip half-widths of 68 mm (Bandai-Namco) to 141 mm
(CMU), thorax-to-shoulder of 108 to 192 mm, spine-to-thorax of 89 to 164 mm.

:func:`corrupt_keypoints` adds what detectors give: Gaussian noise
proportional to the 2D pose's size, rare gross outliers, and joints dropped
(masked) singly or as a lower leg or forearm leaving the image.

:func:`normalize_keypoints` turns pixels and a visibility mask into the
input of the bundled lifters, :obj:`[..., J, 3]`: the visible joints
centred on their mean and divided by their RMS distance to it (so the
image size, focal length and distance do not matter), masked joints zero,
and the mask as the third channel.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from .camera import look_at_rotation

__all__ = ['WildCameras', 'BONE_SCALE', 'scale_bones', 'corrupt_keypoints',
           'normalize_keypoints', 'render_wild']

Range = tuple[float, float]

#: Per-bone log-uniform scale ranges of :func:`scale_bones` for the
#: ``h36m17`` layout, by child joint name (see the module docs).
BONE_SCALE: dict[str, Range] = {
    'RHip': (0.45, 1.2), 'LHip': (0.45, 1.2),
    'RKnee': (0.85, 1.15), 'LKnee': (0.85, 1.15),
    'RFoot': (0.85, 1.15), 'LFoot': (0.85, 1.15),
    'Spine': (0.8, 1.2), 'Thorax': (0.8, 2.0),
    'Neck/Nose': (0.6, 1.4), 'Head': (0.8, 1.5),
    'LShoulder': (0.5, 1.15), 'RShoulder': (0.5, 1.15),
    'LElbow': (0.8, 1.15), 'RElbow': (0.8, 1.15),
    'LWrist': (0.85, 1.3), 'RWrist': (0.85, 1.3),
}


def _uniform(rng: np.random.Generator, r, shape) -> np.ndarray:
    lo, hi = (r, r) if np.isscalar(r) else r
    return rng.uniform(lo, hi, size=shape)


def _rot(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotations :obj:`[..., 3, 3]` about a camera axis by :obj:`angle` (radians)."""
    c, s = np.cos(angle), np.sin(angle)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out = np.zeros(angle.shape + (3, 3))
    out[..., axis, axis] = 1.0
    out[..., i, i] = c
    out[..., j, j] = c
    out[..., i, j] = -s
    out[..., j, i] = s
    return out


@dataclass
class WildCameras:
    r"""Random pinhole cameras around a subject (see the module docs).

    Args:
        distance ((float, float)): Distance to the root in metres.
            (default: :obj:`(2.5, 9.0)`)
        elevation ((float, float)): Elevation in degrees, positive above the
            root. (default: :obj:`(-10, 60)`)
        roll ((float, float)): Roll about the optical axis in degrees.
            (default: :obj:`(-30, 30)`)
        focal ((float, float)): Focal length in image widths.
            (default: :obj:`(0.6, 2.5)`)
        off_centre (float): Largest offset of the root from the image centre,
            as a fraction of the half field of view. (default: :obj:`0.6`)
        width (int): Image width in pixels. (default: :obj:`1000`)
        aspect ((float, float)): Height over width. (default: :obj:`(0.56, 1.78)`)
    """
    distance: Range = (2.5, 9.0)
    elevation: Range = (-10.0, 60.0)
    roll: Range = (-30.0, 30.0)
    focal: Range = (0.6, 2.5)
    off_centre: float = 0.6
    width: int = 1000
    aspect: Range = (0.56, 1.78)

    def __post_init__(self):
        for name in ('distance', 'elevation', 'roll', 'focal', 'aspect'):
            lo, hi = getattr(self, name)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
                raise ValueError(f"WildCameras.{name} must be a finite (low, high) range, "
                                 f"got {(lo, hi)}")
        if self.distance[0] <= 0 or self.focal[0] <= 0 or self.aspect[0] <= 0:
            raise ValueError("WildCameras: distance, focal and aspect must be positive")
        if not (-90 < self.elevation[0] and self.elevation[1] < 90):
            raise ValueError("WildCameras.elevation must lie within (-90, 90) degrees")
        if not 0 <= self.off_centre < 1:
            raise ValueError(f"WildCameras.off_centre must be in [0, 1), got {self.off_centre}")
        if self.width < 1:
            raise ValueError(f"WildCameras.width must be at least 1, got {self.width}")

    @classmethod
    def lab(cls) -> WildCameras:
        """Studio-like cameras: chest height, 4--6 m, one focal length, little roll."""
        return cls(distance=(4.0, 6.0), elevation=(-5.0, 10.0), roll=(-3.0, 3.0),
                   focal=(1.0, 1.0), off_centre=0.2, aspect=(1.0, 1.0))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def sample(self, poses: np.ndarray, rng: np.random.Generator,
               shared: bool = False, root: int = 0) -> dict[str, np.ndarray]:
        r"""One random camera per pose, or one for all.

        Args:
            poses (numpy.ndarray): World poses :obj:`[F, N, 3]`, metres, y up.
            rng (numpy.random.Generator): The random source.
            shared (bool): One static camera for all poses (a video of a
                sequence), placed around their mean root. (default: :obj:`False`)
            root (int): The root joint: the cameras aim at it and the
                targets are relative to it (give :attr:`Skeleton.root
                <pyg_skeleton.Skeleton.root>`). (default: :obj:`0`)

        Returns:
            dict: ``pixels`` :obj:`[F, N, 2]`, ``y`` root-relative
            camera-frame 3D :obj:`[F, N, 3]` (metres), ``image_size``
            :obj:`[F, 2]` (width, height), ``focal`` :obj:`[F]` (pixels),
            ``distance``, ``elevation``, ``roll`` :obj:`[F]`, and the
            world-to-camera ``rotation`` :obj:`[F, 3, 3]` and camera
            ``position`` :obj:`[F, 3]` (one of each when shared).
        """
        poses = np.asarray(poses, dtype=np.float64)
        F = len(poses)
        if not (isinstance(root, (int, np.integer)) and not isinstance(root, bool)
                and 0 <= root < poses.shape[-2]):
            raise ValueError(f"'root' {root!r} is not a joint of {poses.shape[-2]}-joint poses")
        joint = root
        root = poses[:, joint]
        if shared:
            one = self.sample(root.mean(0)[None, None], rng)
            cam = {k: np.repeat(v, F, axis=0) for k, v in one.items()
                   if k not in ('pixels', 'y')}
            return self._project(poses, cam, joint)
        yaw = rng.uniform(-np.pi, np.pi, F)
        elev = np.deg2rad(_uniform(rng, self.elevation, F))
        dist = _uniform(rng, self.distance, F)
        cam = root + dist[:, None] * np.stack(
            [np.cos(elev) * np.sin(yaw), np.sin(elev), np.cos(elev) * np.cos(yaw)], -1)
        rot = look_at_rotation(cam, root)
        focal = _uniform(rng, self.focal, F) * self.width
        height = np.round(_uniform(rng, self.aspect, F) * self.width)
        # turn the camera so that the root lands off-centre, then roll it
        half_fov_x = np.arctan(0.5 * self.width / focal)
        half_fov_y = np.arctan(0.5 * height / focal)
        pan = rng.uniform(-1, 1, F) * self.off_centre * half_fov_x
        tilt = rng.uniform(-1, 1, F) * self.off_centre * half_fov_y
        roll = np.deg2rad(_uniform(rng, self.roll, F))
        turn = _rot(2, roll) @ _rot(0, tilt) @ _rot(1, pan)
        return self._project(poses, {
            'rotation': turn @ rot, 'position': cam,
            'image_size': np.stack([np.full(F, float(self.width)), height], -1),
            'focal': focal, 'distance': dist, 'elevation': np.rad2deg(elev),
            'roll': np.rad2deg(roll)}, joint)

    @staticmethod
    def _project(poses: np.ndarray, cam: dict[str, np.ndarray],
                 root: int) -> dict[str, np.ndarray]:
        rot, pos = cam['rotation'], cam['position']
        if len(rot) == 1 and len(poses) > 1:
            rot, pos = np.repeat(rot, len(poses), 0), np.repeat(pos, len(poses), 0)
        p_cam = np.einsum('fab,fnb->fna', rot, poses - pos[:, None])
        if np.any(p_cam[..., 2] <= 0.05):
            raise ValueError("a joint lies behind or at a camera: raise the smallest distance")
        uv = p_cam[..., :2] / p_cam[..., 2:3] * cam['focal'][:, None, None]
        uv = uv + cam['image_size'][:, None] / 2.0
        return dict(cam, pixels=uv, y=p_cam - p_cam[:, root:root + 1])


def scale_bones(poses: np.ndarray, parents: Sequence[int], names: Sequence[str],
                rng: np.random.Generator, ranges: dict[str, Range] | None = None,
                flip_pairs: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    r"""Scales every bone of :obj:`[F, N, 3]` poses by a log-uniform factor
    of its range (``BONE_SCALE`` by default; bones not listed keep their
    length), the same for a left bone and its right twin, and rebuilds the
    poses from the root (parents must precede children)."""
    ranges = BONE_SCALE if ranges is None else ranges
    poses = np.asarray(poses, dtype=np.float64)
    F, N = poses.shape[:2]
    if any(p >= j for j, p in enumerate(parents)):
        raise ValueError("scale_bones needs parents listed before their children")
    lo = np.log([ranges.get(n, (1.0, 1.0))[0] for n in names])
    hi = np.log([ranges.get(n, (1.0, 1.0))[1] for n in names])
    factor = np.exp(rng.uniform(lo, hi, size=(F, N)))
    for a, b in flip_pairs:
        factor[:, b] = factor[:, a]
    out = poses.copy()
    for j, p in enumerate(parents):
        if p >= 0:
            out[:, j] = out[:, p] + factor[:, j, None] * (poses[:, j] - poses[:, p])
    return out


# joint groups that leave the image together (h36m17 indices): a lower leg, a forearm
_LIMB_ENDS = ((2, 3), (5, 6), (12, 13), (15, 16))


def corrupt_keypoints(uv: np.ndarray, rng: np.random.Generator, noise: Range = (0.0, 0.08),
                      outlier_prob: float = 0.01, drop_prob: float = 0.4,
                      max_drop: int = 3) -> tuple[np.ndarray, np.ndarray]:
    r"""Detector-like corruption of clean pixels :obj:`[F, N, 2]`.

    Args:
        uv (numpy.ndarray): Clean keypoints in pixels.
        rng (numpy.random.Generator): The random source.
        noise ((float, float)): Range of the per-pose Gaussian noise, as a
            fraction of the pose's 2D RMS size (about 0.3 of its height: 0.08
            is 8 px for a person 330 px tall). (default: :obj:`(0, 0.08)`)
        outlier_prob (float): Chance of a joint being displaced by up to half
            the pose's size.
        drop_prob (float): Chance of a pose losing joints: 1 to
            :obj:`max_drop` random ones, or (a quarter of those times) a
            lower leg or forearm.
        max_drop (int): Most random joints dropped from one pose.

    Returns:
        tuple: Corrupted pixels :obj:`[F, N, 2]` and the visibility mask
        :obj:`[F, N]` (bool).
    """
    uv = np.asarray(uv, dtype=np.float64)
    F, N = uv.shape[:2]
    size = np.sqrt(((uv - uv.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))   # [F]
    sigma = _uniform(rng, noise, F) * size
    out = uv + rng.normal(size=uv.shape) * sigma[:, None, None]
    gross = rng.random((F, N)) < outlier_prob
    out += gross[..., None] * rng.uniform(-0.5, 0.5, uv.shape) * size[:, None, None]
    mask = np.ones((F, N), bool)
    drop = rng.random(F) < drop_prob
    limb = drop & (rng.random(F) < 0.25)
    count = rng.integers(1, max_drop + 1, F)
    order = np.argsort(rng.random((F, N)), axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(N)[None].repeat(F, 0), axis=1)
    mask &= ~((drop & ~limb)[:, None] & (ranks < count[:, None]))
    which = rng.integers(0, len(_LIMB_ENDS), F)
    for k, joints in enumerate(_LIMB_ENDS):
        rows = limb & (which == k)
        for j in joints:
            mask[rows, j] = False
    return out, mask


def normalize_keypoints(uv, mask=None) -> Tensor:
    r"""The lifters' input :obj:`[..., J, 3]` from pixels :obj:`[..., J, 2]`
    and a visibility mask :obj:`[..., J]` (see the module docs).

    A pose with no visible joint gives zeros (the caller must not trust its
    lift); a pose with one visible joint gives it at the origin.
    """
    uv = torch.as_tensor(uv, dtype=torch.float32)
    if mask is None:
        mask = torch.isfinite(uv).all(-1)
    mask = torch.as_tensor(mask, dtype=torch.bool) & torch.isfinite(uv).all(-1)
    m = mask.unsqueeze(-1).to(uv.dtype)
    uv = torch.where(mask.unsqueeze(-1), uv, torch.zeros_like(uv))
    count = m.sum(-2, keepdim=True).clamp_min(1)
    centre = (uv * m).sum(-2, keepdim=True) / count
    d = (uv - centre) * m
    scale = (d.square().sum((-2, -1), keepdim=True) / count).sqrt()
    x = d / torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.cat([x, m], -1)


def render_wild(poses: np.ndarray, rng: np.random.Generator, cameras: WildCameras,
                skeleton, *, bone_scale: bool = True, corrupt: bool = True,
                flip: bool = True) -> tuple[Tensor, Tensor, dict[str, np.ndarray]]:
    r"""One augmented lifting sample per world pose :obj:`[F, N, 3]`: body
    proportions (:func:`scale_bones`), a random camera, a random horizontal
    flip and detector-like corruption (:func:`corrupt_keypoints`).

    Returns:
        tuple: Inputs :obj:`[F, N, 3]` (:func:`normalize_keypoints`),
        root-relative camera-frame targets :obj:`[F, N, 3]` (metres) and the
        camera dict of :meth:`WildCameras.sample` (with the corrupted
        ``pixels`` and the ``mask``).
    """
    if bone_scale:
        poses = scale_bones(poses, skeleton.parents, skeleton.joint_names, rng,
                            flip_pairs=skeleton.flip_pairs)
    cam = cameras.sample(poses, rng, root=skeleton.root or 0)
    uv, y = cam['pixels'], cam['y']
    if flip:
        f = rng.random(len(uv)) < 0.5
        w = cam['image_size'][:, 0]
        uv = uv.copy()
        uv[f, :, 0] = w[f, None] - uv[f, :, 0]
        y = y.copy()
        y[f, :, 0] = -y[f, :, 0]
        perm = np.arange(uv.shape[1])
        for a, b in skeleton.flip_pairs:
            perm[a], perm[b] = b, a
        uv[f] = uv[f][:, perm]
        y[f] = y[f][:, perm]
    mask = np.ones(uv.shape[:2], bool)
    if corrupt:
        uv, mask = corrupt_keypoints(uv, rng)
    cam['pixels'], cam['mask'] = uv, mask
    x = normalize_keypoints(uv, mask)
    return x, torch.as_tensor(y, dtype=torch.float32), cam

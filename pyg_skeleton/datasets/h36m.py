r"""Human3.6M in the VideoPose3D ``.npz`` layout used by the community.

Bring your own licensed copy; nothing is downloaded. The files are:

* ``data_3d_h36m.npz`` with ``positions_3d``: a dict
  ``subject -> action -> [T, 32, 3]`` world positions in metres (z up);
* ``data_2d_h36m_<detector>.npz`` with ``positions_2d``
  (``subject -> action -> [camera views of [T, J, 2] pixels]``) and
  ``metadata`` (``layout_name``, ``num_joints``, ``keypoints_symmetry``).

These files store Python dicts as pickled object arrays. They are **never**
read with :obj:`allow_pickle=True`: :func:`load_h36m_3d` and
:func:`load_h36m_2d` read the archive members with ``zipfile`` and the
``.npy`` header parser of NumPy, and unpickle the objects with a restricted
unpickler (``RestrictedUnpickler``) that only
builds dicts, lists, strings, numbers and plain NumPy arrays; a file that
asks for anything else (:obj:`os.system`, :obj:`eval`, ...) raises
:class:`ValueError` and runs nothing.

:func:`reduce_32_to_17` keeps the 17 joints of the ``h36m17`` preset
(Hip, RHip, RKnee, RFoot, LHip, LKnee, LFoot, Spine, Thorax, Neck/Nose,
Head, LShoulder, LElbow, LWrist, RShoulder, RElbow, RWrist), which are
joints ``0 1 2 3 6 7 8 12 13 14 15 17 18 19 25 26 27`` of the 32. The
standard protocols train on S1, S5, S6, S7, S8 and test on S9, S11.

**Real 2D inputs and cameras.** VideoPose3D keeps the camera parameters in
its code, not in the ``.npz`` files, so training on 2D detections needs a
cameras file of your own: :func:`load_h36m_cameras` reads the JSON format
below and :func:`h36m_camera_samples` pairs every 2D frame of
``data_2d_h36m_<name>.npz`` with the 3D pose in that camera's frame.

The cameras JSON (all keys required unless marked optional):

.. code-block:: none

    {
      "translation_unit": "mm",
      "subjects": {
        "S1": [
          {"id": "54138969", "width": 1000, "height": 1002,
           "focal_length": [1145.0, 1144.1], "center": [512.5, 515.5],
           "radial_distortion": [0.0, 0.0, 0.0],
           "tangential_distortion": [0.0, 0.0],
           "orientation": [0.14, -0.15, -0.76, 0.62],
           "translation": [1841.1, 4955.3, 1563.4]},
          ...
        ]
      }
    }

* ``subjects``: subject name to its cameras, **in the order of the camera
  views of** ``positions_2d`` (view :obj:`k` of an action is camera
  :obj:`k` of the list).
* ``id`` (str), ``width`` and ``height`` (image size, pixels),
  ``focal_length`` :math:`(f_x, f_y)` and ``center`` :math:`(c_x, c_y)`
  (pixels; a single number is taken for both focal lengths).
* ``radial_distortion`` :math:`(k_1, k_2, k_3)` and
  ``tangential_distortion`` :math:`(p_1, p_2)` (optional, default zero;
  OpenCV / Brown model). They are only used by
  :meth:`H36MCamera.project`: the 2D inputs are taken as given.
* Exactly one of ``orientation``, the quaternion :math:`(w, x, y, z)` of
  the **camera-to-world** rotation (the convention of VideoPose3D's camera
  table), or ``rotation``, the 3 x 3 **world-to-camera** rotation matrix
  (rows: camera x right, y down, z forward; the ``R`` of the original
  Human3.6M metadata).
* ``translation``: the camera centre in world coordinates, in
  ``translation_unit`` (``"mm"``, as in Human3.6M, or ``"m"``).

The world frame is that of ``positions_3d`` (metres, z up). A world point
:math:`X` is seen at :math:`X_c = R\,(X - t)` in the camera frame (x right,
y down, z forward, the OpenCV convention of this package), where :math:`R`
is ``rotation`` or the transpose of the matrix of ``orientation``.
"""
from __future__ import annotations

import json
import math
import pickle
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..mesh.smpl import NUMPY_GLOBALS, RestrictedUnpickler
from .camera import normalize_screen

__all__ = ['H36M_32_TO_17', 'TRAIN_SUBJECTS', 'TEST_SUBJECTS', 'reduce_32_to_17',
           'load_h36m_3d', 'load_h36m_2d', 'H36MPoses', 'z_up_to_y_up', 'H36MCamera',
           'load_h36m_cameras', 'quaternion_to_matrix', 'h36m_camera_samples',
           'MAX_FRAME_MISMATCH']

#: Indices of the 17 kept joints among the 32 of the original layout.
H36M_32_TO_17 = [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
TRAIN_SUBJECTS = ['S1', 'S5', 'S6', 'S7', 'S8']
TEST_SUBJECTS = ['S9', 'S11']


def reduce_32_to_17(positions: np.ndarray) -> np.ndarray:
    """Keeps the 17 joints of ``h36m17`` from :obj:`[..., 32, D]`."""
    if positions.shape[-2] != 32:
        raise ValueError(f"expected 32 joints, got {positions.shape[-2]}")
    return positions[..., H36M_32_TO_17, :]


def z_up_to_y_up(positions: np.ndarray) -> np.ndarray:
    """Turns z-up world coordinates into the y-up frame of this package:
    :math:`(x, y, z) \\mapsto (x, z, -y)` (a rotation, so handedness is
    kept)."""
    return np.stack([positions[..., 0], positions[..., 2], -positions[..., 1]], axis=-1)


class H36MUnpickler(RestrictedUnpickler):
    r"""The restricted unpickler of the VideoPose3D-layout files: dicts,
    lists, strings and numbers (pickle opcodes, no global needed) and plain
    NumPy arrays (:data:`~pyg_skeleton.mesh.smpl.NUMPY_GLOBALS`)."""
    ALLOWED = NUMPY_GLOBALS
    CONTENT = ('dicts, lists, strings, numbers and numpy arrays (VideoPose3D-layout '
               'Human3.6M files)')


def _read_npz_member(zf: zipfile.ZipFile, key: str) -> np.ndarray:
    """Reads array :obj:`key` of an npz archive; object arrays (pickled) go
    through the restricted unpickler, never :func:`pickle.load`."""
    info = zf.getinfo(f'{key}.npy')
    with zf.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
        if not dtype.hasobject:
            # the header's size claim is checked against the member's size
            # before NumPy allocates the array
            count = int(np.prod(shape, dtype=np.int64))
            if count * dtype.itemsize > info.file_size:
                raise ValueError(f"array {key!r} claims {shape} of {dtype} but the file "
                                 f"holds {info.file_size} bytes")
            data = f.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise ValueError(f"array {key!r} is truncated")
            return np.frombuffer(data, dtype).reshape(shape, order='F' if fortran else 'C')
        array = H36MUnpickler(f, encoding='latin1').load()
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise ValueError(f"array {key!r}: the pickle does not hold the {shape} array of "
                         f"its header")
    return array


def _load_pickled_npz(path: str | Path, key: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M file not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4] for n in zf.namelist() if n.endswith('.npy')}
            if key not in members:
                raise KeyError(key)
            data = _read_npz_member(zf, key)
            meta = _read_npz_member(zf, 'metadata') if 'metadata' in members else None
    except KeyError:
        raise ValueError(f"{path} has no {key!r} array (is it a VideoPose3D-layout "
                         f"file?)") from None
    except (pickle.UnpicklingError, ValueError, EOFError, OSError, zipfile.BadZipFile,
            RecursionError, MemoryError, TypeError, AttributeError) as e:
        # UnpicklingError: a global outside the allow-list (code the file
        # asked to run, refused); the rest: a malformed or truncated file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"cannot read {path}: {msg}") from None
    data = data.item() if data.shape == () else data
    meta = meta.item() if meta is not None and meta.shape == () else meta
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {key} must be a dict subject -> action -> array")
    for subject, actions in data.items():
        if not isinstance(subject, str) or not isinstance(actions, dict):
            raise ValueError(f"{path}: {key} must be a dict subject -> action -> array")
        for action, value in actions.items():
            views = value if isinstance(value, list) else [value]
            if not isinstance(action, str) or not all(
                    isinstance(v, np.ndarray) and v.dtype != object for v in views):
                raise ValueError(f"{path}: {key}[{subject!r}] must map action names to "
                                 f"numeric arrays (or lists of them, one per camera)")
    if meta is not None and not isinstance(meta, dict):
        raise ValueError(f"{path}: metadata must be a dict")
    return data, meta


def load_h36m_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Loads ``positions_3d`` (subject -> action -> :obj:`[T, 32, 3]`) with
    the restricted unpickler (see the module docs).

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It is not a VideoPose3D-layout archive, is truncated,
            or its pickle asks for anything but dicts, lists, strings,
            numbers and NumPy arrays (nothing of it is run).
    """
    return _load_pickled_npz(path, 'positions_3d')[0]


def load_h36m_2d(path: str | Path) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Loads ``positions_2d`` (subject -> action -> list of :obj:`[T, J, 2]`
    per camera) and ``metadata``, like :func:`load_h36m_3d`."""
    data, meta = _load_pickled_npz(path, 'positions_2d')
    return data, (meta or {})


def action_name(action: str) -> str:
    """Base action of a take name: ``'Walking 1'`` -> ``'Walking'``."""
    return action.split(' ')[0]


class H36MPoses:
    r"""3D poses of Human3.6M (17 joints, metres, y up, world frame) with
    subject and action labels.

    Args:
        path_3d (str or Path): ``data_3d_h36m.npz`` (read with the
            restricted unpickler, see the module docs).
        subjects (sequence of str, optional): Subjects to keep.
        frame_step (int, optional): Keep every k-th frame (50 fps source).

    Attributes:
        positions (numpy.ndarray): :obj:`[F, 17, 3]` float32.
        subject, action, take (numpy.ndarray): Per-frame ids into
            :obj:`subject_names`, :obj:`action_names` and :obj:`take_names`
            (``'S1/Walking 1'``: one recorded sequence).
    """

    def __init__(self, path_3d: str | Path, subjects: Sequence[str] | None = None,
                 frame_step: int = 1):
        data = load_h36m_3d(path_3d)
        subjects = sorted(data) if subjects is None else list(subjects)
        missing = [s for s in subjects if s not in data]
        if missing:
            raise ValueError(f"{path_3d}: subjects {missing} not in the file "
                             f"(has {sorted(data)})")
        self.subject_names = subjects
        self.action_names = sorted({action_name(a) for s in subjects for a in data[s]})
        pos, subj, act, take = [], [], [], []
        self.take_names: list[str] = []
        for si, s in enumerate(subjects):
            for a in sorted(data[s]):
                p = np.asarray(data[s][a], dtype=np.float64)
                if p.ndim != 3 or p.shape[1:] not in ((32, 3), (17, 3)):
                    raise ValueError(f"{path_3d}: {s}/{a} must be [T, 32, 3], got "
                                     f"{list(p.shape)}")
                if p.shape[1] == 32:
                    p = reduce_32_to_17(p)
                p = z_up_to_y_up(p[::frame_step])
                pos.append(p)
                subj.append(np.full(len(p), si))
                act.append(np.full(len(p), self.action_names.index(action_name(a))))
                take.append(np.full(len(p), len(self.take_names)))
                self.take_names.append(f'{s}/{a}')
        self.positions = np.concatenate(pos).astype(np.float32)
        self.subject = np.concatenate(subj)
        self.action = np.concatenate(act)
        self.take = np.concatenate(take)

    def __len__(self) -> int:
        return len(self.positions)

    def subset(self, subjects: Sequence[str]) -> np.ndarray:
        ids = [self.subject_names.index(s) for s in subjects if s in self.subject_names]
        return np.nonzero(np.isin(self.subject, ids))[0]

    def split(self, train: Sequence[str] = TRAIN_SUBJECTS,
              test: Sequence[str] = TEST_SUBJECTS) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices of the standard protocol (train S1 S5 S6 S7 S8,
        test S9 S11)."""
        return self.subset(train), self.subset(test)


# ------------------------------------------------------------------ cameras

#: Largest 2D / 3D frame-count difference of one sequence that
#: :func:`h36m_camera_samples` trims (as a fraction of the 3D length); larger
#: differences mean the files do not belong together and raise.
MAX_FRAME_MISMATCH = 0.05


def quaternion_to_matrix(q) -> np.ndarray:
    r"""Rotation matrix :obj:`[3, 3]` of a unit quaternion :math:`(w, x, y, z)`."""
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


@dataclass
class H36MCamera:
    r"""One calibrated camera (see the module docs for the JSON format).

    Attributes:
        id (str): Camera name.
        width, height (int): Image size in pixels.
        focal_length, center (numpy.ndarray): :math:`(f_x, f_y)` and
            :math:`(c_x, c_y)` in pixels.
        radial_distortion, tangential_distortion (numpy.ndarray):
            :math:`(k_1, k_2, k_3)` and :math:`(p_1, p_2)`.
        rotation (numpy.ndarray): World-to-camera rotation :obj:`[3, 3]`.
        translation (numpy.ndarray): Camera centre in world coordinates, metres.
    """
    id: str
    width: int
    height: int
    focal_length: np.ndarray
    center: np.ndarray
    radial_distortion: np.ndarray
    tangential_distortion: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        r"""World points :obj:`[..., 3]` (metres) to the camera frame (metres)."""
        return (np.asarray(points, dtype=np.float64) - self.translation) @ self.rotation.T

    def project(self, points_cam: np.ndarray, distort: bool = True) -> np.ndarray:
        r"""Camera-frame points :obj:`[..., 3]` to pixels :obj:`[..., 2]`,
        with the radial and tangential distortion unless :obj:`distort` is
        :obj:`False`."""
        p = np.asarray(points_cam, dtype=np.float64)
        xy = p[..., :2] / p[..., 2:3]
        if distort:
            r2 = (xy ** 2).sum(-1, keepdims=True)
            k, t = self.radial_distortion, self.tangential_distortion
            radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
            x, y = xy[..., 0:1], xy[..., 1:2]
            tan = np.concatenate([2 * t[0] * x * y + t[1] * (r2 + 2 * x * x),
                                  t[0] * (r2 + 2 * y * y) + 2 * t[1] * x * y], -1)
            xy = xy * radial + tan
        return xy * self.focal_length + self.center


def _camera_from_dict(d: Any, where: str, scale: float) -> H36MCamera:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: a camera must be a JSON object, got {type(d).__name__}")
    for key in ('id', 'width', 'height', 'focal_length', 'center', 'translation'):
        if key not in d:
            raise ValueError(f"{where}: missing {key!r}")

    def vec(key, n, default=None):
        v = d.get(key, default)
        try:
            a = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: {key!r} must be numbers, got {v!r}") from None
        if key == 'focal_length' and a.ndim == 0:
            a = np.array([a, a])
        if a.shape != (n,) or not np.isfinite(a).all():
            raise ValueError(f"{where}: {key!r} must be {n} finite numbers, got {v!r}")
        return a

    size = []
    for key in ('width', 'height'):
        v = d[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or v <= 0 or v != int(v)):
            raise ValueError(f"{where}: {key!r} must be a positive whole number of pixels, "
                             f"got {v!r}")
        size.append(int(v))
    focal = vec('focal_length', 2)
    if (focal <= 0).any():
        raise ValueError(f"{where}: 'focal_length' must be positive, got {focal.tolist()}")
    has_q, has_r = 'orientation' in d, 'rotation' in d
    if has_q == has_r:
        raise ValueError(f"{where}: give exactly one of 'orientation' (camera-to-world "
                         f"quaternion w, x, y, z) and 'rotation' (world-to-camera 3x3 matrix)")
    if has_q:
        q = vec('orientation', 4)
        if abs(np.linalg.norm(q) - 1) > 1e-3:
            raise ValueError(f"{where}: 'orientation' must be a unit quaternion (w, x, y, z), "
                             f"its norm is {np.linalg.norm(q):.4g}")
        rot = quaternion_to_matrix(q / np.linalg.norm(q)).T
    else:
        try:
            rot = np.asarray(d['rotation'], dtype=np.float64)
        except (TypeError, ValueError):
            rot = np.zeros(0)
        if rot.shape != (3, 3) or not np.isfinite(rot).all():
            raise ValueError(f"{where}: 'rotation' must be a 3x3 matrix of numbers")
        if (np.abs(rot @ rot.T - np.eye(3)).max() > 1e-3 or np.linalg.det(rot) < 0):
            raise ValueError(f"{where}: 'rotation' is not a rotation matrix (orthonormal, "
                             f"determinant +1)")
    ident = d['id']
    if not isinstance(ident, (str, int)) or isinstance(ident, bool):
        raise ValueError(f"{where}: 'id' must be a string, got {ident!r}")
    return H36MCamera(str(ident), size[0], size[1], focal, vec('center', 2),
                      vec('radial_distortion', 3, [0, 0, 0]),
                      vec('tangential_distortion', 2, [0, 0]), rot,
                      vec('translation', 3) * scale)


def _no_json_constant(name: str):
    # NaN and Infinity are not JSON (Python's json accepts them by default)
    raise ValueError(f"{name} is not a number of JSON")


def load_h36m_cameras(path: str | Path | dict) -> dict[str, list[H36MCamera]]:
    r"""Reads a cameras JSON file (format in the module docs).

    Args:
        path (str, Path or dict): The JSON file, or its parsed content.

    Returns:
        dict: Subject name to its list of :class:`H36MCamera`, in the order
        of the camera views of ``positions_2d``.

    Raises:
        FileNotFoundError: The file does not exist.
        ValueError: It is not JSON (``NaN`` and ``Infinity`` are not), is
            nested too deeply, or is not in the format.
    """
    where = 'cameras'
    if isinstance(path, dict):
        d = path
    else:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"cameras file not found: {path}")
        try:
            d = json.loads(path.read_text(), parse_constant=_no_json_constant)
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {path} as JSON: {str(e).splitlines()[0]}") from None
        except RecursionError:
            raise ValueError(f"cannot read {path} as JSON: nested too deeply") from None
    if not isinstance(d, dict) or not isinstance(d.get('subjects'), dict) or not d['subjects']:
        raise ValueError(f"{where}: expected an object with a non-empty 'subjects' mapping "
                         f"subject -> list of cameras")
    unit = d.get('translation_unit')
    scales = {'mm': 1e-3, 'm': 1.0}
    if unit not in scales:
        raise ValueError(f"{where}: 'translation_unit' must be 'mm' or 'm', got {unit!r}")
    out = {}
    for subject, cams in d['subjects'].items():
        if not isinstance(cams, list) or not cams:
            raise ValueError(f"{where}: subjects.{subject} must be a non-empty list of cameras")
        out[subject] = [_camera_from_dict(c, f"{where}: {subject} camera {k}", scales[unit])
                        for k, c in enumerate(cams)]
        ids = [c.id for c in out[subject]]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{where}: {subject} has repeated camera ids {ids}")
    return out


def h36m_camera_samples(path_3d: str | Path, path_2d: str | Path,
                        cameras: str | Path | dict, subjects: Sequence[str] | None = None,
                        frame_step: int = 1,
                        max_mismatch: float = MAX_FRAME_MISMATCH) -> dict[str, Any]:
    r"""Pairs every 2D frame of ``data_2d_h36m_<name>.npz`` with the 3D pose
    of ``data_3d_h36m.npz`` seen by the same camera.

    For each subject, action and camera view :obj:`k`, the 3D world joints
    are moved into camera :obj:`k`'s frame (:meth:`H36MCamera.world_to_camera`),
    reduced to the 17 joints of ``h36m17`` and made relative to the hip
    (metres); the 2D joints (17 in the ``h36m`` order, or the 32 of the
    original layout) are normalised by that camera's width keeping the
    aspect ratio (:func:`~pyg_skeleton.datasets.camera.normalize_screen`).

    The 2D and 3D sequences of a take can differ by a few frames (some
    Human3.6M videos have extra frames at the end): both are **trimmed to
    the shorter from the end**, with one :class:`UserWarning` listing the
    trimmed sequences; a difference of more than :obj:`max_mismatch` of the
    3D length raises (the files do not belong together).

    Args:
        path_3d (str or Path): ``data_3d_h36m.npz`` (read with the
            restricted unpickler, see the module docs).
        path_2d (str or Path): ``data_2d_h36m_<name>.npz`` (likewise).
        cameras (str, Path or dict): Cameras JSON (:func:`load_h36m_cameras`).
        subjects (sequence of str, optional): Subjects to keep (default:
            all subjects of the 3D file).
        frame_step (int): Keep every k-th frame.
        max_mismatch (float): Largest frame-count difference trimmed, as a
            fraction of the 3D length.

    Returns:
        dict: ``x`` normalised 2D :obj:`[S, 17, 2]`, ``y`` root-relative
        camera-frame 3D :obj:`[S, 17, 3]` (float32, metres), ``root``
        camera-frame hip :obj:`[S, 3]`, ``pixels`` :obj:`[S, 17, 2]`, and
        per-sample ids ``subject``, ``action``, ``take``, ``camera``,
        ``frame``, with ``subject_names``, ``action_names``, ``take_names``
        (``'S1/Walking 1'``) and ``camera_ids``.

    Raises:
        FileNotFoundError: A file is missing.
        ValueError: A file is malformed, or the files do not match (a
            subject without cameras, a missing action, a different number
            of views, a 2D layout other than ``h36m``).
    """
    if frame_step < 1:
        raise ValueError(f"frame_step must be at least 1, got {frame_step}")
    data3 = load_h36m_3d(path_3d)
    data2, meta = load_h36m_2d(path_2d)
    cams = load_h36m_cameras(cameras)
    layout = (meta or {}).get('layout_name')
    if layout is not None and layout != 'h36m':
        raise ValueError(f"{path_2d}: 2D keypoints in layout {layout!r}; only the 'h36m' "
                         f"joint order is supported")
    subjects = sorted(data3) if subjects is None else list(subjects)
    for s in subjects:
        if s not in data3:
            raise ValueError(f"{path_3d}: subject {s} not in the file (has {sorted(data3)})")
        if s not in data2:
            raise ValueError(f"{path_2d}: subject {s} has no 2D keypoints")
        if s not in cams:
            raise ValueError(f"cameras: no cameras for subject {s} (has {sorted(cams)})")
    action_names = sorted({action_name(a) for s in subjects for a in data3[s]})
    camera_ids = sorted({c.id for s in subjects for c in cams[s]})
    out = {k: [] for k in ('x', 'y', 'root', 'pixels', 'subject', 'action', 'take', 'camera',
                           'frame')}
    take_names: list[str] = []
    trimmed = []
    for si, s in enumerate(subjects):
        for a in sorted(data3[s]):
            p3 = np.asarray(data3[s][a], dtype=np.float64)
            if p3.ndim != 3 or p3.shape[1:] not in ((32, 3), (17, 3)):
                raise ValueError(f"{path_3d}: {s}/{a} must be [T, 32, 3], got {list(p3.shape)}")
            if p3.shape[1] == 32:
                p3 = reduce_32_to_17(p3)
            if a not in data2[s]:
                raise ValueError(f"{path_2d}: no 2D keypoints for {s}/{a}")
            views = data2[s][a]
            if not isinstance(views, (list, tuple)) or len(views) != len(cams[s]):
                n = len(views) if isinstance(views, (list, tuple)) else type(views).__name__
                raise ValueError(f"{s}/{a}: {n} camera views of 2D keypoints but "
                                 f"{len(cams[s])} cameras for {s} in the cameras file")
            ti = len(take_names)
            take_names.append(f'{s}/{a}')
            for k, (cam, p2) in enumerate(zip(cams[s], views)):
                p2 = np.asarray(p2, dtype=np.float64)
                if p2.ndim != 3 or p2.shape[1:] not in ((17, 2), (32, 2)):
                    raise ValueError(f"{path_2d}: {s}/{a} view {k} must be [T, 17, 2], got "
                                     f"{list(p2.shape)}")
                if p2.shape[1] == 32:
                    p2 = reduce_32_to_17(p2)
                n = min(len(p2), len(p3))
                if len(p2) != len(p3):
                    if abs(len(p2) - len(p3)) > max_mismatch * len(p3):
                        raise ValueError(f"{s}/{a} camera {cam.id}: {len(p2)} 2D frames but "
                                         f"{len(p3)} 3D frames (more than "
                                         f"{max_mismatch:.0%} apart)")
                    trimmed.append(f'{s}/{a}/{cam.id} ({len(p2)} 2D, {len(p3)} 3D)')
                idx = np.arange(0, n, frame_step)
                pc = cam.world_to_camera(p3[idx])
                out['x'].append(normalize_screen(p2[idx], cam.width, cam.height))
                out['pixels'].append(p2[idx])
                out['root'].append(pc[:, 0])
                out['y'].append(pc - pc[:, :1])
                for key, v in (('subject', si), ('action', action_names.index(action_name(a))),
                               ('take', ti), ('camera', camera_ids.index(cam.id))):
                    out[key].append(np.full(len(idx), v, dtype=np.int64))
                out['frame'].append(idx)
    if trimmed:
        warnings.warn(f"Human3.6M: 2D and 3D frame counts differ for {len(trimmed)} "
                      f"sequence(s), trimmed to the shorter from the end: "
                      f"{', '.join(trimmed[:5])}{' ...' if len(trimmed) > 5 else ''}",
                      UserWarning, stacklevel=2)
    if not out['x']:
        raise ValueError(f"{path_3d}: no sequences for subjects {subjects}")
    res: dict[str, Any] = {k: np.concatenate(v) for k, v in out.items()}
    for k in ('x', 'y', 'root', 'pixels'):
        res[k] = res[k].astype(np.float32)
    res.update(subject_names=subjects, action_names=action_names, take_names=take_names,
               camera_ids=camera_ids)
    return res

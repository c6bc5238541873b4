r"""Human3.6M in the VideoPose3D ``.npz`` layout used by the community.

Bring your own licensed copy; nothing is downloaded. The files are:

* ``data_3d_h36m.npz`` with ``positions_3d``: a dict
  ``subject -> action -> [T, 32, 3]`` world positions in metres (z up);
* ``data_2d_h36m_<detector>.npz`` with ``positions_2d``
  (``subject -> action -> [camera views of [T, J, 2] pixels]``) and
  ``metadata`` (``layout_name``, ``num_joints``, ``keypoints_symmetry``).

.. warning::
    These files store Python dicts, so loading them needs
    :obj:`allow_pickle=True`, which can run arbitrary code from a malicious
    file. :func:`load_h36m_3d` and :func:`load_h36m_2d` do so **only for the
    paths you pass**; never load such files from an untrusted source. The
    library never loads a pickled file on its own.

:func:`reduce_32_to_17` keeps the 17 joints of the ``h36m17`` preset
(Hip, RHip, RKnee, RFoot, LHip, LKnee, LFoot, Spine, Thorax, Neck/Nose,
Head, LShoulder, LElbow, LWrist, RShoulder, RElbow, RWrist), which are
joints ``0 1 2 3 6 7 8 12 13 14 15 17 18 19 25 26 27`` of the 32. The
standard protocols train on S1, S5, S6, S7, S8 and test on S9, S11.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ['H36M_32_TO_17', 'TRAIN_SUBJECTS', 'TEST_SUBJECTS', 'reduce_32_to_17',
           'load_h36m_3d', 'load_h36m_2d', 'H36MPoses', 'z_up_to_y_up']

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


def _load_pickled_npz(path: Union[str, Path], key: str):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Human3.6M file not found: {path}")
    try:
        # allow_pickle is needed by this layout (dicts); only user-supplied paths get here.
        with np.load(path, allow_pickle=True) as f:
            if key not in f.files:
                raise ValueError(f"{path} has no {key!r} array (is it a VideoPose3D-layout "
                                 f"file?)")
            data = f[key].item()
            meta = f['metadata'].item() if 'metadata' in f.files else None
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {key} must be a dict subject -> action -> array")
    return data, meta


def load_h36m_3d(path: Union[str, Path]) -> Dict[str, Dict[str, np.ndarray]]:
    """Loads ``positions_3d`` (subject -> action -> :obj:`[T, 32, 3]`)."""
    return _load_pickled_npz(path, 'positions_3d')[0]


def load_h36m_2d(path: Union[str, Path]) -> Tuple[Dict[str, Dict[str, List[np.ndarray]]], dict]:
    """Loads ``positions_2d`` (subject -> action -> list of :obj:`[T, J, 2]`
    per camera) and ``metadata``."""
    data, meta = _load_pickled_npz(path, 'positions_2d')
    return data, (meta or {})


def action_name(action: str) -> str:
    """Base action of a take name: ``'Walking 1'`` -> ``'Walking'``."""
    return action.split(' ')[0]


class H36MPoses:
    r"""3D poses of Human3.6M (17 joints, metres, y up, world frame) with
    subject and action labels.

    Args:
        path_3d (str or Path): ``data_3d_h36m.npz`` (user-supplied; loaded
            with :obj:`allow_pickle=True`, see the module warning).
        subjects (sequence of str, optional): Subjects to keep.
        frame_step (int, optional): Keep every k-th frame (50 fps source).

    Attributes:
        positions (numpy.ndarray): :obj:`[F, 17, 3]` float32.
        subject, action (numpy.ndarray): Per-frame ids into
            :obj:`subject_names`, :obj:`action_names`.
    """

    def __init__(self, path_3d: Union[str, Path], subjects: Optional[Sequence[str]] = None,
                 frame_step: int = 1):
        data = load_h36m_3d(path_3d)
        subjects = sorted(data) if subjects is None else list(subjects)
        missing = [s for s in subjects if s not in data]
        if missing:
            raise ValueError(f"{path_3d}: subjects {missing} not in the file "
                             f"(has {sorted(data)})")
        self.subject_names = subjects
        self.action_names = sorted({action_name(a) for s in subjects for a in data[s]})
        pos, subj, act = [], [], []
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
        self.positions = np.concatenate(pos).astype(np.float32)
        self.subject = np.concatenate(subj)
        self.action = np.concatenate(act)

    def __len__(self) -> int:
        return len(self.positions)

    def subset(self, subjects: Sequence[str]) -> np.ndarray:
        ids = [self.subject_names.index(s) for s in subjects if s in self.subject_names]
        return np.nonzero(np.isin(self.subject, ids))[0]

    def split(self, train: Sequence[str] = TRAIN_SUBJECTS,
              test: Sequence[str] = TEST_SUBJECTS) -> Tuple[np.ndarray, np.ndarray]:
        """Frame indices of the standard protocol (train S1 S5 S6 S7 S8,
        test S9 S11)."""
        return self.subset(train), self.subset(test)

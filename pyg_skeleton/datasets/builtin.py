r"""The built-in real motion: CMU Graphics Lab motion capture in the
Human3.6M 17-joint layout, shipped with the package.

The data used in this project was obtained from mocap.cs.cmu.edu. The
database was created with funding from NSF EIA-0196217.

19,176 frames at 30 fps in 102 sequences (exp-map files of subject 02's
skeleton, and six BVH trials of subjects 01, 02 and 131), metres, y up,
world frame. The ``test`` split holds the exp-map set's own test sequences
and every trial of subject 131, a person no training frame shows. Frames
with source glitches (a joint faster than 15 m/s) are left out. The file is
built from ``../shared/data/mocap/cmu`` by ``scripts/build_builtin_motion.py``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ['BuiltinMotion', 'builtin_motion', 'BUILTIN_MOTION_PATH', 'CMU_ACKNOWLEDGEMENT']

BUILTIN_MOTION_PATH = Path(__file__).resolve().parents[1] / 'data' / 'motion' / 'cmu_h36m17.npz'

CMU_ACKNOWLEDGEMENT = ('The data used in this project was obtained from mocap.cs.cmu.edu. '
                       'The database was created with funding from NSF EIA-0196217.')


@dataclass(frozen=True)
class BuiltinMotion:
    r"""One split of the built-in motion.

    Attributes:
        positions (numpy.ndarray): :obj:`[F, 17, 3]` float32 world positions
            (metres, y up) of the valid frames.
        sequence (numpy.ndarray): :obj:`[F]` sequence index into
            :obj:`sequence_names`.
        sequence_names, subjects, actions (list of str): Per sequence.
        fps (float): Frame rate.
    """
    positions: np.ndarray
    sequence: np.ndarray
    sequence_names: list[str]
    subjects: list[str]
    actions: list[str]
    fps: float

    def __len__(self) -> int:
        return len(self.positions)

    def sequences(self):
        """Yields :obj:`(name, positions [T, 17, 3])` per sequence, in order."""
        for s in np.unique(self.sequence):
            yield self.sequence_names[s], self.positions[self.sequence == s]


@functools.lru_cache(maxsize=2)
def builtin_motion(split: str = 'train') -> BuiltinMotion:
    r"""The built-in CMU motion (see the module docs).

    Args:
        split (str): ``'train'``, ``'test'`` or ``'all'``.
    """
    if split not in ('train', 'test', 'all'):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    with np.load(BUILTIN_MOTION_PATH, allow_pickle=False) as z:
        seq = z['sequence'].astype(np.int64)
        keep = z['valid'].copy()
        if split != 'all':
            keep &= z['seq_split'][seq] == split
        return BuiltinMotion(
            positions=(z['positions_mm'][keep].astype(np.float32) / 1000.0),
            sequence=seq[keep], sequence_names=[str(s) for s in z['seq_names']],
            subjects=[str(s) for s in z['seq_subject']],
            actions=[str(s) for s in z['seq_action']], fps=float(z['fps']))

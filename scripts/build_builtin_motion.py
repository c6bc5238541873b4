r"""Builds the package's built-in real motion, ``pyg_skeleton/data/motion/cmu_h36m17.npz``,
from the CMU Graphics Lab motion capture in ``../shared/data/mocap/cmu/`` (Human3.6M-17
joint positions, metres, y up, 30 fps).

CMU's terms allow shipping this motion, or anything trained on it, inside the package
with its acknowledgement (kept in the file and in ``NOTICE``). The Bandai-Namco data
beside it is non-commercial and is never read here.

Usage (from the repository root)::

    python scripts/build_builtin_motion.py [--shared ../shared] [--out PATH]

What is kept: every frame of both CMU files (the exp-map set and the six BVH trials),
as int16 millimetres (0.5 mm rounding, far below the data's own accuracy). The
held-out (``test``) split is the exp-map set's own test split plus all trials of
subject 131, a person whose skeleton no training frame has. Frames where a joint
moves faster than 15 m/s (source glitches listed in the data's README) are marked
``valid = False``; the loader leaves them out of training and evaluation.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_SPEED = 15.0   # m/s; faster joints are source glitches (see the data README)


def _glitches(positions: np.ndarray, sequence: np.ndarray, fps: float) -> np.ndarray:
    """Frames that start or end a step faster than :data:`MAX_SPEED`."""
    speed = np.linalg.norm(np.diff(positions, axis=0), axis=-1).max(-1) * fps
    bad = (speed > MAX_SPEED) & (sequence[1:] == sequence[:-1])
    out = np.zeros(len(positions), bool)
    out[1:] |= bad
    out[:-1] |= bad
    return out


def build(shared: Path) -> dict:
    src = shared / 'data' / 'mocap' / 'cmu'
    ex = np.load(src / 'cmu_expmap_h36m17.npz', allow_pickle=False)
    bv = np.load(src / 'cmu_bvh_h36m17.npz', allow_pickle=False)
    for z in (ex, bv):
        if float(z['fps']) != 30.0 or list(z['parents']) != [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9,
                                                                8, 11, 12, 8, 14, 15]:
            raise SystemExit('unexpected CMU layout: rebuild expects 30 fps Human3.6M-17')

    names, subject, action, split = [], [], [], []
    act_names = [str(a) for a in ex['action_names']]
    for i, n in enumerate(ex['sequence_names']):
        names.append('expmap/' + Path(str(n)).parent.name + '/' + Path(str(n)).stem
                     + ('_test' if ex['seq_split'][i] else ''))
        subject.append('02')
        action.append(act_names[int(ex['seq_action'][i])])
        split.append('test' if ex['seq_split'][i] else 'train')
    for i, n in enumerate(bv['seq_name']):
        s = int(bv['seq_subject'][i])
        names.append(f'bvh/{n}')
        subject.append(f'{s:02d}')
        action.append(str(bv['seq_label'][i]))
        split.append('test' if s == 131 else 'train')

    positions = np.concatenate([ex['positions'], bv['positions']]).astype(np.float64)
    sequence = np.concatenate([ex['sequence'], bv['sequence'] + len(ex['sequence_names'])])
    valid = ~_glitches(positions, sequence, 30.0)
    mm = np.round(positions * 1000.0)
    if np.abs(mm).max() >= 2 ** 15:
        raise SystemExit('positions exceed the int16 millimetre range')
    return {
        'positions_mm': mm.astype(np.int16),
        'sequence': sequence.astype(np.int16),
        'valid': valid,
        'seq_names': np.array(names),
        'seq_subject': np.array(subject),
        'seq_action': np.array(action),
        'seq_split': np.array(split),
        'joint_names': ex['joint_names'],
        'parents': ex['parents'].astype(np.int8),
        'fps': np.float32(30.0),
        'acknowledgement': ex['acknowledgement'],
        'license': ex['license'],
        'source': np.array('CMU Graphics Lab Motion Capture Database, converted to '
                           'Human3.6M-17 positions (../shared/data/mocap/cmu, sha256 of the '
                           'inputs: ' + ', '.join(
                               hashlib.sha256((src / f).read_bytes()).hexdigest()[:16]
                               for f in ('cmu_expmap_h36m17.npz', 'cmu_bvh_h36m17.npz')) + ')'),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--shared', type=Path, default=ROOT.parent / 'shared')
    p.add_argument('--out', type=Path,
                   default=ROOT / 'pyg_skeleton' / 'data' / 'motion' / 'cmu_h36m17.npz')
    args = p.parse_args()
    data = build(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    split = data['seq_split'][data['sequence']]
    print(f"{args.out}: {len(data['sequence'])} frames ({(split == 'train').sum()} train, "
          f"{(split == 'test').sum()} test), {len(data['seq_names'])} sequences, "
          f"{(~data['valid']).sum()} glitch frames, {args.out.stat().st_size / 1e6:.2f} MB")


if __name__ == '__main__':
    main()

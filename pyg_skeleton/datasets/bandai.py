r"""Reader for the converted Bandai-Namco motion data (``bandai2_h36m17.npz``).

The file holds Human3.6M-17 joint positions in metres (y up, 10 fps) of the
Bandai-Namco-Research-Motiondataset-2, with per-frame and per-sequence actor,
content and style labels (see ``shared/data/mocap/README.md``).

.. note::
    The motion data is licensed CC BY-NC 4.0: non-commercial use only, never
    bundle it or anything derived from it. Cite "Motion data:
    Bandai-Namco-Research-Motiondataset-2, (c) 2022 Bandai Namco Research
    Inc., CC BY-NC 4.0" with any number computed on it.

.. code-block:: python

    data = BandaiMocap()                          # ../shared path by default
    train, test = data.split(test_actor=2)        # frame indices
    walks = data.subset(contents=['walk'], actors=[0, 1])
    for seq in data.sequences(actors=[2]):        # dicts per sequence
        seq['positions']                          # [T, 17, 3]
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..mesh.io import npz_members, read_npz_arrays

__all__ = ['BandaiMocap', 'default_bandai_path', 'bandai_label', 'BANDAI_ATTRIBUTION',
           'BANDAI_FILE']

#: Name of the converted Bandai-Namco file (``shared/data/mocap``).
BANDAI_FILE = 'bandai2_h36m17.npz'

BANDAI_ATTRIBUTION = ('Motion data: Bandai-Namco-Research-Motiondataset-2, (c) 2022 Bandai Namco '
                      'Research Inc., licensed CC BY-NC 4.0 (non-commercial use only)')

REQUIRED = ('positions', 'sequence', 'actor', 'content', 'style', 'content_names',
            'style_names', 'seq_file', 'seq_start', 'seq_len', 'seq_actor', 'seq_content',
            'seq_style')
OPTIONAL = ('fps', 'joint_names', 'parents', 'bvh_joint_for_h36m', 'bvh_joint_names',
            'bvh_parents', 'actor_bvh_offsets_m', 'head_top_m', 'license')


def _names(arrays: dict[str, np.ndarray], key: str, path: Path) -> list[str]:
    a = arrays[key]
    if a.ndim != 1 or a.dtype.kind not in 'US':
        raise ValueError(f"{path}: {key} must be a 1-D array of strings, got {a.dtype} "
                         f"{list(a.shape)}")
    return [str(s) for s in a]


def _labels(arrays: dict[str, np.ndarray], key: str, length: int, bound: int | None,
            path: Path, low: int = 0) -> np.ndarray:
    r"""Integer array :obj:`[length]` with values in ``[low, bound)`` (no
    upper bound if :obj:`None`) as int64."""
    a = arrays[key]
    if a.shape != (length,) or a.dtype.kind not in 'iu':
        raise ValueError(f"{path}: {key} must be an integer array [{length}], got {a.dtype} "
                         f"{list(a.shape)}")
    a = a.astype(np.int64)
    bad = (a < low) | (a >= bound if bound is not None else False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        high = 'inf' if bound is None else bound
        raise ValueError(f"{path}: {key}[{i}] = {a[i]} is outside [{low}, {high})")
    return a


def bandai_label(path: str | Path) -> str:
    r"""The name under which a file of the Bandai layout is reported: the
    data set's name for the converted Bandai-Namco file
    (:obj:`BANDAI_FILE`), else the file's own name (another recording in the
    same layout is not Bandai-Namco's data)."""
    name = Path(path).name
    if name == BANDAI_FILE:
        return 'Bandai-Namco mocap 2 (CC BY-NC 4.0)'
    return f'{name} (Bandai layout)'


def default_bandai_path() -> Path | None:
    """``shared/data/mocap/bandai2_h36m17.npz`` beside the repository
    checkout (``<repo>/../shared``), or :obj:`None` if absent."""
    path = (Path(__file__).resolve().parents[3] / 'shared' / 'data' / 'mocap'
            / 'bandai2_h36m17.npz')
    return path if path.exists() else None


class BandaiMocap:
    r"""The converted Bandai-Namco dataset 2.

    Args:
        path (str or Path, optional): The ``.npz`` file; defaults to
            :func:`default_bandai_path`. Every array's header is checked
            against its size before loading (never with
            :obj:`allow_pickle`).

    Attributes:
        positions (numpy.ndarray): :obj:`[F, 17, 3]` float32, metres, y up.
        actor, content, style, sequence (numpy.ndarray): Per-frame labels.
        content_names, style_names (list of str): Label names.
        fps (float): Frame rate (10).

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: One line naming the file if it is not a valid file of
            this layout: a corrupt archive, missing arrays, wrong shapes or
            dtypes, NaN positions, labels out of range, or a sequence that
            runs past the last frame.
    """

    def __init__(self, path: str | Path | None = None):
        if path is None:
            path = default_bandai_path()
            if path is None:
                raise FileNotFoundError("bandai2_h36m17.npz not found beside the repository "
                                        "(../shared/data/mocap); pass its path")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Bandai data file not found: {path}")
        members = npz_members(path)
        missing = [k for k in REQUIRED if k not in members]
        if missing:
            raise ValueError(f"{path} is not a Bandai h36m17 file: missing arrays {missing}")
        arrays = read_npz_arrays(path, REQUIRED + OPTIONAL)
        self.path = path
        self.positions = arrays['positions']
        if self.positions.ndim != 3 or self.positions.shape[-1] != 3:
            raise ValueError(f"{path}: positions must be [F, J, 3], got "
                             f"{list(self.positions.shape)}")
        if self.positions.dtype.kind != 'f':
            raise ValueError(f"{path}: positions must be floats, got {self.positions.dtype}")
        finite = np.isfinite(self.positions).all(axis=(1, 2))
        if not finite.all():
            raise ValueError(f"{path}: {int((~finite).sum())} frames hold NaN or infinite "
                             f"positions (first: frame {int(np.flatnonzero(~finite)[0])})")
        F = self.positions.shape[0]
        S = arrays['seq_file'].shape[0] if arrays['seq_file'].ndim == 1 else -1
        if S < 0:
            raise ValueError(f"{path}: seq_file must be 1-D, got "
                             f"{list(arrays['seq_file'].shape)}")
        self.content_names = _names(arrays, 'content_names', path)
        self.style_names = _names(arrays, 'style_names', path)
        self.seq_file = _names(arrays, 'seq_file', path)
        C, Y = len(self.content_names), len(self.style_names)
        self.sequence = _labels(arrays, 'sequence', F, S, path)
        self.actor = _labels(arrays, 'actor', F, None, path)
        self.content = _labels(arrays, 'content', F, C, path)
        self.style = _labels(arrays, 'style', F, Y, path)
        self.seq_start = _labels(arrays, 'seq_start', S, F, path)
        self.seq_len = _labels(arrays, 'seq_len', S, F + 1, path)
        self.seq_actor = _labels(arrays, 'seq_actor', S, None, path)
        self.seq_content = _labels(arrays, 'seq_content', S, C, path)
        self.seq_style = _labels(arrays, 'seq_style', S, Y, path)
        end = self.seq_start + self.seq_len
        bad = (self.seq_len < 1) | (end > F)
        if bad.any():
            s = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{path}: sequence {s} ({self.seq_file[s]}) spans frames "
                             f"[{self.seq_start[s]}, {end[s]}), not a non-empty range within "
                             f"the {F} frames")
        fps = arrays.get('fps', np.float64(10.0))
        if fps.shape != () or fps.dtype.kind not in 'iuf' or not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"{path}: fps must be a positive finite number, got {fps!r}")
        self.fps = float(fps)
        self.joint_names = [str(s) for s in arrays.get('joint_names', [])]
        self.parents = None
        if 'parents' in arrays:
            J = self.positions.shape[1]
            self.parents = _labels(arrays, 'parents', J, J, path, low=-1).tolist()
        self.meta = {k: arrays[k] for k in ('bvh_joint_for_h36m', 'bvh_joint_names',
                                            'bvh_parents', 'actor_bvh_offsets_m',
                                            'head_top_m', 'license') if k in arrays}

    def __len__(self) -> int:
        return self.positions.shape[0]

    @property
    def num_joints(self) -> int:
        return self.positions.shape[1]

    @property
    def num_sequences(self) -> int:
        return len(self.seq_file)

    @property
    def actors(self) -> list[int]:
        return sorted(set(self.seq_actor.tolist()))

    def _ids(self, values, names: list[str], what: str) -> list[int]:
        out = []
        for v in values:
            if isinstance(v, str):
                if v not in names:
                    raise ValueError(f"unknown {what} {v!r} (choose from {names})")
                out.append(names.index(v))
            else:
                out.append(int(v))
        return out

    def subset(self, actors: Sequence[int] | None = None,
               contents: Sequence[int | str] | None = None,
               styles: Sequence[int | str] | None = None) -> np.ndarray:
        """Frame indices with the given actors, contents and styles (ids or
        names); :obj:`None` keeps all."""
        keep = np.ones(len(self), dtype=bool)
        if actors is not None:
            keep &= np.isin(self.actor, list(actors))
        if contents is not None:
            keep &= np.isin(self.content, self._ids(contents, self.content_names, 'content'))
        if styles is not None:
            keep &= np.isin(self.style, self._ids(styles, self.style_names, 'style'))
        return np.nonzero(keep)[0]

    def split(self, test_actor: int = 2, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Actor-wise split: frames of all other actors for training, of
        :obj:`test_actor` for testing. Note that actor and style are
        confounded in this data (each style by one actor)."""
        if test_actor not in self.actors:
            raise ValueError(f"test actor {test_actor} not in the data (actors {self.actors})")
        train = [a for a in self.actors if a != test_actor]
        return self.subset(actors=train, **kwargs), self.subset(actors=[test_actor], **kwargs)

    def sequences(self, actors=None, contents=None, styles=None) -> Iterator[dict]:
        """Yields one dict per sequence: ``file``, ``actor``, ``content``,
        ``style``, ``positions`` :obj:`[T, J, 3]`."""
        keep = np.ones(self.num_sequences, dtype=bool)
        if actors is not None:
            keep &= np.isin(self.seq_actor, list(actors))
        if contents is not None:
            keep &= np.isin(self.seq_content, self._ids(contents, self.content_names, 'content'))
        if styles is not None:
            keep &= np.isin(self.seq_style, self._ids(styles, self.style_names, 'style'))
        for s in np.nonzero(keep)[0]:
            a, n = self.seq_start[s], self.seq_len[s]
            yield {'file': self.seq_file[s], 'actor': int(self.seq_actor[s]),
                   'content': int(self.seq_content[s]), 'style': int(self.seq_style[s]),
                   'positions': self.positions[a:a + n]}

    def sequence_index(self, file: str) -> int:
        """Index of the sequence of a BVH file name."""
        name = Path(file).name
        if name not in self.seq_file:
            raise KeyError(f"no sequence from {name!r}")
        return self.seq_file.index(name)

    def __repr__(self) -> str:
        return (f'BandaiMocap({len(self)} frames, {self.num_sequences} sequences, '
                f'{len(self.actors)} actors, {self.fps:g} fps)')

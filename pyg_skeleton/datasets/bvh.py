r"""BVH motion files: parsing, forward kinematics and joint maps.

:func:`read_bvh` parses any BVH hierarchy (any number of joints, any channel
order per joint, position channels on any joint, ``End Site`` leaves) and
:func:`forward_kinematics` turns it into world joint positions:

* Euler angles are in degrees and applied as **intrinsic** rotations in the
  order the channels are listed: ``Zrotation Xrotation Yrotation`` gives
  :math:`R = R_z R_x R_y`.
* Position channels give a joint's local translation. By default
  (:obj:`position_mode='replace'`) they **replace** its OFFSET, as Blender,
  MotionBuilder and the Bandai-Namco data treat them; :obj:`'add'` adds them
  to the OFFSET instead. For the common files with position channels on the
  root only and a zero root OFFSET (e.g. CMU) both give the same result.
* :math:`R_w[j] = R_w[p] R_{local}[j]`, :math:`x_w[j] = x_w[p] + R_w[p]
  t_{local}[j]`.
* An ``End Site`` becomes a joint named ``<parent>_End`` (``<parent>_End2``,
  ... for several) without channels.

A :class:`JointMap` selects and synthesises the joints of a target skeleton
(e.g. Human3.6M-17) from the BVH joints. It is data: a dict or a JSON file
of the form::

    {"name": "bandai_h36m17", "target": "h36m17", "scale": 0.01,
     "joints": {"Hip": "Hips", ...,
                "Head": {"extend": ["Neck", "Head"], "length": 0.12},
                "Spine": {"midpoint": ["Hips", "Neck"]}}}

``scale`` converts BVH units to metres. A joint is either the name of a BVH
joint or a synthesised joint:

* ``{"extend": [a, b], "length": L}``: :math:`x_b + L \,(x_b - x_a) /
  \lVert x_b - x_a \rVert` (``L`` in metres), e.g. a head top above the
  head joint along the neck-to-head direction;
* ``{"midpoint": [a, b]}`` or ``{"lerp": [a, b], "t": t}``: a point on the
  segment :math:`(1-t) x_a + t x_b`;
* ``{"mean": [a, b, ...]}``: the centroid of several joints.

Presets (see :func:`joint_map_presets`) live in
``pyg_skeleton/datasets/joint_maps/*.json``: ``bandai_h36m17`` (checked
against the converted Bandai-Namco data to float precision) and
``cmu_h36m17`` (the CMU mocap BVH conversion rig; its units are the ASF
unit, 1/0.45 inch = 0.05644 m).

.. warning::
    ``cmu_h36m17`` is **unverified on real CMU files**: it was written from
    the joint names of the CMU BVH conversion and checked only on a
    hand-built rig with those names, never against real CMU motion. Check
    its bone lengths and joint placement (e.g. with :func:`bone_lengths`)
    on your files before trusting numbers computed with it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ['BVH', 'BVHJoint', 'read_bvh', 'parse_bvh', 'forward_kinematics', 'euler_to_matrix',
           'JointMap', 'joint_map_presets', 'resample', 'load_bvh_positions', 'bone_lengths']

JOINT_MAP_DIR = Path(__file__).parent / 'joint_maps'

_AXES = {'X': 0, 'Y': 1, 'Z': 2}


@dataclass
class BVHJoint:
    """One joint of a BVH hierarchy."""
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    channel_start: int = 0
    end_site: bool = False


@dataclass
class BVH:
    """A parsed BVH file: the hierarchy and the raw channel values.

    Attributes:
        joints (list of BVHJoint): Joints in file order (parents first),
            End Sites included.
        motion (numpy.ndarray): Channel values :obj:`[T, C]` (float64).
        frame_time (float): Seconds per frame.
    """
    joints: list[BVHJoint]
    motion: np.ndarray
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @property
    def num_frames(self) -> int:
        return self.motion.shape[0]

    @property
    def joint_names(self) -> list[str]:
        return [j.name for j in self.joints]

    @property
    def parents(self) -> list[int]:
        return [j.parent for j in self.joints]

    @property
    def offsets(self) -> np.ndarray:
        return np.stack([j.offset for j in self.joints])

    def index(self, name: str) -> int:
        for i, j in enumerate(self.joints):
            if j.name == name:
                return i
        raise KeyError(f"BVH has no joint {name!r} (joints: {', '.join(self.joint_names)})")

    def channel(self, joint: str, channel: str) -> np.ndarray:
        """Values :obj:`[T]` of one channel (e.g. ``'Xrotation'``) of a joint."""
        j = self.joints[self.index(joint)]
        return self.motion[:, j.channel_start + j.channels.index(channel)]


def _tokens(text: str):
    for line_no, line in enumerate(text.splitlines(), 1):
        for tok in line.split():
            yield tok, line_no


def parse_bvh(text: str, source: str = '<string>') -> BVH:
    """Parses BVH text; see :func:`read_bvh`."""
    match = re.search(r'^\s*MOTION\s*$', text, flags=re.MULTILINE)
    if match is None:
        raise ValueError(f"{source}: not a BVH file (no MOTION section)")
    head, motion_text = text[:match.start()], text[match.end():]
    toks = list(_tokens(head))
    pos = 0

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(toks):
            raise ValueError(f"{source}: unexpected end of HIERARCHY"
                             + (f" (expected {expected!r})" if expected else ''))
        tok, line = toks[pos]
        if expected is not None and tok != expected:
            raise ValueError(f"{source}, line {line}: expected {expected!r}, got {tok!r}")
        pos += 1
        return tok

    def number() -> float:
        tok = take()
        try:
            return float(tok)
        except ValueError:
            raise ValueError(f"{source}, line {toks[pos - 1][1]}: expected a number, "
                             f"got {tok!r}") from None

    def finite_number() -> float:
        value = number()
        if not np.isfinite(value):
            raise ValueError(f"{source}, line {toks[pos - 1][1]}: expected a finite number, "
                             f"got {toks[pos - 1][0]!r}")
        return value

    if not toks or toks[0][0] != 'HIERARCHY':
        raise ValueError(f"{source}: not a BVH file (does not start with HIERARCHY)")
    take('HIERARCHY')
    joints: list[BVHJoint] = []
    num_channels = 0
    stack: list[int] = []
    # Joint names so far, and for each End Site base name the next suffix to
    # try: a set and a counter keep naming linear in the number of End Sites
    # (rebuilding the set per End Site made large files quadratic).
    names = set()
    next_suffix: dict[str, int] = {}

    while pos < len(toks):
        tok, line = toks[pos]
        if tok in ('ROOT', 'JOINT'):
            take()
            if tok == 'JOINT' and not stack:
                raise ValueError(f"{source}, line {line}: JOINT outside ROOT")
            name = take()
            take('{')
            take('OFFSET')
            offset = np.array([finite_number(), finite_number(), finite_number()])
            channels: list[str] = []
            if pos < len(toks) and toks[pos][0] == 'CHANNELS':
                take()
                count = number()
                if not (count >= 0 and float(count).is_integer()):
                    raise ValueError(f"{source}, line {toks[pos - 1][1]}: CHANNELS needs a "
                                     f"non-negative integer count, got {toks[pos - 1][0]!r}")
                channels = [take() for _ in range(int(count))]
                for c in channels:
                    if len(c) != 9 or c[0] not in _AXES or c[1:] not in ('position', 'rotation'):
                        raise ValueError(f"{source}, line {line}: unknown channel {c!r}")
            joints.append(BVHJoint(name, stack[-1] if stack else -1, offset, channels,
                                   num_channels))
            names.add(name)
            num_channels += len(channels)
            stack.append(len(joints) - 1)
        elif tok == 'End':
            take()
            take('Site')
            take('{')
            take('OFFSET')
            offset = np.array([finite_number(), finite_number(), finite_number()])
            take('}')
            if not stack:
                raise ValueError(f"{source}, line {line}: End Site outside a joint")
            parent = stack[-1]
            base = joints[parent].name + '_End'
            name = base
            if name in names:
                # names only grow, so the lowest free suffix never moves back
                k = next_suffix.get(base, 2)
                while f'{base}{k}' in names:
                    k += 1
                name = f'{base}{k}'
                next_suffix[base] = k + 1
            joints.append(BVHJoint(name, parent, offset, [], num_channels, end_site=True))
            names.add(name)
        elif tok == '}':
            take()
            if not stack:
                raise ValueError(f"{source}, line {line}: unbalanced '}}'")
            stack.pop()
        else:
            raise ValueError(f"{source}, line {line}: unexpected {tok!r} in HIERARCHY")
    if stack:
        raise ValueError(f"{source}: unbalanced braces in HIERARCHY")
    if not joints:
        raise ValueError(f"{source}: empty HIERARCHY")

    lines = [ln for ln in motion_text.splitlines() if ln.strip()]
    header: dict[str, str] = {}
    for ln in lines[:2]:
        key, _, value = ln.partition(':')
        header[key.strip().lower()] = value.strip()
    try:
        num_frames = int(header['frames'])
        frame_time = float(header['frame time'])
    except (KeyError, ValueError):
        raise ValueError(f"{source}: MOTION must start with 'Frames:' and 'Frame Time:'") from None
    if num_frames < 0:
        raise ValueError(f"{source}: Frames must be non-negative, got {num_frames}")
    if not (np.isfinite(frame_time) and frame_time > 0):
        raise ValueError(f"{source}: Frame Time must be positive and finite, got "
                         f"{header['frame time']!r}")
    try:
        values = np.array(' '.join(lines[2:]).split(), dtype=np.float64) if len(lines) > 2 \
            else np.zeros(0)
    except ValueError as e:
        raise ValueError(f"{source}: MOTION holds a value that is not a number "
                         f"({str(e).splitlines()[0]})") from None
    if values.size != num_frames * num_channels:
        raise ValueError(f"{source}: MOTION has {values.size} values, expected {num_frames} "
                         f"frames x {num_channels} channels")
    motion = values.reshape(num_frames, num_channels)
    bad = ~np.isfinite(motion)
    if bad.any():
        frame, col = np.argwhere(bad)[0]
        joint = next(j for j in reversed(joints) if j.channel_start <= col and j.channels)
        raise ValueError(f"{source}: MOTION holds {int(bad.sum())} NaN or infinite values "
                         f"(first: frame {frame}, joint {joint.name!r} "
                         f"{joint.channels[col - joint.channel_start]})")
    return BVH(joints, motion, frame_time)


def read_bvh(path: str | Path) -> BVH:
    """Reads a BVH file.

    Raises:
        ValueError: If the file is malformed, not UTF-8 text, or holds NaN
            or infinite offsets, motion values or frame time (one line
            naming the file and, where there is one, the line).
    """
    path = Path(path)
    raw = path.read_bytes()
    if b'\0' in raw:
        raise ValueError(f"{path}: binary data (NUL bytes), not a BVH text file")
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError as e:
        line = raw.count(b'\n', 0, e.start) + 1
        raise ValueError(f"{path}, line {line}: not UTF-8 text (byte "
                         f"0x{raw[e.start]:02x})") from None
    return parse_bvh(text, source=str(path))


def euler_to_matrix(angles_deg: np.ndarray, axes: str) -> np.ndarray:
    r"""Rotation matrices :obj:`[..., 3, 3]` of intrinsic Euler angles
    :obj:`[..., K]` (degrees) about :obj:`axes` (e.g. ``'ZXY'``):
    :math:`R = R_{a_1}(\theta_1) R_{a_2}(\theta_2) \cdots`."""
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(axes):
        c, s = np.cos(angles[..., k]), np.sin(angles[..., k])
        r = np.zeros(angles.shape[:-1] + (3, 3))
        i = _AXES[axis]
        j, l = (i + 1) % 3, (i + 2) % 3
        r[..., i, i] = 1
        r[..., j, j] = c
        r[..., j, l] = -s
        r[..., l, j] = s
        r[..., l, l] = c
        out = out @ r
    return out


def forward_kinematics(bvh: BVH, position_mode: str = 'replace',
                       return_rotations: bool = False):
    r"""World positions of all joints (End Sites included) in BVH units.

    Args:
        bvh (BVH): The parsed file.
        position_mode (str, optional): :obj:`'replace'` (position channels
            replace the OFFSET) or :obj:`'add'`. (default: :obj:`'replace'`)
        return_rotations (bool, optional): Also return the world rotations
            :obj:`[T, J, 3, 3]`.

    Returns:
        numpy.ndarray: :obj:`[T, J, 3]` float64.
    """
    if position_mode not in ('replace', 'add'):
        raise ValueError(f"position_mode must be 'replace' or 'add', got {position_mode!r}")
    T, J = bvh.num_frames, len(bvh.joints)
    pos = np.zeros((T, J, 3))
    rot = np.zeros((T, J, 3, 3))
    for j, joint in enumerate(bvh.joints):
        local_t = np.broadcast_to(joint.offset, (T, 3)).copy()
        rot_axes, rot_cols = '', []
        pos_set = False
        for k, c in enumerate(joint.channels):
            col = joint.channel_start + k
            if c.endswith('position'):
                if position_mode == 'replace' and not pos_set:
                    local_t[:] = 0.0
                    pos_set = True
                local_t[:, _AXES[c[0]]] += bvh.motion[:, col]
            else:
                rot_axes += c[0]
                rot_cols.append(col)
        local_r = (euler_to_matrix(bvh.motion[:, rot_cols], rot_axes) if rot_axes
                   else np.broadcast_to(np.eye(3), (T, 3, 3)))
        if joint.parent < 0:
            pos[:, j] = local_t
            rot[:, j] = local_r
        else:
            p = joint.parent
            pos[:, j] = pos[:, p] + np.einsum('tab,tb->ta', rot[:, p], local_t)
            rot[:, j] = rot[:, p] @ local_r
    return (pos, rot) if return_rotations else pos


def joint_map_presets() -> list[str]:
    """Names of the joint maps shipped with the package."""
    return sorted(p.stem for p in JOINT_MAP_DIR.glob('*.json'))


class JointMap:
    r"""Maps BVH joints (or any named source joints) onto a target skeleton.

    Args:
        joints (dict): Target joint name to a source joint name or a
            synthesised-joint spec (see the module docs). Keys are in target
            order.
        scale (float, optional): Source units to metres.
            (default: :obj:`1.0`)
        target (str, optional): Name of the target skeleton preset.
        name (str, optional): Name of the map.
    """

    def __init__(self, joints: dict[str, str | dict], scale: float = 1.0,
                 target: str | None = None, name: str | None = None):
        if not joints:
            raise ValueError("a joint map needs at least one joint")
        self.joints = dict(joints)
        self.scale = float(scale)
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"a joint map's scale must be positive and finite, got {scale!r}")
        self.target = target
        self.name = name
        for tgt, spec in self.joints.items():
            if isinstance(spec, dict):
                kinds = {'extend', 'midpoint', 'lerp', 'mean'} & set(spec)
                if len(kinds) != 1:
                    raise ValueError(f"joint {tgt!r}: a synthesised joint needs exactly one of "
                                     f"'extend', 'midpoint', 'lerp', 'mean', got {spec}")
                if 'extend' in spec and 'length' not in spec:
                    raise ValueError(f"joint {tgt!r}: 'extend' needs a 'length' in metres")
                for key in ('length', 't'):
                    if key in spec and not (isinstance(spec[key], (int, float))
                                            and np.isfinite(spec[key])):
                        raise ValueError(f"joint {tgt!r}: {key!r} must be a finite number, "
                                         f"got {spec[key]!r}")
            elif not isinstance(spec, str):
                raise ValueError(f"joint {tgt!r}: expected a joint name or a dict, got {spec!r}")

    @classmethod
    def from_dict(cls, d: dict) -> JointMap:
        """A map from a dict of the JSON layout (see the module docs).

        Raises:
            ValueError: If :obj:`d` is not a dict with a ``joints`` dict, or
                a joint spec is invalid.
        """
        if not isinstance(d, dict):
            raise ValueError(f"a joint map must be a dict (JSON object), got "
                             f"{type(d).__name__}")
        if not isinstance(d.get('joints'), dict):
            raise ValueError("a joint map needs a 'joints' dict of target joint to source "
                             "joint or spec")
        return cls(d['joints'], d.get('scale', 1.0), d.get('target'), d.get('name'))

    @classmethod
    def load(cls, path: str | Path) -> JointMap:
        """Reads a JSON joint map.

        Raises:
            ValueError: One line naming the file if it is not UTF-8 JSON of
                a valid map.
        """
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding='utf-8')))
        except (TypeError, ValueError) as e:  # JSON and UTF-8 errors are ValueErrors
            # too; a TypeError is a value of the wrong kind, e.g. "scale": [1]
            raise ValueError(f"{path}: {str(e).splitlines()[0]}") from None

    @classmethod
    def preset(cls, name: str) -> JointMap:
        path = JOINT_MAP_DIR / f'{name}.json'
        if not path.exists():
            raise ValueError(f"unknown joint map {name!r} (choose from {joint_map_presets()})")
        return cls.load(path)

    def to_dict(self) -> dict:
        return {'name': self.name, 'target': self.target, 'scale': self.scale,
                'joints': self.joints}

    @property
    def target_names(self) -> list[str]:
        return list(self.joints)

    def source_joints(self) -> list[str]:
        """All source joints the map reads."""
        names: list[str] = []
        for spec in self.joints.values():
            if isinstance(spec, str):
                names.append(spec)
            else:
                for key in ('extend', 'midpoint', 'lerp', 'mean'):
                    names += spec.get(key, [])
        return list(dict.fromkeys(names))

    def apply(self, positions: np.ndarray, names: Sequence[str]) -> np.ndarray:
        r"""Maps source positions :obj:`[..., J, 3]` (source units) with joint
        :obj:`names` to target positions :obj:`[..., N, 3]` in metres."""
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.source_joints() if n not in index]
        if missing:
            raise ValueError(f"joint map {self.name or ''} needs joints missing from the "
                             f"source: {missing}")
        pos = np.asarray(positions, dtype=np.float64) * self.scale

        def get(n):
            return pos[..., index[n], :]

        out = []
        for tgt, spec in self.joints.items():
            if isinstance(spec, str):
                out.append(get(spec))
            elif 'extend' in spec:
                a, b = (get(n) for n in spec['extend'])
                d = b - a
                d = d / np.linalg.norm(d, axis=-1, keepdims=True).clip(1e-12)
                out.append(b + float(spec['length']) * d)
            elif 'midpoint' in spec:
                a, b = (get(n) for n in spec['midpoint'])
                out.append(0.5 * (a + b))
            elif 'lerp' in spec:
                a, b = (get(n) for n in spec['lerp'])
                t = float(spec.get('t', 0.5))
                out.append((1 - t) * a + t * b)
            else:
                out.append(np.mean([get(n) for n in spec['mean']], axis=0))
        return np.stack(out, axis=-2)


def resample(positions: np.ndarray, src_fps: float, dst_fps: float | None) -> np.ndarray:
    r"""Resamples a sequence :obj:`[T, ...]` from :obj:`src_fps` to
    :obj:`dst_fps`. An integer ratio keeps every k-th frame starting at frame
    0 (no filtering, as the Bandai conversion); otherwise frames are linearly
    interpolated at times :math:`0, 1/f, 2/f, \dots` within the sequence.

    Raises:
        ValueError: If a frame rate is zero, negative, NaN or infinite.
    """
    for name, fps in (('src_fps', src_fps), ('dst_fps', dst_fps)):
        if fps is not None and not (np.isfinite(fps) and fps > 0):
            raise ValueError(f"{name} must be positive and finite, got {fps}")
    if dst_fps is None or abs(dst_fps - src_fps) < 1e-6 * src_fps:
        return positions
    ratio = src_fps / dst_fps
    if abs(ratio - round(ratio)) < 1e-4 and round(ratio) >= 1:
        return positions[::int(round(ratio))]
    T = positions.shape[0]
    t = np.arange(0, (T - 1) / src_fps + 1e-9, 1.0 / dst_fps) * src_fps
    i0 = np.floor(t).astype(int).clip(0, T - 1)
    i1 = (i0 + 1).clip(0, T - 1)
    w = (t - i0).reshape(-1, *([1] * (positions.ndim - 1)))
    return (1 - w) * positions[i0] + w * positions[i1]


def load_bvh_positions(path: str | Path, joint_map: str | dict | JointMap | None =
                       'bandai_h36m17', fps: float | None = None,
                       position_mode: str = 'replace') -> tuple[np.ndarray, float]:
    r"""Reads a BVH file and returns mapped joint positions in metres.

    Args:
        path (str or Path): The BVH file.
        joint_map (str, dict or JointMap, optional): Preset name, dict or
            map. :obj:`None` keeps all BVH joints (scaled by 1).
        fps (float, optional): Target frame rate (see :func:`resample`).
        position_mode (str, optional): See :func:`forward_kinematics`.

    Returns:
        (numpy.ndarray, float): Positions :obj:`[T', N, 3]` (float64,
        metres) and their frame rate.
    """
    bvh = read_bvh(path)
    pos = forward_kinematics(bvh, position_mode)
    if joint_map is not None:
        if isinstance(joint_map, str):
            joint_map = JointMap.preset(joint_map)
        elif isinstance(joint_map, dict):
            joint_map = JointMap.from_dict(joint_map)
        pos = joint_map.apply(pos, bvh.joint_names)
    out = resample(pos, bvh.fps, fps)
    return out, (bvh.fps if fps is None else float(fps))


def bone_lengths(positions: np.ndarray, parents: Sequence[int]) -> np.ndarray:
    """Bone lengths :obj:`[T, J]` (0 for the root) of positions :obj:`[T, J, 3]`."""
    parents = np.asarray(parents)
    par = np.where(parents < 0, np.arange(len(parents)), parents)
    return np.linalg.norm(positions - positions[..., par, :], axis=-1)

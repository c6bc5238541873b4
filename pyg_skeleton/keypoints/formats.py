r"""2D keypoint formats as data and their conversion to a target skeleton.

A :class:`KeypointFormat` names the joints of a detector's output in order,
its left/right pairs and, for each target skeleton it supports, how every
target joint is obtained from the format's joints. See
:mod:`pyg_skeleton.keypoints` for the table of shipped formats and the JSON
schema of ``pyg_skeleton/keypoints/formats/<name>.json``.
"""
from __future__ import annotations

import json
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..skeleton import Skeleton

__all__ = ['KeypointFormat', 'keypoint_formats', 'get_format']

FORMAT_DIR = Path(__file__).parent / 'formats'

# Keys a format file may carry; "source" and "notes" only document where the
# order and the maps come from.
_DICT_KEYS = {'name', 'joint_names', 'flip_pairs', 'targets', 'confidence_range', 'source',
              'notes'}

JointSpec = None | str | dict[str, Any]


def keypoint_formats() -> list[str]:
    r"""Returns the sorted names of the shipped keypoint formats."""
    return sorted(path.stem for path in FORMAT_DIR.glob('*.json'))


def get_format(format: str | KeypointFormat) -> KeypointFormat:
    r"""Returns a shipped format by name, or :obj:`format` itself.

    Args:
        format (str or KeypointFormat): A name from :func:`keypoint_formats`
            or a format.

    Returns:
        KeypointFormat: The format.

    Raises:
        ValueError: If there is no shipped format of that name.
    """
    if isinstance(format, KeypointFormat):
        return format
    return KeypointFormat.preset(format)


@cache
def _preset_joint_names(target: str) -> tuple[str, ...] | None:
    # Joint names of a skeleton preset (None if `target` is not one); cached
    # because every format file checks its maps against them.
    if target not in Skeleton.presets():
        return None
    return tuple(Skeleton.preset(target).joint_names)


def _point(value: Any, index: dict[str, int], where: str) -> dict[int, float]:
    # A point is a source joint name or a list of names (their centroid);
    # returned as {source index: weight}.
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{where}: expected a joint name or a non-empty list of joint names, "
                         f"got {value!r}")
    unknown = [n for n in names if n not in index]
    if unknown:
        raise ValueError(f"{where}: unknown source joint {unknown[0]!r}")
    weights: dict[int, float] = {}
    for name in names:
        weights[index[name]] = weights.get(index[name], 0.0) + 1.0 / len(names)
    return weights


def _compile_spec(spec: JointSpec, index: dict[str, int],
                  where: str) -> dict[int, float] | None:
    # {source index: weight} of one target joint, None for a masked joint.
    if spec is None:
        return None
    if isinstance(spec, str):
        return _point(spec, index, where)
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a joint name, a dict or null, got {spec!r}")
    kinds = {'mean', 'midpoint', 'lerp'} & set(spec)
    extra = set(spec) - {'mean', 'midpoint', 'lerp', 't'}
    if len(kinds) != 1 or extra or ('t' in spec) != ('lerp' in spec):
        raise ValueError(f"{where}: a synthesised joint is {{'mean': [...]}}, "
                         f"{{'midpoint': [a, b]}} or {{'lerp': [a, b], 't': t}}, got {spec}")
    if 'mean' in spec:
        return _point(spec['mean'], index, where)
    ends = spec.get('midpoint', spec.get('lerp'))
    t = 0.5 if 'midpoint' in spec else spec['t']
    if not isinstance(ends, list) or len(ends) != 2:
        raise ValueError(f"{where}: 'midpoint' and 'lerp' take two points, got {ends!r}")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t):
        raise ValueError(f"{where}: 't' must be a finite number, got {t!r}")
    weights: dict[int, float] = {}
    for end, w in zip(ends, (1.0 - t, float(t))):
        for j, v in _point(end, index, where).items():
            weights[j] = weights.get(j, 0.0) + w * v
    return weights


class KeypointFormat:
    r"""The joints of a 2D keypoint format and its maps to target skeletons.

    Every target joint is a linear combination of source joints (a joint, a
    centroid, or a point on the line through two points), so
    :meth:`convert` is one matrix product; a target joint is visible only if
    every source joint it reads is.

    .. code-block:: python

        fmt = KeypointFormat.preset("coco17")
        uv_h36m, mask = fmt.convert(uv, confidence, target="h36m17")

        # any Skeleton with a map of your own (target joint -> spec)
        fmt = KeypointFormat.from_skeleton(
            skeleton, {"Hip": "pelvis", ..., "Head": {"lerp": ["neck", "crown"], "t": 1.2},
                       "Neck/Nose": None})

    Args:
        name (str): Name of the format.
        joint_names (sequence of str): One unique name per joint, in order.
        flip_pairs (iterable of (int, int), optional): Left/right joint pairs.
        targets (dict, optional): Target skeleton name to a joint map
            :obj:`{target joint name: spec}` (see the module docs for the
            specs). When the target is a :class:`~pyg_skeleton.Skeleton`
            preset, the map must name exactly its joints; they are put in
            the preset's order.
        confidence_range (tuple of float, optional): Range of valid
            confidences. (default: :obj:`(0.0, 1.0)`)
        source (str, optional): Where the joint order comes from.

    Raises:
        ValueError: If a joint name repeats, a flip pair is out of range or
            a map names an unknown joint, misses a target joint or has a
            malformed spec.
    """

    def __init__(self, name: str, joint_names: Sequence[str],
                 flip_pairs: Sequence[Sequence[int]] = (),
                 targets: dict[str, dict[str, JointSpec]] | None = None,
                 confidence_range: Sequence[float] = (0.0, 1.0),
                 source: str | None = None):
        self.name = str(name)
        self.joint_names = [str(n) for n in joint_names]
        self.source = source
        if not self.joint_names:
            raise ValueError(f"keypoint format {self.name!r} has no joints")
        duplicates = [n for n, c in Counter(self.joint_names).items() if c > 1]
        if duplicates:
            raise ValueError(f"keypoint format {self.name!r}: duplicate joint name "
                             f"{duplicates[0]!r}")
        num = len(self.joint_names)
        pairs = []
        for pair in flip_pairs:
            a, b = (int(v) for v in pair)
            if not (0 <= a < num and 0 <= b < num) or a == b:
                raise ValueError(f"keypoint format {self.name!r}: flip pair ({a}, {b}) is not "
                                 f"two different joints in [0, {num})")
            pairs.append((min(a, b), max(a, b)))
        self.flip_pairs = sorted(pairs)
        low, high = (float(v) for v in confidence_range)
        if not low < high:
            raise ValueError(f"keypoint format {self.name!r}: confidence_range must be "
                             f"(low, high) with low < high, got {confidence_range}")
        self.confidence_range = (low, high)
        self.targets: dict[str, dict[str, JointSpec]] = {}
        # target -> (weights [J_t, J] float64, sources [J_t, J] bool, defined [J_t] bool)
        self._matrices: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for target, joint_map in (targets or {}).items():
            self._add_target(str(target), joint_map)

    def _add_target(self, target: str, joint_map: dict[str, JointSpec]) -> None:
        where = f"keypoint format {self.name!r}, target {target!r}"
        if not isinstance(joint_map, dict) or not joint_map:
            raise ValueError(f"{where}: the joint map must be a non-empty dict "
                             "{target joint: spec}")
        names = list(joint_map)
        expected = _preset_joint_names(target)
        if expected is not None:
            expected = list(expected)
            missing = [n for n in expected if n not in joint_map]
            unknown = [n for n in names if n not in expected]
            if missing or unknown:
                raise ValueError(f"{where}: the map must name every joint of the {target} "
                                 f"preset (null to mask one); missing {missing}, unknown "
                                 f"{unknown}")
            names = expected
        index = {n: i for i, n in enumerate(self.joint_names)}
        weights = np.zeros((len(names), len(self.joint_names)))
        sources = np.zeros(weights.shape, dtype=bool)
        defined = np.zeros(len(names), dtype=bool)
        for t, name in enumerate(names):
            row = _compile_spec(joint_map[name], index, f"{where}, joint {name!r}")
            if row is None:
                continue
            defined[t] = True
            for j, w in row.items():
                weights[t, j] = w
                sources[t, j] = True
        self.targets[target] = {n: joint_map[n] for n in names}
        self._matrices[target] = (weights, sources, defined)

    # ------------------------------------------------------------------ build

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KeypointFormat:
        r"""Builds a format from a dict in the schema of the format files.

        Args:
            d (dict): The description (see the module docs).

        Returns:
            KeypointFormat: The format.

        Raises:
            ValueError: If a key is unknown or a required key is missing.
        """
        unknown = set(d) - _DICT_KEYS
        if unknown:
            raise ValueError(f"unknown keypoint format key(s) {sorted(unknown)}; allowed: "
                             f"{sorted(_DICT_KEYS)}")
        for key in ('name', 'joint_names'):
            if key not in d:
                raise ValueError(f"a keypoint format needs {key!r}")
        return cls(d['name'], d['joint_names'], d.get('flip_pairs', ()), d.get('targets'),
                   d.get('confidence_range', (0.0, 1.0)), d.get('source'))

    def to_dict(self) -> dict[str, Any]:
        r"""Returns a JSON-ready description that :meth:`from_dict` reads
        back."""
        return {'name': self.name, 'source': self.source, 'joint_names': list(self.joint_names),
                'flip_pairs': [list(p) for p in self.flip_pairs],
                'confidence_range': list(self.confidence_range),
                'targets': {t: dict(m) for t, m in self.targets.items()}}

    @classmethod
    def load(cls, path: str | Path) -> KeypointFormat:
        r"""Loads a format from a JSON file.

        Args:
            path (str or Path): File to read.

        Returns:
            KeypointFormat: The format.

        Raises:
            ValueError: If the file is not valid JSON or not a valid format
                (the message names the file).
        """
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding='utf-8'))
            if not isinstance(d, dict):
                raise ValueError("expected a JSON object")
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def preset(cls, name: str) -> KeypointFormat:
        r"""Loads a shipped format.

        Args:
            name (str): One of :func:`keypoint_formats`.

        Returns:
            KeypointFormat: The format.

        Raises:
            ValueError: If there is no shipped format of that name.
        """
        if name not in keypoint_formats():
            raise ValueError(f"unknown keypoint format {name!r}; known formats: "
                             f"{', '.join(keypoint_formats())}")
        return cls.load(FORMAT_DIR / f'{name}.json')

    @classmethod
    def from_skeleton(cls, skeleton: Skeleton,
                      joint_map: dict[str, JointSpec] | None = None,
                      target: str = 'h36m17', name: str | None = None) -> KeypointFormat:
        r"""Uses any :class:`~pyg_skeleton.Skeleton` as a keypoint format.

        Args:
            skeleton (Skeleton): The layout of the keypoints (its joint names
                and flip pairs are used).
            joint_map (dict, optional): Target joint name to spec (a
                skeleton joint name, :obj:`{'mean': [...]}`,
                :obj:`{'midpoint': [a, b]}`, :obj:`{'lerp': [a, b], 't': t}`
                or :obj:`None` to mask). Defaults to taking every target
                joint from the skeleton joint of the same name.
            target (str, optional): Name of the target skeleton; a
                :class:`~pyg_skeleton.Skeleton` preset, or any name when
                :obj:`joint_map` is given. (default: :obj:`'h36m17'`)
            name (str, optional): Name of the format. Defaults to the
                skeleton's name.

        Returns:
            KeypointFormat: A format with the single target :obj:`target`.

        Raises:
            ValueError: If :obj:`joint_map` is not given and :obj:`target` is
                not a preset or has a joint the skeleton lacks, or the map is
                invalid.
        """
        if joint_map is None:
            wanted = _preset_joint_names(target)
            if wanted is None:
                raise ValueError(f"target {target!r} is not a skeleton preset: pass joint_map")
            missing = [n for n in wanted if n not in skeleton.joint_names]
            if missing:
                raise ValueError(f"skeleton {skeleton.name!r} lacks target joint(s) {missing} "
                                 f"of {target}: pass joint_map (null masks a joint)")
            joint_map = {n: n for n in wanted}
        return cls(name or skeleton.name or 'custom', skeleton.joint_names,
                   skeleton.flip_pairs, {target: joint_map},
                   source=f"skeleton {skeleton.name!r}")

    # ------------------------------------------------------------- properties

    @property
    def num_joints(self) -> int:
        r"""Number of joints :obj:`J` of the format."""
        return len(self.joint_names)

    def target_joint_names(self, target: str = 'h36m17') -> list[str]:
        r"""Joint names of a target, in output order.

        Raises:
            ValueError: If the format has no map to :obj:`target`.
        """
        self._check_target(target)
        return list(self.targets[target])

    def _check_target(self, target: str) -> None:
        if target not in self.targets:
            raise ValueError(f"keypoint format {self.name!r} has no map to target {target!r}; "
                             f"its targets: {sorted(self.targets)}")

    # ---------------------------------------------------------------- convert

    def convert(self, uv: Any, confidence: Any = None, target: str = 'h36m17',
                min_confidence: float = 0.3,
                source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        r"""Converts keypoints of this format to a target skeleton.

        A source joint is visible if its coordinates are finite and its
        confidence (when given) is at least :obj:`min_confidence` and above
        the lowest value of ``confidence_range`` (which marks a missing
        joint, also when :obj:`min_confidence` is :obj:`0`); a target
        joint is visible if the map defines it and every source joint it
        reads is visible. Masked joints get coordinates :obj:`0`. Samples
        (all leading indices) with no visible target joint are reported in
        one warning with their count and stay fully masked.

        Args:
            uv (numpy.ndarray or torch.Tensor): Pixel coordinates
                :obj:`[..., J, 2]`.
            confidence (numpy.ndarray or torch.Tensor, optional): Scores
                :obj:`[..., J]` in ``confidence_range``; NaN counts as
                :obj:`0`. (default: :obj:`None`, every finite joint visible)
            target (str, optional): Target skeleton, one of ``targets``.
                (default: :obj:`'h36m17'`)
            min_confidence (float, optional): Visibility threshold.
                (default: :obj:`0.3`)
            source (str, optional): Where the keypoints come from (a file),
                named in errors and warnings.

        Returns:
            (numpy.ndarray, numpy.ndarray): :obj:`uv_t` :obj:`[..., J_t, 2]`
            float32 and :obj:`mask_t` :obj:`[..., J_t]` bool (:obj:`True` =
            visible).

        Raises:
            ValueError: If :obj:`target` is not a target of the format, the
                shapes do not match the format's :obj:`J` joints, or a
                confidence lies outside ``confidence_range``.
        """
        prefix = f"{source}: " if source else ''
        self._check_target(target)
        uv = _to_numpy(uv).astype(np.float64)
        if uv.ndim < 2 or uv.shape[-2:] != (self.num_joints, 2):
            raise ValueError(f"{prefix}expected keypoints of shape [..., {self.num_joints}, 2] "
                             f"for format {self.name!r}, got {list(uv.shape)}")
        visible = np.isfinite(uv).all(-1)
        if confidence is not None:
            confidence = _to_numpy(confidence).astype(np.float64)
            if confidence.shape != uv.shape[:-1]:
                raise ValueError(f"{prefix}expected confidences of shape "
                                 f"{list(uv.shape[:-1])}, got {list(confidence.shape)}")
            self.check_confidence(confidence, source)
            # The lowest confidence marks a missing joint (readers write 0 there), so
            # it masks even with min_confidence=0; NaN fails both comparisons.
            visible &= (confidence >= min_confidence) & (confidence > self.confidence_range[0])
        weights, sources, defined = self._matrices[target]
        uv = np.where(visible[..., None], uv, 0.0)
        uv_t = np.einsum('tj,...jc->...tc', weights, uv)
        hidden_sources = (~visible).astype(np.float64) @ sources.T.astype(np.float64)
        mask_t = defined & (hidden_sources == 0)
        uv_t = np.where(mask_t[..., None], uv_t, 0.0).astype(np.float32)
        if mask_t.size:
            empty = int((~mask_t.any(-1)).sum())
            if empty:
                num = mask_t.size // mask_t.shape[-1]
                warnings.warn(f"{prefix}{empty} of {num} samples have no visible {target} joint "
                              f"(keypoints missing, NaN or with confidence < {min_confidence}); "
                              "they stay fully masked", stacklevel=2)
        return uv_t, mask_t

    def check_confidence(self, confidence: np.ndarray, source: str | None = None) -> None:
        r"""Checks that finite confidences lie in ``confidence_range``.

        Raises:
            ValueError: One line with the offending value and, when given,
                :obj:`source`.
        """
        low, high = self.confidence_range
        finite = confidence[np.isfinite(confidence)]
        bad = finite[(finite < low) | (finite > high)]
        if bad.size:
            prefix = f"{source}: " if source else ''
            raise ValueError(f"{prefix}{bad.size} confidence(s) outside [{low:g}, {high:g}] for "
                             f"format {self.name!r} (e.g. {float(bad[0]):g}); rescale the "
                             "scores to that range")

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.name!r}, num_joints={self.num_joints}, "
                f"targets={sorted(self.targets)})")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        # float64 keeps float32 and float64 inputs exact; half types have no NumPy twin.
        return x.detach().to('cpu', torch.float64).numpy()
    return np.asarray(x)

r"""Readers of 2D detector outputs into one :class:`Keypoints` result.

See :mod:`pyg_skeleton.keypoints` for the file layouts each reader accepts.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .formats import KeypointFormat, get_format

__all__ = ['Keypoints', 'read_keypoints', 'read_coco', 'read_openpose', 'read_mediapipe',
           'read_array', 'MAX_FILE_BYTES']

#: Files (and .npz members) larger than this are refused before they are read.
MAX_FILE_BYTES = 1 << 30

ImageSize = tuple[float, float] | np.ndarray

# Joint counts that name one format unambiguously in files without a format
# of their own (.npy / .npz). 17 is left out on purpose: COCO, Human3.6M and
# MPI-INF-3DHP all have 17 joints.
_FORMAT_BY_COUNT = {16: 'h36m16', 18: 'openpose_coco18', 25: 'openpose_body25',
                    26: 'halpe26', 33: 'mediapipe33', 133: 'coco_wholebody'}
_COCO_BY_COUNT = {17: 'coco17', 26: 'halpe26', 133: 'coco_wholebody'}
_OPENPOSE_BY_COUNT = {18: 'openpose_coco18', 25: 'openpose_body25'}
# COCO-WholeBody annotation files split the 133 points over these keys.
_WHOLEBODY_KEYS = ('keypoints', 'foot_kpts', 'face_kpts', 'lefthand_kpts', 'righthand_kpts')


# eq=False: a generated __eq__ would compare arrays with ==, which is ambiguous.
@dataclass(eq=False)
class Keypoints:
    r"""2D keypoints read from a detector's output, one row per detected
    person in a frame (a sample).

    Attributes:
        uv (numpy.ndarray): Pixel coordinates :obj:`[K, J, 2]` float32;
            :obj:`0` where a joint is missing.
        confidence (numpy.ndarray): Scores :obj:`[K, J]` float32 in the
            format's range; :obj:`0` where a joint is missing (not
            detected, not labelled, at :obj:`(0, 0)`, or NaN/inf).
        frame (numpy.ndarray): Frame / image index :obj:`[K]` int64 into
            :attr:`frame_names`.
        person (numpy.ndarray): Person :obj:`[K]` int64: the track id when
            the file has one, else the position in its frame.
        frame_names (list of str): One name per frame (image file, frame
            file, or the index as text), also for frames without people.
        image_size (tuple or numpy.ndarray, optional): :obj:`(W, H)` in
            pixels, or :obj:`[num_frames, 2]` when the frames differ;
            :obj:`None` when neither the file nor the caller gives it.
        format (str): Name of the :class:`KeypointFormat`.
        source (str): The file or folder read.
    """
    uv: np.ndarray
    confidence: np.ndarray
    frame: np.ndarray
    person: np.ndarray
    frame_names: list[str]
    image_size: ImageSize | None
    format: str
    source: str
    # The format itself, for formats that are not shipped presets.
    keypoint_format: KeypointFormat | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.uv = np.asarray(self.uv, dtype=np.float32)
        self.confidence = np.asarray(self.confidence, dtype=np.float32)
        self.frame = np.asarray(self.frame, dtype=np.int64)
        self.person = np.asarray(self.person, dtype=np.int64)
        num = self.uv.shape[0]
        if (self.uv.ndim != 3 or self.uv.shape[2] != 2
                or self.confidence.shape != self.uv.shape[:2]
                or self.frame.shape != (num,) or self.person.shape != (num,)):
            raise ValueError(f"{self.source}: inconsistent keypoint arrays: uv "
                             f"{list(self.uv.shape)}, confidence {list(self.confidence.shape)}, "
                             f"frame {list(self.frame.shape)}, person {list(self.person.shape)}")
        if self.keypoint_format is None:
            self.keypoint_format = get_format(self.format)

    def __len__(self) -> int:
        return self.uv.shape[0]

    @property
    def num_frames(self) -> int:
        r"""Number of frames, including frames without people."""
        return len(self.frame_names)

    def convert(self, target: str = 'h36m17',
                min_confidence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        r"""Converts to a target skeleton with
        :meth:`KeypointFormat.convert`; warnings and errors name the file.

        Args:
            target (str, optional): Target skeleton, one of the format's
                targets. (default: :obj:`'h36m17'`)
            min_confidence (float, optional): Visibility threshold.
                (default: :obj:`0.3`)

        Returns:
            (numpy.ndarray, numpy.ndarray): :obj:`[K, J_t, 2]` float32 pixels
            and the :obj:`[K, J_t]` bool visibility mask.
        """
        return self.keypoint_format.convert(self.uv, self.confidence, target, min_confidence,
                                            source=self.source)


# ------------------------------------------------------------------ helpers

def _natural_key(name: str) -> list[Any]:
    # 'frame_2' before 'frame_10': digit runs compare as numbers.
    return [(0, int(part), '') if part.isdigit() else (1, 0, part)
            for part in re.split(r'(\d+)', name)]


def _check_size(path: Path, size: int, what: str = 'file') -> None:
    if size == 0:
        raise ValueError(f"{path}: {what} is empty")
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {what} is {size} bytes, over the {MAX_FILE_BYTES}-byte limit "
                         "of keypoint files")


def _load_json(path: Path) -> Any:
    _check_size(path, path.stat().st_size)
    try:
        return json.loads(path.read_bytes().decode('utf-8'))
    except RecursionError:
        raise ValueError(f"{path}: JSON is nested too deeply to be a keypoint file") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def _image_size(value: Any, path: Path) -> tuple[float, float]:
    try:
        w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: image_size must be (W, H), got {value!r}") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ValueError(f"{path}: image_size must be two positive finite numbers (W, H), "
                         f"got {value!r}")
    return w, h


def _format_of_rows(rows: list[np.ndarray], format: str | KeypointFormat | None,
                    path: Path, by_count: dict[int, str], kind: str,
                    what: str) -> KeypointFormat:
    # every person of a file has the same joint count, which names the format
    counts = {len(r) for r in rows}
    if len(counts) > 1:
        raise ValueError(f"{path}: {what} have different joint counts {sorted(counts)}")
    return _resolve_format(format, counts.pop(), path, by_count, kind)


def _resolve_format(format: str | KeypointFormat | None, num_joints: int, path: Path,
                    by_count: dict[int, str], kind: str) -> KeypointFormat:
    if format is not None:
        fmt = get_format(format)
        if fmt.num_joints != num_joints:
            raise ValueError(f"{path}: {num_joints} joints per person, but format "
                             f"{fmt.name!r} has {fmt.num_joints}")
        return fmt
    if num_joints in by_count:
        return get_format(by_count[num_joints])
    if num_joints == 17:
        raise ValueError(f"{path}: 17 joints is ambiguous (coco17, h36m17 or mpi_inf_3dhp17); "
                         "pass format=")
    counts = ', '.join(f"{n} ({name})" for n, name in sorted(by_count.items()))
    raise ValueError(f"{path}: {num_joints} joints per person match no {kind} format "
                     f"({counts}); pass format=")


def _triplets(values: Any, path: Path, where: str) -> np.ndarray:
    # A flat [x, y, score] * J list as a [J, 3] float64 array.
    if not isinstance(values, list) or len(values) % 3:
        raise ValueError(f"{path}: {where}: expected a flat list of x, y, score triplets, got "
                         f"{type(values).__name__} of length "
                         f"{len(values) if isinstance(values, list) else '-'}")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {where}: keypoints must be numbers") from None
    return array.reshape(-1, 3)


def _finish(path: Path, fmt: KeypointFormat, uv: np.ndarray, confidence: np.ndarray,
            frame: Sequence[int], person: Sequence[int], frame_names: list[str],
            image_size: ImageSize | None) -> Keypoints:
    # Common checks and the missing-joint convention of every reader.
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, fmt.num_joints, 2)
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1, fmt.num_joints)
    if uv.shape[0] == 0:
        raise ValueError(f"{path}: no person in any of its {len(frame_names)} frame(s)")
    fmt.check_confidence(confidence, str(path))
    # (0, 0) is how OpenPose, COCO and most detectors write a joint they did
    # not find; NaN/inf coordinates and NaN scores are missing as well.
    missing = (~np.isfinite(uv).all(-1) | (uv == 0).all(-1) | ~np.isfinite(confidence))
    confidence = np.where(missing, 0.0, confidence)
    uv = np.where(missing[..., None], 0.0, uv)
    if not (confidence > 0).any():
        raise ValueError(f"{path}: none of its {uv.shape[0]} sample(s) has a usable keypoint "
                         "(all missing, zero, NaN or with confidence 0)")
    return Keypoints(uv, confidence, np.asarray(frame), np.asarray(person), frame_names,
                     image_size, fmt.name, str(path), keypoint_format=fmt)


# ------------------------------------------------------------------ readers

def read_coco(path: str | Path, format: str | KeypointFormat | None = None,
              image_size: Any = None, data: Any = None) -> Keypoints:
    r"""Reads a COCO keypoint **results** or **annotation** JSON file.

    Results are a list of :obj:`{"image_id", "keypoints": [x, y, score] *
    J, ...}`; frames are the sorted image ids. Annotations are
    :obj:`{"images": [...], "annotations": [...]}`; frames are the images
    in file order (named by :obj:`file_name`, sized by
    :obj:`width`/:obj:`height`), the flag :obj:`v = 0` (not labelled) is
    confidence 0 and :obj:`v` in :obj:`{1, 2}` confidence 1; crowd
    annotations and people without labelled keypoints are skipped.
    COCO-WholeBody annotations (:obj:`foot_kpts`, :obj:`face_kpts`,
    :obj:`lefthand_kpts`, :obj:`righthand_kpts`) are joined into its 133
    points. :obj:`track_id` (PoseTrack, trackers) becomes ``person``
    when every person has one.

    Args:
        path (str or Path): The JSON file.
        format (str or KeypointFormat, optional): Overrides the format
            chosen by the joint count (17: coco17, 26: halpe26, 133:
            coco_wholebody).
        image_size ((float, float), optional): :obj:`(W, H)`; overrides the
            sizes of an annotation file.
        data (optional): The parsed JSON, if already read.

    Returns:
        Keypoints: The people of every image.

    Raises:
        ValueError: If the file is not COCO keypoints, mixes joint counts,
            has an unknown joint count or bad values (one line naming the
            file).
    """
    path = Path(path)
    data = _load_json(path) if data is None else data
    size = None if image_size is None else _image_size(image_size, path)
    if isinstance(data, dict) and 'annotations' in data and 'images' in data:
        return _read_coco_annotations(path, data, format, size)
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected COCO results (a non-empty list of detections) or "
                         "annotations (an object with 'images' and 'annotations')")
    rows = []
    for i, det in enumerate(data):
        if not isinstance(det, dict) or 'image_id' not in det or 'keypoints' not in det:
            raise ValueError(f"{path}: detection {i} lacks 'image_id' or 'keypoints'")
        rows.append(_triplets(det['keypoints'], path, f"detection {i}"))
    fmt = _format_of_rows(rows, format, path, _COCO_BY_COUNT, 'COCO', 'detections')
    ids = [det['image_id'] for det in data]
    try:
        images = sorted(set(ids))
    except TypeError:
        images = sorted(set(ids), key=str)
    frame_of = {image: f for f, image in enumerate(images)}
    frame = [frame_of[i] for i in ids]
    person = _people([d.get('track_id') for d in data], frame, path)
    kp = np.stack(rows)
    return _finish(path, fmt, kp[..., :2], kp[..., 2], frame, person,
                   [str(i) for i in images], size)


def _positions(frame: Sequence[int]) -> list[int]:
    # Position of every sample among the samples of its frame.
    counter: dict[int, int] = {}
    person = []
    for f in frame:
        person.append(counter.get(f, 0))
        counter[f] = person[-1] + 1
    return person


def _people(ids: list[Any], frame: list[int], path: Path) -> list[int]:
    # Track ids when every person has a non-negative one, else positions.
    if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        return _positions(frame)
    seen = set()
    for i, f in zip(ids, frame):
        if (f, i) in seen:
            raise ValueError(f"{path}: person / track id {i} appears twice in frame {f}")
        seen.add((f, i))
    return list(ids)


def _read_coco_annotations(path: Path, data: dict, format: Any,
                           size: tuple[float, float] | None) -> Keypoints:
    images, annotations = data['images'], data['annotations']
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise ValueError(f"{path}: 'images' and 'annotations' must be lists")
    frame_of, names, sizes = {}, [], []
    for f, image in enumerate(images):
        if not isinstance(image, dict) or 'id' not in image:
            raise ValueError(f"{path}: image {f} lacks an 'id'")
        frame_of[image['id']] = f
        names.append(str(image.get('file_name', image['id'])))
        sizes.append((image.get('width'), image.get('height')))
    rows, kept = [], []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            raise ValueError(f"{path}: annotation {i} is not an object")
        if ann.get('iscrowd') or 'keypoints' not in ann:
            continue
        if ann.get('image_id') not in frame_of:
            raise ValueError(f"{path}: annotation {i} refers to unknown image_id "
                             f"{ann.get('image_id')!r}")
        keys = _WHOLEBODY_KEYS if all(k in ann for k in _WHOLEBODY_KEYS) else ('keypoints',)
        kp = np.concatenate([_triplets(ann[k], path, f"annotation {i} {k!r}") for k in keys])
        flags = kp[:, 2]
        if not np.isin(flags, (0, 1, 2)).all():
            raise ValueError(f"{path}: annotation {i}: visibility flags must be 0, 1 or 2, got "
                             f"{sorted(set(flags.tolist()) - {0.0, 1.0, 2.0})[:3]}")
        if not flags.any():
            continue  # a person box without labelled keypoints
        rows.append(kp)
        kept.append(ann)
    if not rows:
        raise ValueError(f"{path}: no annotation with labelled keypoints")
    fmt = _format_of_rows(rows, format, path, _COCO_BY_COUNT, 'COCO', 'annotations')
    kp = np.stack(rows)
    frame = [frame_of[ann['image_id']] for ann in kept]
    if size is None and all(w is not None and h is not None for w, h in sizes):
        checked = [_image_size(s, path) for s in sizes]
        size = checked[0] if len(set(checked)) == 1 else np.asarray(checked, dtype=np.float64)
    return _finish(path, fmt, kp[..., :2], (kp[..., 2] > 0).astype(np.float64), frame,
                   _people([a.get('track_id') for a in kept], frame, path), names, size)


def read_openpose(path: str | Path, format: str | KeypointFormat | None = None,
                  image_size: Any = None) -> Keypoints:
    r"""Reads OpenPose JSON output: a folder of per-frame
    :obj:`*_keypoints.json` files (frames in natural sort order, so
    :obj:`frame_2` comes before :obj:`frame_10`) or one such file.

    Every file is :obj:`{"people": [{"pose_keypoints_2d": [x, y, score] *
    J, "person_id": ...}]}` in pixels (OpenPose's default
    :obj:`keypoint_scale`). A frame without people keeps its index and
    adds no sample. :obj:`person_id` (a number or OpenPose's one-element
    list) is used as ``person`` when every person has a non-negative
    one, else the position in the frame.

    Args:
        path (str or Path): The folder or a single JSON file.
        format (str or KeypointFormat, optional): Overrides the format
            chosen by the joint count (25: openpose_body25, 18:
            openpose_coco18).
        image_size ((float, float), optional): :obj:`(W, H)`, which
            OpenPose does not write.

    Returns:
        Keypoints: The people of every frame.

    Raises:
        ValueError: If the folder has no :obj:`*_keypoints.json` file, a
            file is not OpenPose output, or the joint counts differ or are
            unknown (one line naming the file).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob('*_keypoints.json'), key=lambda p: _natural_key(p.name))
        if not files:
            raise ValueError(f"{path}: folder has no OpenPose *_keypoints.json file")
    else:
        files = [path]
    size = None if image_size is None else _image_size(image_size, path)
    rows, frame, ids = [], [], []
    counts = set()
    for f, file in enumerate(files):
        data = _load_json(file)
        if not isinstance(data, dict) or not isinstance(data.get('people'), list):
            raise ValueError(f"{file}: not OpenPose output (no 'people' list)")
        for p, person in enumerate(data['people']):
            if not isinstance(person, dict):
                raise ValueError(f"{file}: person {p} is not an object")
            values = person.get('pose_keypoints_2d')
            if not values:
                continue  # OpenPose run without the body model
            kp = _triplets(values, file, f"person {p}")
            counts.add(len(kp))
            if len(counts) > 1:
                raise ValueError(f"{file}: person {p} has {len(kp)} joints, other people "
                                 f"{sorted(counts - {len(kp)})}")
            rows.append(kp)
            frame.append(f)
            pid = person.get('person_id', -1)
            if isinstance(pid, list):
                pid = pid[0] if len(pid) == 1 else -1
            ids.append(pid)
    names = [file.name for file in files]
    if not rows:
        raise ValueError(f"{path}: no person in any of its {len(files)} frame(s)")
    fmt = _resolve_format(format, counts.pop(), path, _OPENPOSE_BY_COUNT, 'OpenPose')
    kp = np.stack(rows)
    return _finish(path, fmt, kp[..., :2], kp[..., 2], frame, _people(ids, frame, path), names,
                   size)


def _mediapipe_people(frame: Any, path: Path, f: int) -> list[list[dict]]:
    # The people of one MediaPipe frame: a list of 33 landmarks, a list of
    # such lists (the Tasks API's pose_landmarks), a dict wrapping either,
    # or empty / null for no person.
    if isinstance(frame, dict):
        for key in ('pose_landmarks', 'landmarks'):
            if key in frame:
                return _mediapipe_people(frame[key], path, f)
        raise ValueError(f"{path}: frame {f}: expected 'landmarks' or 'pose_landmarks'")
    if frame is None or frame == []:
        return []
    if isinstance(frame, list) and all(isinstance(lm, dict) for lm in frame):
        return [frame]
    if isinstance(frame, list) and all(isinstance(p, list) for p in frame):
        if all(all(isinstance(lm, dict) for lm in p) for p in frame):
            return [p for p in frame if p]
    raise ValueError(f"{path}: frame {f}: expected a list of landmark objects "
                     "{x, y, z, visibility}, a list of such lists, or null")


def read_mediapipe(path: str | Path, format: str | KeypointFormat | None = None,
                   image_size: Any = None, data: Any = None) -> Keypoints:
    r"""Reads MediaPipe Pose landmarks from JSON.

    The file is a list of frames, or an object with that list under
    :obj:`"frames"`, :obj:`"landmarks"` or :obj:`"pose_landmarks"` and an
    optional :obj:`"image_size": [W, H]`. A frame is a list of 33
    :obj:`{"x", "y", "z", "visibility", "presence"}` objects (one person),
    a list of such lists (several people, as MediaPipe Tasks'
    :obj:`pose_landmarks`), an object wrapping either under
    :obj:`"landmarks"` / :obj:`"pose_landmarks"`, or :obj:`[]` / :obj:`null`
    (no person). :obj:`x`, :obj:`y` are fractions of the image width and
    height; the confidence is :obj:`visibility` (1 when absent), or the
    smaller of :obj:`visibility` and :obj:`presence`.

    Args:
        path (str or Path): The JSON file.
        format (str or KeypointFormat, optional): A 33-joint format.
            (default: :obj:`'mediapipe33'`)
        image_size ((float, float), optional): :obj:`(W, H)` in pixels;
            required unless the file gives it.
        data (optional): The parsed JSON, if already read.

    Returns:
        Keypoints: The people of every frame, in pixels.

    Raises:
        ValueError: If the image size is unknown, the landmarks are
            malformed or not 33 per person (one line naming the file).
    """
    path = Path(path)
    data = _load_json(path) if data is None else data
    file_size = None
    if isinstance(data, dict):
        file_size = data.get('image_size')
        key = next((k for k in ('frames', 'landmarks', 'pose_landmarks') if k in data), None)
        if key is None:
            raise ValueError(f"{path}: expected MediaPipe frames under 'frames', 'landmarks' or "
                             "'pose_landmarks'")
        data = data[key]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty list of MediaPipe frames")
    size = image_size if image_size is not None else file_size
    if size is None:
        raise ValueError(f"{path}: MediaPipe landmarks are normalised to [0, 1]: pass "
                         "image_size=(W, H) to convert them to pixels")
    w, h = _image_size(size, path)
    rows, frame = [], []
    for f, entry in enumerate(data):
        for p, people in enumerate(_mediapipe_people(entry, path, f)):
            try:
                kp = np.array([[lm['x'] * w, lm['y'] * h,
                                min(lm.get('visibility', 1.0), lm.get('presence', 1.0))]
                               for lm in people], dtype=np.float64)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: frame {f}, person {p}: every landmark needs numeric "
                                 "'x' and 'y' (and optional 'visibility', 'presence')") from None
            rows.append(kp)
            frame.append(f)
    if not rows:
        raise ValueError(f"{path}: no person in any of its {len(data)} frame(s)")
    fmt = _format_of_rows(rows, format, path, {33: 'mediapipe33'}, 'MediaPipe', 'people')
    kp = np.stack(rows)
    return _finish(path, fmt, kp[..., :2], kp[..., 2], frame,
                   _positions(frame),
                   [str(f) for f in range(len(data))], (w, h))


def _load_array(path: Path) -> np.ndarray:
    # header-checked loading (sizes against the bytes present, no pickles)
    from pyg_skeleton.mesh.io import npz_members, read_npy_array, read_npz_arrays
    _check_size(path, path.stat().st_size)
    if path.suffix.lower() == '.npy':
        arr = read_npy_array(path)
    else:
        members = sorted(npz_members(path))
        if 'keypoints' in members:
            key = 'keypoints'
        elif len(members) == 1:
            key = members[0]
        else:
            raise ValueError(f"{path}: expected an array named 'keypoints' or a single "
                             f"array, found {members or 'none'}")
        arr = read_npz_arrays(path, [key])[key]
    if arr.dtype.kind not in 'fiub':
        raise ValueError(f"{path}: array dtype {arr.dtype} is not numeric")
    return arr


def read_array(path: str | Path, format: str | KeypointFormat | None = None,
               image_size: Any = None) -> Keypoints:
    r"""Reads keypoints of one person per frame from a :obj:`.npy` or
    :obj:`.npz` array (:obj:`.npz`: the array named :obj:`keypoints`, else
    the only array). Nothing is unpickled.

    Channel layouts of :obj:`[T, J, C]` (or :obj:`[J, C]` for one frame):

    * :obj:`C = 2`: :obj:`x, y` in pixels (confidence 1);
    * :obj:`C = 3`: :obj:`x, y, confidence`, pixels;
    * MediaPipe landmarks, :obj:`x, y` fractions of the image, channels a
      prefix of :obj:`x, y, z, visibility, presence`: every array with
      :obj:`C = 4` or :obj:`5`, and 33-joint arrays with :obj:`C = 2` or
      :obj:`3` whose coordinates all lie within :obj:`[-2, 2]`; they need
      :obj:`image_size`; the confidence is as in :func:`read_mediapipe`
      (1 without a visibility channel).

    Other arrays whose coordinates all lie within :obj:`[-2, 2]` are
    refused as not pixels. Joints at :obj:`(0, 0)` or NaN are missing.

    Args:
        path (str or Path): The file.
        format (str or KeypointFormat, optional): The format; required for
            17 joints (coco17, h36m17 and mpi_inf_3dhp17 share that count),
            otherwise chosen by the joint count (16, 18, 25, 26, 33, 133).
        image_size ((float, float), optional): :obj:`(W, H)` in pixels.

    Returns:
        Keypoints: One sample per frame, ``person`` 0.

    Raises:
        ValueError: If the file is empty, too large, not a numeric array of
            a supported shape, or the format cannot be told (one line naming
            the file).
    """
    path = Path(path)
    array = _load_array(path).astype(np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[2] not in (2, 3, 4, 5) or array.shape[1] == 0:
        raise ValueError(f"{path}: expected an array [T, J, C] with C in 2..5, got "
                         f"{list(array.shape)}")
    fmt = _resolve_format(format, array.shape[1], path, _FORMAT_BY_COUNT, 'array')
    size = None if image_size is None else _image_size(image_size, path)
    channels = array.shape[2]
    uv = array[..., :2]
    present = np.isfinite(uv).all(-1) & (uv != 0).any(-1)
    # No pose in pixels fits in a 4-pixel box: such coordinates are normalised.
    normalised = present.any() and np.abs(uv[present]).max() <= 2
    if channels >= 4 or (normalised and fmt.name == 'mediapipe33'):
        if size is None:
            raise ValueError(f"{path}: MediaPipe landmarks are normalised to [0, 1]: pass "
                             "image_size=(W, H)")
        uv = uv * np.asarray(size)
        confidence = np.ones(array.shape[:2])
        if channels >= 4:
            confidence = array[..., 3] if channels == 4 else np.minimum(array[..., 3],
                                                                        array[..., 4])
    elif normalised:
        raise ValueError(f"{path}: every coordinate lies within [-2, 2], so these are not "
                         "pixels; scale normalised coordinates by the image size first")
    else:
        confidence = array[..., 2] if channels == 3 else np.ones(array.shape[:2])
    num = array.shape[0]
    return _finish(path, fmt, uv, confidence, np.arange(num), np.zeros(num, dtype=np.int64),
                   [str(t) for t in range(num)], size)


def read_keypoints(path: str | Path, format: str | KeypointFormat | None = None,
                   image_size: Any = None) -> Keypoints:
    r"""Reads any supported detector output, choosing the reader by the
    file suffix, the JSON structure, or a folder (OpenPose).

    * folder, or JSON with :obj:`"people"`: :func:`read_openpose`;
    * JSON with :obj:`"images"` and :obj:`"annotations"`, or a list of
      detections with :obj:`"keypoints"`: :func:`read_coco`;
    * other JSON lists of frames, or objects with :obj:`"frames"`,
      :obj:`"landmarks"` or :obj:`"pose_landmarks"`: :func:`read_mediapipe`;
    * :obj:`.npy`, :obj:`.npz`: :func:`read_array`.

    Args:
        path (str or Path): File or folder.
        format (str or KeypointFormat, optional): Overrides the format
            chosen from the joint count.
        image_size ((float, float), optional): :obj:`(W, H)` in pixels;
            required for MediaPipe files that do not give it.

    Returns:
        Keypoints: The keypoints and where they come from.

    Raises:
        FileNotFoundError: If :obj:`path` does not exist.
        ValueError: If the type cannot be recognised or the reader refuses
            the file (one line naming the file and the problem).
    """
    path = Path(path)
    if format is not None:
        format = get_format(format)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return read_openpose(path, format, image_size)
    suffix = path.suffix.lower()
    if suffix in ('.npy', '.npz'):
        return read_array(path, format, image_size)
    if suffix != '.json':
        raise ValueError(f"{path}: unsupported file type {suffix or '(none)'!r}; expected .json, "
                         ".npy, .npz or a folder of OpenPose *_keypoints.json files")
    data = _load_json(path)
    if data in ([], {}):
        raise ValueError(f"{path}: holds no keypoints (empty JSON {json.dumps(data)})")
    if isinstance(data, dict) and 'people' in data:
        return read_openpose(path, format, image_size)
    if isinstance(data, dict) and 'images' in data and 'annotations' in data:
        return read_coco(path, format, image_size, data=data)
    if isinstance(data, list) and data and all(isinstance(d, dict) and 'keypoints' in d
                                               for d in data):
        return read_coco(path, format, image_size, data=data)
    if (isinstance(data, list) and data) or (
            isinstance(data, dict) and {'frames', 'landmarks', 'pose_landmarks'} & set(data)):
        return read_mediapipe(path, format, image_size, data=data)
    raise ValueError(f"{path}: unrecognised keypoint JSON (expected COCO results or "
                     "annotations, OpenPose, or MediaPipe landmarks)")

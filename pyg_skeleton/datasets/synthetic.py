r"""Built-in **synthetic** poses: no data file, nothing downloaded.

Poses of a parametric body are drawn by sampling joint angles uniformly
within anatomical limits (hip and shoulder flexion / abduction / twist, knee
and elbow flexion, torso bend and twist, neck) and running forward
kinematics on a skeleton whose bone lengths vary per sample (a global scale
of ~6 % and per-bone scales of ~4 %, left and right equal). Poses are in
metres, y up, the subject faces +z at yaw 0 and its lowest joint touches
the floor (y = 0); the yaw is uniform.

The bodies are **data**: ``pyg_skeleton/data/synthetic_bodies.json`` holds a
body table per skeleton preset (:obj:`SYNTHETIC_SKELETONS`: ``h36m17``,
``h36m16`` and ``smpl24``) and a **joint map** for every other preset
(:obj:`JOINT_MAPS`: ``coco17``, ``mpi_inf_3dhp17``, ``ntu25``), whose joints
are read off the ``smpl24`` body: each is a joint of the body or a point
fixed in a body joint's frame (the nose and ears on the head, a hand tip on
the hand). :func:`synthetic_poses` also takes a body table or a joint map of
your own (dicts in the same formats, see :func:`check_body` and
:func:`check_joint_map`), so a new skeleton needs no change to the library.
A body table is a dict

.. code-block:: python

    {'name': 'mybody',                 # optional; a preset name is checked
     'joints': [                       # parents before children
         {'name': 'Hip', 'parent': None, 'direction': [0, 0, 0], 'length': 0.0,
          'limits': {'Z': [-10, 10], 'X': [-15, 25], 'Y': [0, 0]}},
         {'name': 'RHip', 'parent': 'Hip', 'direction': [-1, 0, 0], 'length': 0.13},
         ...],
     'mirror': [['RHip', 'LHip'], ...]}   # right/left pairs

with, per joint, the rest direction of the bone from its parent (subject
faces +z, y up, its left is +x), its mean length in metres and optional
rotation limits in degrees of the joint, applied to its child bones as the
intrinsic Euler angles Z, X, Y about the parent frame (positive X moves a
downward bone backwards, positive Z moves it to the subject's left). The
pairs of ``mirror`` share their bone-scale draw and must be mirror images
(direction x negated, Z and Y limits negated, X limits equal).

A joint map is a dict

.. code-block:: python

    {'name': 'mykeypoints',            # optional; a preset name is checked
     'body': 'smpl24',                 # the body table it reads
     'joints': {                       # in the output order
         'nose': {'joint': 'head', 'offset': [0, 0.01, 0.1]},
         'left_knee': 'left_knee',     # a joint of the body
         ...}}

where an ``offset`` (metres, in the body's rest frame: subject faces +z, y
up, its left is +x) is carried by the joint's rotation and scaled with the
body. For a preset, the left/right pairs of its skeleton must map to mirror
images (mirror joints of the body, offsets with x negated).

These are **synthetic** poses: numbers measured on them say nothing about
real motion; everything that reports them labels them "synthetic".
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .bvh import euler_to_matrix

__all__ = ['synthetic_poses', 'SYNTHETIC_SKELETONS', 'JOINT_MAPS', 'H36M17_BODY',
           'check_body', 'check_joint_map', 'synthetic_body', 'synthetic_skeletons',
           'body_parents', 'BODY_SCALE_CLIP', 'BONE_SCALE_CLIP']

BODY_FILE = Path(__file__).resolve().parents[1] / 'data' / 'synthetic_bodies.json'

#: Ranges the per-sample body scale and per-bone scales are clipped to: a
#: bone is :obj:`length * body_scale * bone_scale` long.
BODY_SCALE_CLIP = (0.8, 1.2)
BONE_SCALE_CLIP = (0.88, 1.12)


_TABLES = json.loads(BODY_FILE.read_text())

#: Body tables of the presets (name -> table, see the module docs).
SYNTHETIC_SKELETONS: dict[str, dict[str, Any]] = {
    name: dict(body, name=name) for name, body in _TABLES['bodies'].items()}

#: Joint maps of the other presets onto a body table (name -> map, see the
#: module docs).
JOINT_MAPS: dict[str, dict[str, Any]] = {
    name: dict(m, name=name) for name, m in _TABLES['joint_maps'].items()}


def synthetic_skeletons() -> list[str]:
    """The skeleton presets :func:`synthetic_poses` draws poses of."""
    return sorted(set(SYNTHETIC_SKELETONS) | set(JOINT_MAPS))

#: The ``h36m17`` body as joint -> (parent, rest direction, mean length in m).
H36M17_BODY: dict[str, tuple[str, tuple[float, ...], float]] = {
    j['name']: (j['parent'] or '', tuple(j['direction']), j['length'])
    for j in SYNTHETIC_SKELETONS['h36m17']['joints']}


def check_body(body: dict[str, Any]) -> dict[str, Any]:
    r"""Checks a body table (format in the module docs) and returns it with
    its defaults filled in (``limits`` zero, ``mirror`` empty).

    Raises:
        ValueError: The table is malformed, not parent-before-child, or a
            mirror pair is not a mirror image.
    """
    name = body.get('name', 'custom') if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get('joints'), list) \
            or not body['joints']:
        raise ValueError("a body table must be a dict with a non-empty 'joints' list")
    joints, seen = [], {}
    for k, j in enumerate(body['joints']):
        where = f"body {name!r} joint {k}"
        if not isinstance(j, dict) or not isinstance(j.get('name'), str):
            raise ValueError(f"{where}: needs a 'name'")
        n = j['name']
        if n in seen:
            raise ValueError(f"{where}: repeated joint name {n!r}")
        parent = j.get('parent') or None
        if parent is not None and parent not in seen:
            raise ValueError(f"{where} ({n}): parent {parent!r} must be an earlier joint")
        try:
            d = np.asarray(j.get('direction', [0, 0, 0]), dtype=np.float64)
            length = float(j.get('length', 0.0))
        except (TypeError, ValueError):
            raise ValueError(f"{where} ({n}): 'direction' must be 3 numbers and 'length' a "
                             f"number") from None
        if d.shape != (3,) or not np.isfinite(d).all():
            raise ValueError(f"{where} ({n}): 'direction' must be 3 finite numbers")
        if parent is not None and (np.linalg.norm(d) == 0 or not length > 0):
            raise ValueError(f"{where} ({n}): a bone needs a non-zero direction and a positive "
                             f"length")
        limits = {}
        for axis in 'ZXY':
            lo, hi = (j.get('limits') or {}).get(axis, (0.0, 0.0))
            if not lo <= hi:
                raise ValueError(f"{where} ({n}): limit {axis} must be [low, high], got "
                                 f"{[lo, hi]}")
            limits[axis] = (float(lo), float(hi))
        seen[n] = k
        joints.append({'name': n, 'parent': parent, 'direction': d.tolist(), 'length': length,
                       'limits': limits})
    roots = [j['name'] for j in joints if j['parent'] is None]
    if len(roots) != 1:
        raise ValueError(f"body {name!r}: needs exactly one root joint, got {roots}")
    mirror = [tuple(p) for p in body.get('mirror', [])]
    by_name = {j['name']: j for j in joints}
    paired = set()
    for p in mirror:
        if len(p) != 2 or not all(n in by_name for n in p) or p[0] == p[1] \
                or paired & set(p):
            raise ValueError(f"body {name!r}: bad mirror pair {list(p)}")
        paired |= set(p)
        a, b = by_name[p[0]], by_name[p[1]]
        da, db = np.asarray(a['direction']), np.asarray(b['direction'])
        la, lb = a['limits'], b['limits']
        ok = (abs(a['length'] - b['length']) < 1e-9
              and np.allclose(da * [-1, 1, 1], db, atol=1e-9)
              and la['X'] == lb['X']
              and all(la[ax] == (-lb[ax][1], -lb[ax][0]) for ax in 'ZY'))
        if not ok:
            raise ValueError(f"body {name!r}: {p[0]} and {p[1]} are not mirror images "
                             f"(length, direction x negated, Z and Y limits negated)")
    return {'name': name, 'joints': joints, 'mirror': mirror}


def synthetic_body(skeleton: str | dict[str, Any] = 'h36m17') -> dict[str, Any]:
    r"""The checked body table of a preset name or of a table of your own.

    Raises:
        ValueError: There is no body table for the preset, or the table is
            malformed or disagrees with the preset's joints and parents.
    """
    if isinstance(skeleton, str):
        if skeleton not in SYNTHETIC_SKELETONS:
            raise ValueError(f"synthetic poses exist for {synthetic_skeletons()}, "
                             f"not {skeleton!r} (no synthetic body table or joint map; pass "
                             f"your own, see pyg_skeleton.datasets.synthetic)")
        skeleton = SYNTHETIC_SKELETONS[skeleton]
    body = check_body(skeleton)
    from pyg_skeleton.skeleton import Skeleton
    if body['name'] in Skeleton.presets():
        sk = Skeleton.preset(body['name'])
        names = [j['name'] for j in body['joints']]
        if sorted(names) != sorted(sk.joint_names):
            raise ValueError(f"body {body['name']!r}: joints {names} differ from those of the "
                             f"preset")
        if body_parents(body) != list(sk.parents):
            raise ValueError(f"body {body['name']!r}: parents differ from those of the preset")
    return body


def _is_joint_map(skeleton: Any) -> bool:
    return (isinstance(skeleton, str) and skeleton in JOINT_MAPS) or (
        isinstance(skeleton, dict) and isinstance(skeleton.get('joints'), dict))


def check_joint_map(joint_map: str | dict[str, Any]) -> dict[str, Any]:
    r"""Checks a joint map (a preset name of :obj:`JOINT_MAPS` or a map of
    your own, format in the module docs) against its body table and returns
    it with every entry as :obj:`{'joint': name, 'offset': [x, y, z]}`.

    Raises:
        ValueError: An unknown body or body joint, a malformed offset, joints
            that differ from the preset's, or left/right joints of the preset
            that are not mapped to mirror images.
    """
    if isinstance(joint_map, str):
        if joint_map not in JOINT_MAPS:
            raise ValueError(f"no joint map {joint_map!r} (choose from {sorted(JOINT_MAPS)})")
        joint_map = JOINT_MAPS[joint_map]
    name = joint_map.get('name', 'custom')
    body_name = joint_map.get('body')
    if body_name not in SYNTHETIC_SKELETONS:
        raise ValueError(f"joint map {name!r}: 'body' must be one of "
                         f"{sorted(SYNTHETIC_SKELETONS)}, got {body_name!r}")
    body = synthetic_body(body_name)
    body_joints = {j['name'] for j in body['joints']}
    joints = {}
    for n, spec in joint_map['joints'].items():
        if isinstance(spec, str):
            spec = {'joint': spec}
        where = f"joint map {name!r} joint {n!r}"
        if not isinstance(spec, dict) or spec.get('joint') not in body_joints:
            raise ValueError(f"{where}: must name a joint of body {body_name!r}")
        try:
            offset = np.asarray(spec.get('offset', [0, 0, 0]), dtype=np.float64)
        except (TypeError, ValueError):
            offset = np.zeros(0)
        if offset.shape != (3,) or not np.isfinite(offset).all():
            raise ValueError(f"{where}: 'offset' must be 3 finite numbers")
        joints[n] = {'joint': spec['joint'], 'offset': offset.tolist()}
    if not joints:
        raise ValueError(f"joint map {name!r}: no joints")
    from pyg_skeleton.skeleton import Skeleton
    if name in Skeleton.presets():
        sk = Skeleton.preset(name)
        if sorted(joints) != sorted(sk.joint_names):
            raise ValueError(f"joint map {name!r}: joints {sorted(joints)} differ from those "
                             f"of the preset")
        partner = {}
        for a, b in body['mirror']:
            partner[a], partner[b] = b, a
        for i, k in sk.flip_pairs:
            a, b = joints[sk.joint_names[i]], joints[sk.joint_names[k]]
            if partner.get(a['joint'], a['joint']) != b['joint'] or not np.allclose(
                    np.multiply(a['offset'], [-1, 1, 1]), b['offset'], atol=1e-9):
                raise ValueError(f"joint map {name!r}: {sk.joint_names[i]} and "
                                 f"{sk.joint_names[k]} are not mirror images (mirror body "
                                 f"joints, offset x negated)")
    return {'name': name, 'body': body_name, 'joints': joints}


def _output_order(body: dict[str, Any]) -> list[str]:
    from pyg_skeleton.skeleton import Skeleton
    names = [j['name'] for j in body['joints']]
    if body['name'] in Skeleton.presets():
        return list(Skeleton.preset(body['name']).joint_names)
    return names


def body_parents(body: dict[str, Any]) -> list[int]:
    r"""Parent indices (:obj:`-1` for the root) of the joints of a body
    table, in the joint order of :func:`synthetic_poses` (the preset's order
    for a preset, else the table's)."""
    order = _output_order(body)
    parent = {j['name']: j['parent'] for j in body['joints']}
    return [-1 if parent[n] is None else order.index(parent[n]) for n in order]


def _from_skeleton(skeleton: Any) -> str | dict[str, Any]:
    """The body table or joint map of a :class:`~pyg_skeleton.Skeleton`
    (anything else is returned as it is)."""
    from pyg_skeleton.skeleton import Skeleton
    if not isinstance(skeleton, Skeleton):
        return skeleton
    if skeleton.body_map is not None:
        return skeleton.body_map
    if skeleton.name in Skeleton.presets() and skeleton == Skeleton.preset(skeleton.name):
        return skeleton.name
    raise ValueError(f"skeleton {skeleton.name or 'custom'!r} has no 'body_map', so there are "
                     f"no synthetic poses for it: add a \"body_map\" (a joint map onto the "
                     f"smpl24 body, see pyg_skeleton.datasets.synthetic) to its JSON file")


def synthetic_poses(num: int, seed: int = 0, skeleton: str | dict[str, Any] = 'h36m17',
                    bone_scale_std: float = 0.04, body_scale_std: float = 0.06,
                    floor: bool = True) -> np.ndarray:
    r"""Samples :obj:`num` **synthetic** world poses :obj:`[num, N, 3]`
    (float32, metres, y up).

    Args:
        num (int): Number of poses.
        seed (int): Random seed (the output depends only on the arguments).
        skeleton (str, dict or Skeleton): A preset of
            ``synthetic_skeletons()`` (with a body table: ``h36m17``,
            ``h36m16``, ``smpl24``; with a joint map: ``coco17``,
            ``mpi_inf_3dhp17``, ``ntu25``), a body table or joint map of your
            own (see the module docs), or a
            :class:`~pyg_skeleton.Skeleton` with a
            :attr:`~pyg_skeleton.Skeleton.body_map` (a skeleton file with a
            ``"body_map"``) or a preset's layout. Joints come in the preset's
            order (a table or map of your own: in its order; a skeleton: in
            its joint order).
        bone_scale_std (float): Relative std of each bone length (clipped to
            :obj:`BONE_SCALE_CLIP`).
        body_scale_std (float): Relative std of the overall body size
            (clipped to :obj:`BODY_SCALE_CLIP`).
        floor (bool): Move each pose so its lowest joint is at y = 0.

    Raises:
        ValueError: There is no body table or joint map for
            :obj:`skeleton`, or it is malformed.
    """
    skeleton = _from_skeleton(skeleton)
    joint_map = check_joint_map(skeleton) if _is_joint_map(skeleton) else None
    body = synthetic_body(joint_map['body'] if joint_map else skeleton)
    rng = np.random.default_rng(seed)
    pos, rot_w, body_scale = _sample_body(body, num, rng, bone_scale_std, body_scale_std)
    names = [j['name'] for j in body['joints']]
    if joint_map is None:
        pos = pos[:, [names.index(n) for n in _output_order(body)]]
    else:
        from pyg_skeleton.skeleton import Skeleton
        order = (list(Skeleton.preset(joint_map['name']).joint_names)
                 if joint_map['name'] in Skeleton.presets() else list(joint_map['joints']))
        out = np.empty((num, len(order), 3))
        for k, n in enumerate(order):
            spec = joint_map['joints'][n]
            offset = np.asarray(spec['offset'])[None] * body_scale[:, None]
            out[:, k] = pos[:, names.index(spec['joint'])] + np.einsum(
                'nab,nb->na', rot_w[spec['joint']], offset)
        pos = out
    if floor:
        pos[..., 1] -= pos[..., 1].min(axis=1, keepdims=True)
    else:
        pos[..., 1] += 0.95
    return pos.astype(np.float32)


def _sample_body(body: dict[str, Any], num: int, rng: np.random.Generator,
                 bone_scale_std: float, body_scale_std: float):
    """Forward kinematics of :obj:`num` random poses of a checked body
    table: positions :obj:`[num, J, 3]` in the table's order (root at the
    origin), each joint's world rotation (applied to its child bones) and
    the body scales."""
    joints = body['joints']
    names = [j['name'] for j in joints]
    second = {b for _, b in body['mirror']}
    partner = {a: b for a, b in body['mirror']}
    body_scale = np.clip(rng.normal(1.0, body_scale_std, num), *BODY_SCALE_CLIP)
    bone_scale = {}
    for n in names:
        if n in second:
            continue
        s = np.clip(rng.normal(1.0, bone_scale_std, num), *BONE_SCALE_CLIP)
        bone_scale[n] = s
        if n in partner:
            bone_scale[partner[n]] = s

    rot_w = {}
    pos = np.zeros((num, len(names), 3))
    for j, joint in enumerate(joints):
        n, parent = joint['name'], joint['parent']
        if parent:
            p = names.index(parent)
            d = np.asarray(joint['direction'], dtype=np.float64)
            d = d / np.linalg.norm(d)
            bone = d * (joint['length'] * body_scale * bone_scale[n])[:, None]
            pos[:, j] = pos[:, p] + np.einsum('nab,nb->na', rot_w[parent], bone)
        angles = np.stack([rng.uniform(lo, hi, num) for lo, hi in
                           (joint['limits'][a] for a in 'ZXY')], axis=-1)
        local = euler_to_matrix(angles, 'ZXY')
        if not parent:
            yaw = rng.uniform(-180, 180, num)
            local = euler_to_matrix(yaw[:, None], 'Y') @ local
            rot_w[n] = local
        else:
            rot_w[n] = rot_w[parent] @ local
    return pos, rot_w, body_scale

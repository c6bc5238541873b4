from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets import synthetic_poses
from pyg_skeleton.keypoints import (
    KeypointFormat,
    Keypoints,
    get_format,
    keypoint_formats,
    read_array,
    read_coco,
    read_keypoints,
    read_mediapipe,
    read_openpose,
    readers,
)

# Names at a few indices, written from the formats' public definitions
# (COCO categories, AlphaPose Halpe-26, COCO-WholeBody, MediaPipe's
# PoseLandmark enum, OpenPose's output docs), independently of the JSON files.
ORDER = {
    'coco17': {0: 'nose', 1: 'left_eye', 4: 'right_ear', 5: 'left_shoulder', 10: 'right_wrist',
               11: 'left_hip', 14: 'right_knee', 16: 'right_ankle'},
    'halpe26': {0: 'nose', 16: 'right_ankle', 17: 'head', 18: 'neck', 19: 'hip',
                20: 'left_big_toe', 21: 'right_big_toe', 22: 'left_small_toe',
                23: 'right_small_toe', 24: 'left_heel', 25: 'right_heel'},
    'coco_wholebody': {0: 'nose', 16: 'right_ankle', 17: 'left_big_toe', 18: 'left_small_toe',
                       19: 'left_heel', 20: 'right_big_toe', 21: 'right_small_toe',
                       22: 'right_heel', 23: 'face_0', 90: 'face_67', 91: 'left_hand_root',
                       92: 'left_thumb1', 111: 'left_pinky_finger4', 112: 'right_hand_root',
                       132: 'right_pinky_finger4'},
    'mediapipe33': {0: 'nose', 1: 'left_eye_inner', 2: 'left_eye', 5: 'right_eye',
                    7: 'left_ear', 8: 'right_ear', 9: 'mouth_left', 11: 'left_shoulder',
                    12: 'right_shoulder', 15: 'left_wrist', 17: 'left_pinky', 19: 'left_index',
                    21: 'left_thumb', 23: 'left_hip', 24: 'right_hip', 27: 'left_ankle',
                    28: 'right_ankle', 29: 'left_heel', 31: 'left_foot_index',
                    32: 'right_foot_index'},
    'openpose_body25': {0: 'Nose', 1: 'Neck', 2: 'RShoulder', 4: 'RWrist', 5: 'LShoulder',
                        8: 'MidHip', 9: 'RHip', 11: 'RAnkle', 12: 'LHip', 14: 'LAnkle',
                        15: 'REye', 16: 'LEye', 17: 'REar', 18: 'LEar', 19: 'LBigToe',
                        20: 'LSmallToe', 21: 'LHeel', 22: 'RBigToe', 23: 'RSmallToe',
                        24: 'RHeel'},
    'openpose_coco18': {0: 'Nose', 1: 'Neck', 2: 'RShoulder', 7: 'LWrist', 8: 'RHip',
                        10: 'RAnkle', 11: 'LHip', 13: 'LAnkle', 14: 'REye', 15: 'LEye',
                        16: 'REar', 17: 'LEar'},
    'h36m17': {0: 'Hip', 1: 'RHip', 3: 'RFoot', 7: 'Spine', 8: 'Thorax', 9: 'Neck/Nose',
               10: 'Head', 11: 'LShoulder', 16: 'RWrist'},
    'h36m16': {0: 'Hip', 8: 'Thorax', 9: 'Head', 10: 'LShoulder', 15: 'RWrist'},
    'mpi_inf_3dhp17': {0: 'head_top', 1: 'neck', 2: 'right_shoulder', 14: 'pelvis',
                       15: 'spine', 16: 'head'},
}
NUM_JOINTS = {'coco17': 17, 'halpe26': 26, 'coco_wholebody': 133, 'mediapipe33': 33,
              'openpose_body25': 25, 'openpose_coco18': 18, 'h36m17': 17, 'h36m16': 16,
              'mpi_inf_3dhp17': 17}
H36M = Skeleton.preset('h36m17').joint_names


def one_line(error, *parts):
    # error: a pytest ExceptionInfo or a warning / exception object
    message = str(getattr(error, 'value', error))
    assert '\n' not in message, message
    for part in parts:
        assert str(part) in message, (part, message)


def pinhole(poses, f=1000.0, c=(500.0, 500.0), distance=5.0):
    # Camera on the +z side looking down -z, y up in the world and down in the image.
    z = distance - poses[..., 2]
    return np.stack([c[0] + f * poses[..., 0] / z, c[1] - f * (poses[..., 1] - 1.0) / z], -1)


# ------------------------------------------------------------------ formats

def test_every_format_loads_with_the_public_order():
    assert keypoint_formats() == sorted(NUM_JOINTS)
    for name, count in NUM_JOINTS.items():
        fmt = KeypointFormat.preset(name)
        assert fmt.name == name and fmt.num_joints == count
        for index, joint in ORDER[name].items():
            assert fmt.joint_names[index] == joint, (name, index)
    for name in ('coco17', 'h36m17', 'h36m16', 'mpi_inf_3dhp17'):
        skeleton = Skeleton.preset(name)
        fmt = KeypointFormat.preset(name)
        assert fmt.joint_names == skeleton.joint_names
        assert fmt.flip_pairs == skeleton.flip_pairs


def mirror(name):
    for a, b in (('left', 'right'), ('right', 'left')):
        if a in name:
            return name.replace(a, b)
    match = re.match(r'^([LR])([A-Z].*)$', name)
    if match:
        return {'L': 'R', 'R': 'L'}[match.group(1)] + match.group(2)
    return None


@pytest.mark.parametrize('name', sorted(NUM_JOINTS))
def test_flip_pairs_are_left_right_mirrors(name):
    fmt = KeypointFormat.preset(name)
    names = fmt.joint_names
    paired = {j for pair in fmt.flip_pairs for j in pair}
    for a, b in fmt.flip_pairs:
        if names[a].startswith('face_'):
            continue
        assert mirror(names[a]) == names[b], (names[a], names[b])
    # every named left/right joint whose mirror exists is paired
    for j, joint in enumerate(names):
        if mirror(joint) in names:
            assert j in paired, joint


def test_wholebody_face_pairs():
    pairs = set(KeypointFormat.preset('coco_wholebody').flip_pairs)
    face = 23
    # iBUG 300-W: jaw ends, outer eye corners, mouth corners; the nose tip is on the midline
    for a, b in ((0, 16), (36, 45), (39, 42), (48, 54)):
        assert (face + a, face + b) in pairs
    assert not any(face + 30 in pair for pair in pairs)
    assert sum(face <= a < face + 68 for a, _ in pairs) == 29


@pytest.mark.parametrize('name', sorted(NUM_JOINTS))
def test_targets_follow_the_skeleton_presets(name):
    fmt = KeypointFormat.preset(name)
    assert 'h36m17' in fmt.targets
    for target in fmt.targets:
        assert fmt.target_joint_names(target) == Skeleton.preset(target).joint_names


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        get_format('coco18')
    one_line(e, 'coco18', 'openpose_coco18', 'mediapipe33')


# --------------------------------------------------------------- conversion

def body_expected(uv, idx, head=None):
    # idx: format index of nose, ears, shoulders, elbows, wrists, hips, knees, ankles.
    p = {k: uv[..., i, :] for k, i in idx.items()}
    pelvis = (p['lhip'] + p['rhip']) / 2
    thorax = (p['lsho'] + p['rsho']) / 2
    ears = (p['lear'] + p['rear']) / 2
    top = thorax + 2 * (ears - thorax) if head is None else uv[..., head, :]
    rows = [pelvis, p['rhip'], p['rkne'], p['rank'], p['lhip'], p['lkne'], p['lank'],
            (pelvis + thorax) / 2, thorax, p['nose'], top, p['lsho'], p['lelb'], p['lwri'],
            p['rsho'], p['relb'], p['rwri']]
    return np.stack(rows, -2)


COCO_IDX = dict(nose=0, lear=3, rear=4, lsho=5, rsho=6, lelb=7, relb=8, lwri=9, rwri=10,
                lhip=11, rhip=12, lkne=13, rkne=14, lank=15, rank=16)
BODY25_IDX = dict(nose=0, rsho=2, relb=3, rwri=4, lsho=5, lelb=6, lwri=7, rhip=9, rkne=10,
                  rank=11, lhip=12, lkne=13, lank=14, rear=17, lear=18)
COCO18_IDX = dict(nose=0, rsho=2, relb=3, rwri=4, lsho=5, lelb=6, lwri=7, rhip=8, rkne=9,
                  rank=10, lhip=11, lkne=12, lank=13, rear=16, lear=17)
MEDIAPIPE_IDX = dict(nose=0, lear=7, rear=8, lsho=11, rsho=12, lelb=13, relb=14, lwri=15,
                     rwri=16, lhip=23, rhip=24, lkne=25, rkne=26, lank=27, rank=28)


@pytest.mark.parametrize('name,idx,head', [
    ('coco17', COCO_IDX, None), ('coco_wholebody', COCO_IDX, None), ('halpe26', COCO_IDX, 17),
    ('openpose_body25', BODY25_IDX, None), ('openpose_coco18', COCO18_IDX, None),
    ('mediapipe33', MEDIAPIPE_IDX, None)])
def test_convert_to_h36m17_by_hand(name, idx, head):
    fmt = KeypointFormat.preset(name)
    uv = np.random.default_rng(0).uniform(0, 1000, (4, 3, fmt.num_joints, 2))
    out, mask = fmt.convert(uv, np.ones(uv.shape[:-1]))
    assert out.dtype == np.float32 and out.shape == (4, 3, 17, 2)
    assert mask.dtype == bool and mask.all()
    np.testing.assert_allclose(out, body_expected(uv, idx, head), rtol=1e-6)


def test_convert_3dhp_and_h36m16():
    uv = np.random.default_rng(1).uniform(0, 1000, (5, 17, 2))
    out, mask = KeypointFormat.preset('mpi_inf_3dhp17').convert(uv)
    order = [14, 8, 9, 10, 11, 12, 13, 15, 1, 16, 0, 5, 6, 7, 2, 3, 4]
    np.testing.assert_array_equal(out, uv[:, order].astype(np.float32))
    assert mask.all()
    out, mask = KeypointFormat.preset('h36m16').convert(uv[:, :16])
    keep = [j for j in range(17) if j != 9]
    np.testing.assert_array_equal(out[:, keep], uv[:, :16].astype(np.float32))
    assert mask[:, keep].all() and not mask[:, 9].any() and (out[:, 9] == 0).all()


def test_convert_to_coco17():
    fmt = KeypointFormat.preset('openpose_body25')
    uv = np.random.default_rng(2).uniform(0, 1000, (2, 25, 2))
    out, mask = fmt.convert(uv, target='coco17')
    order = [0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11]
    np.testing.assert_array_equal(out, uv[:, order].astype(np.float32))
    assert mask.all()


def test_masks_from_confidence_and_nan():
    fmt = KeypointFormat.preset('coco17')
    uv = np.random.default_rng(3).uniform(0, 1000, (3, 17, 2))
    conf = np.full((3, 17), 0.9)
    conf[0, 11] = 0.1          # left hip below the threshold
    conf[1, 3] = 0.3           # left ear exactly at the threshold: visible
    uv[1, 0] = np.nan          # nose NaN
    uv[2, 4, 0] = np.inf       # right ear inf
    conf[2, 7] = np.nan        # left elbow NaN confidence
    out, mask = fmt.convert(uv, conf, min_confidence=0.3)
    expected = np.ones((3, 17), dtype=bool)
    expected[0, [H36M.index(n) for n in ('LHip', 'Hip', 'Spine')]] = False
    expected[1, H36M.index('Neck/Nose')] = False
    expected[2, [H36M.index('Head'), H36M.index('LElbow')]] = False
    np.testing.assert_array_equal(mask, expected)
    assert np.isfinite(out).all() and (out[~mask] == 0).all()
    reference = body_expected(uv, COCO_IDX)
    np.testing.assert_allclose(out[mask], reference[mask], rtol=1e-6)


def test_convert_torch_input_and_shape_errors():
    fmt = KeypointFormat.preset('coco17')
    uv = np.random.default_rng(4).uniform(0, 1000, (2, 17, 2)).astype(np.float32)
    conf = np.full((2, 17), 0.5, dtype=np.float32)
    out_np, mask_np = fmt.convert(uv, conf)
    out_t, mask_t = fmt.convert(torch.from_numpy(uv), torch.from_numpy(conf))
    np.testing.assert_array_equal(out_np, out_t)
    np.testing.assert_array_equal(mask_np, mask_t)
    with pytest.raises(ValueError) as e:
        fmt.convert(uv[:, :16])
    one_line(e, '[..., 17, 2]', 'coco17')
    with pytest.raises(ValueError) as e:
        fmt.convert(uv, conf[:, :5])
    one_line(e, 'confidences of shape')
    with pytest.raises(ValueError) as e:
        fmt.convert(uv, target='smpl24')
    one_line(e, 'smpl24', 'h36m17')


def test_confidence_out_of_range():
    fmt = KeypointFormat.preset('coco17')
    uv = np.ones((1, 17, 2)) * 100
    conf = np.full((1, 17), 0.5)
    conf[0, 3] = 1.7
    with pytest.raises(ValueError) as e:
        fmt.convert(uv, conf)
    one_line(e, 'outside [0, 1]', '1.7')


def test_sample_without_visible_joint_warns_with_count():
    fmt = KeypointFormat.preset('coco17')
    uv = np.full((4, 17, 2), 100.0)
    conf = np.full((4, 17), 0.9)
    conf[1] = 0.0
    uv[3] = np.nan
    with pytest.warns(UserWarning, match=r'2 of 4 samples have no visible h36m17 joint'):
        out, mask = fmt.convert(uv, conf)
    assert not mask[1].any() and not mask[3].any() and mask[[0, 2]].all()
    assert (out[[1, 3]] == 0).all()


def test_h36m17_round_trip_is_exact():
    uv = pinhole(synthetic_poses(64, seed=3)).astype(np.float32)
    assert uv.shape == (64, 17, 2) and np.ptp(uv) > 100
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out, mask = KeypointFormat.preset('h36m17').convert(uv, np.ones(uv.shape[:-1]))
    assert mask.all()
    np.testing.assert_array_equal(out, uv)


def test_from_skeleton():
    identity = KeypointFormat.from_skeleton(Skeleton.preset('h36m17'))
    uv = np.random.default_rng(5).uniform(0, 1000, (3, 17, 2)).astype(np.float32)
    np.testing.assert_array_equal(identity.convert(uv)[0], uv)

    # A toy layout mapped with a centroid, an extrapolation and masked joints.
    toy = Skeleton.from_parents([-1, 0, 0, 0, 3], joint_names=['pelvis', 'l', 'r', 'neck', 'top'],
                                flip_pairs=[(1, 2)], name='toy')
    joint_map = {n: None for n in H36M}
    joint_map.update({'Hip': 'pelvis', 'LHip': 'l', 'RHip': 'r',
                      'Spine': {'midpoint': ['pelvis', 'neck']},
                      'Head': {'lerp': ['neck', 'top'], 't': 1.5},
                      'Thorax': {'mean': ['l', 'r', 'neck']}})
    fmt = KeypointFormat.from_skeleton(toy, joint_map)
    assert fmt.name == 'toy' and fmt.flip_pairs == [(1, 2)]
    src = np.random.default_rng(6).uniform(0, 100, (2, 5, 2))
    out, mask = fmt.convert(src)
    want = {'Hip': src[:, 0], 'LHip': src[:, 1], 'RHip': src[:, 2],
            'Spine': (src[:, 0] + src[:, 3]) / 2,
            'Head': src[:, 3] + 1.5 * (src[:, 4] - src[:, 3]),
            'Thorax': (src[:, 1] + src[:, 2] + src[:, 3]) / 3}
    for name in H36M:
        j = H36M.index(name)
        if name in want:
            assert mask[:, j].all()
            np.testing.assert_allclose(out[:, j], want[name], rtol=1e-5)
        else:
            assert not mask[:, j].any() and (out[:, j] == 0).all()

    with pytest.raises(ValueError) as e:
        KeypointFormat.from_skeleton(toy)
    one_line(e, 'lacks target joint')
    bad = dict(joint_map, Head='chin')
    with pytest.raises(ValueError) as e:
        KeypointFormat.from_skeleton(toy, bad)
    one_line(e, "'Head'", "'chin'")
    partial = {k: v for k, v in joint_map.items() if k != 'RWrist'}
    with pytest.raises(ValueError) as e:
        KeypointFormat.from_skeleton(toy, partial)
    one_line(e, 'RWrist')
    with pytest.raises(ValueError) as e:
        KeypointFormat.from_skeleton(toy, dict(joint_map, Head={'lerp': ['neck', 'top']}))
    one_line(e, "'Head'", 'lerp')


def test_format_dict_round_trip(tmp_path):
    fmt = KeypointFormat.preset('halpe26')
    path = tmp_path / 'halpe.json'
    path.write_text(json.dumps(fmt.to_dict()))
    again = KeypointFormat.load(path)
    uv = np.random.default_rng(7).uniform(0, 1000, (2, 26, 2))
    np.testing.assert_array_equal(again.convert(uv)[0], fmt.convert(uv)[0])
    assert again.joint_names == fmt.joint_names and again.flip_pairs == fmt.flip_pairs
    path.write_text(json.dumps(dict(fmt.to_dict(), colour='red')))
    with pytest.raises(ValueError) as e:
        KeypointFormat.load(path)
    one_line(e, str(path), 'colour')


# ------------------------------------------------------------------ readers

def flat(kp):
    return np.asarray(kp, dtype=float).reshape(-1).tolist()


def test_read_coco_results(tmp_path):
    rng = np.random.default_rng(8)
    kps = rng.uniform(1, 600, (3, 17, 3))
    kps[..., 2] = rng.uniform(0, 1, (3, 17))
    kps[1, 4] = 0                           # a missing joint
    dets = [{'image_id': 5, 'category_id': 1, 'keypoints': flat(kps[0]), 'score': 0.9},
            {'image_id': 2, 'category_id': 1, 'keypoints': flat(kps[1]), 'score': 0.8},
            {'image_id': 5, 'category_id': 1, 'keypoints': flat(kps[2]), 'score': 0.7}]
    path = tmp_path / 'results.json'
    path.write_text(json.dumps(dets))
    kp = read_keypoints(path)
    assert isinstance(kp, Keypoints) and kp.format == 'coco17' and kp.source == str(path)
    assert kp.frame_names == ['2', '5'] and kp.image_size is None
    np.testing.assert_array_equal(kp.frame, [1, 0, 1])
    np.testing.assert_array_equal(kp.person, [0, 0, 1])
    assert kp.uv.dtype == np.float32 and kp.confidence.dtype == np.float32
    assert kp.frame.dtype == np.int64 and kp.person.dtype == np.int64
    np.testing.assert_allclose(kp.uv, kps[..., :2].astype(np.float32))
    np.testing.assert_allclose(kp.confidence, kps[..., 2].astype(np.float32))
    uv, mask = kp.convert('h36m17', min_confidence=0.0)
    assert not mask[1, H36M.index('Head')]  # right ear missing
    # track ids (as trackers write them) become the person ids
    for det, track in zip(dets, (7, 3, 9)):
        det['track_id'] = track
    path.write_text(json.dumps(dets))
    np.testing.assert_array_equal(read_coco(path).person, [7, 3, 9])
    # 26 joints: Halpe
    path.write_text(json.dumps([{'image_id': 1, 'keypoints': [10.0, 20.0, 0.5] * 26}]))
    assert read_keypoints(path).format == 'halpe26'


def test_read_coco_annotations_two_people(tmp_path):
    rng = np.random.default_rng(9)
    people = rng.uniform(1, 400, (4, 17, 3))
    people[..., 2] = rng.integers(1, 3, (4, 17))
    people[0, 3] = 0                        # not labelled
    images = [{'id': 11, 'file_name': 'a.jpg', 'width': 640, 'height': 480},
              {'id': 12, 'file_name': 'b.jpg', 'width': 640, 'height': 480},
              {'id': 13, 'file_name': 'c.jpg', 'width': 640, 'height': 480}]
    anns = [{'id': i, 'image_id': image, 'category_id': 1, 'iscrowd': 0,
             'num_keypoints': 17, 'keypoints': flat(p)}
            for i, (image, p) in enumerate(zip((11, 11, 13, 13), people))]
    anns.append({'id': 9, 'image_id': 12, 'iscrowd': 1, 'keypoints': flat(people[0])})
    anns.append({'id': 10, 'image_id': 12, 'iscrowd': 0, 'keypoints': [0] * 51})
    path = tmp_path / 'person_keypoints.json'
    path.write_text(json.dumps({'images': images, 'annotations': anns,
                                'categories': [{'id': 1, 'name': 'person'}]}))
    kp = read_keypoints(path)
    assert kp.format == 'coco17' and len(kp) == 4 and kp.num_frames == 3
    assert kp.frame_names == ['a.jpg', 'b.jpg', 'c.jpg'] and kp.image_size == (640.0, 480.0)
    np.testing.assert_array_equal(kp.frame, [0, 0, 2, 2])
    np.testing.assert_array_equal(kp.person, [0, 1, 0, 1])
    expected_conf = (people[..., 2] > 0).astype(np.float32)
    np.testing.assert_array_equal(kp.confidence, expected_conf)
    assert kp.confidence[0, 3] == 0 and (kp.uv[0, 3] == 0).all()
    np.testing.assert_allclose(kp.uv[1], people[1, :, :2].astype(np.float32))
    # different image sizes: one (W, H) per frame
    images[2]['width'] = 1280
    path.write_text(json.dumps({'images': images, 'annotations': anns}))
    np.testing.assert_array_equal(read_coco(path).image_size,
                                  [[640, 480], [640, 480], [1280, 480]])


def test_read_coco_wholebody_annotations(tmp_path):
    parts = {'keypoints': 17, 'foot_kpts': 6, 'face_kpts': 68, 'lefthand_kpts': 21,
             'righthand_kpts': 21}
    ann = {'id': 1, 'image_id': 1, 'iscrowd': 0}
    values = []
    for key, count in parts.items():
        kp = np.column_stack([np.arange(count) + len(values) + 1.0,
                              np.full(count, 50.0), np.full(count, 2.0)])
        values += list(range(count))
        ann[key] = flat(kp)
    path = tmp_path / 'wholebody.json'
    path.write_text(json.dumps({'images': [{'id': 1, 'file_name': 'x.jpg'}],
                                'annotations': [ann]}))
    kp = read_keypoints(path)
    assert kp.format == 'coco_wholebody' and kp.uv.shape == (1, 133, 2)
    np.testing.assert_array_equal(kp.uv[0, :, 0], np.arange(133) + 1)  # parts in order


def write_openpose(folder, name, people):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps({'version': 1.3, 'people': people}))


def test_read_openpose_folder(tmp_path):
    rng = np.random.default_rng(10)
    poses = rng.uniform(1, 500, (3, 25, 3))
    poses[..., 2] = rng.uniform(0.2, 1, (3, 25))
    folder = tmp_path / 'op'
    write_openpose(folder, 'video_000000000010_keypoints.json',
                   [{'person_id': [-1], 'pose_keypoints_2d': flat(poses[2])}])
    write_openpose(folder, 'video_000000000002_keypoints.json', [])
    write_openpose(folder, 'video_1_keypoints.json',
                   [{'person_id': [-1], 'pose_keypoints_2d': flat(poses[0])},
                    {'person_id': [-1], 'pose_keypoints_2d': flat(poses[1])}])
    (folder / 'notes.txt').write_text('not a frame')
    kp = read_keypoints(folder, image_size=(1920, 1080))
    assert kp.format == 'openpose_body25' and kp.image_size == (1920.0, 1080.0)
    assert kp.frame_names == ['video_1_keypoints.json', 'video_000000000002_keypoints.json',
                              'video_000000000010_keypoints.json']
    np.testing.assert_array_equal(kp.frame, [0, 0, 2])
    np.testing.assert_array_equal(kp.person, [0, 1, 0])
    np.testing.assert_allclose(kp.uv, poses[..., :2].astype(np.float32))
    # person ids and the COCO-18 model
    write_openpose(tmp_path / 'op18', 'f_0_keypoints.json',
                   [{'person_id': [4], 'pose_keypoints_2d': [5.0, 6.0, 0.9] * 18},
                    {'person_id': 2, 'pose_keypoints_2d': [7.0, 8.0, 0.9] * 18}])
    kp = read_openpose(tmp_path / 'op18')
    assert kp.format == 'openpose_coco18'
    np.testing.assert_array_equal(kp.person, [4, 2])
    # a single file
    kp = read_keypoints(folder / 'video_1_keypoints.json')
    assert len(kp) == 2 and kp.frame_names == ['video_1_keypoints.json']


def landmarks(rng, visibility=0.9):
    return [{'x': float(x), 'y': float(y), 'z': 0.1, 'visibility': visibility}
            for x, y in rng.uniform(0.1, 0.9, (33, 2))]


def test_read_mediapipe_json(tmp_path):
    rng = np.random.default_rng(11)
    frames = [landmarks(rng), [], landmarks(rng, 0.2)]
    path = tmp_path / 'pose.json'
    path.write_text(json.dumps(frames))
    kp = read_keypoints(path, image_size=(640, 480))
    assert kp.format == 'mediapipe33' and kp.image_size == (640.0, 480.0)
    np.testing.assert_array_equal(kp.frame, [0, 2])
    assert kp.frame_names == ['0', '1', '2']
    xy = np.array([[lm['x'], lm['y']] for lm in frames[0]])
    np.testing.assert_allclose(kp.uv[0], (xy * [640, 480]).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(kp.confidence[1], 0.2)
    # the image size in the file, the 'landmarks' wrapping, several people per frame
    both = [landmarks(rng), landmarks(rng)]
    for lm in both[1]:
        lm['presence'] = 0.4
    path.write_text(json.dumps({'image_size': [100, 200],
                                'landmarks': [{'pose_landmarks': both}, None]}))
    kp = read_mediapipe(path)
    assert kp.image_size == (100.0, 200.0)
    np.testing.assert_array_equal(kp.frame, [0, 0])
    np.testing.assert_array_equal(kp.person, [0, 1])
    np.testing.assert_allclose(kp.confidence[1], 0.4)
    np.testing.assert_allclose(kp.uv[1, 5, 1], both[1][5]['y'] * 200, rtol=1e-6)


def test_read_arrays(tmp_path):
    rng = np.random.default_rng(12)
    uv = rng.uniform(10, 900, (6, 25, 2))
    np.save(tmp_path / 'body25.npy', uv)
    kp = read_keypoints(tmp_path / 'body25.npy')
    assert kp.format == 'openpose_body25' and (kp.confidence == 1).all()
    np.testing.assert_array_equal(kp.frame, np.arange(6))
    np.testing.assert_array_equal(kp.person, np.zeros(6))
    np.testing.assert_allclose(kp.uv, uv.astype(np.float32))
    # 17 joints with confidence: needs format=
    kp17 = np.concatenate([rng.uniform(10, 900, (4, 17, 2)), rng.uniform(0, 1, (4, 17, 1))], -1)
    np.savez(tmp_path / 'h36m.npz', keypoints=kp17, fps=np.array(50))
    kp = read_keypoints(tmp_path / 'h36m.npz', format='h36m17')
    assert kp.format == 'h36m17'
    np.testing.assert_allclose(kp.confidence, kp17[..., 2].astype(np.float32))
    np.savez_compressed(tmp_path / 'only.npz', anything=uv[:, :18])
    assert read_keypoints(tmp_path / 'only.npz').format == 'openpose_coco18'
    # MediaPipe layouts: x, y, z, visibility[, presence], normalised
    mp = np.concatenate([rng.uniform(0, 1, (3, 33, 3)), rng.uniform(0, 1, (3, 33, 2))], -1)
    np.save(tmp_path / 'mp5.npy', mp)
    kp = read_keypoints(tmp_path / 'mp5.npy', image_size=(200, 100))
    assert kp.format == 'mediapipe33'
    np.testing.assert_allclose(kp.uv, (mp[..., :2] * [200, 100]).astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(kp.confidence, np.minimum(mp[..., 3], mp[..., 4]), rtol=1e-6)
    # MediaPipe x, y, z: normalised 33-joint arrays with 3 channels, confidence 1
    np.save(tmp_path / 'mp3.npy', mp[..., :3])
    kp = read_keypoints(tmp_path / 'mp3.npy', image_size=(200, 100))
    np.testing.assert_allclose(kp.uv, (mp[..., :2] * [200, 100]).astype(np.float32), rtol=1e-6)
    assert (kp.confidence == 1).all()
    # one frame [J, C]
    np.save(tmp_path / 'single.npy', kp17[0])
    kp = read_array(tmp_path / 'single.npy', format='coco17')
    assert len(kp) == 1 and kp.frame_names == ['0']
    np.testing.assert_allclose(kp.uv[0], kp17[0, :, :2].astype(np.float32))
    np.save(tmp_path / 'mp4.npy', mp[..., :4])
    np.testing.assert_allclose(read_array(tmp_path / 'mp4.npy', image_size=(200, 100)).confidence,
                               mp[..., 3], rtol=1e-6)


def test_missing_joints_are_masked_and_reported(tmp_path):
    uv = np.random.default_rng(13).uniform(10, 900, (5, 33, 2))
    uv[1] = 0                  # no detection
    uv[3] = np.nan             # NaN detection
    uv[4, 0] = np.nan          # NaN nose
    np.save(tmp_path / 'mp.npy', uv)
    kp = read_keypoints(tmp_path / 'mp.npy')
    assert np.isfinite(kp.uv).all()
    assert (kp.confidence[[1, 3]] == 0).all() and kp.confidence[4, 0] == 0
    with pytest.warns(UserWarning) as record:
        out, mask = kp.convert()
    one_line(record[0].message, str(tmp_path / 'mp.npy'), '2 of 5 samples')
    assert not mask[[1, 3]].any() and not mask[4, H36M.index('Neck/Nose')]
    assert mask[4].sum() == 16 and np.isfinite(out).all()


# ---------------------------------------------------------------- bad input

def test_bad_format_and_joint_count(tmp_path):
    np.save(tmp_path / 'a.npy', np.ones((2, 25, 2)) * 100)
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'a.npy', format='nope')
    one_line(e, 'nope', 'coco17')
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'a.npy', format='coco17')
    one_line(e, 'a.npy', '25 joints', "'coco17' has 17")
    np.save(tmp_path / 'b.npy', np.ones((2, 17, 3)) * 100)
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'b.npy')
    one_line(e, 'b.npy', 'ambiguous', 'format=')
    np.save(tmp_path / 'c.npy', np.ones((2, 20, 2)) * 100)
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'c.npy')
    one_line(e, 'c.npy', '20 joints')
    (tmp_path / 'd.json').write_text(json.dumps([{'image_id': 1, 'keypoints': [1.0] * 60}]))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'd.json')
    one_line(e, 'd.json', '20 joints')


def test_all_zero_nan_or_zero_confidence_files(tmp_path):
    np.save(tmp_path / 'zero.npy', np.zeros((3, 25, 2)))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'zero.npy')
    one_line(e, 'zero.npy', 'none of its 3 sample(s)')
    np.save(tmp_path / 'nan.npy', np.full((3, 25, 2), np.nan))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'nan.npy')
    one_line(e, 'nan.npy', 'usable keypoint')
    arr = np.concatenate([np.full((3, 25, 2), 50.0), np.zeros((3, 25, 1))], -1)
    np.save(tmp_path / 'conf0.npy', arr)
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'conf0.npy')
    one_line(e, 'conf0.npy', 'confidence 0')
    arr[..., 2] = 3.0
    np.save(tmp_path / 'conf3.npy', arr)
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'conf3.npy')
    one_line(e, 'conf3.npy', 'outside [0, 1]')


def test_normalised_inputs_need_an_image_size(tmp_path):
    rng = np.random.default_rng(14)
    path = tmp_path / 'pose.json'
    path.write_text(json.dumps([landmarks(rng)]))
    with pytest.raises(ValueError) as e:
        read_keypoints(path)
    one_line(e, 'pose.json', 'image_size=(W, H)')
    np.save(tmp_path / 'mp.npy', rng.uniform(0, 1, (2, 33, 4)))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'mp.npy')
    one_line(e, 'mp.npy', 'image_size=(W, H)')
    np.save(tmp_path / 'mp3.npy', rng.uniform(0, 1, (2, 33, 3)))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'mp3.npy')
    one_line(e, 'mp3.npy', 'image_size=(W, H)')
    np.save(tmp_path / 'norm.npy', rng.uniform(0, 1, (2, 25, 3)))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'norm.npy', image_size=(640, 480))
    one_line(e, 'norm.npy', 'not pixels')
    for bad in ((-640, 480), (float('nan'), 480), (640,), 'big'):
        with pytest.raises(ValueError) as e:
            read_keypoints(path, image_size=bad)
        one_line(e, 'pose.json', 'image_size')
    path.write_text(json.dumps({'image_size': [0, 480], 'landmarks': [landmarks(rng)]}))
    with pytest.raises(ValueError) as e:
        read_keypoints(path)
    one_line(e, 'pose.json', 'positive')


def test_empty_and_unreadable_files(tmp_path):
    def text(content):
        return lambda path: path.write_text(content)

    def folder_with(name, content):
        def make(path):
            path.mkdir()
            (path / name).write_text(content)
        return make

    cases = [  # (file name, how to make it, what the one-line error says)
        ('empty.json', text(''), 'empty'), ('empty.npy', text(''), 'empty'),
        ('empty.npz', text(''), 'empty'), ('list.json', text('[]'), 'no keypoints'),
        ('broken.json', text('{"people": ['), 'not valid JSON'),
        ('other.json', text('{"hello": 1}'), 'unrecognised'), ('x.csv', text('1,2'), '.csv'),
        ('folder', folder_with('frame.json', '{}'), '_keypoints.json'),
        ('nobody', lambda path: write_openpose(path, 'a_0_keypoints.json', []), 'no person'),
        ('bad.npz', lambda path: path.write_bytes(b'not a zip at all'), '.npz'),
        ('two.npz', lambda path: np.savez(path, a=np.ones((2, 25, 2)), b=np.ones(3)),
         "'keypoints'"),
    ]
    for name, make, message in cases:
        make(tmp_path / name)
        with pytest.raises(ValueError) as e:
            read_keypoints(tmp_path / name)
        one_line(e, name, message)
    with pytest.raises(FileNotFoundError):
        read_keypoints(tmp_path / 'missing.json')


def test_deep_json_and_oversized_files(tmp_path, monkeypatch):
    deep = tmp_path / 'deep.json'
    deep.write_text('[' * 200000 + ']' * 200000)
    with pytest.raises(ValueError) as e:
        read_keypoints(deep)
    one_line(e, 'deep.json', 'nested too deeply')
    path = tmp_path / 'big.json'
    path.write_text(json.dumps([{'image_id': 1, 'keypoints': [10.0, 20.0, 0.5] * 17}]))
    monkeypatch.setattr(readers, 'MAX_FILE_BYTES', 100)
    with pytest.raises(ValueError) as e:
        read_keypoints(path)
    one_line(e, 'big.json', 'limit')


def test_array_headers_are_checked_before_allocating(tmp_path):
    # A header claiming 10^12 values over 16 bytes of data.
    path = tmp_path / 'huge.npy'
    with open(path, 'wb') as f:
        np.lib.format.write_array_header_1_0(
            f, {'descr': '<f8', 'fortran_order': False, 'shape': (10 ** 10, 25, 2)})
        f.write(b'\0' * 16)
    with pytest.raises(ValueError) as e:
        read_keypoints(path)
    one_line(e, 'huge.npy', 'bytes')
    np.save(tmp_path / 'objects.npy', np.array([{'a': 1}, None], dtype=object))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'objects.npy')
    one_line(e, 'objects.npy', 'Python objects')
    np.savez(tmp_path / 'objects.npz', keypoints=np.array([{'a': 1}], dtype=object))
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'objects.npz')
    one_line(e, 'objects.npz', 'Python objects')
    np.save(tmp_path / 'flat.npy', np.ones(10) * 100)
    with pytest.raises(ValueError) as e:
        read_keypoints(tmp_path / 'flat.npy')
    one_line(e, 'flat.npy', '[T, J, C]')

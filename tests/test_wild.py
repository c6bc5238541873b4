from __future__ import annotations

import numpy as np
import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets.builtin import builtin_motion
from pyg_skeleton.datasets.wild import (
    BONE_SCALE,
    WildCameras,
    corrupt_keypoints,
    normalize_keypoints,
    render_wild,
    scale_bones,
)

SK = Skeleton.preset('h36m17')


def poses(n=64):
    return builtin_motion('train').positions[::97][:n].astype(np.float64)


def test_cameras_project_like_a_pinhole():
    p = poses()
    cam = WildCameras().sample(p, np.random.default_rng(0))
    for f in range(0, len(p), 7):
        R, c = cam['rotation'][f], cam['position'][f]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0
        xc = (p[f] - c) @ R.T                       # world -> camera, written independently
        u = cam['focal'][f] * xc[:, 0] / xc[:, 2] + cam['image_size'][f, 0] / 2
        v = cam['focal'][f] * xc[:, 1] / xc[:, 2] + cam['image_size'][f, 1] / 2
        assert np.allclose(cam['pixels'][f], np.stack([u, v], -1), atol=1e-9)
        assert np.allclose(cam['y'][f], xc - xc[0], atol=1e-12)
        assert np.linalg.norm(c - p[f, 0]) == pytest.approx(cam['distance'][f])
        # elevation: the camera's height above the root
        assert c[1] - p[f, 0, 1] == pytest.approx(
            cam['distance'][f] * np.sin(np.deg2rad(cam['elevation'][f])))


def test_camera_ranges_and_centring():
    p = poses(200)
    rig = WildCameras(distance=(3, 4), elevation=(20, 30), roll=(0, 0), focal=(1, 1),
                      off_centre=0.0, aspect=(0.75, 0.75))
    cam = rig.sample(p, np.random.default_rng(1))
    assert ((cam['distance'] >= 3) & (cam['distance'] <= 4)).all()
    assert ((cam['elevation'] >= 20) & (cam['elevation'] <= 30)).all()
    assert np.allclose(cam['image_size'], [1000, 750])
    # no off-centre turn and no roll: the root is at the image centre, and the
    # camera's x axis is horizontal
    assert np.allclose(cam['pixels'][:, 0], [500, 375], atol=1e-6)
    assert np.allclose(cam['rotation'][:, 0, 1], 0, atol=1e-12)


def test_roll_rotates_the_image():
    p = poses(16)
    base = WildCameras(roll=(0, 0), off_centre=0.0)
    rolled = WildCameras(roll=(40, 40), off_centre=0.0)
    a = base.sample(p, np.random.default_rng(3))
    b = rolled.sample(p, np.random.default_rng(3))
    for f in range(len(p)):
        da = a['pixels'][f, 8] - a['pixels'][f, 0]
        db = b['pixels'][f, 8] - b['pixels'][f, 0]
        turn = np.degrees(np.arctan2(db[1], db[0]) - np.arctan2(da[1], da[0]))
        assert (turn + 180) % 360 - 180 == pytest.approx(40, abs=1e-6)


def test_shared_camera_is_static():
    p = poses(30)
    cam = WildCameras().sample(p, np.random.default_rng(0), shared=True)
    assert np.allclose(cam['rotation'], cam['rotation'][:1])
    assert np.allclose(cam['position'], cam['position'][:1])
    assert cam['pixels'].shape == (30, 17, 2)


@pytest.mark.parametrize('bad', [dict(distance=(0, 1)), dict(focal=(2, 1)),
                                 dict(elevation=(-95, 0)), dict(off_centre=1.0),
                                 dict(roll=(float('nan'), 0)), dict(width=0)])
def test_bad_cameras(bad):
    with pytest.raises(ValueError, match='WildCameras'):
        WildCameras(**bad)


def test_scale_bones():
    p = poses(50)
    out = scale_bones(p, SK.parents, SK.joint_names, np.random.default_rng(0),
                      flip_pairs=SK.flip_pairs)
    for j, par in enumerate(SK.parents):
        if par < 0:
            assert np.allclose(out[:, j], p[:, j])
            continue
        b0, b1 = p[:, j] - p[:, par], out[:, j] - out[:, par]
        ratio = np.linalg.norm(b1, axis=-1) / np.linalg.norm(b0, axis=-1)
        lo, hi = BONE_SCALE[SK.joint_names[j]]
        assert ((ratio >= lo - 1e-9) & (ratio <= hi + 1e-9)).all()
        # direction kept
        cos = (b0 * b1).sum(-1) / np.linalg.norm(b0, axis=-1) / np.linalg.norm(b1, axis=-1)
        assert np.allclose(cos, 1)
    for a, b in SK.flip_pairs:   # twins scaled alike
        ra = np.linalg.norm(out[:, a] - out[:, SK.parents[a]], axis=-1) / np.linalg.norm(
            p[:, a] - p[:, SK.parents[a]], axis=-1)
        rb = np.linalg.norm(out[:, b] - out[:, SK.parents[b]], axis=-1) / np.linalg.norm(
            p[:, b] - p[:, SK.parents[b]], axis=-1)
        assert np.allclose(ra, rb)


def test_corrupt_keypoints():
    uv = np.random.default_rng(0).normal(size=(4000, 17, 2)) * 100 + 500
    out, mask = corrupt_keypoints(uv, np.random.default_rng(1), noise=(0, 0),
                                  outlier_prob=0.0, drop_prob=0.5, max_drop=3)
    assert np.array_equal(out, uv)
    dropped = (~mask).sum(1)
    assert abs((dropped > 0).mean() - 0.5) < 0.03
    assert dropped.max() <= 3
    noisy, _ = corrupt_keypoints(uv, np.random.default_rng(1), noise=(0.05, 0.05),
                                 outlier_prob=0.0, drop_prob=0.0)
    size = np.sqrt(((uv - uv.mean(1, keepdims=True)) ** 2).sum(-1).mean(1))
    assert np.std((noisy - uv) / size[:, None, None]) == pytest.approx(0.05, rel=0.03)


def test_normalize_keypoints_is_invariant_and_masks():
    rng = np.random.default_rng(0)
    uv = rng.uniform(0, 1000, (5, 17, 2))
    mask = rng.random((5, 17)) > 0.2
    x = normalize_keypoints(uv, mask)
    y = normalize_keypoints(uv * 3.5 + np.array([100.0, -40.0]), mask)
    assert torch.allclose(x, y, atol=1e-5)
    assert torch.equal(x[..., 2], torch.as_tensor(mask, dtype=torch.float32))
    assert (x[..., :2][~torch.as_tensor(mask)] == 0).all()
    for i in range(5):   # visible joints: zero mean, unit RMS radius
        v = x[i, torch.as_tensor(mask[i]), :2].double()
        assert torch.allclose(v.mean(0), torch.zeros(2, dtype=torch.float64), atol=1e-5)
        assert v.square().sum(-1).mean().sqrt().item() == pytest.approx(1.0, abs=1e-5)
    uv[0, 3] = np.nan   # NaN counts as missing
    assert normalize_keypoints(uv)[0, 3].tolist() == [0.0, 0.0, 0.0]


def test_render_wild_flip_mirrors_input_and_target_together():
    p = poses(40)
    kw = dict(bone_scale=False, corrupt=False)
    x0, y0, _ = render_wild(p, np.random.default_rng(0), WildCameras(), SK, flip=False, **kw)
    x1, y1, cam = render_wild(p, np.random.default_rng(0), WildCameras(), SK, flip=True, **kw)
    mirrored_x, mirrored_y = SK.flip(x0, lateral_axis=0), SK.flip(y0, lateral_axis=0)
    flipped = [f for f in range(len(p)) if not torch.allclose(x1[f], x0[f])]
    assert 5 < len(flipped) < 35   # about half
    for f in range(len(p)):
        ex, ey = (mirrored_x[f], mirrored_y[f]) if f in flipped else (x0[f], y0[f])
        assert torch.allclose(x1[f], ex, atol=1e-5) and torch.allclose(y1[f], ey, atol=1e-6)
    assert cam['mask'].all()

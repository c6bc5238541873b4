"""The pieces of ``benchmarks/run_domain_shift.py`` that decide reported
numbers: the rendering of source, prior and target clips, the camera
distributions of the shift, and the gap-closed statistic."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
ds = pytest.importorskip('run_domain_shift')

from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.datasets.wild import normalize_keypoints  # noqa: E402
from pyg_skeleton.nn.models.self_adaptive import inplane_rotate, mirror  # noqa: E402

H36M = Skeleton.preset('h36m17')


def walking_clips(num, length=5, seed=0):
    """World clips (y up) of one random pose drifting 10 cm per frame."""
    rng = np.random.default_rng(seed)
    pose = rng.normal(size=(17, 3)) * 0.3 + [0, 1, 0]
    pose[0] = [0, 1, 0]
    step = np.array([0.1, 0, 0])
    clip = np.stack([pose + t * step for t in range(length)])
    return np.repeat(clip[None], num, axis=0).astype(np.float32)


def test_render_centres_scales_and_keeps_one_camera_per_clip():
    clips = walking_clips(4)
    static = np.repeat(clips[:, :1], 5, axis=1)          # subjects that do not move
    x, y = ds.render(static, ds.WILD['wide'], np.random.default_rng(0))
    assert x.shape == (4, 5, 17, 2) and y.shape == (4, 5, 17, 3)
    # centred on the joints' mean, unit RMS radius
    assert torch.allclose(x.mean(-2), torch.zeros(4, 5, 2), atol=1e-5)
    assert torch.allclose(x.square().sum(-1).mean(-1), torch.ones(4, 5), atol=1e-4)
    # one static camera per clip: a static subject gives the same view in every frame
    assert torch.allclose(x, x[:, :1].expand_as(x), atol=1e-5)
    assert torch.allclose(y, y[:, :1].expand_as(y), atol=1e-5)
    # root-relative, and bone lengths kept (a rigid camera)
    assert torch.all(y[..., 0, :] == 0)
    bones = np.linalg.norm(static[0, 0] - static[0, 0, :1], axis=-1)
    assert np.allclose(y[0, 0].norm(dim=-1).numpy(), bones, atol=1e-5)


def test_camera_distributions_match_the_issue():
    for cam in ds.WILD.values():
        assert cam.elevation == (30.0, 60.0)
        assert cam.roll[0] <= -45 and cam.roll[1] >= 45
        assert cam.distance[1] <= 3.0
    assert ds.WILD['wide'].focal[1] < 1.0 < ds.WILD['tele'].focal[0]
    assert ds.LAB.roll == (-3.0, 3.0) and ds.LAB.focal == (1.0, 1.0)
    assert ds.LAB.distance == (4.0, 6.0) and ds.LAB.elevation[1] <= 10.0
    # the sampled target cameras really are high and rolled
    rng = np.random.default_rng(1)
    out = ds.WILD['tele'].sample(walking_clips(1)[0], rng)
    assert np.all((out['elevation'] >= 30) & (out['elevation'] <= 60))


def test_relations_commute_with_the_input_normalisation():
    """Mirroring and in-plane rotation of the image, then normalising, equal
    the relation applied to the normalised input: the 2D relation pairs used
    during adaptation are those of the rendered views."""
    uv = torch.rand(6, 17, 2) * 800 + 100
    x = normalize_keypoints(uv)[..., :2]
    # about the image centre (the principal point) and about the origin alike
    for c in (500.0, 0.0):
        rot = normalize_keypoints(inplane_rotate(uv - c, 50.0) + c)[..., :2]
        assert torch.allclose(rot, inplane_rotate(x, 50.0), atol=1e-5)
    flipped = normalize_keypoints(mirror(uv - 500, H36M) + 500)[..., :2]
    assert torch.allclose(flipped, mirror(x, H36M), atol=1e-5)


def test_gap_closed_by_hand():
    # source 200 mm, oracle 100 mm: adapting to 175 mm closes a quarter
    assert ds.gap_closed(200.0, 175.0, 100.0) == pytest.approx(0.25)
    assert ds.gap_closed(np.array([200.0, 80.0]), np.array([210.0, 60.0]),
                         np.array([100.0, 40.0])) == pytest.approx([-0.1, 0.5])


def test_source_frames_come_from_the_builtin_train_split_at_10_fps():
    from pyg_skeleton.datasets.builtin import builtin_motion
    frames = ds.source_frames(50, np.random.default_rng(0))
    assert frames.shape == (50, 17, 3)
    pool = {p.tobytes() for _, seq in builtin_motion('train').sequences() for p in seq[::3]}
    assert all(f.tobytes() in pool for f in frames)
    assert len({f.tobytes() for f in frames}) == 50      # drawn without replacement


def test_camera_variants_remove_one_factor_at_a_time():
    from dataclasses import asdict
    variants = ds.camera_variants()
    for i, kind in enumerate(('wide', 'tele')):
        full = asdict(ds.WILD[kind])
        assert asdict(variants['target cameras'][i]) == full
        changed = {k for k, v in asdict(variants['no roll'][i]).items() if v != full[k]}
        assert changed == {'roll'} and variants['no roll'][i].roll == (0.0, 0.0)
        lab_elev = variants['lab elevation (-5 to 10 deg)'][i]
        assert {k for k, v in asdict(lab_elev).items() if v != full[k]} == {'elevation'}
        assert lab_elev.elevation == ds.LAB.elevation
    assert variants['lab cameras (people and motion only)'] == ds.LAB


def test_orientation_errors_rotate_about_the_named_camera_axes():
    y = torch.randn(4, 17, 3)
    elev = ds.ORIENTATION_ERRORS['elevation off by 30 deg'](y)
    roll = ds.ORIENTATION_ERRORS['roll off by 30 deg'](y)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    rx = torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float32)
    rz = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float32)
    assert torch.allclose(elev, y @ rx.T, atol=1e-6)
    assert torch.allclose(roll, y @ rz.T, atol=1e-6)


def test_mean_pose_baseline_by_hand():
    # validation poses average to all-zeros but joint 1 at (0, 0.5, 0); the
    # test poses put joint 1 at (0, 0.3, 0) and (0, 0.9, 0), other joints at 0
    val = torch.zeros(2, 17, 3)
    val[0, 1, 1], val[1, 1, 1] = 0.2, 0.8
    test = torch.zeros(2, 17, 3)
    test[0, 1, 1], test[1, 1, 1] = 0.3, 0.9
    ctx = {'targets': {'val': (None, None, None, val), 'test': (None, None, None, test)}}
    err, _ = ds.mean_pose_baseline(ctx)
    # joint 1 is off by 0.2 and 0.4 m, the other 16 joints exact
    assert err == pytest.approx(1000 * (0.2 + 0.4) / 2 / 17, rel=1e-5)


def _fake_results():
    """Two seeds of the structure run_seed returns (after a JSON round trip,
    as --dump / --load store it)."""
    import json
    rel = {name: 0.01 for name in ds.RELATIONS}
    shift = {k: (200.0, 80.0, 100.0, 50.0) for k in ds.camera_variants()}
    results = []
    for src, ada, orc in ((200.0, 175.0, 100.0), (300.0, 300.0, 100.0)):
        results.append({
            'rows': {'source only': (src, 80.0, rel), 'adapted (selected setting)':
                     (ada, 70.0, rel)},
            'oracle': (orc, 50.0), 'mean_pose': (220.0, 150.0), 'shift': shift,
            'trajectory': [(0, src, 80.0, 0.5), (10, ada, 70.0, 0.1)], 'rel_ideal': rel,
            'rel_oracle': rel, 'rel_oracle_sum': 0.05, 'source_domain': 100.0,
            'aae_target': 50.0, 'aae_fixed_target': 50.0, 'aae_source': 60.0,
            **{f'rel_ideal {k}': rel for k in ds.ORIENTATION_ERRORS}})
    return json.loads(json.dumps(results))


def test_report_states_the_mean_gap_closed(tmp_path):
    import argparse
    args = argparse.Namespace(quick=True, out=str(tmp_path / 'report'), load=None)
    cfg = dict(target='target cameras', n_source=10, n_prior_clips=10, n_target_clips=10,
               adapt_steps=10, hidden=8)
    ds.report(_fake_results(), cfg, args, [0, 1], 1.0)
    text = (tmp_path / 'report.md').read_text()
    # seed 0 closes (200 - 175) / (200 - 100) = 25%, seed 1 0%: mean 12.5%, printed as 12%
    assert '**gap closed: 12%** (per seed 25% / 0%' in text
    # P-MPJPE: (80 - 70) / (80 - 50) = 33% for both seeds
    assert 'On P-MPJPE: 33% (per seed 33% / 33%)' in text
    assert '| oracle (target labels of the validation actor) | 100.0 |' in text


def test_report_of_the_reprojection_term(tmp_path):
    import argparse
    args = argparse.Namespace(quick=True, out=str(tmp_path / 'report'), load=None)
    cfg = dict(target='target cameras', n_source=10, n_prior_clips=10, n_target_clips=10,
               adapt_steps=10, hidden=8)
    # a dump from before the term: no reprojection row, the term reported off
    ds.report(_fake_results(), cfg, args, [0, 1], 1.0)
    text = (tmp_path / 'report.md').read_text()
    assert 'no reprojection term' in text and '| reprojection |' not in text
    results = _fake_results()
    residual = {'rel_ideal': 0.07, 'rel_ideal elevation off by 30 deg': 0.3,
                'rel_ideal roll off by 30 deg': 0.2, 'rel_oracle': 0.1}
    for r in results:
        for key, value in residual.items():
            r[key] = {**r[key], 'reprojection': value}
        for row, value in (('source only', 0.25), ('adapted (selected setting)', 0.15)):
            r['rows'][row][2]['reprojection'] = value
        r['trajectory'] = [t + [0.25] for t in r['trajectory']]
    ds.report(results, cfg, args, [0, 1], 1.0)
    text = (tmp_path / 'report.md').read_text()
    assert ('(6) The reprojection residual sees elevation: 0.0700 for the ideal lifter' in text
            and '0.3000 with the 30 deg elevation error, 0.1000 for the oracle and 0.2500 for '
            'the source-only lifter; the selected adaptation ends at 0.1500.' in text)
    assert '| reprojection | 0.0700 | 0.3000 | 0.2000 | 0.1000 | 0.2500 | 0.1500 |' in text
    # the relation sums leave the residual out: five relations at 0.01 each
    assert 'has a summed relation loss of 0.0500 against 0.0500' in text
    assert '| 0 | 250.0 | 80.0 | 0.5000 | 0.2500 |' in text     # mean of 200 and 300

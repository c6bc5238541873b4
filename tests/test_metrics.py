from __future__ import annotations

import numpy as np
import pytest
import torch

from pyg_skeleton.metrics import (
    MetricAccumulator,
    auc,
    group_mean,
    mpjpe,
    mpvpe,
    n_mpjpe,
    p_mpjpe,
    pck,
    procrustes_align,
    scale_align,
)

# ---------------------------------------------------------------- references

def ref_mpjpe(p, t):
    return np.mean(np.linalg.norm(p - t, axis=-1))


def ref_procrustes(p, t):
    """Umeyama similarity alignment of one pose, NumPy, without reflections."""
    mp, mt = p.mean(0), t.mean(0)
    p0, t0 = p - mp, t - mt
    h = p0.T @ t0
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    D = np.diag([1.0, 1.0, d])
    r = vt.T @ D @ u.T
    scale = np.trace(D @ np.diag(s)) / (p0 ** 2).sum()
    return scale * p0 @ r.T + mt


def ref_pmpjpe(p, t):
    return np.mean([ref_mpjpe(ref_procrustes(a, b), b) for a, b in zip(p, t)])


def ref_nmpjpe(p, t):
    out = []
    for a, b in zip(p, t):
        s = (a * b).sum() / (a * a).sum()
        out.append(ref_mpjpe(s * a, b))
    return np.mean(out)


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture
def poses():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(8, 17, 3))
    p = t + 0.1 * rng.normal(size=(8, 17, 3))
    return p, t


def test_mpjpe_matches_reference(poses):
    p, t = poses
    got = mpjpe(torch.tensor(p), torch.tensor(t))
    assert got.item() == pytest.approx(ref_mpjpe(p, t), rel=1e-10)
    assert mpvpe(torch.tensor(p), torch.tensor(t)).item() == pytest.approx(ref_mpjpe(p, t))
    per_joint = mpjpe(torch.tensor(p), torch.tensor(t), reduction='joint')
    np.testing.assert_allclose(per_joint.numpy(), np.linalg.norm(p - t, axis=-1).mean(0))
    per_sample = mpjpe(torch.tensor(p), torch.tensor(t), reduction='sample')
    np.testing.assert_allclose(per_sample.numpy(), np.linalg.norm(p - t, axis=-1).mean(1))


def test_mpjpe_mask_and_batch_dims(poses):
    p, t = poses
    mask = np.random.default_rng(1).random((8, 17)) > 0.3
    got = mpjpe(torch.tensor(p), torch.tensor(t), torch.tensor(mask))
    err = np.linalg.norm(p - t, axis=-1)
    assert got.item() == pytest.approx(err[mask].mean())
    got2 = mpjpe(torch.tensor(p).view(2, 4, 17, 3), torch.tensor(t).view(2, 4, 17, 3))
    assert got2.item() == pytest.approx(ref_mpjpe(p, t))
    with pytest.raises(ValueError, match='same shape'):
        mpjpe(torch.zeros(2, 17, 3), torch.zeros(2, 16, 3))


def test_p_mpjpe_matches_reference(poses):
    p, t = poses
    got = p_mpjpe(torch.tensor(p), torch.tensor(t))
    assert got.item() == pytest.approx(ref_pmpjpe(p, t), rel=1e-8)
    assert got.item() < ref_mpjpe(p, t)


def test_procrustes_recovers_rotation_scale_translation():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(5, 17, 3))
    p = np.stack([1.7 * x @ random_rotation(rng).T + rng.normal(size=3) for x in t])
    aligned = procrustes_align(torch.tensor(p), torch.tensor(t))
    np.testing.assert_allclose(aligned.numpy(), t, atol=1e-9)
    assert p_mpjpe(torch.tensor(p), torch.tensor(t)).item() < 1e-9
    # without scale the error is what the reference gives for rotation only
    al = procrustes_align(torch.tensor(p), torch.tensor(t), scale=False)
    assert al.shape == p.shape


def test_procrustes_excludes_reflections():
    rng = np.random.default_rng(3)
    t = rng.normal(size=(4, 17, 3))
    mirror = np.diag([-1.0, 1.0, 1.0])
    p = t @ mirror.T  # a mirror image cannot be reached by a rotation
    got = p_mpjpe(torch.tensor(p), torch.tensor(t))
    assert got.item() == pytest.approx(ref_pmpjpe(p, t), rel=1e-8)
    assert got.item() > 1e-3
    aligned = procrustes_align(torch.tensor(p), torch.tensor(t)).numpy()
    # the aligned pose is a proper similarity of the input: same handedness
    for a, b in zip(aligned, p):
        a0, b0 = a - a.mean(0), b - b.mean(0)
        m = np.linalg.lstsq(b0, a0, rcond=None)[0]
        assert np.linalg.det(m) > 0


def test_procrustes_float32_and_mask(poses):
    p, t = poses
    got = p_mpjpe(torch.tensor(p, dtype=torch.float32), torch.tensor(t, dtype=torch.float32))
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_pmpjpe(p, t), rel=1e-5)
    mask = np.ones((8, 17), bool)
    mask[:, 10:] = False
    got = p_mpjpe(torch.tensor(p), torch.tensor(t), torch.tensor(mask))
    assert got.item() == pytest.approx(ref_pmpjpe(p[:, :10], t[:, :10]), rel=1e-8)


def test_n_mpjpe_matches_reference(poses):
    p, t = poses
    p = 1.3 * p
    got = n_mpjpe(torch.tensor(p), torch.tensor(t))
    assert got.item() == pytest.approx(ref_nmpjpe(p, t), rel=1e-10)
    np.testing.assert_allclose(scale_align(torch.tensor(t * 2), torch.tensor(t)).numpy(), t)


def test_pck_auc_match_reference():
    rng = np.random.default_rng(4)
    t = rng.normal(size=(10, 17, 3))
    p = t + rng.normal(scale=0.08, size=t.shape)
    err = np.linalg.norm(p - t, axis=-1)
    assert pck(torch.tensor(p), torch.tensor(t)).item() == pytest.approx((err <= 0.15).mean())
    thr = np.linspace(0, 0.15, 31)
    ref_auc = np.mean([(err <= x).mean() for x in thr])
    assert auc(torch.tensor(p), torch.tensor(t)).item() == pytest.approx(ref_auc)
    per_joint = pck(torch.tensor(p), torch.tensor(t), reduction='joint')
    np.testing.assert_allclose(per_joint.numpy(), (err <= 0.15).mean(0))


def test_group_mean():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0])
    labels = torch.tensor([0, 0, 2, 2])
    out = group_mean(values, labels, num_groups=4)
    assert out[0] == 1.5 and out[2] == 6.5
    assert torch.isnan(out[1]) and torch.isnan(out[3])


def test_accumulator_matches_functions_and_batching(poses):
    p, t = poses
    p, t = torch.tensor(p), torch.tensor(t)
    groups = torch.tensor([0, 1, 1, 0, 2, 2, 2, 0])
    acc = MetricAccumulator(17, 3, scale=1.0)
    for a in range(0, 8, 3):
        acc.update(p[a:a + 3], t[a:a + 3], groups=groups[a:a + 3])
    res = acc.compute(['a', 'b', 'c'])
    assert res['mpjpe'] == pytest.approx(mpjpe(p, t).item())
    assert res['p_mpjpe'] == pytest.approx(p_mpjpe(p, t).item())
    assert res['n_mpjpe'] == pytest.approx(n_mpjpe(p, t).item())
    assert res['pck'] == pytest.approx(100 * pck(p, t).item())
    assert res['auc'] == pytest.approx(100 * auc(p, t).item())
    sel = groups == 1
    assert res['per_group']['b']['mpjpe'] == pytest.approx(mpjpe(p[sel], t[sel]).item())
    np.testing.assert_allclose(res['per_joint']['mpjpe'],
                               mpjpe(p, t, reduction='joint').numpy())


# ------------------------------------------------- masks that leave nothing

def test_fully_masked_is_nan_not_perfect(poses):
    p, t = (torch.tensor(a) for a in poses)
    zeros = torch.zeros(8, 17)
    assert torch.isnan(mpjpe(p, t, zeros))
    mask = torch.ones(8, 17, dtype=torch.bool)
    mask[3] = False
    for fn in (mpjpe, p_mpjpe, n_mpjpe):
        per_sample = fn(p, t, mask, reduction='sample')
        assert torch.isnan(per_sample[3])
        keep = torch.arange(8) != 3
        np.testing.assert_allclose(per_sample[keep].numpy(),
                                   fn(p[keep], t[keep], reduction='sample').numpy())
    mask = torch.ones(8, 17, dtype=torch.bool)
    mask[:, 5] = False
    per_joint = mpjpe(p, t, mask, reduction='joint')
    assert torch.isnan(per_joint[5]) and torch.isfinite(per_joint[torch.arange(17) != 5]).all()


def test_masked_nan_target_does_not_leak(poses):
    p, t = poses
    mask = np.ones((8, 17), bool)
    mask[:, [4, 9]] = False
    t_nan = t.copy()
    t_nan[:, [4, 9]] = np.nan
    p_nan = p.copy()
    p_nan[2, 4] = np.inf
    args = torch.tensor(p_nan), torch.tensor(t_nan), torch.tensor(mask)
    sub_p, sub_t = p[:, mask[0]], t[:, mask[0]]
    assert mpjpe(*args).item() == pytest.approx(ref_mpjpe(sub_p, sub_t), rel=1e-10)
    assert p_mpjpe(*args).item() == pytest.approx(ref_pmpjpe(sub_p, sub_t), rel=1e-8)
    assert n_mpjpe(*args).item() == pytest.approx(ref_nmpjpe(sub_p, sub_t), rel=1e-8)
    assert pck(*args[:2], mask=args[2]).item() == pytest.approx(
        np.mean(np.linalg.norm(sub_p - sub_t, axis=-1) <= 0.15))


def test_accumulator_fully_masked_is_nan(poses):
    p, t = (torch.tensor(a) for a in poses)
    acc = MetricAccumulator(17, 2, scale=1.0)
    acc.update(p, t, mask=torch.zeros(8, 17), groups=torch.zeros(8, dtype=torch.long))
    res = acc.compute()
    for name in MetricAccumulator.METRICS:
        assert np.isnan(res[name])
        assert np.isnan(res['per_joint'][name]).all()
    assert res['per_group'] == {}
    # A masked NaN target: the other joints are scored as without it.
    mask = torch.ones(8, 17, dtype=torch.bool)
    mask[:, 0] = False
    t_nan = t.clone()
    t_nan[:, 0] = float('nan')
    acc = MetricAccumulator(17, scale=1.0)
    acc.update(p, t_nan, mask=mask)
    res = acc.compute()
    assert res['mpjpe'] == pytest.approx(mpjpe(p[:, 1:], t[:, 1:]).item())
    assert res['p_mpjpe'] == pytest.approx(p_mpjpe(p[:, 1:], t[:, 1:]).item())
    assert np.isnan(res['per_joint']['mpjpe'][0])

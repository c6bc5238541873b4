from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.datasets.camera import normalize_screen, project
from pyg_skeleton.datasets.synthetic import synthetic_poses
from pyg_skeleton.nn.models.self_adaptive import (
    RELATIONS,
    LatentLifter,
    MotionAE,
    PoseAAE,
    RelationNet,
    adapt,
    adaptation_losses,
    contrastive_loss,
    flip_backward,
    flip_inplane,
    inplane_rotate,
    mirror,
    random_inplane_rotate,
    relation_pair,
    reprojection_loss,
    reverse_time,
    slow_backward,
    temporal_contrastive_loss,
    temporal_resample,
    train_motion_ae,
    train_pose_aae,
    train_relation_net,
    train_source_lifter,
)

H36M = Skeleton.preset('h36m17')


@pytest.fixture(autouse=True)
def one_thread():
    """Small models: one thread is much faster than two on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def camera_poses(num, seed=0):
    """Root-relative synthetic poses in a y-down camera-like frame."""
    pose = torch.tensor(synthetic_poses(num, seed=seed))
    pose = pose - pose[:, :1]
    return pose * torch.tensor([1.0, -1.0, 1.0])


# ---------------------------------------------------------------- pose AAE
def test_decoded_samples_keep_bone_lengths_exactly():
    torch.manual_seed(0)
    lengths = torch.rand(16) * 0.3 + 0.1
    for frame in ('body', 'camera'):
        aae = PoseAAE(H36M, hidden=64, frame=frame, bone_lengths=lengths)
        pose = aae.sample(50)
        assert pose.shape == (50, 17, 3)
        torch.testing.assert_close(aae.tree.decompose(pose)[0], lengths.expand(50, 16),
                                   atol=1e-6, rtol=0)
        torch.testing.assert_close(pose[:, 0], torch.zeros(50, 3))
        z = aae.encode(pose)
        assert z.shape == (50, 32) and z.abs().max() <= 1
        # with per-sample lengths
        own = torch.rand(50, 16) + 0.05
        torch.testing.assert_close(aae.tree.decompose(aae.decode(z, own))[0], own,
                                   atol=1e-6, rtol=0)


def test_aae_training_reduces_reconstruction():
    torch.manual_seed(0)
    poses = camera_poses(256)
    aae = PoseAAE(H36M, hidden=32)
    log = train_pose_aae(aae, poses, steps=30, batch_size=64, lr=3e-3)
    assert np.mean([r['rec_pos'] for r in log[-5:]]) < np.mean([r['rec_pos'] for r in log[:5]])
    assert set(log[0]) == {'rec_dir', 'rec_pos', 'gen', 'disc'}
    torch.testing.assert_close(aae.bone_lengths, aae.tree.decompose(poses)[0].mean(0))


def test_random_inplane_rotate_rolls_each_sample_and_keeps_lengths():
    g = torch.Generator().manual_seed(0)
    clips = camera_poses(8 * 5, seed=2).view(8, 5, 17, 3)
    out = random_inplane_rotate(clips, 60.0, 1, g)
    tree = PoseAAE(H36M, hidden=8).tree
    torch.testing.assert_close(tree.decompose(out)[0], tree.decompose(clips)[0])
    torch.testing.assert_close(out[..., 2], clips[..., 2])          # depth kept
    # body frame: a roll changes only the (camera-frame) root bones
    d0, d1 = tree.decompose(clips)[1], tree.decompose(out)[1]
    changed = (d0 - d1).norm(dim=-1).flatten(0, 1).amax(0) > 1e-5
    assert torch.equal(changed, ~tree.local_mask)
    # one angle per clip, shared by its frames, within [-60, 60] degrees
    ang = torch.atan2(out[..., 1], out[..., 0]) - torch.atan2(clips[..., 1], clips[..., 0])
    ang = torch.rad2deg(torch.remainder(ang + math.pi, 2 * math.pi) - math.pi)[..., 1:]
    per_clip = ang.flatten(1).median(1).values
    torch.testing.assert_close(ang, per_clip.view(8, 1, 1).expand_as(ang), atol=1e-3, rtol=0)
    assert per_clip.abs().max() <= 60 and per_clip.std() > 10
    # frac=0 and max_deg=0 leave the input alone
    assert torch.equal(random_inplane_rotate(clips, 0.0, 1, g), clips)
    assert torch.equal(random_inplane_rotate(clips, 60.0, 1, g, frac=0.0), clips)


def test_roll_augmented_aae_reconstructs_inplane_rotated_poses():
    """Camera-frame poses without roll: an AAE trained on them alone cannot
    reconstruct poses rotated in-plane by the relation angle (50 deg); with
    random-roll augmentation it does about as well as on upright poses, and
    the FK decoder still keeps the bone lengths of the rotated input."""
    poses, test = camera_poses(2000, seed=0), camera_poses(300, seed=5)
    rotated = inplane_rotate(test, 50.0)
    errors = {}
    for roll in (0.0, 90.0):
        torch.manual_seed(0)
        aae = PoseAAE(H36M, hidden=64)
        train_pose_aae(aae, poses, steps=300, batch_size=128, lr=2e-3, roll_deg=roll)
        aae.eval()
        with torch.no_grad():
            rec = aae(rotated)
            errors[roll] = [(aae(test) - test).norm(dim=-1).mean().item(),
                            (rec - rotated).norm(dim=-1).mean().item()]
        torch.testing.assert_close(aae.tree.decompose(rec)[0], aae.tree.decompose(rotated)[0],
                                   atol=1e-5, rtol=0)
    upright, rolled = errors[90.0]
    assert rolled < 1.25 * upright, errors
    upright0, rolled0 = errors[0.0]
    assert rolled0 > 1.5 * upright0, errors          # the defect this fixes
    assert rolled < 0.6 * rolled0, errors


def test_motion_ae_shapes_and_training():
    torch.manual_seed(0)
    aae = PoseAAE(H36M, hidden=32)
    motions = camera_poses(4 * 30).view(4, 30, 17, 3)
    mae = MotionAE(hidden=16)                 # paper sizes: 32 -> 128, length 30
    z = aae.encode(motions)
    v = mae.encode(z)
    assert v.shape == (4, 128) and v.abs().max() <= 1
    assert mae.decode(v).shape == (4, 30, 32) and mae(z).shape == z.shape
    small = MotionAE(motion_dim=16, hidden=8, seq_len=10)
    frozen = {k: p.clone() for k, p in aae.state_dict().items()}
    log = train_motion_ae(small, aae, motions[:, :10], steps=8, batch_size=4, lr=1e-2)
    assert log[-1] < log[0]
    for k, p in aae.state_dict().items():   # the pose AE is a frozen module here
        assert torch.equal(p, frozen[k]), k
    # roll-augmented clips (one random roll per clip, matching a rolled AAE)
    rolled = MotionAE(motion_dim=16, hidden=8, seq_len=10)
    log = train_motion_ae(rolled, aae, motions[:, :10], steps=8, batch_size=4, lr=1e-2,
                          roll_deg=90.0)
    assert len(log) == 8 and all(math.isfinite(v) for v in log)


# ---------------------------------------------------------- pair builders
def test_mirror_swaps_left_right_and_negates_lateral_axis():
    pose = torch.arange(17 * 3, dtype=torch.float).view(17, 3)
    out = mirror(pose, H36M)
    for a, b in H36M.flip_pairs:
        assert out[a].tolist() == [-pose[b, 0].item(), pose[b, 1].item(), pose[b, 2].item()]
        assert out[b].tolist() == [-pose[a, 0].item(), pose[a, 1].item(), pose[a, 2].item()]
    for j in (0, 7, 8, 9, 10):
        assert out[j].tolist() == [-pose[j, 0].item(), pose[j, 1].item(), pose[j, 2].item()]
    torch.testing.assert_close(mirror(out, H36M), pose)
    # 2D inputs: negates u'
    assert mirror(pose[:, :2], H36M)[1].tolist() == [-pose[4, 0].item(), pose[4, 1].item()]


def test_inplane_rotation_by_hand():
    p = torch.tensor([[1.0, 0.0, 5.0], [0.0, 2.0, -1.0]])
    torch.testing.assert_close(inplane_rotate(p, 90.0), torch.tensor([[0.0, 1.0, 5.0],
                                                                     [-2.0, 0.0, -1.0]]))
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    torch.testing.assert_close(inplane_rotate(p, 30.0),
                               torch.tensor([[c, s, 5.0], [-2 * s, 2 * c, -1.0]]))
    x = torch.randn(4, 17, 3)
    torch.testing.assert_close(flip_inplane(x, H36M, 50.0), inplane_rotate(mirror(x, H36M), 50))


def test_inplane_rotation_commutes_with_projection():
    """Rotating the 3D camera-frame pose about the optical axis rotates the
    normalised 2D pose about the image centre (what lets the 3D relations
    apply to 2D inputs); the same holds for the mirror."""
    g = np.random.default_rng(0)
    pts = g.normal(size=(17, 3)) * 0.4 + np.array([0.1, -0.2, 5.0])
    uv = normalize_screen(project(pts, 1000.0, (500.0, 500.0)), 1000, 1000)
    rot3 = inplane_rotate(torch.tensor(pts), 37.0).numpy()
    uv_rot = normalize_screen(project(rot3, 1000.0, (500.0, 500.0)), 1000, 1000)
    np.testing.assert_allclose(uv_rot, inplane_rotate(torch.tensor(uv), 37.0).numpy(), atol=1e-9)
    mir3 = mirror(torch.tensor(pts), H36M).numpy()
    uv_mir = normalize_screen(project(mir3, 1000.0, (500.0, 500.0)), 1000, 1000)
    np.testing.assert_allclose(uv_mir, mirror(torch.tensor(uv), H36M).numpy(), atol=1e-9)


def test_time_relations_by_hand():
    seq = torch.arange(5, dtype=torch.float).view(5, 1, 1).expand(5, 2, 3)
    assert reverse_time(seq)[:, 0, 0].tolist() == [4, 3, 2, 1, 0]
    # centre 2, rate 0.5: source times 1, 1.5, 2, 2.5, 3
    assert temporal_resample(seq, 0.5)[:, 0, 0].tolist() == [1, 1.5, 2, 2.5, 3]
    assert slow_backward(seq, 0.5)[:, 1, 2].tolist() == [3, 2.5, 2, 1.5, 1]
    assert temporal_resample(seq, 1.0).equal(seq)
    assert temporal_resample(seq, 2.0)[:, 0, 0].tolist() == [0, 0, 2, 4, 4]   # clamped
    # length-30 clips, batched: the middle 15 frames played over 30
    clips = torch.arange(30, dtype=torch.float).view(1, 30, 1, 1).expand(2, 30, 17, 3)
    slow = temporal_resample(clips, 0.5)
    assert slow.shape == clips.shape
    torch.testing.assert_close(slow[0, :, 0, 0], 14.5 + 0.5 * (torch.arange(30.) - 14.5))
    motion = torch.randn(2, 30, 17, 3)
    torch.testing.assert_close(flip_backward(motion, H36M), mirror(motion, H36M).flip(1))
    torch.testing.assert_close(relation_pair('slow_backward', motion, H36M),
                               slow_backward(motion))
    with pytest.raises(ValueError, match='unknown relation'):
        relation_pair('sideways', motion, H36M)


def test_contrastive_loss_prefers_matching_pairs():
    a = torch.eye(8)
    assert contrastive_loss(a, a) < contrastive_loss(a, a.roll(1, 0))


def test_temporal_contrastive_loss_uses_neighbouring_frames_as_positives():
    # clip i is the constant latent e_i: neighbours match, other clips differ
    clips = torch.eye(6).unsqueeze(1).expand(6, 30, 6)
    shuffled = clips.clone()
    shuffled[:, 1::2] = clips[:, 1::2].roll(1, 0)      # odd frames from another clip
    g = torch.Generator().manual_seed(0)
    good = temporal_contrastive_loss(clips, generator=g)
    bad = temporal_contrastive_loss(shuffled, generator=torch.Generator().manual_seed(0))
    assert good < 0.01 < bad
    with pytest.raises(ValueError, match='unknown contrastive'):
        adaptation_losses(torch.nn.Identity(), {}, H36M, None, None, relations=[],
                          contrastive='nearby')


def test_source_lifter_latent_anchoring_pulls_latents_to_the_encoder():
    torch.manual_seed(0)
    poses = camera_poses(512, seed=2)
    frames2d = poses[..., :2] / (poses[..., 2:] + 5.0)
    aae = PoseAAE(H36M, hidden=32)
    train_pose_aae(aae, poses, steps=5, batch_size=64)
    with torch.no_grad():
        z_true = aae.encode(poses)
    gaps = []
    for weight in (0.0, 10.0):
        torch.manual_seed(0)
        lifter = LatentLifter(17, hidden=64)
        train_source_lifter(lifter, aae, frames2d, poses, steps=60, batch_size=128, lr=3e-3,
                            latent_weight=weight)
        with torch.no_grad():
            gaps.append((lifter(frames2d) - z_true).pow(2).mean().item())
    assert gaps[1] < 0.5 * gaps[0]
    # with random rolls of input and label together (encoder targets per batch)
    lifter = LatentLifter(17, hidden=64)
    log = train_source_lifter(lifter, aae, frames2d, poses, steps=10, batch_size=128, lr=3e-3,
                              latent_weight=10.0, roll_deg=60.0, roll_frac=0.5)
    assert len(log) == 10 and all(math.isfinite(v) for v in log)


# --------------------------------------------------------------- adaptation
class ShiftedLifter(torch.nn.Module):
    """Toy input-to-latent map G(x) = tanh(x + b) on flattened 2D keypoints,
    with a frozen scale. The true map (b = 0) is flip-equivariant:
    G(mirror(x)) = M G(x), M the signed permutation of the mirror."""

    def __init__(self, b):
        super().__init__()
        self.b = torch.nn.Parameter(b.clone())
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return torch.tanh(self.scale * x.flatten(-2) + self.b)


class SignedPermutation(torch.nn.Module):
    def __init__(self, skeleton, num_joints):
        super().__init__()
        basis = torch.eye(num_joints * 2).view(-1, num_joints, 2)
        self.register_buffer('m', mirror(basis, skeleton).flatten(-2).t())

    def forward(self, z):
        return z @ self.m.t()


def test_adaptation_recovers_known_answer_on_toy_shift():
    """Domain shift = an input bias b0 that breaks the flip relation
    (M b0 = -b0). Distilling the flip relation alone must drive b to the
    known answer 0 and reduce the target relation loss."""
    skel = Skeleton.from_parents([-1, 0, 0, 1, 2], flip_pairs=[(1, 2), (3, 4)])
    T = SignedPermutation(skel, 5)
    g = torch.Generator().manual_seed(0)
    b0 = torch.randn(10, generator=g) * 0.5
    b0 = 0.5 * (b0 - T(b0))                      # antisymmetric under the mirror
    assert torch.allclose(T(b0), -b0)
    lifter = ShiftedLifter(b0)
    frames = torch.randn(512, 5, 2, generator=g) * 0.7
    nets = {'flip': T}

    def target_loss():
        with torch.no_grad():
            return adaptation_losses(lifter, nets, skel, frames, None, relations=['flip'],
                                     contrastive=False)['flip'].item()

    def target_error():      # labels known: the true latent is tanh(x)
        with torch.no_grad():
            return (lifter(frames) - torch.tanh(frames.flatten(-2))).abs().mean().item()

    before, err_before = target_loss(), target_error()
    assert err_before > 0.1
    adapt(lifter, nets, skel, frames, relations=['flip'], contrastive=False,
          trainable=[lifter.b], steps=150, batch_size=128, lr=2e-2)
    assert target_loss() < 0.05 * before
    assert target_error() < 0.1 * err_before
    assert lifter.b.detach().norm() < 0.1 * b0.norm()
    assert lifter.scale.item() == 1.0            # frozen parameter untouched


def _tiny_pipeline():
    torch.manual_seed(0)
    poses = camera_poses(60 * 30, seed=1)
    motions = poses.view(60, 30, 17, 3)
    frames2d = poses[..., :2] / (poses[..., 2:] + 5.0)
    aae = PoseAAE(H36M, hidden=32)
    train_pose_aae(aae, poses, steps=5, batch_size=64)
    aae.eval()
    mae = MotionAE(hidden=16)
    nets = {}
    with torch.no_grad():
        z, v = aae.encode(poses), mae.encode(aae.encode(motions))
    for name in RELATIONS:
        if name in ('flip_backward', 'slow_backward'):
            with torch.no_grad():
                tgt = mae.encode(aae.encode(relation_pair(name, motions, H36M)))
            nets[name] = RelationNet(128, hidden=32)
            train_relation_net(nets[name], v, tgt, steps=3, batch_size=16)
        else:
            with torch.no_grad():
                tgt = aae.encode(relation_pair(name, poses, H36M))
            nets[name] = RelationNet(32, hidden=32)
            train_relation_net(nets[name], z, tgt, steps=3, batch_size=64)
    lifter = LatentLifter(17, hidden=32)
    train_source_lifter(lifter, aae, frames2d, poses, steps=5, batch_size=64)
    return lifter, aae, mae, nets, frames2d, frames2d.view(60, 30, 17, 2)


def test_adaptation_updates_only_the_chosen_block():
    lifter, aae, mae, nets, frames, clips = _tiny_pipeline()
    before = {k: v.clone() for k, v in lifter.state_dict().items()}
    teachers = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in nets.items()}
    mae_before = {k: v.clone() for k, v in mae.state_dict().items()}
    log = adapt(lifter, nets, H36M, frames, clips, mae, steps=3, batch_size=32,
                clip_batch_size=4, lr=1e-2)
    assert set(log[0]) == set(RELATIONS) | {'contrastive'}
    changed = {k for k, v in lifter.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith('blocks.0.') for k in changed)
    # batch-norm running statistics are frozen, even inside the adapted block
    assert not any('running' in k or 'num_batches' in k for k in changed)
    for name, net in nets.items():
        for k, v in net.state_dict().items():
            assert torch.equal(v, teachers[name][k]), (name, k)
    for k, v in mae.state_dict().items():
        assert torch.equal(v, mae_before[k]), k
    # the decoded prediction keeps the AAE's fixed bone lengths
    with torch.no_grad():
        pred = aae.decode(lifter(frames[:8]))
    torch.testing.assert_close(aae.tree.decompose(pred)[0], aae.bone_lengths.expand(8, 16),
                               atol=1e-6, rtol=0)
    # other parameter sets
    norms = [m for m in lifter.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(norms) == 5
    assert {id(p) for p in lifter.adaptable_parameters('norm')} == {
        id(p) for m in norms for p in (m.weight, m.bias)}
    assert [id(p) for p in lifter.adaptable_parameters('head')] == [
        id(lifter.head.weight), id(lifter.head.bias)]
    with pytest.raises(ValueError):
        lifter.adaptable_parameters('res3')


# ------------------------------------------------------------ reprojection

def test_reprojection_loss_matches_a_least_squares_fit():
    g = torch.Generator().manual_seed(0)
    pose = torch.randn(5, 17, 3, generator=g, dtype=torch.float64)
    keypoints = torch.randn(5, 17, 2, generator=g, dtype=torch.float64)
    # independent reference: per pose, min over (s, tu, tv) of
    # sum_j (u_j - s x_j - tu)^2 + (v_j - s y_j - tv)^2 by torch.linalg.lstsq
    residuals = []
    for p, k in zip(pose, keypoints):
        ones, zeros = torch.ones(17, 1, dtype=p.dtype), torch.zeros(17, 1, dtype=p.dtype)
        a = torch.cat([torch.cat([p[:, :1], ones, zeros], 1),
                       torch.cat([p[:, 1:2], zeros, ones], 1)])          # [2N, 3]
        b = torch.cat([k[:, :1], k[:, 1:2]])                             # [2N, 1]
        sol = torch.linalg.lstsq(a, b).solution
        residuals.append((a @ sol - b).square().sum() / 17)
    torch.testing.assert_close(reprojection_loss(pose, keypoints), torch.stack(residuals).mean())
    # the projection [..., N, 2] alone gives the same value
    torch.testing.assert_close(reprojection_loss(pose[..., :2], keypoints),
                               torch.stack(residuals).mean())


def test_reprojection_loss_is_zero_for_an_exact_projection_and_sees_elevation():
    pose = camera_poses(8)
    # any scale and image offset, depth ignored (weak perspective)
    keypoints = 3.5 * pose[..., :2] + torch.tensor([0.4, -1.2])
    assert reprojection_loss(pose, keypoints) < 1e-10
    # the same pose tilted 30 degrees about the camera x axis (an elevation
    # error of the lift) no longer projects onto the keypoints
    assert reprojection_loss(inplane_rotate(pose, 30.0, (1, 2)), keypoints) > 0.01
    # a roll about the optical axis neither
    assert reprojection_loss(inplane_rotate(pose, 30.0, (0, 1)), keypoints) > 0.01
    with pytest.raises(ValueError, match='reprojection_loss needs'):
        reprojection_loss(pose[:, :16], keypoints)
    with pytest.raises(ValueError, match='reprojection_loss needs'):
        reprojection_loss(pose, pose)


def test_adaptation_with_reprojection_adds_and_lowers_the_term():
    lifter, aae, mae, nets, frames, clips = _tiny_pipeline()
    default = adaptation_losses(lifter, nets, H36M, frames[:32], None, relations=['flip'],
                                contrastive=False)
    assert set(default) == {'flip'}          # off by default: the paper's losses only
    with torch.no_grad():
        losses = adaptation_losses(lifter, nets, H36M, frames[:32], None, relations=[],
                                   contrastive=False, reprojection=aae)
        reference = reprojection_loss(aae.decode(lifter(frames[:32])), frames[:32])
    assert set(losses) == {'reprojection'}
    torch.testing.assert_close(losses['reprojection'], reference)
    before = {k: v.clone() for k, v in aae.state_dict().items()}
    log = adapt(lifter, nets, H36M, frames, None, None, relations=[], contrastive=False,
                steps=40, batch_size=64, lr=1e-3, trainable='all', reprojection=aae)
    assert set(log[0]) == {'reprojection'}
    with torch.no_grad():
        after = reprojection_loss(aae.decode(lifter(frames[:32])), frames[:32])
    assert after < 0.8 * reference
    for k, v in aae.state_dict().items():         # the decoder is a frozen teacher
        assert torch.equal(v, before[k]), k

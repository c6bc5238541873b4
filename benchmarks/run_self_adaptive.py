"""Self-adaptive 3D pose (Kundu et al., NeurIPS 2021) adapted to 2D-to-3D lifting.

Datasets, in the roles of the paper's three:

* labelled source: the built-in **synthetic** poses, rendered by randomised
  virtual cameras (2D input, camera-frame 3D label);
* unpaired 3D poses / motions (the paper's CMU-MoCap role): Bandai actor 0,
  3D only, cut into 30-frame clips;
* unlabelled target: Bandai actors 1 and 2, 2D clips from virtual cameras
  (3D labels used for evaluation only).

Pipeline = Algorithm 1: pose AAE, motion AE, relation networks, source lifter
G^s, then adaptation of G's first residual block only. Reports target
MPJPE / P-MPJPE before and after adaptation and with each relation removed.

    python benchmarks/run_self_adaptive.py [--quick]

Uses the Bandai-Namco mocap (CC BY-NC 4.0): benchmark use only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_report  # noqa: E402

from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.datasets.bandai import BandaiMocap  # noqa: E402
from pyg_skeleton.datasets.camera import (  # noqa: E402
    CameraRig, look_at_rotation, normalize_screen, project, root_relative)
from pyg_skeleton.datasets.synthetic import synthetic_poses  # noqa: E402
from pyg_skeleton.metrics import mpjpe, p_mpjpe  # noqa: E402
from pyg_skeleton.nn.models.self_adaptive import (  # noqa: E402
    MOTION_RELATIONS, POSE_RELATIONS, RELATIONS, LatentLifter, MotionAE, PoseAAE,
    RelationNet, adapt, adaptation_losses, relation_pair, train_motion_ae, train_pose_aae,
    train_relation_net, train_source_lifter)

ATTRIBUTION = (
    "Motion data: Bandai-Namco-Research-Motiondataset-2, © 2022 Bandai Namco Research Inc., "
    "https://github.com/BandaiNamcoResearchInc/Bandai-Namco-Research-Motiondataset, licensed "
    "under CC BY-NC 4.0 (https://creativecommons.org/licenses/by-nc/4.0/). Changes: forward "
    "kinematics to joint positions, mapped to the Human3.6M 17-joint layout with a synthesised "
    "head-top joint, converted to metres and subsampled from 30 to 10 fps.")
SEQ = 30


def windows(bandai: BandaiMocap, actors, stride: int, limit: int, rng) -> np.ndarray:
    clips = []
    for seq in bandai.sequences(actors=actors):
        pos = seq['positions']
        for s in range(0, len(pos) - SEQ + 1, stride):
            clips.append(pos[s:s + SEQ])
    clips = np.stack(clips)
    if len(clips) > limit:
        clips = clips[np.sort(rng.choice(len(clips), limit, replace=False))]
    return clips


def render_clips(clips: np.ndarray, rng, distance=(4.0, 6.0), height=(0.8, 1.8)):
    """One fixed random camera per clip, aimed at the clip's mean root."""
    S, T, N, _ = clips.shape
    yaw = rng.uniform(-np.pi, np.pi, S)
    dist = rng.uniform(*distance, S)
    h = rng.uniform(*height, S)
    target = clips[:, :, 0].mean(1)                                   # [S, 3]
    # keep the whole clip in front of the camera: add the root's travel radius
    dist = dist + np.linalg.norm((clips[:, :, 0] - target[:, None])[..., [0, 2]], axis=-1).max(1)
    cam = np.stack([target[:, 0] + dist * np.sin(yaw), h, target[:, 2] + dist * np.cos(yaw)], -1)
    rot = look_at_rotation(cam, target)                               # [S, 3, 3]
    p_cam = np.einsum('sab,stnb->stna', rot, clips) - np.einsum('sab,sb->sa', rot,
                                                                cam)[:, None, None]
    pix = project(p_cam, 1000.0, (500.0, 500.0))
    x = normalize_screen(pix, 1000, 1000)
    y = root_relative(p_cam, 0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


@torch.no_grad()
def evaluate(lifter, aae, x, y):
    lifter.eval()
    pred = aae.decode(lifter(x))
    return 1000 * mpjpe(pred, y).item(), 1000 * p_mpjpe(pred, y).item()


@torch.no_grad()
def target_relation_loss(lifter, nets, skeleton, frames, clips, motion_ae):
    losses = adaptation_losses(lifter, nets, skeleton, frames, clips, motion_ae, RELATIONS,
                               contrastive=False)
    return sum(v.item() for v in losses.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='small sizes (a couple of minutes)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--lr', type=float, default=1e-4, help='adaptation learning rate')
    parser.add_argument('--trainable', default='block', choices=['block', 'norm', 'head'],
                        help="parameters of G updated during adaptation")
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (1 is fastest on a shared 2-core machine)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    q = args.quick
    cfg = dict(n_synth=20000 if q else 40000, n_prior_clips=800 if q else 3000,
               n_target_clips=300 if q else 1500, aae_steps=1500 if q else 4000,
               mae_steps=300 if q else 1000, rel_steps=600 if q else 1500,
               lift_steps=2000 if q else 5000, adapt_steps=50 if q else 150,
               hidden=256 if q else 512, batch=256, clip_batch=8 if q else 16)
    t0 = time.time()
    skeleton = Skeleton.preset('h36m17')
    bandai = BandaiMocap()

    # labelled source: synthetic poses through randomised cameras
    views = CameraRig.train(num_views=2).views(synthetic_poses(cfg['n_synth'] // 2,
                                                               seed=args.seed), seed=args.seed)
    xs, ys = torch.tensor(views['x']), torch.tensor(views['y'])
    # unpaired 3D motions (actor 0) and the unlabelled target (actors 1, 2)
    _, prior_y = render_clips(windows(bandai, [0], 10, cfg['n_prior_clips'], rng), rng)
    tx, ty = render_clips(windows(bandai, [1, 2], 15, cfg['n_target_clips'], rng), rng)
    tx_frames, ty_frames = tx.flatten(0, 1), ty.flatten(0, 1)
    print(f"data: source {len(xs)}, prior clips {len(prior_y)}, target clips {len(tx)} "
          f"({len(tx_frames)} frames)  [{time.time() - t0:.0f}s]", flush=True)

    # A. pre-learning
    aae = PoseAAE(skeleton, hidden=cfg['hidden'])
    prior_poses = torch.cat([ys, prior_y.flatten(0, 1)])
    train_pose_aae(aae, prior_poses, steps=cfg['aae_steps'], batch_size=cfg['batch'],
                   seed=args.seed)
    aae.eval()
    with torch.no_grad():
        aae_err = 1000 * mpjpe(aae(prior_y[:200].flatten(0, 1)), prior_y[:200].flatten(0, 1))
    print(f"pose AAE: reconstruction MPJPE {aae_err:.1f} mm  [{time.time() - t0:.0f}s]",
          flush=True)
    mae = MotionAE()
    train_motion_ae(mae, aae, prior_y, steps=cfg['mae_steps'], batch_size=4 * cfg['clip_batch'],
                    seed=args.seed)
    print(f"motion AE trained  [{time.time() - t0:.0f}s]", flush=True)

    nets = {}
    with torch.no_grad():
        z = aae.encode(prior_poses)
        zm = aae.encode(prior_y)
        vm = mae.encode(zm)
    for name in RELATIONS:
        net = RelationNet(aae.latent_dim if name in POSE_RELATIONS else mae.motion_dim)
        with torch.no_grad():
            if name in POSE_RELATIONS:
                inp, tgt = z, aae.encode(relation_pair(name, prior_poses, skeleton))
            else:
                inp, tgt = vm, mae.encode(aae.encode(relation_pair(name, prior_y, skeleton)))
        log = train_relation_net(net, inp, tgt, steps=cfg['rel_steps'], batch_size=cfg['batch'],
                                 seed=args.seed)
        nets[name] = net
        print(f"relation {name}: final mse {np.mean(log[-20:]):.4f}  "
              f"[{time.time() - t0:.0f}s]", flush=True)

    lifter = LatentLifter(skeleton.num_joints, hidden=cfg['hidden'])
    train_source_lifter(lifter, aae, xs, ys, steps=cfg['lift_steps'], batch_size=cfg['batch'],
                        seed=args.seed)
    src_state = {k: v.clone() for k, v in lifter.state_dict().items()}
    with torch.no_grad():
        src_err = evaluate(lifter, aae, xs[:4000], ys[:4000])
    before = evaluate(lifter, aae, tx_frames, ty_frames)
    rel_before = target_relation_loss(lifter, nets, skeleton, tx_frames[:2000], tx[:64], mae)
    print(f"source G^s: source {src_err[0]:.1f} mm, target before {before[0]:.1f} / "
          f"{before[1]:.1f} mm  [{time.time() - t0:.0f}s]", flush=True)

    # B. unsupervised adaptation and the ablation
    settings = [('all relations + contrastive', RELATIONS, True)]
    settings += [(f'without {r}', [s for s in RELATIONS if s != r], True) for r in RELATIONS]
    settings += [('without contrastive', RELATIONS, False),
                 ('Algorithm 1 set (flip_inplane, flip_backward, slow_backward)',
                  ['flip_inplane', 'flip_backward', 'slow_backward'], True)]
    rows = [['source model, no adaptation', f'{before[0]:.1f}', f'{before[1]:.1f}',
             f'{rel_before:.4f}']]
    for label, rels, contrastive in settings:
        lifter.load_state_dict(src_state)
        adapt(lifter, nets, skeleton, tx_frames, tx, mae, relations=rels,
              contrastive=contrastive, steps=cfg['adapt_steps'], batch_size=cfg['batch'],
              clip_batch_size=cfg['clip_batch'], lr=args.lr, trainable=args.trainable,
              seed=args.seed)
        after = evaluate(lifter, aae, tx_frames, ty_frames)
        rel_after = target_relation_loss(lifter, nets, skeleton, tx_frames[:2000], tx[:64], mae)
        rows.append([label, f'{after[0]:.1f}', f'{after[1]:.1f}', f'{rel_after:.4f}'])
        print(f"{label}: {after[0]:.1f} / {after[1]:.1f} mm, relation loss {rel_after:.4f}  "
              f"[{time.time() - t0:.0f}s]", flush=True)

    full = float(rows[1][1])
    verdict = ('helped' if full < before[0] - 0.5 else
               'hurt' if full > before[0] + 0.5 else 'made no material difference')
    adapted = ('Only the first residual block of G is adapted (the paper adapts only Res-3).'
               if args.trainable == 'block' else
               f'Only the {args.trainable} parameters of G are adapted.')
    body = '\n'.join([
        '2D-to-3D lifting adaptation of Kundu et al., NeurIPS 2021 (supplementary, Algorithm 1). '
        'Source (labelled): synthetic poses, randomised virtual cameras. Unpaired 3D motion '
        '(pose AAE, motion AE, relation networks): Bandai actor 0. Target (2D only): Bandai '
        'actors 1 and 2, one random virtual camera per 30-frame clip (10 fps). ' + adapted
        + ' BN statistics frozen. Decoding uses the fixed mean bone lengths of the AAE '
        'training poses.', '',
        f"Settings: {'--quick' if q else 'full'}, seed {args.seed}; {len(xs)} source samples, "
        f"{len(tx)} target clips ({len(tx_frames)} frames), {cfg['adapt_steps']} adaptation "
        f"steps, lr {args.lr:g}, in-plane theta 50 deg, slow rate 0.5. "
        f"Source-domain MPJPE of G^s: "
        f"{src_err[0]:.1f} mm; pose AAE reconstruction on actor 0: {aae_err:.1f} mm.", '',
        markdown_table(['setting', 'target MPJPE (mm)', 'target P-MPJPE (mm)',
                        'target relation loss'], rows), '',
        f'Verdict: on this run adaptation {verdict} (MPJPE {before[0]:.1f} -> {full:.1f} mm). '
        'The relation loss is the sum of the five unsupervised distillation terms on target '
        'data (what adaptation minimises); MPJPE needs the target labels, used only here. '
        'One seed; differences below about 1 mm are within run-to-run noise.', '',
        ATTRIBUTION, '',
        f'Runtime: {time.time() - t0:.0f} s.'])
    path = write_report('self_adaptive', 'Self-adaptive 3D pose: relation distillation', body)
    print(f'wrote {path}')


if __name__ == '__main__':
    main()

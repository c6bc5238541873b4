r"""``pyg-skeleton demo`` (and ``python -m pyg_skeleton``): the main job.

On the built-in real motion (CMU, shipped with the package; nothing is read
or downloaded) it

1. lifts the held-out built-in sequences (sequences and a subject never
   trained on), seen through random in-the-wild cameras, with the bundled
   default lifter, and reports MPJPE and P-MPJPE, clean and with detector-like
   noise and missing joints;
2. writes one held-out sequence as a keypoint file, lifts it the way a user
   lifts a detector's output (:func:`pyg_skeleton.lift`) and draws it;
3. trains a small lifter from scratch for a few hundred steps, to show the
   training path, and scores it the same way.

About a minute on 2 idle CPU cores. Outputs go to ``--out`` (default: a new
temporary folder): ``report.json``, ``samples.png`` (2D input, lifted 3D and
the ground truth in grey), the sequence's ``keypoints.npz``, ``poses3d.*``,
``lift.png`` and ``lift.gif``, and ``small_lifter.pt``.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pyg_skeleton.cli.main import CLIError

HELP = ('the main job: lift held-out built-in real motion with the bundled lifter, '
        'and train a small one')


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--out', default=None, help='output folder (default: a new temporary one)')
    p.add_argument('--steps', type=int, default=1500,
                   help='training steps of the small lifter (default 1500)')
    p.add_argument('--seed', type=int, default=0,
                   help='seed of the weights, the batches and the data (default 0)')
    p.add_argument('--no-plots', action='store_true', help='no pictures')


def _table(rows) -> str:
    lines = [f"| {'lifter':<28} | {'condition':<24} | {'MPJPE':>7} | {'P-MPJPE':>7} |",
             f"|{'-' * 30}|{'-' * 26}|{'-' * 9}|{'-' * 9}|"]
    for name, cond, m in rows:
        lines.append(f"| {name:<28} | {cond:<24} | {m['mpjpe']:7.1f} | {m['p_mpjpe']:7.1f} |")
    return '\n'.join(lines)


def run(args) -> int:
    import torch

    from pyg_skeleton.datasets.builtin import CMU_ACKNOWLEDGEMENT, builtin_motion
    from pyg_skeleton.datasets.wild import WildCameras
    from pyg_skeleton.inference import lift
    from pyg_skeleton.lifter import DEFAULT_LIFTER, Lifter, evaluate_lifter, train_lifter
    from pyg_skeleton.plotting import NO_PLOTS, plot_lifted, plots_available

    if args.steps < 1:
        raise CLIError('--steps must be at least 1')
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix='pyg_skeleton_demo_'))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CLIError(f"output folder {out} is not empty")
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    train, test = builtin_motion('train'), builtin_motion('test')
    print(f"pyg-skeleton demo: built-in real motion (CMU), {len(train):,} training frames, "
          f"{len(test):,} held-out frames in {len(np.unique(test.sequence))} sequences.\n"
          f"  {CMU_ACKNOWLEDGEMENT}\n", flush=True)

    # 1. the bundled lifter on the held-out sequences
    lifter = Lifter.pretrained(DEFAULT_LIFTER)
    cams = WildCameras()
    poses = test.positions
    rows = []
    for cond, kw in (('clean 2D', {}), ('2D noise 5 px', {'noise_px': 5.0}),
                     ('2 joints missing', {'drop': 2})):
        rows.append((f'bundled {DEFAULT_LIFTER!r}', cond,
                     evaluate_lifter(lifter, poses, cams, seed=args.seed, **kw)))
    print(f"1. bundled lifter {DEFAULT_LIFTER!r} on {len(poses):,} held-out poses, one random "
          f"wild camera each (0.6-2.5 focal, 2.5-9 m, up to 60 deg elevation, 30 deg roll):",
          flush=True)
    print(_table(rows) + '\n', flush=True)

    # 2. one held-out sequence as a keypoint file, lifted as a user would
    names = [n for n, _ in test.sequences()]
    name = next((n for n in names if n.startswith('bvh/131')), names[0])
    seq = dict(test.sequences())[name][:240]
    rng = np.random.default_rng(args.seed)
    cam = WildCameras(distance=(5.0, 6.0), elevation=(10.0, 20.0), roll=(-5.0, 5.0),
                      off_centre=0.1).sample(seq, rng, shared=True)
    uv = cam['pixels'] + rng.normal(scale=2.0, size=cam['pixels'].shape)
    keypoints = np.concatenate([uv, np.ones(uv.shape[:2] + (1,))], -1).astype(np.float32)
    np.savez(out / 'keypoints.npz', keypoints=keypoints)
    result = lift(out / 'keypoints.npz', format='h36m17', smooth=1.0)
    err = np.linalg.norm(result.poses - cam['y'], axis=-1).mean() * 1000
    plots = not args.no_plots
    if plots and not plots_available():
        print(NO_PLOTS, file=sys.stderr, flush=True)
        plots = False
    written = result.save(out, plots=plots)
    print(f"2. held-out sequence {name!r} ({len(seq)} frames, a static camera 5-6 m away, "
          f"2 px noise) written as keypoints.npz and lifted with pyg_skeleton.lift(..., "
          f"smooth=1): MPJPE {err:.1f} mm\n   wrote {', '.join(p.name for p in written)}\n",
          flush=True)

    # 3. a small lifter trained from scratch
    torch.manual_seed(args.seed)
    small = Lifter('nosharing', hidden_channels=16)
    size = sum(p.numel() for p in small.parameters())
    print(f"3. training a small lifter from scratch ({size:,}"
          f" parameters, {args.steps} steps of 128 poses):", flush=True)
    info = train_lifter(small, train.positions, steps=args.steps, batch_size=128, lr=2e-3,
                        seed=args.seed, cameras=cams, log_every=max(args.steps // 4, 1),
                        log=lambda s: print('   ' + s, flush=True))
    small.card = {'name': 'small', 'trained_by': 'pyg-skeleton demo', 'steps': args.steps}
    small.save(out / 'small_lifter.pt')
    rows.append(('small, from scratch', 'clean 2D',
                 evaluate_lifter(small, poses, cams, seed=args.seed)))
    print(_table(rows[-1:]) + '\n', flush=True)

    if plots:
        idx = np.linspace(0, len(poses) - 1, 8).round().astype(int)
        r = np.random.default_rng(args.seed + 1)
        from pyg_skeleton.datasets.wild import render_wild
        _, y, c = render_wild(poses[idx], r, cams, lifter.skeleton, bone_scale=False,
                              corrupt=False, flip=False)
        pred = lifter.lift(c['pixels'], c['mask']).numpy()
        err_i = np.linalg.norm(pred - y.numpy(), axis=-1).mean(-1) * 1000
        plot_lifted(c['pixels'], c['mask'], pred, lifter.skeleton, out / 'samples.png',
                    titles=[f"held-out pose, MPJPE {e:.0f} mm" for e in err_i],
                    truth=y.numpy(),
                    suptitle=f"bundled lifter {DEFAULT_LIFTER!r} on held-out CMU poses, random "
                             f"wild cameras (colour: lifted, grey: ground truth)")
    report = {'bundled': DEFAULT_LIFTER,
              'held_out': [{'lifter': n, 'condition': c, **m} for n, c, m in rows],
              'sequence': {'name': name, 'frames': len(seq), 'mpjpe': float(err)},
              'small_training': info['history'],
              'seconds': time.perf_counter() - t_start}
    (out / 'report.json').write_text(json.dumps(report, indent=1))
    # Only what was written (the pictures need matplotlib):
    names = ['report.json'] + (['samples.png'] if plots else []) + ['keypoints.npz'] + [
        p.name for p in written] + ['small_lifter.pt']
    print(f"outputs in {out}/ ({', '.join(names)}); {report['seconds']:.0f} s\n"
          f"lift your own keypoints with: pyg-skeleton lift KEYPOINTS.json  (or "
          f"--checkpoint {out / 'small_lifter.pt'})")
    return 0

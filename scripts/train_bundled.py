r"""Trains the bundled lifters of ``pyg_skeleton/data/pretrained/`` from the built-in CMU
motion only (no other data is read), and writes each with its model card.

Usage (from the repository root; about 15 min for ``nosharing`` and 40 min for
``semgcn`` on 2 CPU cores)::

    python scripts/train_bundled.py [--arch nosharing semgcn] [--steps N] [--seed 0]

Training: every step draws 256 frames of the built-in training split, gives each body
random proportions (:func:`~pyg_skeleton.datasets.wild.scale_bones`), a random
in-the-wild camera (:class:`~pyg_skeleton.datasets.wild.WildCameras`), a random mirror
flip and detector-like corruption (noise of up to 8 % of the pose's size, outliers,
missing joints); Adam with a cosine
learning rate from 1e-3 to 1e-5; MPJPE loss. Every 500 steps the lifter is scored on
validation sequences held out of the training split (every 10th training sequence,
clean 2D, fixed cameras) and the best weights are kept. The card reports MPJPE and
P-MPJPE on the built-in test split (sequences and a subject never trained on).
"""
from __future__ import annotations

import argparse
import datetime
import platform
import sys
from pathlib import Path

import torch

from pyg_skeleton.datasets.builtin import CMU_ACKNOWLEDGEMENT, builtin_motion
from pyg_skeleton.datasets.wild import BONE_SCALE, WildCameras
from pyg_skeleton.lifter import (
    ARCHITECTURES,
    PRETRAINED_DIR,
    Lifter,
    evaluate_lifter,
    train_lifter,
)

STEPS = {'nosharing': 6000, 'semgcn': 3000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', nargs='+', default=list(STEPS), choices=list(ARCHITECTURES))
    p.add_argument('--steps', type=int, default=None, help='default: per architecture')
    p.add_argument('--batch-size', type=int, default=256)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', type=Path, default=PRETRAINED_DIR)
    args = p.parse_args()
    torch.set_num_threads(1)
    train = builtin_motion('train')
    test = builtin_motion('test')
    val_mask = train.sequence % 10 == 9
    fit, val = train.positions[~val_mask], train.positions[val_mask][::3]
    cameras = WildCameras()
    args.out.mkdir(parents=True, exist_ok=True)
    for arch in args.arch:
        steps = args.steps or STEPS[arch]
        torch.manual_seed(args.seed)
        lifter = Lifter(arch)
        print(f'{arch}: {sum(q.numel() for q in lifter.parameters()):,} parameters, '
              f'{steps} steps, {len(fit):,} training / {len(val):,} validation frames',
              flush=True)
        result = train_lifter(
            lifter, fit, steps=steps, batch_size=args.batch_size, seed=args.seed,
            cameras=cameras, log=lambda s: print(s, flush=True),
            validate=lambda m: evaluate_lifter(m, val, cameras, seed=1)['mpjpe'])
        metrics = {}
        for name, cams in (('wild cameras', cameras), ('lab cameras', WildCameras.lab())):
            for cond, kw in (('clean', {}), ('noise 5 px', {'noise_px': 5.0}),
                             ('2 joints dropped', {'drop': 2})):
                metrics[f'{name}, {cond}'] = evaluate_lifter(lifter, test.positions, cams,
                                                             seed=2, **kw)
        lifter.card = {
            'name': arch,
            'architecture': f"SemGCN backbone, {ARCHITECTURES[arch]['conv']} convolution, "
                            f"width {lifter.hidden_channels}, {lifter.num_layers} residual "
                            f"blocks, input (u, v, visible) x 17 joints (h36m17), output "
                            f"root-relative camera-frame metres",
            'parameters': sum(q.numel() for q in lifter.parameters()),
            'data': f"built-in CMU motion, training split ({len(fit):,} frames; "
                    f"{len(val):,} validation frames of held-out sequences). "
                    + CMU_ACKNOWLEDGEMENT,
            'cameras': cameras.to_dict(),
            'augmentation': {'bone_scale': {k: list(v) for k, v in BONE_SCALE.items()},
                             'flip': 0.5, 'noise': 'Gaussian, 0-8 % of the 2D pose size',
                             'outliers': '1 % of joints, up to half the pose size',
                             'dropped joints': '40 % of poses: 1-3 joints or a lower limb'},
            'training': {'steps': steps, 'batch_size': args.batch_size, 'optimizer': 'Adam',
                         'lr': '1e-3 cosine to 1e-5', 'loss': 'MPJPE', 'seed': args.seed,
                         'best_step': result['best_step'],
                         'seconds': round(result['seconds']),
                         'history': result['history']},
            'metrics_builtin_test_mm': metrics,
            'command': f"python scripts/train_bundled.py --arch {arch} --steps {steps} "
                       f"--seed {args.seed}",
            'trained': datetime.date.today().isoformat(),
            'environment': f"python {platform.python_version()}, torch {torch.__version__}, "
                           f"{platform.machine()}",
        }
        lifter.save(args.out / f'{arch}.pt')
        print(f"{arch}: wrote {args.out / f'{arch}.pt'}; built-in test: "
              + '; '.join(f"{k} {v['mpjpe']:.1f} / {v['p_mpjpe']:.1f} mm"
                          for k, v in metrics.items()), flush=True)


if __name__ == '__main__':
    sys.exit(main())

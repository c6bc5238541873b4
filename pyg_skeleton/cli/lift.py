r"""``pyg-skeleton lift INPUT``: 3D poses from a 2D detector's keypoints with
a bundled lifter (:func:`pyg_skeleton.inference.lift`).

Writes into ``--out`` (default: ``INPUT_3d`` beside the input)
``poses3d.npz`` and ``poses3d.json`` (root-relative camera-frame joints in
metres, per person and frame), ``lift.png`` (the 2D input beside the upright
3D skeleton) and, for a sequence, ``lift.gif``.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

from pyg_skeleton.cli.main import CLIError
from pyg_skeleton.plotting import NO_PLOTS, plots_available

HELP = 'lift 2D keypoints of any detector (COCO, OpenPose, MediaPipe, npy) to 3D poses'


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('input', nargs='?', help='keypoint file or OpenPose folder')
    p.add_argument('--format', default=None,
                   help='keypoint format (default: detected; see --list-formats)')
    p.add_argument('--image-size', type=float, nargs=2, metavar=('W', 'H'), default=None,
                   help='image width and height in pixels (needed for normalised MediaPipe '
                        'landmarks)')
    p.add_argument('--intrinsics', default=None,
                   help='camera intrinsics JSON (focal_length, center, width, height): '
                        'checks that the camera resembles the training ones')
    p.add_argument('--model', default=None, help='bundled lifter (see --list-models)')
    p.add_argument('--checkpoint', default=None, help='a lifter file of Lifter.save')
    p.add_argument('--out', default=None, help='output folder (default: INPUT_3d)')
    p.add_argument('--overwrite', action='store_true', help='replace files in an existing --out')
    p.add_argument('--smooth', type=float, default=0.0,
                   help='temporal Gaussian smoothing of sequences, sigma in frames (default 0)')
    p.add_argument('--min-confidence', type=float, default=0.3,
                   help='joints with a lower confidence are treated as missing')
    p.add_argument('--no-flip', action='store_true', help='no test-time flip augmentation')
    p.add_argument('--device', default='cpu',
                   help="where the lifter runs: 'cpu', 'cuda', 'cuda:1', ... (default: cpu)")
    p.add_argument('--no-plots', action='store_true', help='no PNG/GIF pictures')
    p.add_argument('--list-models', action='store_true', help='list the bundled lifters')
    p.add_argument('--list-formats', action='store_true', help='list the keypoint formats')


def run(args) -> int:
    from pyg_skeleton.inference import lift
    from pyg_skeleton.keypoints import keypoint_formats
    from pyg_skeleton.lifter import DEFAULT_LIFTER, Lifter, pretrained_lifters
    if args.list_models:
        for name in pretrained_lifters():
            card = Lifter.pretrained(name).card
            test = card.get('metrics_builtin_test_mm', {}).get('wild cameras, clean', {})
            print(f"{name}{' (default)' if name == DEFAULT_LIFTER else ''}: "
                  f"{card.get('architecture', '')}; built-in test MPJPE "
                  f"{test.get('mpjpe', float('nan')):.1f} mm")
        return 0
    if args.list_formats:
        print('\n'.join(keypoint_formats()))
        return 0
    if args.input is None:
        raise CLIError('the input keypoint file or folder is required')
    if args.model is not None and args.checkpoint is not None:
        raise CLIError('give --model or --checkpoint, not both')
    src = Path(args.input)
    if not src.exists():
        raise CLIError(f'input not found: {src}')
    out = Path(args.out) if args.out else src.with_name(src.stem + '_3d')
    if out.exists() and not out.is_dir():
        raise CLIError(f'output path {out} exists and is not a folder')
    if out.resolve() == src.resolve() or src.resolve() in out.resolve().parents:
        raise CLIError(f'output folder {out} would write into the input')
    names = ('poses3d.npz', 'poses3d.json', 'lift.png', 'lift.gif')
    if out.is_dir() and not args.overwrite and any((out / n).exists() for n in names):
        raise CLIError(f'{out} already holds lifted poses; use --overwrite to replace them')

    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            result = lift(src, format=args.format, image_size=args.image_size,
                          intrinsics=args.intrinsics, model=args.model or DEFAULT_LIFTER,
                          checkpoint=args.checkpoint, min_confidence=args.min_confidence,
                          smooth=args.smooth, flip=not args.no_flip, device=args.device)
        except ValueError as e:   # bad input files and options: the user can fix them
            raise CLIError(str(e).splitlines()[0]) from None
    seconds = time.perf_counter() - t0
    for w in caught:
        print(f'warning: {w.message}', file=sys.stderr)
    lifted = int((result.poses == result.poses).all((1, 2)).sum())
    plots = not args.no_plots
    if plots and not plots_available():
        print(NO_PLOTS, file=sys.stderr)
        plots = False
    written = result.save(out, plots=plots)
    print(f"pyg-skeleton lift: {lifted} of {len(result)} poses lifted from "
          f"{len(set(result.frame.tolist()))} frame(s) of {src} with {result.model} "
          f"in {seconds:.2f} s" + (f", smoothed (sigma {result.smoothed:g} frames)"
                                   if result.smoothed else ''))
    print(f"  wrote {', '.join(str(p) for p in written)}")
    return 0

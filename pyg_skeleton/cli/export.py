r"""``pyg-skeleton export --checkpoint F``: a trained model as an ONNX file or
a :func:`torch.export` program (:mod:`pyg_skeleton.export`).

Reads a checkpoint of ``pyg-skeleton train`` (``best.pt``, ``last.pt``) or a
lifter file of :meth:`Lifter.save <pyg_skeleton.lifter.Lifter.save>` (the
bundled ones included), both with ``torch.load(weights_only=True)`` and
checked before use. The model is exported in evaluation mode for inputs
``[B, N, 2]`` (a lifter: ``[B, 17, 3]``, keypoints plus visibility), with a
dynamic batch or a fixed one (``--batch N``), then run on fresh random
inputs (onnxruntime for ONNX, the loaded program for ``torch.export``) and
compared with the eager model; the largest difference is printed and the
file is written (atomically) only when it is within the tolerance.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pyg_skeleton.cli.main import CLIError

HELP = 'export a checkpoint or lifter to ONNX or torch.export, verified against eager'

FORMATS = {'onnx': '.onnx', 'torch.export': '.pt2'}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument('--checkpoint', required=True,
                   help='a checkpoint of pyg-skeleton train or a lifter file (Lifter.save)')
    p.add_argument('--format', choices=sorted(FORMATS), default='onnx',
                   help='onnx (dynamo exporter, checked in onnxruntime) or torch.export '
                        '(a .pt2 program for torch.export.load) (default: onnx)')
    p.add_argument('--out', default=None,
                   help='output file (default: the checkpoint with .onnx or .pt2)')
    p.add_argument('--batch', default='dynamic',
                   help="'dynamic' (any batch size) or a fixed batch size N (default: dynamic)")
    p.add_argument('--overwrite', action='store_true', help='replace an existing --out')


def _batch(value: str):
    if value == 'dynamic':
        return None
    try:
        b = int(value)
    except ValueError:
        b = 0
    if b < 1:
        raise CLIError(f"--batch must be 'dynamic' or a positive integer (got {value!r})")
    return b


def load_model(path: Path):
    r"""``(model, example_input, description)`` of a train checkpoint or a
    lifter file, the model in evaluation mode.

    Raises:
        CLIError: Naming the file and the problem.
    """
    import torch

    from pyg_skeleton.lifter import LIFTER_FORMAT, Lifter
    from pyg_skeleton.training.checkpoint import CHECKPOINT_FORMAT, load_checkpoint
    from pyg_skeleton.training.config import RUN_OPTIONS, TrainingError
    if not path.is_file():
        raise CLIError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise CLIError(f"cannot read checkpoint {path}: {str(e).splitlines()[0]}") from None
    tag = obj.get('format') if isinstance(obj, dict) else None
    if tag == LIFTER_FORMAT:
        try:
            lifter = Lifter.load(path)
        except ValueError as e:
            raise CLIError(str(e).splitlines()[0]) from None
        return lifter.eval(), torch.zeros(1, 17, 3), f"lifter {lifter.arch}"
    if tag != CHECKPOINT_FORMAT:
        raise CLIError(f"{path} is neither a pyg-skeleton train checkpoint nor a lifter file")
    from pyg_skeleton.cli.models import MODELS, build_model
    from pyg_skeleton.skeleton import Skeleton
    try:
        ckpt = load_checkpoint(path)
    except TrainingError as e:
        raise CLIError(str(e)) from None
    name = ckpt['model_name']
    if name not in MODELS:
        raise CLIError(f"checkpoint model {name!r} is not available (known: "
                       f"{', '.join(MODELS)})")
    skeleton = Skeleton.from_dict(ckpt['skeleton'])  # checked by load_checkpoint
    run = argparse.Namespace(**{k: ckpt['args'].get(k) for k in RUN_OPTIONS})
    model = build_model(name, skeleton, run)
    try:
        model.load_state_dict(ckpt['model'])
    except RuntimeError as e:
        raise CLIError(f"checkpoint weights do not fit model {name!r}: "
                       f"{str(e).splitlines()[0]}") from None
    return model.eval(), torch.zeros(1, skeleton.num_joints, 2), f"{name} on {skeleton.name}"


def run(args) -> int:
    import torch

    from pyg_skeleton.export import export_onnx, export_program, verify_program
    from pyg_skeleton.files import atomic_output
    src = Path(args.checkpoint)
    batch = _batch(args.batch)
    out = Path(args.out) if args.out else src.with_suffix(FORMATS[args.format])
    if out.exists() and out.resolve() == src.resolve():
        raise CLIError(f"--out {out} is the checkpoint; give another file")
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder; give a file name")
    if (out.exists() or out.is_symlink()) and not args.overwrite:
        raise CLIError(f"{out} exists; use --overwrite to replace it")
    if not out.parent.is_dir():
        raise CLIError(f"output folder {out.parent} does not exist")
    model, example, what = load_model(src)
    # A dynamic batch is traced at B = 2 (see export_program); a fixed one
    # at the size asked for.
    example = example.expand((batch or 2, ) + tuple(example.shape[1:])).contiguous()
    dynamic = batch is None
    try:
        if args.format == 'onnx':
            result = export_onnx(model, (example, ), out, dynamic_batch=dynamic)
            diff, sizes = result.max_abs_diff, result.batch_sizes
        else:
            program = export_program(model, (example, ), dynamic_batch=dynamic)
            diff, sizes = verify_program(model, program, (example, ), name=str(out),
                                         dynamic_batch=dynamic)
            atomic_output(out, lambda tmp: torch.export.save(program, tmp))
    except RuntimeError as e:
        raise CLIError(str(e).splitlines()[0]) from None
    print(f"pyg-skeleton export: {what} from {src} -> {out} ({args.format}, batch "
          f"{'dynamic' if dynamic else batch})")
    print(f"  verified against eager on fresh inputs at batch {', '.join(map(str, sizes))}: "
          f"max abs difference {diff:.3g}")
    return 0

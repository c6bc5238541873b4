r"""Verified export of this package's operators and models to ONNX and to
:func:`torch.export` programs.

The operators choose their kernels from the data and check their inputs on
the host; under :func:`torch.export` (and the dynamo ONNX exporter built on
it) they take a traceable path instead (gathers and scatters over the fixed
graph's edges, no host reads), which is what gets exported.
:func:`export_onnx` does not trust the exporter: it runs the written file in
``onnxruntime`` on fresh random inputs, at the example's batch size and,
for a dynamic batch, at two more (one of them :math:`B = 1`), compares
with the eager model and raises when they differ.

The TorchScript-based tools are not supported: :func:`torch.jit.script`,
:func:`torch.jit.trace` and :obj:`torch.onnx.export(..., dynamo=False)`
raise a :class:`RuntimeError` that names these functions (the legacy
exporter used to write constant graphs for graphs over 32 nodes).

Example::

    from pyg_skeleton.export import export_onnx
    model = SemGCN('h36m17').eval()
    result = export_onnx(model, (torch.randn(2, 17, 2),), 'semgcn.onnx')
    result.max_abs_diff  # about 1e-6
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves

from pyg_skeleton.files import atomic_output


def _require(*modules: str) -> None:
    # onnx, onnxscript and onnxruntime are optional (the `export` extra):
    # name the install command instead of a bare ModuleNotFoundError.
    import importlib.util
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}: "
                          f"pip install 'pyg-skeleton[export]'")

__all__ = ['export_program', 'export_onnx', 'verify_onnx', 'verify_program',
           'OnnxExport']

#: Default tolerances of :func:`verify_onnx`: ``|onnx - eager| <= atol +
#: rtol |eager|`` element-wise. Float32 kernels of onnxruntime sum in other
#: orders than PyTorch; on the models here differences are about 1e-6.
ATOL, RTOL = 1e-4, 1e-3


@dataclass
class OnnxExport:
    r"""What :func:`export_onnx` wrote and checked."""
    #: The ONNX file.
    path: Path
    #: Largest absolute difference between onnxruntime and eager over all
    #: checked runs and outputs.
    max_abs_diff: float
    #: The batch sizes the file was run at.
    batch_sizes: list[int] = field(default_factory=list)


def _is_batched(t: Any) -> bool:
    # Features [B, N, C] (or [B, T, N, C]): a floating-point tensor of at
    # least three dimensions. edge_index and single graphs [N, C] keep
    # their sizes.
    return isinstance(t, Tensor) and t.is_floating_point() and t.dim() >= 3


def _as_tuple(example_inputs) -> tuple[Any, ...]:
    if isinstance(example_inputs, Tensor):
        return (example_inputs, )
    if not isinstance(example_inputs, (tuple, list)) or not example_inputs:
        raise TypeError("'example_inputs' must be a tensor or a non-empty "
                        "tuple of the model's positional inputs")
    return tuple(example_inputs)


def _with_batch(inputs: tuple[Any, ...], batch: int,
                generator: torch.Generator) -> tuple[Any, ...]:
    r"""Fresh standard-normal values for every batched input (see
    :func:`_is_batched`), with :obj:`batch` samples; other inputs (an
    :obj:`edge_index`, a single graph's features) are kept."""
    out = []
    for t in inputs:
        if _is_batched(t):
            shape = (batch, ) + tuple(t.shape[1:])
            t = torch.randn(shape, generator=generator,
                            dtype=t.dtype).to(t.device)
        out.append(t)
    return tuple(out)


def _dynamic_shapes(inputs: tuple[Any, ...], dynamic_batch: bool):
    if not dynamic_batch:
        return None
    if not any(_is_batched(t) for t in inputs):
        raise ValueError("dynamic_batch=True needs at least one "
                         "floating-point input of shape [B, ...] with three "
                         "or more dimensions")
    batch = torch.export.Dim('batch', min=1)
    return tuple({0: batch} if _is_batched(t) else None for t in inputs)


def _example_for_export(inputs: tuple[Any, ...],
                        dynamic_batch: bool) -> tuple[Any, ...]:
    # torch.export specialises sizes 0 and 1: a dynamic batch is traced
    # at B = 2 (the exported program still accepts B = 1, which
    # export_onnx checks).
    if dynamic_batch and any(_is_batched(t) and t.size(0) < 2
                             for t in inputs):
        return tuple(
            t.expand((2, ) + tuple(t.shape[1:])).contiguous()
            if _is_batched(t) else t for t in inputs)
    return inputs


def export_program(model: torch.nn.Module, example_inputs,
                   dynamic_batch: bool = True,
                   strict: bool = False) -> torch.export.ExportedProgram:
    r"""Exports :obj:`model` in evaluation mode with :func:`torch.export`.

    Args:
        model (torch.nn.Module): An operator or model of this package (or
            any module :func:`torch.export.export` takes). It is put in
            evaluation mode for the export and restored afterwards.
        example_inputs (Tensor or tuple): The positional inputs.
        dynamic_batch (bool): Make dimension 0 of every floating-point input
            with three or more dimensions (the batch :math:`B` of
            :obj:`[B, N, C]`) dynamic; other inputs, *e.g.* a constant
            :obj:`edge_index`, keep their sizes. (default: :obj:`True`)
        strict (bool): Passed to :func:`torch.export.export`.
            (default: :obj:`False`)

    Returns:
        The :class:`torch.export.ExportedProgram`.
    """
    inputs = _as_tuple(example_inputs)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.export.export(
                model, _example_for_export(inputs, dynamic_batch),
                dynamic_shapes=_dynamic_shapes(inputs, dynamic_batch),
                strict=strict)
    finally:
        model.train(was_training)


def _check_batch_sizes(inputs: tuple[Any, ...], dynamic_batch: bool,
                       batch_sizes: Sequence[int] = None) -> list[int]:
    batched = [t for t in inputs if _is_batched(t)]
    if not batched:
        return [0]  # no batch dimension: run the example's shapes once
    b = batched[0].size(0)
    if batch_sizes is not None:
        return list(batch_sizes)
    # A dynamic batch is checked below, at and above the traced size.
    return sorted({b, 1, b + 3}) if dynamic_batch else [b]


def verify_onnx(model: torch.nn.Module, path: str | os.PathLike,
                example_inputs, batch_sizes: Sequence[int] = None,
                atol: float = ATOL, rtol: float = RTOL, seed: int = 0,
                dynamic_batch: bool = True) -> OnnxExport:
    r"""Runs the ONNX file :obj:`path` in ``onnxruntime`` on fresh random
    inputs shaped like :obj:`example_inputs` and compares every output with
    :obj:`model` in evaluation mode.

    Args:
        batch_sizes (sequence of int, optional): Batch sizes to check
            (default: the example's, plus :math:`1` and a larger one when
            :obj:`dynamic_batch`).
        atol, rtol (float): Tolerances, ``|onnx - eager| <= atol +
            rtol |eager|``.
        seed (int): Seed of the random inputs.

    Raises:
        RuntimeError: Naming the file, when an output differs beyond the
            tolerances or has another shape, or the file does not load.
        ImportError: When ``onnxruntime`` is not installed.
    """
    _require('onnxruntime')
    import onnxruntime as ort
    inputs = _as_tuple(example_inputs)
    path = Path(path)
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    try:
        session = ort.InferenceSession(str(path), options,
                                       providers=['CPUExecutionProvider'])
    except Exception as e:
        raise RuntimeError(f"{path}: onnxruntime cannot load the exported "
                           f"model: {str(e).splitlines()[0]}") from None
    names = [i.name for i in session.get_inputs()]
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    if len(names) != len(tensors):
        # The legacy exporter wrote graphs that ignore their inputs.
        raise RuntimeError(f"{path}: the ONNX graph takes {len(names)} "
                           f"inputs, the model {len(tensors)}")

    def run(fresh: tuple[Any, ...]) -> list[Tensor]:
        feed = {
            n: t.detach().cpu().numpy()
            for n, t in zip(names, (t for t in fresh if isinstance(t, Tensor)))
        }
        return [torch.from_numpy(g) for g in session.run(None, feed)]

    worst, sizes = _compare(model, run, inputs, path, 'onnxruntime',
                            batch_sizes, atol, rtol, seed, dynamic_batch)
    return OnnxExport(path, worst, sizes)


def verify_program(model: torch.nn.Module,
                   program: torch.export.ExportedProgram, example_inputs,
                   batch_sizes: Sequence[int] = None, atol: float = ATOL,
                   rtol: float = RTOL, seed: int = 0,
                   dynamic_batch: bool = True, name: str = 'the program'
                   ) -> tuple[float, list[int]]:
    r"""Runs :obj:`program` (of :func:`export_program`) on fresh random
    inputs as :func:`verify_onnx` does, against :obj:`model`.

    Returns:
        :obj:`(max_abs_diff, batch_sizes)`.

    Raises:
        RuntimeError: Naming :obj:`name`, when an output differs beyond the
            tolerances or has another shape.
    """
    module = program.module()

    def run(fresh: tuple[Any, ...]) -> list[Tensor]:
        with torch.no_grad():
            return [t for t in tree_leaves(module(*fresh))
                    if isinstance(t, Tensor)]

    return _compare(model, run, _as_tuple(example_inputs), name,
                    'torch.export', batch_sizes, atol, rtol, seed,
                    dynamic_batch)


def _compare(model, run, inputs, name, runtime, batch_sizes, atol, rtol,
             seed, dynamic_batch) -> tuple[float, list[int]]:
    r"""Runs :obj:`run` and :obj:`model` in evaluation mode on fresh inputs
    at each batch size; returns the largest difference and the batch sizes,
    raises a :class:`RuntimeError` naming :obj:`name` beyond the
    tolerances."""
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    worst, sizes = 0.0, _check_batch_sizes(inputs, dynamic_batch,
                                           batch_sizes)
    try:
        for b in sizes:
            fresh = _with_batch(inputs, b, generator) if b else inputs
            with torch.no_grad():
                expected = [t for t in tree_leaves(model(*fresh))
                            if isinstance(t, Tensor)]
            got = run(fresh)
            if len(got) != len(expected):
                raise RuntimeError(f"{name}: {runtime} gives {len(got)} "
                                   f"outputs, the model {len(expected)}")
            for k, (g, e) in enumerate(zip(got, expected)):
                if tuple(g.shape) != tuple(e.shape):
                    raise RuntimeError(
                        f"{name}: output {k} has shape {list(g.shape)} in "
                        f"{runtime}, {list(e.shape)} in eager mode "
                        f"(batch {b})")
                e = e.detach().cpu().to(g.dtype)
                diff = (g.detach().cpu() - e).abs()
                worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
                if not bool((diff <= atol + rtol * e.abs()).all()):
                    raise RuntimeError(
                        f"{name}: {runtime} differs from the eager model "
                        f"by up to {float(diff.max()):.3g} on output {k} at "
                        f"batch {b} (tolerance {atol:g} + {rtol:g}|x|)")
    finally:
        model.train(was_training)
    return worst, [b for b in sizes if b]


def _searchsorted_onnx(sorted_sequence, values, out_int32=False, right=False,
                       side=None, sorter=None):
    r"""ONNX translation of :func:`torch.searchsorted` (no ONNX operator
    exists; :meth:`Topology.lookup
    <pyg_skeleton.nn.topology.Topology.lookup>` uses it to find an input
    edge's parameter slot): the left insertion point of each value is the
    number of entries below it, one comparison per pair of entries, which
    is cheap for the edges of a skeleton."""
    from onnxscript import opset18 as op
    if right or side == 'right' or sorter is not None or out_int32:
        raise NotImplementedError("the ONNX translation of searchsorted "
                                  "supports only the default left side "
                                  "without a sorter")
    first = op.Constant(value_ints=[0])
    last = op.Constant(value_ints=[-1])
    below = op.Less(op.Unsqueeze(sorted_sequence, first),
                    op.Unsqueeze(values, last))
    return op.ReduceSum(op.Cast(below, to=7), last, keepdims=0)  # 7: int64


def export_onnx(model: torch.nn.Module, example_inputs,
                path: str | os.PathLike, dynamic_batch: bool = True,
                opset_version: int = None, verify: bool = True,
                atol: float = ATOL, rtol: float = RTOL) -> OnnxExport:
    r"""Exports :obj:`model` to an ONNX file with the dynamo exporter
    (:obj:`torch.onnx.export(..., dynamo=True)` of the program of
    :func:`export_program`) and checks the file in ``onnxruntime``
    (:func:`verify_onnx`) before it replaces :obj:`path`.

    Args:
        model (torch.nn.Module): The model, exported in evaluation mode
            (its mode is restored afterwards).
        example_inputs (Tensor or tuple): The positional inputs.
        path (str or PathLike): The output file, written atomically (a
            failed check leaves the old file, if any).
        dynamic_batch (bool): A dynamic batch dimension (see
            :func:`export_program`); the file is then checked at the
            example's batch size, at :math:`B = 1` and at a larger one.
            (default: :obj:`True`)
        opset_version (int, optional): The ONNX opset (default: the
            exporter's).
        verify (bool): Check the file in onnxruntime. (default: :obj:`True`)
        atol, rtol (float): Tolerances of the check.

    Returns:
        :class:`OnnxExport`: the path, the largest difference found and the
        batch sizes checked.

    Raises:
        RuntimeError: When the export fails, or onnxruntime's outputs differ
            from the eager model's (naming the file and the difference).
        ImportError: When onnx, onnxscript or (with :obj:`verify`)
            onnxruntime is not installed (the ``export`` extra).
    """
    _require('onnx', 'onnxscript', *(['onnxruntime'] if verify else []))
    inputs = _as_tuple(example_inputs)
    path = Path(path)
    program = export_program(model, inputs, dynamic_batch)
    with warnings.catch_warnings():
        # The exporter warns about optional torchvision ops it cannot find.
        warnings.simplefilter('ignore')
        table = {torch.ops.aten.searchsorted.Tensor: _searchsorted_onnx}
        onnx_program = torch.onnx.export(program, dynamo=True,
                                         opset_version=opset_version,
                                         verbose=False,
                                         custom_translation_table=table)
    result = OnnxExport(path, float('nan'))

    def write(tmp: str) -> None:
        onnx_program.save(tmp, external_data=False)
        if verify:
            try:
                checked = verify_onnx(model, tmp, inputs, atol=atol,
                                      rtol=rtol, dynamic_batch=dynamic_batch)
            except RuntimeError as e:  # name the output, not the temporary
                raise RuntimeError(str(e).replace(tmp, str(path))) from None
            result.max_abs_diff = checked.max_abs_diff
            result.batch_sizes = checked.batch_sizes

    atomic_output(path, write)
    return result

r"""Guards against the TorchScript-based tools, which turn this package's
operators into silently wrong programs.

The operators pick their kernels from the data (a dense product or a gather
on non-finite features, a sparse CSR kernel on graphs of more than 32 nodes,
the static kernel when an :obj:`edge_index` holds whole copies of the
graph) and check their inputs with host reads. :func:`torch.jit.trace` and
the TorchScript-based ONNX exporter (:obj:`torch.onnx.export(...,
dynamo=False)`, the default before PyTorch 2.9) record one run of that
Python code: the branch taken is frozen, and a CSR kernel's output was
recorded as a constant (an ONNX graph without inputs). :func:`torch.export`
and the dynamo ONNX exporter see :func:`torch.compiler.is_compiling` and
take the traceable path instead, so they are the supported ways to export
(:mod:`pyg_skeleton.export`).
"""
from __future__ import annotations

import torch

ALTERNATIVES = ("export with torch.onnx.export(..., dynamo=True) or "
                "pyg_skeleton.export.export_onnx for ONNX, "
                "torch.export.export or pyg_skeleton.export.export_program "
                "for a graph, or run torch.compile")


def check_not_jit_traced(owner: str) -> None:
    r"""Raises a :class:`RuntimeError` naming the alternatives when called
    under :func:`torch.jit.trace` or the TorchScript-based ONNX exporter.
    Costs one flag lookup otherwise."""
    if torch.jit.is_tracing():
        raise RuntimeError(
            f"'{owner}' cannot be traced by TorchScript (torch.jit.trace or "
            f"torch.onnx.export(..., dynamo=False)): the trace would freeze "
            f"its data-dependent kernels into a wrong graph; {ALTERNATIVES}")


class NoTorchScript:
    r"""Mixin of the operators: :func:`torch.jit.script` of a module that
    holds one raises a clear :class:`RuntimeError` (instead of an error from
    deep inside the compiler) that points to the supported tools."""
    def __prepare_scriptable__(self):
        raise RuntimeError(
            f"'{self.__class__.__name__}' does not support TorchScript "
            f"(torch.jit.script): {ALTERNATIVES}")

r"""Per-module caches of values computed from parameters alone (normalised
edge weights, stacked weight matrices, dense adjacency matrices) for
inference.

At one pose per call (real-time lifting) a layer's arithmetic is a few
microseconds; rebuilding its edge softmax and matrices from the parameters
on every call cost more than the rest of the layer. In inference (no
gradient needed: :func:`torch.no_grad`, :func:`torch.inference_mode`, or
parameters without :obj:`requires_grad`) those values are computed once
per parameter state. A state is the parameters' identity, storage, dtype,
device and version counter, which every in-place change (an optimiser
step, :meth:`~torch.nn.Module.load_state_dict`, :func:`torch.nn.init`)
increments; the cache keeps the old storage alive (an alias), so a new
tensor can never reuse its address and pass for the old one. Under
:func:`torch.compile` and :func:`torch.export` nothing is cached: the
values must be traced from the parameters.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric import is_compiling


def inference_cached(owner: torch.nn.Module, name: str,
                     params: Sequence[Tensor],
                     build: Callable[[], Any]) -> Any:
    r"""Returns :obj:`build()`, computed once per state of :obj:`params`
    when no gradient is needed (see the module docs), else every call."""
    if is_compiling() or torch.jit.is_tracing() or (
            torch.is_grad_enabled() and any(p.requires_grad for p in params)
    ) or any(p.is_inference() for p in params):
        return build()
    cache = owner.__dict__.setdefault('_inference_cache', {})
    entry = cache.get(name)
    if entry is not None and len(entry[0]) == len(params):
        aliases, state, value = entry
        for a, p, v in zip(aliases, params, state):
            if (p._version != v or a.data_ptr() != p.data_ptr()
                    or a.dtype != p.dtype or a.device != p.device):
                break
        else:
            return value
    value = build()
    cache[name] = ([p.detach() for p in params], [p._version for p in params],
                   value)
    return value

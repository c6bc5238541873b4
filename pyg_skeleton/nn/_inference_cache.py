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
    if (torch.is_grad_enabled() and any(p.requires_grad for p in params)
            ) or is_compiling() or torch.jit.is_tracing():
        return build()
    # The hit is checked in one pass over the parameters: at one pose per
    # call this runs once per layer, and every extra pass shows.
    entry = owner.__dict__.get('_inference_cache', {}).get(name)
    if entry is not None and len(entry[0]) == len(params):
        aliases, state, value = entry
        for a, p, v in zip(aliases, params, state):
            # An inference tensor has no version counter to compare.
            if (p.is_inference() or p._version != v
                    or a.data_ptr() != p.data_ptr() or a.dtype != p.dtype
                    or a.device != p.device):
                break
        else:
            return value
    value = build()
    if not any(p.is_inference() for p in params):
        owner.__dict__.setdefault('_inference_cache', {})[name] = (
            [p.detach() for p in params], [p._version for p in params], value)
    return value


def unobserved(module: torch.nn.Module) -> bool:
    r"""Returns :obj:`True` if calling :obj:`module` runs nothing but its
    class's :obj:`forward`: no forward or backward hook on it or on all
    modules, and :obj:`forward` not replaced on the instance (the checks of
    :meth:`torch.nn.Module.__call__`'s own fast path). Only then may a
    caller compute the same result another way without anyone seeing the
    difference."""
    hooks = torch.nn.modules.module
    return not ('forward' in module.__dict__ or module._forward_hooks
                or module._forward_pre_hooks or module._backward_hooks
                or module._backward_pre_hooks or hooks._global_forward_hooks
                or hooks._global_forward_pre_hooks
                or hooks._global_backward_hooks
                or hooks._global_backward_pre_hooks)

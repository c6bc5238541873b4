r"""Memory estimates checked before the large buffers of an operator are
allocated.

An operator that would need more memory than the machine can give fails at
once with one line naming its estimate and the alternative, instead of
allocating for minutes and being killed (or swapping). The limit is the
memory available to the process (``MemAvailable`` of ``/proc/meminfo``, the
physical memory elsewhere) or, if set, the environment variable
``PYG_SKELETON_MEMORY_GB`` (a number of GiB; ``0`` or ``inf`` switches the
check off).
"""
from __future__ import annotations

import math
import os

import torch

GiB = 2**30
MIN_CHECKED_BYTES = 2**28

ENV_LIMIT = 'PYG_SKELETON_MEMORY_GB'

#: Bytes per entry of a hop-count table of many sources at once
#: (:func:`~pyg_skeleton.utils.hop_counts`): the search's int64 (source,
#: node, hop) triples, their concatenation, the int64 table and the boolean
#: visited table.
HOP_TABLE_BYTES = 2 * 3 * 8 + 8 + 1


def _available_bytes() -> float | None:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES'))
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit() -> float | None:
    r"""The number of bytes an operator may allocate at once, or
    :obj:`None` for no limit (see the module's description)."""
    value = os.environ.get(ENV_LIMIT)
    if value is None:
        return _available_bytes()
    try:
        gb = float(value)
    except ValueError:
        raise ValueError(f"{ENV_LIMIT} must be a number of GiB (got "
                         f"{value!r})") from None
    if math.isnan(gb) or gb < 0:
        raise ValueError(f"{ENV_LIMIT} must be a non-negative number of GiB "
                         f"(got {value!r})")
    return None if gb == 0 or math.isinf(gb) else gb * GiB


def check_memory(owner: str, num_bytes: float, what: str,
                 alternative: str) -> None:
    r"""Raises a :class:`MemoryError` if :obj:`num_bytes` exceed
    :func:`memory_limit`.

    Args:
        owner (str): The operator, *e.g.* :obj:`"NodeMap"`.
        num_bytes (float): The estimated allocation.
        what (str): What the bytes hold, *e.g.* :obj:`"a dense 73639 x 18439
            weight"`.
        alternative (str): What to use instead.
    """
    # Traced graphs see symbolic sizes and cannot read files; and below
    # 256 MiB, without an explicit limit, the check costs more than it
    # saves (it runs on every forward pass).
    if torch.compiler.is_compiling() or (
            ENV_LIMIT not in os.environ and num_bytes < MIN_CHECKED_BYTES):
        return
    limit = memory_limit()
    if limit is not None and num_bytes > limit:
        # Three significant digits: a limit of 0.05 GB reads as such.
        raise MemoryError(f"'{owner}' would allocate {num_bytes / GiB:.3g} "
                          f"GB for {what}, more than the {limit / GiB:.3g} "
                          f"GB available; {alternative}")

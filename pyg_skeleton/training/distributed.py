r"""Training over several processes (:mod:`torch.distributed`, started by
``torchrun``)."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ['setup_distributed']


def setup_distributed() -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)`` from the torchrun environment
    (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), with the process group
    initialised (``nccl`` on GPUs, ``gloo`` on CPUs) when there are several
    processes; a single process runs on the GPU when there is one."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        return 0, 1, dev
    rank = int(os.environ['RANK'])
    if torch.cuda.is_available():
        local = int(os.environ.get('LOCAL_RANK', '0'))
        torch.cuda.set_device(local)
        dev, backend = torch.device('cuda', local), 'nccl'
    else:
        dev, backend = torch.device('cpu'), 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return rank, world, dev

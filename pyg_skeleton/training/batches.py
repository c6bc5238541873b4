r"""The batch orders of the trainer (``TrainConfig.batch_order``): ``'sampler'``
is :class:`~pyg_skeleton.datasets.lifting.TensorBatches` (each epoch
shuffled with a generator seeded by ``seed + epoch``), ``'stream'`` is
:class:`StreamBatches`."""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_skeleton.datasets.lifting import LiftingTensors, TensorBatches

__all__ = ['StreamBatches', 'make_batches']


class StreamBatches(TensorBatches):
    r"""Static batches whose epochs are the successive shuffles of **one**
    generator seeded by :obj:`seed`: epoch :obj:`e` is the :obj:`e + 1`-th
    :func:`torch.randperm` of that generator, cut into batches, the last
    incomplete one dropped. This is the order of a loop that draws a new
    permutation whenever the current one has no full batch left (the
    accuracy benchmarks' order). An epoch depends only on the seed and its
    number, so a resumed run sees the same batches; with several processes
    rank :obj:`r` takes every :obj:`world_size`-th index, as
    :class:`~pyg_skeleton.datasets.lifting.TensorBatches` does, so the
    ranks' batch :obj:`k` together is the single-process batch :obj:`k`.

    Args:
        data (LiftingTensors): The samples.
        batch_size (int): Global batch size (divisible by the world size).
        seed (int): Seed of the generator.
        rank, world_size (int): This process and the number of processes.
    """

    def __init__(self, data: LiftingTensors, batch_size: int, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        super().__init__(data, batch_size, shuffle=True, seed=seed, rank=rank,
                         world_size=world_size, drop_last=True)
        # (epoch whose permutation comes next, the generator there): the
        # usual run asks for epochs in order and never replays the stream
        self._stream: tuple[int, torch.Generator] | None = None

    def _permutation(self, epoch: int) -> Tensor:
        n = len(self.data)
        if self._stream is None or self._stream[0] > epoch:
            self._stream = (0, torch.Generator().manual_seed(self.sampler.seed))
        done, gen = self._stream
        for _ in range(done, epoch):
            torch.randperm(n, generator=gen)
        order = torch.randperm(n, generator=gen)
        self._stream = (epoch + 1, gen)
        return order

    def indices(self) -> Tensor:
        s = self.sampler
        return self._permutation(self.epoch)[:s.total_size][s.rank:s.total_size:s.num_replicas]


def make_batches(config, data: LiftingTensors, rank: int = 0, world: int = 1) -> TensorBatches:
    """The training batches of :obj:`config` (its ``batch_size``,
    ``batch_order`` and ``seed``)."""
    if config.batch_order == 'stream':
        return StreamBatches(data, config.batch_size, seed=config.seed, rank=rank,
                             world_size=world)
    return TensorBatches(data, config.batch_size, shuffle=True, seed=config.seed, rank=rank,
                         world_size=world)

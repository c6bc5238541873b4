r"""Training of 2D-to-3D lifting models from Python: :class:`Trainer` with
the options of a :class:`TrainConfig` (``pyg-skeleton train`` is a command
line over them).

Example::

    from pyg_skeleton.training import TrainConfig, Trainer

    config = TrainConfig(model='semgcn', epochs=2, synthetic_train=2000,
                         out='runs/mine')
    trainer = Trainer(config=config)
    report = trainer.fit()
    metrics = trainer.evaluate('runs/mine/best.pt')
"""
from __future__ import annotations

from .batches import StreamBatches
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .config import (
    RUN_OPTIONS,
    ConfigError,
    TrainConfig,
    TrainingError,
    check_options,
    read_config_file,
)
from .distributed import setup_distributed
from .evaluation import evaluate, mean_pose_baseline
from .trainer import Trainer, load_data, lr_at

__all__ = ['Trainer', 'TrainConfig', 'TrainingError', 'ConfigError', 'RUN_OPTIONS',
           'check_options', 'read_config_file', 'CHECKPOINT_FORMAT', 'load_checkpoint',
           'save_checkpoint', 'evaluate', 'mean_pose_baseline', 'load_data', 'lr_at',
           'setup_distributed', 'StreamBatches']

r"""2D-to-3D lifting datasets: PyG :class:`~torch_geometric.data.Data` per
sample, and a fast tensor path of static :obj:`[B, N, 2]` / :obj:`[B, N, 3]`
batches for training.

A :class:`LiftingTensors` holds all samples of a split as tensors: ``x``
normalised 2D joints :obj:`[S, N, 2]`, ``y`` root-relative camera-frame 3D
joints :obj:`[S, N, 3]` in metres and an integer ``group`` label per sample
(action or content, for per-group metrics). :class:`LiftingDataset` wraps it
as a PyG dataset so :class:`torch_geometric.loader.DataLoader` batches the
samples as disjoint skeleton graphs, and :class:`TensorBatches` iterates over
shuffled static batches, sharded over :mod:`torch.distributed` ranks with
:class:`~torch.utils.data.DistributedSampler`.

:func:`load_lifting` builds the train and test splits of a dataset by name:
``synthetic`` (the built-in generator), ``bandai`` (the converted
Bandai-Namco mocap, split by actor) or ``h36m`` (Human3.6M 3D poses in the
VideoPose3D layout, S1 S5 S6 S7 S8 / S9 S11), each rendered through virtual
cameras (:class:`~pyg_skeleton.datasets.camera.CameraRig`), or, for
``h36m`` with ``inputs_2d`` and ``cameras``, real 2D keypoints paired with
the 3D poses in the real cameras' frames
(:func:`~pyg_skeleton.datasets.h36m.h36m_camera_samples`).

:func:`load_lifting_splits` also holds a **validation split** out of the
training data, for choosing checkpoints without looking at the test split.
The rule (:obj:`f` = :obj:`val_fraction`, :obj:`seed` the data seed):

* ``synthetic``: :obj:`round(f * synthetic_train)` poses of their own seed;
* ``bandai``: whole sequences of the training actors, :obj:`round(f * n)`
  (at least one, at most :obj:`n - 1`) of the :obj:`n` sequences of each
  training actor, drawn with :obj:`seed`; no sequence has frames on both
  sides;
* ``h36m``: whole takes (``'S1/Walking 1'``, all camera views of it) of
  the training subjects, by the same rule per subject;
* an ``.npz`` of ``positions``: the last :obj:`round(f * n)` of the
  :obj:`n` training frames (the frames before the test range).

Validation poses are rendered through the evaluation cameras
(:meth:`CameraRig.test`) like the test split; :obj:`max_test_frames` also
caps them.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    TYPE_CHECKING,
)

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DistributedSampler
from torch_geometric.data import Data, Dataset

from .camera import CameraRig

if TYPE_CHECKING:
    from pyg_skeleton.skeleton import Skeleton

__all__ = ['LiftingTensors', 'LiftingDataset', 'TensorBatches', 'render_lifting',
           'load_lifting', 'load_lifting_splits', 'hold_out_groups', 'dataset_actors',
           'DATASETS', 'register_dataset', 'LiftingOptions']

@dataclass
class LiftingTensors:
    """All samples of one split as tensors (see the module docs): single
    poses, :obj:`x [S, N, 2]` and :obj:`y [S, N, 3]`, or clips of :obj:`T`
    frames, :obj:`x [S, T, N, 2]` and :obj:`y [S, T, N, 3]`, with one group
    per sample."""
    x: Tensor
    y: Tensor
    group: Tensor
    group_names: list[str] = field(default_factory=list)
    description: str = ''
    synthetic: bool = False
    split: str = ''

    def __post_init__(self):
        S = self.x.shape[0]
        if self.x.dim() not in (3, 4) or self.y.dim() != self.x.dim() \
                or self.y.shape[:-1] != self.x.shape[:-1]:
            raise ValueError(f"expected x [S, N, 2] and y [S, N, 3] (or clips [S, T, N, 2] and "
                             f"[S, T, N, 3]), got {list(self.x.shape)} and "
                             f"{list(self.y.shape)}")
        if self.group.shape != (S,):
            raise ValueError(f"group must have shape [{S}], got {list(self.group.shape)}")

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def num_joints(self) -> int:
        return self.x.shape[-2]

    def check_finite(self, name: str = 'data') -> None:
        """Raises :class:`ValueError` if an input or target is NaN or inf."""
        for key, t in (('2D inputs', self.x), ('3D targets', self.y)):
            bad = ~torch.isfinite(t)
            if bad.any():
                n = int(bad.flatten(1).any(1).sum())
                raise ValueError(f"{name}: {n} samples have NaN or infinite {key}")

    def subset(self, index) -> LiftingTensors:
        index = torch.as_tensor(index, dtype=torch.long)
        return LiftingTensors(self.x[index], self.y[index], self.group[index],
                              self.group_names, self.description, self.synthetic, self.split)


class LiftingDataset(Dataset):
    r"""PyG dataset of lifting samples: sample :obj:`i` is a
    :class:`~torch_geometric.data.Data` on the skeleton graph with ``x``
    :obj:`[N, 2]`, ``y`` :obj:`[N, 3]` and ``group`` :obj:`[1]`.

    Args:
        data (LiftingTensors): The samples.
        skeleton (Skeleton): The skeleton (its :attr:`~pyg_skeleton.Skeleton.edge_index`).
    """

    def __init__(self, data: LiftingTensors, skeleton, transform=None):
        if data.num_joints != skeleton.num_joints:
            raise ValueError(f"data has {data.num_joints} joints but the skeleton has "
                             f"{skeleton.num_joints}")
        if data.x.dim() != 3:
            raise ValueError(f"LiftingDataset takes single poses x [S, N, 2], got clips "
                             f"{list(data.x.shape)}")
        self.data_tensors = data
        self.skeleton = skeleton
        self._edge_index = skeleton.edge_index
        super().__init__(None, transform)

    def len(self) -> int:
        return len(self.data_tensors)

    def get(self, idx: int) -> Data:
        d = self.data_tensors
        return Data(x=d.x[idx], y=d.y[idx], group=d.group[idx:idx + 1],
                    edge_index=self._edge_index, num_nodes=d.num_joints)


class TensorBatches:
    r"""Static batches :obj:`(x [B, N, 2], y [B, N, 3], group [B])` of a
    :class:`LiftingTensors`: the fast path of the trainer.

    The order of an epoch is that of a
    :class:`~torch.utils.data.DistributedSampler` (seeded by :obj:`seed` and
    the epoch): with :obj:`world_size` ranks each rank gets
    :obj:`batch_size // world_size` samples of every global batch, and the
    union of the ranks' batch :obj:`k` is exactly the single-process batch
    :obj:`k`. So a run on several processes sees the same global batches as
    a run on one. An epoch can start at batch :obj:`start` (resuming).

    Args:
        data (LiftingTensors): The samples.
        batch_size (int): Global batch size (divisible by the world size).
        shuffle (bool): Shuffle each epoch. (default: :obj:`True`)
        seed (int): Seed of the shuffle.
        rank, world_size (int): This process and the number of processes.
        drop_last (bool): Drop the last incomplete batch.
    """

    def __init__(self, data: LiftingTensors, batch_size: int, shuffle: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1, drop_last: bool = True):
        for name, value, low in (('batch size', batch_size, 1), ('world size', world_size, 1),
                                 ('rank', rank, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"TensorBatches: {name} must be an integer of at least {low}, "
                                 f"got {value!r}")
        if rank >= world_size:
            raise ValueError(f"TensorBatches: rank {rank} is not below the world size "
                             f"{world_size}")
        if batch_size % world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by the {world_size} "
                             f"processes")
        self.data = data
        self.batch_size = batch_size
        self.local_batch = batch_size // world_size
        self.drop_last = drop_last
        self.sampler = DistributedSampler(data, num_replicas=world_size, rank=rank,
                                          shuffle=shuffle, seed=seed, drop_last=True)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.sampler.set_epoch(epoch)

    def indices(self) -> Tensor:
        return torch.tensor(list(iter(self.sampler)), dtype=torch.long)

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.local_batch if self.drop_last else -(-n // self.local_batch)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor]]:
        return self.iterate(0)

    def iterate(self, start: int = 0):
        idx = self.indices()
        for k in range(start, len(self)):
            i = idx[k * self.local_batch:(k + 1) * self.local_batch]
            yield self.data.x[i], self.data.y[i], self.data.group[i], i


def render_lifting(poses: np.ndarray, rig: CameraRig, group: np.ndarray | None = None,
                   group_names: Sequence[str] = (), seed: int = 0, description: str = '',
                   synthetic: bool = False, split: str = '') -> LiftingTensors:
    r"""Renders world poses :obj:`[F, N, 3]` (metres, y up) through a camera
    rig into lifting samples (:obj:`F * num_views` of them)."""
    views = rig.views(poses, seed=seed)
    g = np.zeros(len(poses), dtype=np.int64) if group is None else np.asarray(group)
    return LiftingTensors(torch.from_numpy(views['x']), torch.from_numpy(views['y']),
                          torch.from_numpy(g[views['frame']].astype(np.int64)),
                          list(group_names), description, synthetic, split)


def _layout_root(skeleton) -> int:
    """The root joint of poses of :obj:`skeleton` (a preset name, a
    body table, a joint map or a :class:`~pyg_skeleton.Skeleton`): the
    skeleton's root; a joint map of your own has no tree, so joint 0."""
    from pyg_skeleton.skeleton import Skeleton

    from .synthetic import _is_joint_map, body_parents, check_body
    if isinstance(skeleton, Skeleton):
        return skeleton.root or 0
    if isinstance(skeleton, str):
        return (Skeleton.preset(skeleton).root or 0) if skeleton in Skeleton.presets() else 0
    if isinstance(skeleton, dict):
        if skeleton.get('name') in Skeleton.presets():
            return Skeleton.preset(skeleton['name']).root or 0
        if not _is_joint_map(skeleton):
            return body_parents(check_body(skeleton)).index(-1)
    return 0


def _default_bandai() -> Path | None:
    from .bandai import default_bandai_path
    return default_bandai_path()


def hold_out_groups(group: np.ndarray, owner: np.ndarray, fraction: float,
                    seed: int = 0) -> np.ndarray:
    r"""Whole groups (sequences, takes) held out for validation, per owner
    (actor, subject): of the :obj:`n` groups of each owner,
    :obj:`round(fraction * n)` clipped to :obj:`[1, n - 1]` (none if
    :obj:`fraction` is 0 or :obj:`n` is 1), drawn with :obj:`seed`.

    Args:
        group (numpy.ndarray): Group id of each item :obj:`[F]`.
        owner (numpy.ndarray): Owner id of each item :obj:`[F]` (constant
            within a group).
        fraction (float): Fraction of groups to hold out, in :obj:`[0, 1)`.
        seed (int): Seed of the draw.

    Returns:
        numpy.ndarray: Boolean mask :obj:`[F]` of the held-out items.
    """
    group, owner = np.asarray(group), np.asarray(owner)
    held = []
    if fraction > 0:
        rng = np.random.default_rng(seed)
        for o in np.unique(owner):
            groups = np.unique(group[owner == o])
            if len(groups) < 2:
                continue
            k = int(np.clip(round(fraction * len(groups)), 1, len(groups) - 1))
            held.append(rng.permutation(groups)[:k])
    held = np.concatenate(held) if held else np.zeros(0, dtype=group.dtype)
    return np.isin(group, held)


def load_lifting(name: str, data: str | Path | None = None, *, test_actor: int = 2,
                 views: int = 4, frame_step: int = 1, seed: int = 0,
                 synthetic_train: int = 20000, synthetic_test: int = 2000,
                 max_frames: int | None = None, max_test_frames: int | None = None,
                 skeleton: str | dict | Skeleton = 'h36m17',
                 inputs_2d: str | Path | None = None,
                 cameras: str | Path | dict | None = None
                 ) -> tuple[LiftingTensors, LiftingTensors]:
    r"""Train and test splits of a dataset by name (or of an ``.npz`` path);
    all training data, no validation split (see :func:`load_lifting_splits`).

    Args:
        name (str): ``'synthetic'``, ``'bandai'``, ``'h36m'``, or a path to
            an ``.npz`` (a Bandai-layout file, or any file with a
            ``positions`` array :obj:`[F, N, 3]` in metres, y up, whose last
            10 % of frames form the test split).
        data (str or Path, optional): The data file for ``bandai`` (default:
            ``../shared``) and ``h36m`` (``data_3d_h36m.npz``).
        test_actor (int): Held-out Bandai actor.
        views (int): Virtual camera views per pose (not used with real
            cameras).
        frame_step (int): Keep every k-th frame.
        seed (int): Seed of the cameras (and of the synthetic poses).
        synthetic_train, synthetic_test (int): Synthetic pose counts.
        max_frames (int, optional): Cap on training frames (evenly strided;
            samples of (frame, camera) pairs with real cameras).
        max_test_frames (int, optional): Cap on test (and validation) frames.
        skeleton (str, dict or Skeleton): Layout of the ``synthetic`` poses
            and of an ``.npz`` of ``positions`` (their targets are relative
            to its root; ``h36m`` and ``bandai`` are ``h36m17``): a preset
            with a body table or a body table of your own
            (:func:`~pyg_skeleton.datasets.synthetic.synthetic_poses`).
        inputs_2d (str or Path, optional): ``h36m`` only: a
            ``data_2d_h36m_<name>.npz`` of real 2D keypoints (needs
            :obj:`cameras`).
        cameras (str, Path or dict, optional): ``h36m`` only: the cameras
            JSON (:func:`~pyg_skeleton.datasets.h36m.load_h36m_cameras`).

    Raises:
        FileNotFoundError: A data file is missing.
        ValueError: A file is malformed or an option invalid.
    """
    train, _, test = load_lifting_splits(
        name, data, val_fraction=0.0, test_actor=test_actor, views=views,
        frame_step=frame_step, seed=seed, synthetic_train=synthetic_train,
        synthetic_test=synthetic_test, max_frames=max_frames, max_test_frames=max_test_frames,
        skeleton=skeleton, inputs_2d=inputs_2d, cameras=cameras)
    return train, test


def dataset_actors(name: str, data: str | Path | None = None) -> list[int] | None:
    r"""The actors of a data set of the Bandai layout (``bandai`` or an
    ``.npz`` path holding ``seq_file``), the values :obj:`test_actor` of
    :func:`load_lifting` takes; :obj:`None` for a data set without actors.

    Raises:
        FileNotFoundError: The data file is missing.
        ValueError: The file's ``actor`` array is malformed.
    """
    if name != 'bandai' and name in DATASETS:
        return None
    path = (Path(data) if data is not None else _default_bandai()) if name == 'bandai' \
        else Path(name)
    if path is None:
        raise FileNotFoundError("bandai2_h36m17.npz not found in ../shared/data/mocap; "
                                "pass --data PATH")
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    from ..mesh.io import npz_members, read_npz_arrays
    if 'seq_file' not in npz_members(path):
        return None
    actor = read_npz_arrays(path, ['actor'])['actor']
    if actor.ndim != 1 or actor.dtype.kind not in 'iu':
        raise ValueError(f"{path}: actor must be a 1-D integer array, got {actor.dtype} "
                         f"{list(actor.shape)}")
    return [int(a) for a in np.unique(actor)]


def load_lifting_splits(name: str, data: str | Path | None = None, *,
                        val_fraction: float = 0.1, test_actor: int = 2, views: int = 4,
                        frame_step: int = 1, seed: int = 0, synthetic_train: int = 20000,
                        synthetic_test: int = 2000, max_frames: int | None = None,
                        max_test_frames: int | None = None,
                        skeleton: str | dict | Skeleton = 'h36m17',
                        inputs_2d: str | Path | None = None,
                        cameras: str | Path | dict | None = None
                        ) -> tuple[LiftingTensors, LiftingTensors | None, LiftingTensors]:
    r"""Train, validation and test splits of a dataset: the validation split
    is held out of the training data by the rule of the module docs.

    Args:
        val_fraction (float): Fraction of the training data (sequences,
            takes, poses or frames) held out for validation, in
            :obj:`[0, 1)`; :obj:`0` gives no validation split (:obj:`None`).
            (default: :obj:`0.1`)
        **others: As :func:`load_lifting`.

    Returns:
        tuple: :obj:`(train, val, test)`, :obj:`val` is :obj:`None` when
        :obj:`val_fraction` is 0.

    Raises:
        FileNotFoundError: A data file is missing.
        ValueError: A file is malformed or an option invalid.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if frame_step < 1:
        raise ValueError(f"frame_step must be at least 1, got {frame_step}")
    if (inputs_2d is None) != (cameras is None) or (inputs_2d is not None and name != 'h36m'):
        raise ValueError("real 2D inputs need the h36m dataset with both inputs_2d "
                         "(data_2d_h36m_<name>.npz) and cameras (cameras JSON)")
    options = LiftingOptions(val_fraction, test_actor, views, frame_step, seed,
                             synthetic_train, synthetic_test, max_frames, max_test_frames,
                             skeleton, inputs_2d, cameras)
    if name in DATASETS:
        return DATASETS[name](data, options)
    if Path(name).suffix != '.npz':
        raise ValueError(f"unknown dataset {name!r} (choose from {list(DATASETS)} or give "
                         f"an .npz path)")
    return _load_npz(name, options)


@dataclass
class LiftingOptions:
    r"""The options of :func:`load_lifting_splits` that a dataset loader of
    :data:`DATASETS` receives (see :func:`register_dataset`), with the
    shared steps of a loader: capping and splitting frame indices
    (:meth:`~LiftingOptions.split`) and rendering them through the virtual
    cameras (:meth:`~LiftingOptions.render`)."""
    val_fraction: float = 0.1
    test_actor: int = 2
    views: int = 4
    frame_step: int = 1
    seed: int = 0
    synthetic_train: int = 20000
    synthetic_test: int = 2000
    max_frames: int | None = None
    max_test_frames: int | None = None
    skeleton: str | dict | Skeleton = 'h36m17'
    inputs_2d: str | Path | None = None
    cameras: str | Path | dict | None = None

    @property
    def use_val(self) -> bool:
        """Whether a validation split is held out."""
        return self.val_fraction > 0

    def rigs(self, root: int) -> tuple[CameraRig, CameraRig]:
        """The training and the evaluation (validation and test) camera
        rigs, with targets relative to joint :obj:`root`."""
        return CameraRig.train(self.views, root), CameraRig.test(self.views, root)

    def cap(self, idx, limit: int | None = None) -> np.ndarray:
        """Every :obj:`frame_step`-th index of :obj:`idx`, then at most
        :obj:`limit` of them, evenly strided."""
        idx = np.asarray(idx)[::self.frame_step]
        if limit is not None and len(idx) > limit:
            idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
        return idx

    def split(self, train, val, test, held_out: np.ndarray | None = None):
        r"""Frame indices :obj:`(train, val, test)`, capped by
        :obj:`max_frames` (training) and :obj:`max_test_frames`; with a mask
        :obj:`held_out` over :obj:`train`, its frames are the validation
        split; :obj:`val` is :obj:`None` without validation."""
        if held_out is not None:
            train, val = train[~held_out], train[held_out]
        return (self.cap(train, self.max_frames),
                self.cap(val, self.max_test_frames) if self.use_val else None,
                self.cap(test, self.max_test_frames))

    def render(self, positions: np.ndarray, train, val, test, root: int = 0, group=None,
               group_names: Sequence[str] = (), description: str = '',
               synthetic: bool = False):
        r"""The splits :obj:`(train, val, test)` of frame indices (from
        :meth:`~LiftingOptions.split`) of world poses :obj:`positions` :obj:`[F, N, 3]`,
        rendered through :meth:`~LiftingOptions.rigs` (seeds :obj:`seed`, :obj:`seed + 2`,
        :obj:`seed + 1`); :obj:`group` labels the frames."""
        train_rig, test_rig = self.rigs(root)
        seed = self.seed
        g = (lambda i: None) if group is None else (lambda i: group[i])
        return (render_lifting(positions[train], train_rig, g(train), group_names, seed,
                               description, synthetic, 'train'),
                render_lifting(positions[val], test_rig, g(val), group_names, seed + 2,
                               description, synthetic, 'val') if val is not None else None,
                render_lifting(positions[test], test_rig, g(test), group_names, seed + 1,
                               description, synthetic, 'test'))


DatasetLoader = Callable[[str | Path | None, LiftingOptions],
                         tuple[LiftingTensors, LiftingTensors | None, LiftingTensors]]


def _load_synthetic(data, o: LiftingOptions):
    from .synthetic import synthetic_poses
    skeleton, seed = o.skeleton, o.seed
    # targets relative to the skeleton's root: the synthetic poses follow it
    train_rig, test_rig = o.rigs(_layout_root(skeleton))
    tr = synthetic_poses(o.synthetic_train, seed=seed, skeleton=skeleton)
    te = synthetic_poses(o.synthetic_test, seed=seed + 1_000_003, skeleton=skeleton)
    desc = 'synthetic (built-in generator; not real motion)'
    if not isinstance(skeleton, str) or skeleton != 'h36m17':
        label = (skeleton if isinstance(skeleton, str) else
                 skeleton.get('name', 'custom') if isinstance(skeleton, dict) else
                 skeleton.name or 'custom')
        desc = f'synthetic {label} (built-in generator; not real motion)'
    va = None
    if o.use_val:
        va = synthetic_poses(max(1, round(o.val_fraction * o.synthetic_train)),
                             seed=seed + 2_000_003, skeleton=skeleton)
    return (render_lifting(tr, train_rig, seed=seed, description=desc, synthetic=True,
                           split='train'),
            render_lifting(va, test_rig, seed=seed + 2, description=desc, synthetic=True,
                           split='val') if va is not None else None,
            render_lifting(te, test_rig, seed=seed + 1, description=desc, synthetic=True,
                           split='test'))


def _load_h36m(data, o: LiftingOptions):
    from .h36m import H36MPoses
    if data is None:
        raise FileNotFoundError("the h36m dataset needs --data PATH/data_3d_h36m.npz "
                                "(your licensed copy; nothing is downloaded)")
    if o.inputs_2d is not None:
        return _h36m_real(data, o.inputs_2d, o.cameras, o.frame_step, o.seed, o.val_fraction,
                          o.max_frames, o.max_test_frames)
    poses = H36MPoses(data, frame_step=1)
    tr, te = poses.split()
    if len(tr) == 0 or len(te) == 0:
        raise ValueError(f"{data}: needs subjects of both splits (train S1 S5 S6 S7 S8, "
                         f"test S9 S11)")
    mask = hold_out_groups(poses.take[tr], poses.subject[tr], o.val_fraction, o.seed)
    desc = 'Human3.6M (train S1 S5 S6 S7 S8, test S9 S11, virtual cameras)'
    return o.render(poses.positions, *o.split(tr, None, te, mask), 0, poses.action,
                    poses.action_names, desc)


def _load_bandai(data, o: LiftingOptions):
    path = Path(data) if data is not None else _default_bandai()
    if path is None:
        raise FileNotFoundError("bandai2_h36m17.npz not found in ../shared/data/mocap; "
                                "pass --data PATH")
    return _load_npz(path, o, bandai=True)


def _load_npz(path, o: LiftingOptions, bandai: bool = False):
    """A Bandai-layout file (with ``seq_file``, or :obj:`bandai`), or an
    ``.npz`` of ``positions``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    from ..mesh.io import npz_members, read_npz_arrays  # header-checked npz loading
    files = set(npz_members(path))
    if 'seq_file' in files or bandai:
        from .bandai import BandaiMocap, bandai_label
        mocap = BandaiMocap(path)
        tr, te = mocap.split(o.test_actor)
        mask = hold_out_groups(mocap.sequence[tr], mocap.actor[tr], o.val_fraction, o.seed)
        desc = (f'{bandai_label(path)}, train actors '
                f'{[a for a in mocap.actors if a != o.test_actor]}, test actor {o.test_actor}, '
                f'virtual cameras')
        # 'bandai' holds h36m17 poses (root 0); a file by path follows the skeleton
        root = 0 if bandai else _layout_root(o.skeleton)
        return o.render(mocap.positions, *o.split(tr, None, te, mask), root, mocap.content,
                        mocap.content_names, desc)
    if 'positions' not in files:
        hint = (' (it holds 2D keypoints: lift them with `pyg-skeleton lift FILE`; '
                'training and evaluation need 3D positions)' if 'keypoints' in files else '')
        raise ValueError(f"{path}: no 'positions' array [F, N, 3]{hint}")
    pos = read_npz_arrays(path, ['positions'])['positions']
    if pos.ndim != 3 or pos.shape[-1] != 3 or pos.dtype.kind not in 'iuf':
        raise ValueError(f"{path}: positions must be numbers [F, N, 3], got {pos.dtype} "
                         f"{list(pos.shape)}")
    finite = np.isfinite(pos).all(axis=(1, 2))
    if not finite.all():
        raise ValueError(f"{path}: {int((~finite).sum())} frames hold NaN or infinite "
                         f"positions (first: frame {int(np.flatnonzero(~finite)[0])})")
    split = int(len(pos) * 0.9)
    n_val = (int(np.clip(round(o.val_fraction * split), 1, max(split - 1, 1)))
             if o.use_val else 0)
    if split - n_val < 1:
        raise ValueError(f"{path}: {len(pos)} frames are too few for a train"
                         f"{'/validation' if o.use_val else ''}/test split")
    desc = f'{path.name} (first 90 % train, last 10 % test, virtual cameras)'
    # targets relative to the root of the skeleton the positions follow
    return o.render(pos, *o.split(np.arange(split - n_val), np.arange(split - n_val, split),
                                  np.arange(split, len(pos))), _layout_root(o.skeleton),
                    description=desc)


#: Datasets by name: a loader :obj:`(data, options) -> (train, val, test)`
#: (see :func:`register_dataset`); any other name is read as an ``.npz`` path.
DATASETS: dict[str, DatasetLoader] = {
    'synthetic': _load_synthetic,
    'bandai': _load_bandai,
    'h36m': _load_h36m,
}


def register_dataset(name: str, loader: DatasetLoader) -> None:
    r"""Adds (or replaces) the dataset :obj:`name` of :data:`DATASETS`, so
    that :func:`load_lifting_splits`, :func:`load_lifting` and
    ``pyg-skeleton train --dataset NAME`` load it.

    Args:
        name (str): The dataset's name (not ending in ``.npz``: such names
            are files).
        loader (callable): :obj:`loader(data, options)` returning the splits
            :obj:`(train, val, test)` as :class:`LiftingTensors`
            (:obj:`val` :obj:`None` when :obj:`options.val_fraction` is 0);
            :obj:`data` is the :obj:`data` argument (a file, or
            :obj:`None`), :obj:`options` a :class:`LiftingOptions` whose
            :meth:`~LiftingOptions.split` and :meth:`~LiftingOptions.render`
            do the built-in datasets' capping, splitting and rendering.

    Raises:
        ValueError: The name is empty or ends in ``.npz``.
    """
    if not isinstance(name, str) or not name or name.lower().endswith('.npz'):
        raise ValueError(f"a dataset name must be a non-empty string not ending in .npz "
                         f"(got {name!r})")
    DATASETS[name] = loader


def _h36m_real(data, inputs_2d, cameras, frame_step, seed, val_fraction, max_frames,
               max_test_frames):
    """Human3.6M splits from real 2D keypoints and cameras (see :func:`load_lifting`)."""
    from .h36m import TEST_SUBJECTS, TRAIN_SUBJECTS, h36m_camera_samples
    d = h36m_camera_samples(data, inputs_2d, cameras, frame_step=frame_step)
    sub = np.asarray(d['subject_names'])[d['subject']]
    tr = np.nonzero(np.isin(sub, TRAIN_SUBJECTS))[0]
    te = np.nonzero(np.isin(sub, TEST_SUBJECTS))[0]
    if len(tr) == 0 or len(te) == 0:
        raise ValueError(f"{data}: needs subjects of both splits (train S1 S5 S6 S7 S8, "
                         f"test S9 S11)")
    mask = hold_out_groups(d['take'][tr], d['subject'][tr], val_fraction, seed)

    def cap(idx, limit):
        if limit is not None and len(idx) > limit:
            idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
        return idx

    desc = (f'Human3.6M (train S1 S5 S6 S7 S8, test S9 S11, 2D keypoints '
            f'{Path(inputs_2d).name}, real cameras)')

    def make(idx, split):
        return LiftingTensors(torch.from_numpy(d['x'][idx]), torch.from_numpy(d['y'][idx]),
                              torch.from_numpy(d['action'][idx]), list(d['action_names']),
                              desc, False, split)

    return (make(cap(tr[~mask], max_frames), 'train'),
            make(cap(tr[mask], max_test_frames), 'val') if val_fraction > 0 else None,
            make(cap(te, max_test_frames), 'test'))

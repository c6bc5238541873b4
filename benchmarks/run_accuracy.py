"""Accuracy on real motion capture: the papers' comparisons repeated on the
Bandai-Namco mocap (2D-to-3D lifting, and action recognition).

Every lifting table trains each of its models on two Bandai actors and tests
on the third, for each of the three folds and each seed. The 2D inputs are
the **ground-truth 3D joints projected through virtual cameras** (the data
set has no images, so there is no detector output). Each table is written
next to the paper's own numbers (quoted with their source: Human3.6M or NTU,
not this data) to Markdown in ``benchmarks/results/accuracy_<table>.md``.

    python benchmarks/run_accuracy.py --table semgcn            # one table
    python benchmarks/run_accuracy.py --table all               # every table
    python benchmarks/run_accuracy.py --table all --quick       # CI smoke run

Runs are cached in ``benchmarks/.cache/accuracy`` (metrics and weights per
model, fold and seed), so an interrupted table resumes, and ``robustness``
re-evaluates the saved weights of the best model of each family. ``--jobs``
trains that many runs at once, one thread each. ``--device cuda`` trains and
scores them on the GPU (cached apart from CPU runs, whose rounding differs).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.datasets.bandai import BandaiMocap, default_bandai_path  # noqa: E402
from pyg_skeleton.datasets.camera import CameraRig  # noqa: E402
from pyg_skeleton.datasets.lifting import LiftingTensors, load_lifting  # noqa: E402
from pyg_skeleton.files import cpu_state_dict  # noqa: E402
from pyg_skeleton.metrics import mpjpe, p_mpjpe  # noqa: E402
from pyg_skeleton.nn.models.registry import build_model  # noqa: E402
from pyg_skeleton.training import TrainConfig, Trainer, TrainingError  # noqa: E402

import _common as common  # noqa: E402
from _common import markdown_table, write_report  # noqa: E402

CACHE = Path(__file__).resolve().parent / '.cache' / 'accuracy'
FOLDS = (0, 1, 2)
SKELETON = 'h36m17'
ATTRIBUTION = (
    'Motion data: Bandai-Namco-Research-Motiondataset-2, (c) 2022 Bandai Namco '
    'Research Inc., https://github.com/BandaiNamcoResearchInc/Bandai-Namco-Research-'
    'Motiondataset, licensed under CC BY-NC 4.0 (https://creativecommons.org/licenses/'
    'by-nc/4.0/); non-commercial use only. Changes: forward kinematics to joint '
    'positions, mapped to the Human3.6M 17-joint layout with a synthesised head-top '
    'joint, converted to metres and subsampled from 30 to 10 fps.')


@dataclass(frozen=True)
class Settings:
    """Training and data settings of a run (part of its cache key).

    Batches of 64, as the official code of SemGCN, Liu et al. and HGN. On
    three rows tested on fold 0 with seed 0 (SemGCN, only M_k (ori), no
    sharing), 1,000 steps of batch 256 (the earlier setting) scored 1.1 to
    2.7 mm better at about four times the cost, and 500 steps of batch 256
    scored 4.7 to 30 mm worse at twice the cost."""
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    lr_final: float = 1e-4
    views: int = 2
    frame_step: int = 2
    test_views: int = 4
    test_frame_step: int = 4
    clip: int = 9
    action_epochs: int = 10
    action_frames: int = 32
    max_train: int | None = None
    max_test: int | None = None
    #: Where the runs train and predict (``--device``).
    device: str = 'cpu'


FULL = Settings()
QUICK = Settings(steps=4, batch_size=16, views=1, frame_step=40, test_views=1,
                 test_frame_step=80, action_epochs=1, max_train=512, max_test=256)


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------

def semgcn(conv='sem', non_local=False):
    # the registry's SemGCN rows: 'semgcn', 'semgcn_nonlocal', 'semgcn_<conv>'
    name = ('semgcn_nonlocal' if non_local else 'semgcn') if conv == 'sem' else f'semgcn_{conv}'
    extra = {'non_local': True} if non_local and conv != 'sem' else {}

    def build(sk, width=128):
        return build_model(name, sk, {'hidden_channels': width}, **extra)
    return build


def skeletal(conv='hcsf', dynamic=False, **kwargs):
    # the registry's 'skeletal_gnn', 'skeletal_gnn_dynamic', 'skeletal_gnn_<conv>'
    name = 'skeletal_gnn_dynamic' if dynamic else (
        'skeletal_gnn' if conv == 'hcsf' else f'skeletal_gnn_{conv}')

    def build(sk, width=128):
        return build_model(name, sk, {'hidden_channels': width}, **kwargs)
    return build


def temporal(offset_kernel):
    # clips [B, T, N, 2]: not a model of the registry, which lifts single poses
    def build(sk, width=128):
        from pyg_skeleton.nn.models import TemporalSkeletalGNN
        return TemporalSkeletalGNN(sk, hidden_channels=width, dynamic=True,
                                   offset_kernel=offset_kernel)
    return build


def hgn(mesh_levels, num_blocks):
    def build(sk, width=128):
        # The registry's 'hgn' (pose output only: the data have no meshes,
        # lambda_M = 0, Table 3) on the canonical body hierarchy. The
        # committed table was measured with the 17-map structure, from
        # before the official 19-map fusion became HGN's default.
        return build_model('hgn', sk, {'hidden_channels': width}, mesh_levels=mesh_levels,
                           num_blocks=num_blocks, fuse_on_join=False)
    return build


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


_WIDTHS: dict[tuple[int, int], int] = {}


def width_for_budget(build, budget: int, sk: Skeleton) -> int:
    """The hidden width whose parameter count is nearest to :obj:`budget`."""
    if (id(build), budget) in _WIDTHS:
        return _WIDTHS[id(build), budget]
    lo, hi = 4, 1024
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if num_params(build(sk, mid)) <= budget else (lo, mid)
    best = min((lo, hi), key=lambda w: abs(num_params(build(sk, w)) - budget))
    _WIDTHS[id(build), budget] = best
    return best


@dataclass
class Row:
    label: str
    build: Callable
    paper: tuple = ()          # the paper's numbers, in the table's paper columns
    width: int = 128
    budget: int | None = None   # match this parameter count instead of width
    kind: str = 'frame'        # 'frame' (single poses) or 'clip' (9-frame clips)
    key: str = ''
    family: str | None = None   # a baseline from another family than its table's


@dataclass
class Table:
    name: str
    title: str
    family: str
    paper_source: str
    paper_columns: tuple[str, ...]
    rows: list[Row]
    notes: str = ''


SEMGCN_NL = 434_733   # SemGCN with non-local blocks on h36m17 (official count)
SEMGCN_PLAIN = 267_373

TABLES: dict[str, Table] = {}


def _table(t: Table) -> None:
    for r in t.rows:
        r.key = r.key or hashlib.sha1(r.label.encode()).hexdigest()[:10]
    TABLES[t.name] = t


_table(Table(
    'semgcn', 'SemGCN ablation (SemGCN Table 1)', 'SemGCN',
    'Zhao et al., CVPR 2019, Table 1: Human3.6M, Protocol #1, 2D ground truth inputs',
    ('paper params', 'paper MPJPE'),
    [Row('ResGCN (vanilla graph conv., no non-local)', semgcn('vanilla'), ('0.14M', 94.4),
         key='semgcn_vanilla'),
     Row('w/o SemGConv (vanilla graph conv. + non-local)', semgcn('vanilla', True),
         ('0.30M', 65.9)),
     Row('w/o non-local (SemGConv only)', semgcn('sem'), ('0.27M', 52.5)),
     Row('SemGCN (SemGConv + non-local)', semgcn('sem', True), ('0.43M', 43.8),
         key='semgcn_nonlocal')]))

_WS = [('vanilla', 'full sharing (vanilla)', 'Full-sharing', (41.70, 33.02)),
       ('full_decoupled', 'full sharing, decoupled self', None, ()),
       ('pre_agg', 'pre-aggregation', 'Pre-agg', (37.83, 30.09)),
       ('pre_agg_decoupled', 'pre-aggregation, decoupled', None, ()),
       ('post_agg', 'post-aggregation', 'Post-agg', (38.92, 31.33)),
       ('post_agg_decoupled', 'post-aggregation, decoupled', None, ()),
       ('conv_style', 'convolution-style', 'Conv-style', (41.19, 32.20)),
       ('no_sharing', 'no sharing', 'No-sharing', (39.62, 30.93))]
_table(Table(
    'weight_sharing', 'Weight sharing (Liu et al. supplementary Table 1)', 'weight sharing',
    'Liu et al., ECCV 2020, supplementary Table 1: Human3.6M, 2D ground truth (GT/P1, GT/P2); '
    'the decoupled variants are not in that table',
    ('paper MPJPE', 'paper P-MPJPE'),
    [Row(f'{label}, width 128', semgcn(conv), paper, key=f'semgcn_{conv}')
     for conv, label, _, paper in _WS] +
    [Row(f'{label}, {SEMGCN_PLAIN:,} params', semgcn(conv), paper, budget=SEMGCN_PLAIN)
     for conv, label, _, paper in _WS],
    'Every scheme is the SemGCN architecture (4 residual blocks, no non-local blocks) with '
    'its graph convolution swapped; "params" rows change the width so that the model has '
    'the parameter count of SemGCN without non-local blocks.'))

_table(Table(
    'skeletal_gnn', 'Hop structures (Skeletal GNN supplementary Table 6)', 'Skeletal GNN',
    'Zeng et al., ICCV 2021, supplementary Table 6, static-graph row: NTU RGB+D action '
    'recognition top-1 (%) with hops (1, 5, 7) -- a different task and metric, compare '
    'orderings only',
    ('paper top-1 (%)',),
    [Row('1-hop', skeletal('khop', k=1), (92.2,)),
     Row('2-hop (k-hop, k = L)', skeletal('khop', k=2), ('93.5 (5-hop)',)),
     Row('MixHop (hops 1, 2, concatenated)', skeletal('mixhop', hops=(1, 2)), (93.9,)),
     Row('MS-Hop (hops 1, 2, averaged)', skeletal('mshop', hops=(1, 2)), (94.1,)),
     Row('HCSF (S = 1, L = 2, d = 1/8)', skeletal('hcsf'), (94.8,), key='skeletal_hcsf')],
    'All rows are the SkeletalGNN lifting network (width 128, 2 residual blocks) with its '
    'layer swapped. Our hops stop at L = 2, the paper\'s Human3.6M setting, instead of its '
    'NTU hops (1, 5, 7).'))

_table(Table(
    'dynamic', 'Static vs dynamic graphs (Skeletal GNN supplementary Table 2)', 'Skeletal GNN',
    'Zeng et al., ICCV 2021, supplementary Table 2: Human3.6M MPJPE (mm), 2D ground truth, '
    'non-hierarchical (LCN-style) layers',
    ('paper MPJPE',),
    [Row('static hop graphs (ori)', skeletal('hcsf'), ('35.7 (LCN)',), key='skeletal_hcsf'),
     Row('only M_k (ori)', skeletal(dynamic=True, graph='ori', offset=False), (34.8,)),
     Row('only M_k (dense)', skeletal(dynamic=True, graph='dense', offset=False), (35.5,)),
     Row('only M_k (rand)', skeletal(dynamic=True, graph='rand', offset=False), (41.2,)),
     Row('only O_k', skeletal(dynamic=True, graph=None, alpha=1.0), (46.1,)),
     Row('M_k + O_k (alpha = 1)', skeletal(dynamic=True, alpha=1.0), (34.3,)),
     Row('Eq. 8 (learned alpha)', skeletal(dynamic=True), (34.0,)),
     Row('Eq. 8, 9-frame clips, offset kernel (1,1)', temporal(1), ('34.0 (Eq. 8)',),
         kind='clip'),
     Row('Eq. 8 w/T, 9-frame clips, offset kernel (3,1)', temporal(3), (33.5,),
         kind='clip')],
    'Single-frame rows are the SkeletalGNN lifting network with HCSF layers (ours are '
    'hierarchical, the paper\'s Table 2 is not); the two clip rows are the temporal network '
    '(HCSF + temporal convolutions, sequence to sequence) on 9-frame clips seen by one '
    'camera, scored on all frames.'))

_HGN_ROWS = [('HGN w/o G_M^C (skeleton + 96-node level)', (-3,), (4, 4), (38.94, 29.47),
              (39.87, 30.31)),
             ('HGN w/o G_M^(C-1) (skeleton + 48-node level)', (-2,), (4, 4), (38.59, 29.18),
              (39.71, 30.32)),
             ('HGN (skeleton + 48 + 96)', (-2, -3), (4, 4, 2), (38.31, 29.04),
              (39.26, 29.60))]
_table(Table(
    'hgn', 'Denser graph topology (HGN Table 3, lambda_M = 0)', 'HGN',
    'Li et al., BMVC 2021, Table 3: Human3.6M, 2D ground truth, no mesh constraint',
    ('paper MPJPE', 'paper P-MPJPE'),
    [Row('SemGCN (baseline)', semgcn('sem', True), (40.78, 31.01), family='SemGCN',
         key='semgcn_nonlocal')] +
    [Row(f'{label}, width 128', hgn(lv, nb), p128) for label, lv, nb, p128, _ in _HGN_ROWS] +
    [Row(f'{label}, {SEMGCN_NL:,} params', hgn(lv, nb), pm, budget=SEMGCN_NL)
     for label, lv, nb, _, pm in _HGN_ROWS],
    'Mesh branches run on HEM levels of the built-in MakeHuman body (SMPL is licensed), '
    'padded to the binary-tree layout; the data has no meshes, so the coarse-mesh loss is '
    'off (lambda_M = 0, as the paper\'s Table 3). The paper matches 0.43M parameters.'))


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------

@cache
def bandai() -> BandaiMocap:
    return BandaiMocap()


def render_clips(poses: np.ndarray, rig: CameraRig, seed: int):
    """Renders clips :obj:`[W, T, N, 3]` with one camera per clip and view:
    the clip is treated as one pose of :obj:`T * N` joints, so all its
    frames share the camera; targets are made root-relative per frame."""
    W, T, N, _ = poses.shape
    out = rig.views(poses.reshape(W, T * N, 3), seed=seed)
    x = out['x'].reshape(-1, T, N, 2)
    y = out['y'].reshape(-1, T, N, 3)
    return torch.from_numpy(x), torch.from_numpy(y - y[:, :, :1])


def clip_windows(mocap: BandaiMocap, actors, clip: int, step: int) -> np.ndarray:
    """Windows of :obj:`clip` consecutive frames inside one sequence, one
    window every :obj:`step` frames."""
    out = []
    for s in mocap.sequences(actors=actors):
        p = s['positions']
        for a in range(0, len(p) - clip + 1, step):
            out.append(p[a:a + clip])
    return np.stack(out).astype(np.float32)


@lru_cache(maxsize=4)
def lifting_fold(fold: int, kind: str, settings: Settings):
    """``(x_train, y_train, x_test, y_test)`` of a fold; cameras seeded per
    fold, the same for every model and seed."""
    s = settings
    if kind == 'frame':
        tr, _ = load_lifting('bandai', test_actor=fold, views=s.views,
                             frame_step=s.frame_step, seed=fold,
                             max_frames=s.max_train, max_test_frames=1)
        _, te = load_lifting('bandai', test_actor=fold, views=s.test_views,
                             frame_step=s.test_frame_step, seed=fold,
                             max_frames=1, max_test_frames=s.max_test)
        return tr.x, tr.y, te.x, te.y
    mocap = bandai()
    train = [a for a in mocap.actors if a != fold]
    tr = clip_windows(mocap, train, s.clip, s.clip * s.frame_step // 2)
    te = clip_windows(mocap, [fold], s.clip, s.clip * s.test_frame_step // 2)
    if s.max_train:
        tr, te = tr[:max(1, s.max_train // s.clip)], te[:max(1, s.max_test // s.clip)]
    xtr, ytr = render_clips(tr, CameraRig.train(s.views), seed=fold)
    xte, yte = render_clips(te, CameraRig.test(s.test_views), seed=fold + 1)
    return xtr, ytr, xte, yte


# ----------------------------------------------------------------------------
# Training and evaluation
# ----------------------------------------------------------------------------

ACTION_FIELDS = ('action_epochs', 'action_frames')


def _fields(settings: Settings, action: bool) -> dict:
    # A run's cache key holds only the settings that change that kind of run.
    # CPU runs keep the keys they had before --device (their caches stay
    # valid); runs on a GPU (other kernels, other rounding) get their own.
    d = asdict(settings)
    device = torch.device(d.pop('device')).type
    fields = ({k: d[k] for k in ACTION_FIELDS + ('max_train',)} if action else
              {k: v for k, v in d.items() if k not in ACTION_FIELDS})
    return fields if device == 'cpu' else {**fields, 'device': device}


def run_key(row: Row, fold: int, seed: int, settings: Settings) -> str:
    # Rows of different tables with the same key are the same model: one run.
    blob = json.dumps([row.key, row.width, row.budget, fold, seed, _fields(settings, False)])
    return f'{row.key}-f{fold}-s{seed}-{hashlib.sha1(blob.encode()).hexdigest()[:8]}'


def build_row(row: Row, sk: Skeleton) -> tuple[torch.nn.Module, int]:
    width = row.width if row.budget is None else width_for_budget(row.build, row.budget, sk)
    return row.build(sk, width), width


@torch.no_grad()
def predict(model, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The model's outputs on the CPU, computed on the model's device."""
    # Batches of 2048 ran the HGN models 1.9x slower per sample than
    # batches of 256 (one CPU thread, identical outputs).
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(x[i:i + batch].to(device)).cpu()
                      for i in range(0, len(x), batch)])


def lifting_metrics(pred: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    pred, y = pred.reshape(-1, *pred.shape[-2:]), y.reshape(-1, *y.shape[-2:])
    return {'mpjpe': 1000 * float(mpjpe(pred, y)),
            'p_mpjpe': 1000 * float(p_mpjpe(pred, y))}


def _quiet(text: str, err: bool = False) -> None:
    # the trainer's log: only its warnings (one run's lines would drown the tables)
    if err:
        print(text, file=sys.stderr, flush=True)


def lifting_config(row: Row, n_train: int, seed: int, settings: Settings,
                   out: str) -> TrainConfig:
    """The :class:`~pyg_skeleton.training.TrainConfig` of a run: Adam,
    :obj:`settings.steps` steps (batches of :obj:`settings.batch_size`
    poses, or of :obj:`settings.batch_size // settings.clip` clips but at
    least 8; never more than the training samples), the
    learning rate decayed exponentially at every step to
    :obj:`settings.lr_final`, MSE loss, no augmentation, batches cut from
    successive shuffles of one generator (``batch_order='stream'``)."""
    bs = min(settings.batch_size if row.kind == 'frame' else
             max(8, settings.batch_size // settings.clip), n_train)
    return TrainConfig(
        skeleton=SKELETON, seed=seed, batch_size=bs, batch_order='stream',
        epochs=-(-settings.steps // (n_train // bs)), max_steps=settings.steps,
        lr=settings.lr, lr_schedule='exp_to_min', min_lr=settings.lr_final, loss='mse',
        flip_augment=False, flip_test=False, val_fraction=0.0, out=out, no_progress=True,
        no_plots=True, samples=0, device=settings.device)


def train_lifting(table: str, index: int, fold: int, seed: int, settings: Settings
                  ) -> dict:
    """Trains row :obj:`index` of a table on one fold with one seed with the
    library :class:`~pyg_skeleton.training.Trainer` (cached; rows are
    passed by position because their builders do not pickle). The trainer
    gets no test split: the reported metrics are those of the final weights
    (no checkpoint selection), computed here once."""
    row = TABLES[table].rows[index]
    key = run_key(row, fold, seed, settings)
    path = CACHE / f'{key}.json'
    if path.exists():
        return json.loads(path.read_text())
    torch.set_num_threads(1)
    sk = Skeleton.preset(SKELETON)
    xtr, ytr, xte, yte = lifting_fold(fold, row.kind, settings)
    train = LiftingTensors(xtr, ytr, torch.zeros(len(xtr), dtype=torch.long),
                           description=f'Bandai-Namco mocap, test actor {fold}')
    width = {}

    def build() -> torch.nn.Module:  # called by the trainer right after seeding
        model, width['width'] = build_row(row, sk)
        return model

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(build, lifting_config(row, len(xtr), seed, settings, tmp),
                          data=(train, None, None), skeleton=sk, log=_quiet)
        try:
            trainer.fit()
        except TrainingError as e:
            raise TrainingError(f'{row.label}, fold {fold}, seed {seed}: {e}') from None
    model = trainer.model
    result = {'key': row.key, 'row': row.label, 'fold': fold, 'seed': seed,
              'width': width['width'], 'params': num_params(model),
              'train_s': sum(h['seconds'] for h in trainer.history),
              'train_samples': len(xtr), 'test_samples': len(xte),
              'last_epoch_loss': trainer.history[-1]['train_loss'],
              **lifting_metrics(predict(model, xte), yte)}
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(cpu_state_dict(model), CACHE / f'{key}.pt')  # loads on any machine
    tmp = path.with_suffix('.tmp')
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


def run_all(jobs, fn, tasks) -> list[dict]:
    if jobs <= 1:
        return [fn(*t) for t in tasks]
    with ProcessPoolExecutor(jobs) as ex:
        return list(ex.map(fn, *zip(*tasks)))


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.1f}'
    return f'{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}'


def summarise(results: list[dict], rows: list[Row], seeds, metric: str) -> dict[str, dict]:
    """Per row: the 3-fold mean per seed, then mean ± std over seeds."""
    out = {}
    for r in rows:
        mine = [x for x in results if x['key'] == r.key]
        per_seed = [statistics.mean(x[metric] for x in mine if x['seed'] == s) for s in seeds]
        per_fold = [statistics.mean(x[metric] for x in mine if x['fold'] == f) for f in FOLDS]
        out[r.label] = {'mean': statistics.mean(per_seed), 'text': mean_std(per_seed),
                        'folds': per_fold, 'params': mine[0]['params'],
                        'width': mine[0]['width'],
                        'train_s': sum(x['train_s'] for x in mine)}
    return out


def rank_agreement(ours: list[float], paper: list[float]) -> str:
    """Kendall's tau between our and the paper's orderings (pairs tied in
    either are left out)."""
    agree = disagree = 0
    for i in range(len(ours)):
        for j in range(i + 1, len(ours)):
            a, b = ours[i] - ours[j], paper[i] - paper[j]
            if a * b > 0:
                agree += 1
            elif a * b < 0:
                disagree += 1
    n = agree + disagree
    return (f'{agree} of {n} pairs ordered as in the paper (Kendall tau '
            f'{(agree - disagree) / n:+.2f})' if n else 'no comparable pairs')


def _paper_number(value) -> float | None:
    return value if isinstance(value, (int, float)) else None


def lifting_table(name: str, settings: Settings, seeds, jobs: int, quick: bool) -> str:
    t = TABLES[name]
    tasks = [(name, i, f, s, settings) for i in range(len(t.rows)) for f in FOLDS
             for s in seeds]
    start = time.perf_counter()
    results = run_all(jobs, train_lifting, tasks)
    wall, load = time.perf_counter() - start, os.getloadavg()[1]
    m1 = summarise(results, t.rows, seeds, 'mpjpe')
    m2 = summarise(results, t.rows, seeds, 'p_mpjpe')
    header = ['model', 'params', 'width', 'MPJPE (mm)', 'P-MPJPE (mm)',
              'MPJPE per fold (test actor 0 / 1 / 2)', *t.paper_columns]
    body = []
    for r in t.rows:
        a, b = m1[r.label], m2[r.label]
        paper = list(r.paper) + ['—'] * (len(t.paper_columns) - len(r.paper))
        body.append([r.label, f"{a['params']:,}", a['width'], a['text'], b['text'],
                     ' / '.join(f'{v:.1f}' for v in a['folds']), *paper])
    # Agreement with the paper, on the paper's first numeric column.
    col = next((i for i, c in enumerate(t.paper_columns) if 'MPJPE' in c or 'top-1' in c), 0)
    pairs = [(m1[r.label]['mean'], _paper_number(r.paper[col]) if len(r.paper) > col else None)
             for r in t.rows]
    pairs = [(o, p) for o, p in pairs if p is not None]
    higher_better = 'top-1' in t.paper_columns[col]
    ours = [o for o, _ in pairs]
    paper = [-p if higher_better else p for _, p in pairs]
    best = min(t.rows, key=lambda r: m1[r.label]['mean'])
    lines = [
        f'Data: Bandai-Namco mocap 2 (real, 3 actors), train on two actors and test on the '
        f'third, each actor once; 2D inputs are **ground-truth 3D joints projected through '
        f'virtual cameras** (not detector output): {settings.views} random training views '
        f'per frame, a fixed ring of {settings.test_views} test views. Every frame '
        f'{settings.frame_step} (train) / {settings.test_frame_step} (test) of the 10 fps '
        f'data. Each model: Adam, {settings.steps} steps of batch {settings.batch_size}, '
        f'lr {settings.lr:g} decayed exponentially to {settings.lr_final:g}, MSE loss, no '
        f'augmentation, the final weights scored (no checkpoint selection). Seeds '
        f'{list(seeds)}; numbers are the mean over the 3 folds, as mean ± std over seeds.',
        '', f'Paper numbers: {t.paper_source}.', '', *([t.notes, ''] if t.notes else []),
        markdown_table(header, body), '',
        f'Ordering vs the paper (lower error is better; {len(pairs)} rows with a paper '
        f'number): {rank_agreement(ours, paper)}. Best here: **{best.label}**.', '',
        f'Run time: {wall:.0f} s wall for this invocation '
        f'({sum(x["train_s"] for x in results):.0f} '
        f'training-seconds in all, cached runs included), {jobs} job(s) of 1 thread; load '
        f'average at the end {load:.1f} (5 min) on {os.cpu_count()} cores'
        + (' (more than the jobs: other work shared the machine, so times are upper '
           'bounds).' if load > jobs + 0.5 else '.')]
    if quick:
        lines.insert(0, '**Quick mode (CI smoke run): a few steps on a few samples; these '
                        'numbers mean nothing.**\n')
    lines += ['', ATTRIBUTION]
    return '\n'.join(lines)


# ----------------------------------------------------------------------------
# Robustness
# ----------------------------------------------------------------------------

PIXELS = CameraRig().width  # normalised 2D is pixels * 2 / width


def perturb(x: torch.Tensor, condition: str, gen: torch.Generator) -> torch.Tensor:
    """Gaussian pixel noise (``noise5``, ``noise10``) or dropped joints
    (``drop1``, ``drop2``: both coordinates set to 0, the image centre in
    normalised coordinates)."""
    if condition == 'clean':
        return x
    if condition.startswith('noise'):
        sigma = float(condition[5:]) * 2 / PIXELS
        return x + sigma * torch.randn(x.shape, generator=gen)
    k = int(condition[4:])
    idx = torch.rand(x.shape[:-1], generator=gen).argsort(-1)[..., :k]
    x = x.clone()
    x.scatter_(-2, idx.unsqueeze(-1).expand(*idx.shape, x.shape[-1]), 0.0)
    return x


CONDITIONS = ('clean', 'noise5', 'noise10', 'drop1', 'drop2')
CONDITION_NAMES = {'clean': 'clean', 'noise5': 'noise σ 5 px', 'noise10': 'noise σ 10 px',
                   'drop1': '1 joint dropped', 'drop2': '2 joints dropped'}


def family_rows(family: str) -> list[tuple[str, int]]:
    """The single-frame rows of :obj:`family` in every table, each model once,
    as :obj:`(table, row index)`."""
    out, keys = [], set()
    for name, t in TABLES.items():
        for i, r in enumerate(t.rows):
            if r.kind == 'frame' and (r.family or t.family) == family and r.key not in keys:
                keys.add(r.key)
                out.append((name, i))
    return out


def robustness_table(settings: Settings, seeds, jobs: int, quick: bool) -> str:
    sk = Skeleton.preset(SKELETON)
    start = time.perf_counter()
    body, missing = [], []
    for family in dict.fromkeys(t.family for t in TABLES.values()):
        cands = family_rows(family)
        if not quick and not all(
                (CACHE / f'{run_key(TABLES[n].rows[i], f, s, settings)}.json').exists()
                for n, i in cands for f in FOLDS for s in seeds):
            # Choosing the best model needs its whole family: never start
            # hours of training from here.
            missing.append(family)
            continue
        results = run_all(jobs, train_lifting, [(n, i, f, s, settings) for n, i in cands
                                                for f in FOLDS for s in seeds])
        rows = [TABLES[n].rows[i] for n, i in cands]
        m = summarise(results, rows, seeds, 'mpjpe')
        name, i = min(cands, key=lambda c: m[TABLES[c[0]].rows[c[1]].label]['mean'])
        best = TABLES[name].rows[i]
        cells = {c: [] for c in CONDITIONS}
        for s in seeds:
            per_fold = {c: [] for c in CONDITIONS}
            for f in FOLDS:
                model, _ = build_row(best, sk)
                state = torch.load(CACHE / f'{run_key(best, f, s, settings)}.pt',
                                   weights_only=True)
                model.load_state_dict(state)
                model.to(settings.device)
                _, _, xte, yte = lifting_fold(f, 'frame', settings)
                gen = torch.Generator().manual_seed(1000 * s + f)
                for c in CONDITIONS:
                    per_fold[c].append(lifting_metrics(
                        predict(model, perturb(xte, c, gen)), yte)['mpjpe'])
            for c in CONDITIONS:
                cells[c].append(statistics.mean(per_fold[c]))
        body.append([family, f'{best.label} (`--table {name}`)',
                     *[mean_std(cells[c]) for c in CONDITIONS]])
    lines = [
        'Test MPJPE (mm) of the best model of each family (lowest clean MPJPE over its '
        'single-frame rows in all tables, the same trained weights) when the test 2D '
        'inputs are perturbed: Gaussian noise on every joint (pixels of the 1000-px '
        'virtual camera), or 1 or 2 random joints per sample dropped (both coordinates '
        'set to 0, the image centre). Models were trained on clean inputs. Mean over '
        'the 3 folds, mean ± std over seeds '
        f'{list(seeds)}. Data as in the other accuracy tables (projected ground truth).',
        '', markdown_table(['family', 'model', *[CONDITION_NAMES[c] for c in CONDITIONS]],
                           body), '',
        *([f'Families left out because not all their runs exist with these '
           f'settings yet: {", ".join(missing)} (run `--table NAME` first).', '']
          if missing else []),
        f'Run time: {time.perf_counter() - start:.0f} s wall (training runs cached).']
    if quick:
        lines.insert(0, '**Quick mode (CI smoke run): these numbers mean nothing.**\n')
    lines += ['', ATTRIBUTION]
    return '\n'.join(lines)


# ----------------------------------------------------------------------------
# Action recognition
# ----------------------------------------------------------------------------

ACTION_ROWS = {
    '1-hop graph conv. (ST-GCN-style, static)': dict(conv='khop', k=1),
    'HCSF (S = 3, L = 5, d = 1/8)': dict(conv='hcsf', S=3, L=5),
}
ACTION_WIDTHS = dict(channels=(64, 64, 128, 128), strides=(1, 1, 2, 1), temporal_kernel=9)


def sequences_of(actors, frames: int):
    """Root-relative 3D sequences :obj:`[S, T, 17, 3]` (shorter ones padded
    by repeating their last frame; longer ones keep all frames, cropped
    later) and their content labels."""
    seqs, labels = [], []
    for s in bandai().sequences(actors=actors):
        p = s['positions'] - s['positions'][:, :1]
        if len(p) < frames:
            p = np.concatenate([p, np.repeat(p[-1:], frames - len(p), 0)])
        seqs.append(torch.from_numpy(p.astype(np.float32)))
        labels.append(s['content'])
    return seqs, torch.tensor(labels)


def crop(seq: torch.Tensor, frames: int, gen: torch.Generator | None) -> torch.Tensor:
    extra = len(seq) - frames
    a = extra // 2 if gen is None else int(torch.randint(extra + 1, (1,), generator=gen))
    return seq[a:a + frames]


def yaw(seqs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random rotation about the vertical (y) axis per sequence."""
    a = torch.rand(len(seqs), generator=gen) * 2 * math.pi
    c, s = a.cos(), a.sin()
    z, o = torch.zeros_like(a), torch.ones_like(a)
    rot = torch.stack([c, z, s, z, o, z, -s, z, c], -1).view(-1, 1, 1, 3, 3)
    return (rot @ seqs.unsqueeze(-1)).squeeze(-1)


def train_action(label: str, fold: int, seed: int, settings: Settings) -> dict:
    key = hashlib.sha1(json.dumps([label, fold, seed, _fields(settings, True)]).encode()
                       ).hexdigest()
    path = CACHE / f'action-{key[:16]}.json'
    if path.exists():
        return json.loads(path.read_text())
    torch.set_num_threads(1)
    from pyg_skeleton.nn.models import SkeletalGNNAction
    T = settings.action_frames
    train_seqs, train_y = sequences_of([a for a in (0, 1, 2) if a != fold], T)
    test_seqs, test_y = sequences_of([fold], T)
    if settings.max_train:  # quick mode: a strided subset covers every class
        train_seqs, train_y = train_seqs[::30], train_y[::30]
        test_seqs, test_y = test_seqs[::30], test_y[::30]
    torch.manual_seed(seed)
    model = SkeletalGNNAction(SKELETON, num_classes=10, in_channels=3,
                              **ACTION_WIDTHS, **ACTION_ROWS[label]).to(settings.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    epochs = settings.action_epochs
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train_seqs), generator=gen)
        for i in range(0, len(order), 32):
            idx = order[i:i + 32]
            x = yaw(torch.stack([crop(train_seqs[j], T, gen) for j in idx]), gen)
            loss = torch.nn.functional.cross_entropy(model(x.to(settings.device)),
                                                     train_y[idx].to(settings.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        x = torch.stack([crop(s, T, None) for s in test_seqs])
        pred = torch.cat([model(x[i:i + 128].to(settings.device)).argmax(-1).cpu()
                          for i in range(0, len(x), 128)])
    result = {'row': label, 'fold': fold, 'seed': seed, 'params': num_params(model),
              'train_s': seconds, 'top1': 100 * float((pred == test_y).float().mean()),
              'train_sequences': len(train_seqs), 'test_sequences': len(test_seqs)}
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result))
    return result


def action_table(settings: Settings, seeds, jobs: int, quick: bool) -> str:
    start = time.perf_counter()
    tasks = [(label, f, s, settings) for label in ACTION_ROWS for f in FOLDS for s in seeds]
    results = run_all(jobs, train_action, tasks)
    body = []
    for label in ACTION_ROWS:
        mine = [r for r in results if r['row'] == label]
        per_seed = [statistics.mean(r['top1'] for r in mine if r['seed'] == s) for s in seeds]
        per_fold = [statistics.mean(r['top1'] for r in mine if r['fold'] == f) for f in FOLDS]
        body.append([label, f"{mine[0]['params']:,}", mean_std(per_seed),
                     ' / '.join(f'{v:.1f}' for v in per_fold)])
    n = {r['fold']: r['test_sequences'] for r in results}
    lines = [
        'Skeleton action recognition on the Bandai-Namco mocap: classify the motion '
        'content (10 classes, chance 10 %) from root-relative 3D joint sequences of '
        f'{settings.action_frames} frames (3.2 s at 10 fps; random crops and random '
        'rotations about the vertical axis in training, the centre crop at test; shorter '
        'sequences repeat their last frame). Cross-actor: train on two actors, test on the '
        f'third (test sequences per fold: {n}). Both backbones are the SkeletalGNNAction '
        f'network reduced to 4 blocks (widths {ACTION_WIDTHS["channels"]}, temporal strides '
        f'{ACTION_WIDTHS["strides"]}, 9x1 temporal kernels) with its graph layer swapped. '
        f'Adam (lr 1e-3, weight decay 1e-4, cosine schedule), {settings.action_epochs} '
        f'epochs of batch 32. Top-1 (%), mean over folds, mean ± std over seeds '
        f'{list(seeds)}.', '',
        'Paper (Zeng et al., ICCV 2021, supplementary Table 6, NTU RGB+D, static graphs): '
        '1-hop 92.2 %, HCSF 94.8 %.', '',
        markdown_table(['backbone', 'params', 'top-1 (%)', 'per fold (test actor 0 / 1 / 2)'],
                       body), '',
        f'Run time: {time.perf_counter() - start:.0f} s wall.']
    if quick:
        lines.insert(0, '**Quick mode (CI smoke run): these numbers mean nothing.**\n')
    lines += ['', ATTRIBUTION]
    return '\n'.join(lines)


# ----------------------------------------------------------------------------

ALL = ('semgcn', 'weight_sharing', 'skeletal_gnn', 'dynamic', 'hgn', 'robustness', 'action')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--table', choices=ALL + ('all',), required=True)
    p.add_argument('--quick', action='store_true', help='CI smoke run (numbers mean nothing)')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--steps', type=int, help='training steps per lifting model')
    p.add_argument('--jobs', type=int, default=1, help='runs trained at once (1 thread each)')
    common.add_device_argument(p)
    args = p.parse_args(argv)
    device = common.use_device(args.device)
    if default_bandai_path() is None:
        print('run_accuracy: the Bandai-Namco mocap (../shared/data/mocap/bandai2_h36m17.npz) '
              'is not there; nothing to do.')
        return 0
    settings = QUICK if args.quick else FULL
    settings = Settings(**{**asdict(settings), 'device': str(device),
                           **({'steps': args.steps} if args.steps else {})})
    seeds = args.seeds[:1] if args.quick else args.seeds
    for name in (ALL if args.table == 'all' else (args.table,)):
        t0 = time.perf_counter()
        if name == 'robustness':
            title, body = 'Robustness to noisy and missing 2D joints', robustness_table(
                settings, seeds, args.jobs, args.quick)
        elif name == 'action':
            title, body = 'Skeleton action recognition (cross-actor)', action_table(
                settings, seeds, args.jobs, args.quick)
        else:
            title, body = TABLES[name].title, lifting_table(
                name, settings, seeds, args.jobs, args.quick)
        path = write_report(f'accuracy_{name}', f'Accuracy: {title}', body)
        print(f'{path} ({time.perf_counter() - t0:.0f} s)', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())

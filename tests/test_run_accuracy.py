"""The pieces of ``benchmarks/run_accuracy.py`` that decide reported numbers:
input perturbations, clip rendering, the paper-ordering statistic and the
parameter-budget width search."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
ra = pytest.importorskip('run_accuracy')

from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.datasets.camera import CameraRig  # noqa: E402


def test_noise_is_in_pixels_of_the_virtual_camera():
    x = torch.zeros(20000, 17, 2)
    gen = torch.Generator().manual_seed(0)
    for px in (5, 10):
        noisy = ra.perturb(x, f'noise{px}', gen)
        # Normalised coordinates are pixels * 2 / width (width 1000).
        std_px = float(noisy.std()) * ra.PIXELS / 2
        assert abs(std_px - px) < 0.05 * px


@pytest.mark.parametrize('k', [1, 2])
def test_drop_zeroes_exactly_k_joints_per_sample(k):
    x = torch.rand(500, 17, 2) + 0.5  # never zero
    out = ra.perturb(x, f'drop{k}', torch.Generator().manual_seed(1))
    zero = (out == 0).all(-1)
    assert (zero.sum(-1) == k).all()
    assert torch.equal(out[~zero], x[~zero])
    # Different samples lose different joints.
    assert len({tuple(torch.nonzero(z).flatten().tolist()) for z in zero}) > 10


def test_clean_is_untouched():
    x = torch.randn(3, 17, 2)
    assert ra.perturb(x, 'clean', torch.Generator()) is x


def test_clips_share_one_camera_per_clip():
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(17, 3)).astype(np.float32) + [0, 1, 0]
    clips = np.repeat(pose[None, None], 5, 1).repeat(3, 0)  # 3 static clips of 5 frames
    clips[1] += rng.normal(size=(5, 17, 3)).astype(np.float32) * 0.05
    x, y = ra.render_clips(clips, CameraRig.train(2), seed=0)
    assert x.shape == (6, 5, 17, 2) and y.shape == (6, 5, 17, 3)
    # A static subject seen by one camera gives the same image in every frame.
    for v in (0, 1, 4, 5):
        assert torch.allclose(x[v], x[v, :1].expand_as(x[v]), atol=1e-6)
    # Root-relative per frame, and the camera is a rotation: bone lengths kept.
    assert torch.all(y[..., 0, :] == 0)
    bones = np.linalg.norm(clips[1, :, 1:] - clips[1, :, :1], axis=-1)
    got = torch.linalg.vector_norm(y[2, :, 1:], dim=-1).numpy()
    assert np.allclose(got, bones, atol=1e-5)


def test_rank_agreement():
    assert ra.rank_agreement([1, 2, 3], [10, 20, 30]).startswith('3 of 3')
    assert 'tau -1.00' in ra.rank_agreement([3, 2, 1], [10, 20, 30])
    assert ra.rank_agreement([1, 2, 3], [10, 30, 20]).startswith('2 of 3')
    assert ra.rank_agreement([1], [1]) == 'no comparable pairs'


def test_width_for_budget_is_nearest():
    sk = Skeleton.preset('h36m17')
    build = ra.semgcn('pre_agg')
    w = ra.width_for_budget(build, ra.SEMGCN_PLAIN, sk)
    gaps = {c: abs(ra.num_params(build(sk, c)) - ra.SEMGCN_PLAIN) for c in (w - 1, w, w + 1)}
    assert gaps[w] == min(gaps.values())


def test_tables_quote_the_papers():
    # Official numbers quoted in the tables (SemGCN Table 1, HGN Table 3).
    semgcn = {r.label: r.paper for r in ra.TABLES['semgcn'].rows}
    assert semgcn['SemGCN (SemGConv + non-local)'] == ('0.43M', 43.8)
    assert [r.paper[0] for r in ra.TABLES['hgn'].rows][:4] == [40.78, 38.94, 38.59, 38.31]
    sk = Skeleton.preset('h36m17')
    full = next(r for r in ra.TABLES['semgcn'].rows if r.key == 'semgcn_nonlocal')
    assert ra.num_params(full.build(sk)) == 434_733


def test_robustness_picks_from_every_table_of_a_family():
    def labels(family):
        return [(n, ra.TABLES[n].rows[i].label)
                for n, i in ra.family_rows(family)]

    skeletal = labels('Skeletal GNN')
    assert {n for n, _ in skeletal} == {'skeletal_gnn', 'dynamic'}
    assert ('dynamic', 'only M_k (ori)') in skeletal
    assert not any('clips' in label for _, label in skeletal)
    keys = [ra.TABLES[n].rows[i].key
            for n, i in ra.family_rows('Skeletal GNN')]
    assert len(keys) == len(set(keys))
    # HGN's SemGCN baseline is a SemGCN, and the same run as SemGCN's own row
    assert all(label != 'SemGCN (baseline)' for _, label in labels('HGN'))
    assert ('semgcn', 'SemGCN (SemGConv + non-local)') in labels('SemGCN')
    assert not any(n == 'hgn' for n, _ in labels('SemGCN'))
    base = ra.TABLES['hgn'].rows[0]
    assert base.label == 'SemGCN (baseline)'
    assert ra.run_key(base, 1, 0, ra.FULL) == ra.run_key(
        ra.TABLES['semgcn'].rows[3], 1, 0, ra.FULL)


@pytest.mark.parametrize('table, index', [('skeletal_gnn', 0), ('dynamic', 7)])
def test_lifting_runs_train_as_the_former_loop(tmp_path, monkeypatch, shared_data, table, index):
    # The trainer's run against the loop run_accuracy had before it used the
    # library Trainer, written out: the same weights bit for bit. A frame row
    # with dropout (1-hop SkeletalGNN) and a clip row (temporal network).
    shared_data('mocap/bandai2_h36m17.npz')
    monkeypatch.setattr(ra, 'CACHE', tmp_path)
    settings = ra.Settings(steps=7, batch_size=16, views=1, frame_step=40, test_views=1,
                           test_frame_step=80, max_train=90, max_test=32)
    row = ra.TABLES[table].rows[index]
    got = ra.train_lifting(table, index, 1, 3, settings)
    weights = torch.load(tmp_path / f'{ra.run_key(row, 1, 3, settings)}.pt', weights_only=True)

    sk = Skeleton.preset(ra.SKELETON)
    xtr, ytr, xte, yte = ra.lifting_fold(1, row.kind, settings)
    torch.manual_seed(3)
    model, _ = ra.build_row(row, sk)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(
        opt, (settings.lr_final / settings.lr) ** (1 / settings.steps))
    gen = torch.Generator().manual_seed(3)
    bs = min(16 if row.kind == 'frame' else 8, len(xtr))
    order, pos = torch.randperm(len(xtr), generator=gen), 0
    model.train()
    for _ in range(settings.steps):
        if pos + bs > len(order):
            order, pos = torch.randperm(len(xtr), generator=gen), 0
        idx = order[pos:pos + bs]
        pos += bs
        loss = torch.nn.functional.mse_loss(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    for name, weight in model.state_dict().items():
        assert torch.equal(weights[name], weight), name
    assert got['mpjpe'] == ra.lifting_metrics(ra.predict(model, xte), yte)['mpjpe']
    assert got['train_samples'] == len(xtr) and len(xtr) // bs < settings.steps  # reshuffled


def test_device_setting_reaches_the_trainer_and_keys_gpu_runs_apart(tmp_path, monkeypatch,
                                                                    shared_data):
    from dataclasses import replace
    row = ra.TABLES['semgcn'].rows[0]
    cpu = ra.run_key(row, 1, 0, ra.FULL)
    # CPU runs keep their keys (the caches made before --device stay valid)
    assert ra.run_key(row, 1, 0, replace(ra.FULL, device='cpu')) == cpu
    gpu = ra.run_key(row, 1, 0, replace(ra.FULL, device='cuda:0'))
    assert gpu != cpu and gpu == ra.run_key(row, 1, 0, replace(ra.FULL, device='cuda:1'))
    assert ra.lifting_config(row, 100, 0, replace(ra.FULL, device='cuda:1'),
                             str(tmp_path)).device == 'cuda:1'
    # --device goes into every run's settings
    shared_data('mocap/bandai2_h36m17.npz')
    seen = []
    monkeypatch.setattr(ra, 'lifting_table',
                        lambda name, settings, *a: seen.append(settings.device) or '')
    monkeypatch.setattr(ra, 'write_report', lambda *a: tmp_path / 'report.md')
    assert ra.main(['--table', 'semgcn', '--quick', '--device', 'cpu']) == 0
    assert seen == ['cpu']


def test_predict_runs_on_the_models_device_and_returns_cpu_outputs():
    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.seen = []

        def forward(self, x):
            self.seen.append(x.device)
            return self.w * x

    # a model on the meta device: its inputs must be moved there
    model = Spy().to('meta')
    with pytest.raises(NotImplementedError, match='meta'):
        ra.predict(model, torch.ones(3, 17, 2), batch=2)  # the copy back of a meta output
    assert model.seen == [torch.device('meta')]
    model = Spy()
    out = ra.predict(model, torch.arange(6.).view(3, 1, 2), batch=2)
    assert out.device.type == 'cpu' and torch.equal(out, torch.arange(6.).view(3, 1, 2))

"""The command line against crafted files and options (issue 21): checkpoints
never make it open files or run code, bad checkpoints and options are
one-line errors, divergence stops the run, outputs are never written through
links, and DDP ranks draw different dropout masks."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pyg_skeleton.cli.train as cli_train
import pyg_skeleton.training.trainer as train_mod  # the training loop
from pyg_skeleton.cli import main
from pyg_skeleton.cli.main import build_parser
from pyg_skeleton.files import write_atomic

REPO = Path(__file__).resolve().parents[1]
TINY = ['--dataset', 'synthetic', '--synthetic-train', '200', '--synthetic-test', '20',
        '--views', '2', '--batch-size', '32', '--hidden-channels', '16', '--num-layers', '1',
        '--steps-per-epoch', '3', '--no-progress', '--no-plots']


def error_of(capsys, argv, code=2):
    got = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert got == code, err
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One finished 1-epoch run, copied by the tests that change it."""
    out = tmp_path_factory.mktemp('trained') / 'run'
    assert main(['train', *TINY, '--epochs', '1', '--out', str(out)]) == 0
    return out


def copy_run(trained, tmp_path):
    out = tmp_path / 'run'
    shutil.copytree(trained, out)
    return out


def rewrite(path, change):
    """Loads a checkpoint, applies :obj:`change` and saves it without its
    digest, as a crafted file would be (older checkpoints have none)."""
    ckpt = torch.load(path, weights_only=True)
    change(ckpt)
    ckpt.pop('digest', None)
    torch.save(ckpt, path)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def evil_npz(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.npz'
    np.savez(path, positions_3d=np.array({'S1': {'Walking': RunsCode(marker)}}, dtype=object))
    return path, marker


# ------------------------------------------------------------- item 1, 2

def test_checkpoint_paths_are_never_opened(trained, tmp_path, capsys):
    evil, marker = evil_npz(tmp_path)
    out = copy_run(trained, tmp_path)

    def h36m(ck):
        ck['args'].update(dataset='h36m', data=str(evil))

    for name in ('last.pt', 'best.pt'):
        rewrite(out / name, h36m)
    msg = error_of(capsys, ['evaluate', '--checkpoint', str(out / 'best.pt')])
    assert '--data' in msg and 'not opened' in msg
    # another dataset chosen on the command line needs none of the run's files
    assert main(['evaluate', '--checkpoint', str(out / 'best.pt'), '--dataset', 'synthetic',
                 '--synthetic-test', '10']) == 0
    assert 'synthetic' in capsys.readouterr().out
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--epochs', '2',
                            '--no-progress', '--no-plots'])
    assert '--data' in msg and str(evil) in msg
    # a file dataset stored in the checkpoint is not opened either
    rewrite(out / 'best.pt', lambda ck: ck['args'].update(dataset=str(evil), data=None))
    msg = error_of(capsys, ['evaluate', '--checkpoint', str(out / 'best.pt')])
    assert '--dataset' in msg
    # given by the user, the file is read with the restricted unpickler: refused
    msg = error_of(capsys, ['evaluate', '--checkpoint', str(out / 'best.pt'),
                            '--dataset', 'h36m', '--data', str(evil)])
    assert 'refused' in msg and 'system' in msg
    assert not marker.exists()


def test_help_names_the_restricted_unpickler():
    text = build_parser().subcommand_parsers['train'].format_help()
    assert 'restricted unpickler' in ' '.join(text.split())


# -------------------------------------------------------------------- item 3

def test_divergence_stops_before_saving_nonfinite(tmp_path, capsys):
    out = tmp_path / 'run'
    msg = error_of(capsys, ['train', *TINY, '--epochs', '2', '--lr', '1e30',
                            '--checkpoint-every', '1', '--out', str(out)])
    assert 'diverged' in msg and '--lr' in msg
    assert not (out / 'best.pt').exists()
    for name in ('last.pt', ):
        if (out / name).exists():
            for t in torch.load(out / name, weights_only=True)['model'].values():
                assert torch.isfinite(t).all()


@pytest.mark.parametrize('val_fraction', ['0.2', '0'])
def test_exploding_epoch_is_never_best(tmp_path, capsys, monkeypatch, val_fraction):
    real = train_mod.evaluate
    split = 'val' if val_fraction != '0' else 'test'
    script = [50.0, 1e9]   # epoch 2 far above 10x any mean-pose baseline
    calls = []

    def fake(model, data, *args, **kwargs):
        m = real(model, data, *args, **kwargs)
        if data.split == split and len(calls) < 2:
            m['mpjpe'] = script[len(calls)]
            calls.append(m['mpjpe'])
        return m

    monkeypatch.setattr(train_mod, 'evaluate', fake)
    out = tmp_path / 'run'
    assert main(['train', *TINY, '--epochs', '2', '--val-fraction', val_fraction,
                 '--out', str(out)]) == 0
    err = capsys.readouterr().err
    assert 'epoch 2' in err and 'exploding' in err and 'epoch 1' not in err
    best = torch.load(out / 'best.pt', weights_only=True)
    assert best['epoch'] == 1 and best['best_epoch'] == 1
    report = json.loads((out / 'report.json').read_text())
    assert report['best']['epoch'] == 1 and report['best']['step'] == 3


# -------------------------------------------------------------- item 5, 13

def test_checkpoint_contents_are_validated(trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path)
    ck = out / 'best.pt'
    original = ck.read_bytes()

    def restore():
        ck.write_bytes(original)

    def first_weight(c):
        # a view of the largest entry of the first weight matrix
        w = next(v for v in c['model'].values() if v.is_floating_point() and v.dim() == 2)
        k = int(w.abs().argmax())
        return w.view(-1)[k:k + 1]

    def evaluate_error():
        return error_of(capsys, ['evaluate', '--checkpoint', str(ck)])

    # one flipped exponent bit (x 2**100): the digest no longer matches ...
    c = torch.load(ck, weights_only=True)
    first_weight(c).mul_(2.0 ** 100)
    torch.save(c, ck)
    assert 'does not match its digest' in evaluate_error()
    # ... and without a digest (older files) the weight is implausible
    c.pop('digest')
    torch.save(c, ck)
    assert 'implausible' in evaluate_error()
    cases = [
        (lambda c: first_weight(c).fill_(float('nan')), 'NaN'),
        (lambda c: c.pop('mean_pose'), 'incomplete checkpoint, no mean_pose'),
        (lambda c: c.__setitem__('mean_pose', torch.zeros(5, 3)), 'mean_pose must be [17, 3]'),
        (lambda c: c['args'].__setitem__('hidden_channels', 20000),
         'hidden_channels=20000 does not match the weights'),
        (lambda c: c['args'].__setitem__('num_layers', 10 ** 3), 'num_layers=1000'),
        (lambda c: c['args'].__setitem__('views', 10 ** 9), 'views=1000000000 must be at most'),
        (lambda c: c['args'].__setitem__('lr', 'fast'), 'lr='),
        (lambda c: c['args'].__setitem__('dropout', 1.5), 'dropout=1.5 must be in'),
        (lambda c: c.__setitem__('global_step', -1), 'global_step must be a non-negative'),
        (lambda c: c.__setitem__('format', 'other'), 'not a pyg-skeleton lifting checkpoint'),
    ]
    for change, expected in cases:
        restore()
        rewrite(ck, change)
        msg = evaluate_error()
        assert expected in msg and str(ck) in msg, (expected, msg)
    restore()
    assert main(['evaluate', '--checkpoint', str(ck)]) == 0
    capsys.readouterr()
    # the evaluation's --out is never the checkpoint itself, nor a folder
    msg = error_of(capsys, ['evaluate', '--checkpoint', str(ck), '--out', str(ck),
                            '--overwrite'])
    assert 'is the checkpoint' in msg and ck.read_bytes() == original
    assert 'is a folder' in error_of(capsys, ['evaluate', '--checkpoint', str(ck), '--out',
                                              str(out), '--overwrite'])


# -------------------------------------------------------------------- item 8

def test_resume_applies_or_refuses_options(trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path)
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--no-progress'])
    assert 'complete' in msg and '--epochs' in msg
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--epochs', '3',
                            '--lr', '0.01'])
    assert '--lr 0.01 differs' in msg
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--epochs', '1'])
    assert '--epochs 1' in msg and 'already trained 1' in msg
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--overwrite'])
    assert '--overwrite' in msg
    # --epochs extends the run: 2 more epochs of 3 steps
    assert main(['train', '--resume', '--out', str(out), '--epochs', '3', '--no-progress',
                 '--no-plots', '--batch-size', '32']) == 0
    last = torch.load(out / 'last.pt', weights_only=True)
    assert last['epoch'] == 3 and last['global_step'] == 9 and last['args']['epochs'] == 3
    assert len(json.loads((out / 'metrics.json').read_text())['epochs']) == 3


def test_resume_reopens_a_file_dataset_only_when_given(tmp_path, capsys):
    pos = np.random.default_rng(0).normal(size=(200, 17, 3)) * 0.3
    data = tmp_path / 'poses.npz'
    np.savez(data, positions=pos)
    args = [a if a != 'synthetic' else str(data) for a in TINY]
    out = tmp_path / 'run'
    assert main(['train', *args, '--epochs', '1', '--out', str(out)]) == 0
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--epochs', '2'])
    assert '--dataset' in msg and str(data) in msg
    other = tmp_path / 'other.npz'
    np.savez(other, positions=pos)
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--epochs', '2',
                            '--dataset', str(other)])
    assert 'differs' in msg
    assert main(['train', '--resume', '--out', str(out), '--epochs', '2', '--no-progress',
                 '--dataset', str(data)]) == 0


# --------------------------------------------------------------- item 9, 14

def test_outputs_never_written_through_links(trained, tmp_path, capsys):
    outside = tmp_path / 'outside.txt'
    outside.write_text('keep')
    link = tmp_path / 'link.png'
    link.symlink_to(outside)
    write_atomic(link, b'new')
    assert outside.read_text() == 'keep' and not link.is_symlink()
    assert link.read_bytes() == b'new'
    out = copy_run(trained, tmp_path)
    (out / 'curves.png').symlink_to(outside)
    msg = error_of(capsys, ['train', '--resume', '--out', str(out), '--epochs', '2'])
    assert 'symbolic link' in msg and 'curves.png' in msg
    assert outside.read_text() == 'keep'


def test_stale_temporaries_removed_and_disk_errors(trained, tmp_path, capsys, monkeypatch):
    out = copy_run(trained, tmp_path)
    stale = [out / '.last.pt.k1ll3d.tmp', out / '.curves.png.x.tmp.png']
    for p in stale:
        p.write_bytes(b'partial')
    keep = out / '.notes.tmp'
    keep.write_text('mine')
    assert main(['train', '--resume', '--out', str(out), '--epochs', '2', '--no-progress',
                 '--no-plots']) == 0
    capsys.readouterr()
    assert not any(p.exists() for p in stale) and keep.exists()

    real = os.fsync
    calls = []

    def full(fd, fail_from):
        calls.append(fd)
        if len(calls) >= fail_from:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real(fd)

    # full from the start: found by the probe, before any data is loaded
    monkeypatch.setattr(os, 'fsync', lambda fd: full(fd, 1))
    msg = error_of(capsys, ['train', *TINY, '--epochs', '1', '--out', str(tmp_path / 'a')])
    assert msg.endswith('disk full') and str(tmp_path) in msg
    # full later: at the first checkpoint, one line naming the file (the
    # fourth fsync: two probes of the folder, config.json, the checkpoint)
    calls.clear()
    monkeypatch.setattr(os, 'fsync', lambda fd: full(fd, 4))
    msg = error_of(capsys, ['train', *TINY, '--epochs', '1', '--out', str(tmp_path / 'b')])
    assert 'last.pt: disk full' in msg or 'best.pt: disk full' in msg
    assert not [p for p in (tmp_path / 'b').iterdir() if p.name.endswith('.tmp')]


# ------------------------------------------------------------------- item 15

def test_only_user_errors_are_one_line(tmp_path, capsys, monkeypatch):
    def bug(args):
        raise ValueError('an internal bug')

    monkeypatch.setattr(train_mod, 'load_data', bug)
    assert main(['train', *TINY, '--out', str(tmp_path / 'r')]) == 1
    err = capsys.readouterr().err
    assert 'Traceback' in err and 'an internal bug' in err
    monkeypatch.undo()
    assert main(['--debug', 'evaluate', '--checkpoint', str(tmp_path / 'none.pt')]) == 2
    err = capsys.readouterr().err
    assert 'Traceback' in err and 'checkpoint not found' in err
    msg = error_of(capsys, ['train', *TINY, '--views', '0', '--out', str(tmp_path / 'r')])
    assert '--views must be at least 1' in msg


# ------------------------------------------------------------------- item 16

DDP_SCRIPT = '''
import os, sys, torch
import torch.nn.functional as F
masks, real = [], F.dropout

def recording(input, p=0.5, training=True, inplace=False):
    out = real(input, p, training, inplace)
    if training and p > 0:  # dropped: zero out of a non-zero input
        masks.append(torch.stack([(out == 0).flatten(), (input != 0).flatten()]))
    return out

F.dropout = recording
from pyg_skeleton.cli import main
code = main(sys.argv[1:])
out = sys.argv[sys.argv.index('--out') + 1]
torch.save({'masks': masks}, os.path.join(out, f'masks{os.environ["RANK"]}.pt'))
sys.exit(code)
'''


def test_ddp_ranks_draw_different_dropout_masks(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    script = tmp_path / 'record.py'
    script.write_text(DDP_SCRIPT)
    out = tmp_path / 'ddp'
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO))
    run = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nnodes', '1', '--nproc-per-node', '2',
         '--master-addr', '127.0.0.1', '--master-port', str(port), str(script), 'train',
         *TINY, '--epochs', '1', '--dropout', '0.5', '--seed', '5', '--out', str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    m0 = torch.load(out / 'masks0.pt', weights_only=True)['masks']
    m1 = torch.load(out / 'masks1.pt', weights_only=True)['masks']
    assert len(m0) == len(m1) > 0
    # each rank drops about half its units, and not the same ones
    for (a, nz_a), (b, nz_b) in zip(m0, m1):
        assert a.shape == b.shape
        both = nz_a & nz_b
        assert both.sum() > 100
        assert 0.35 < a[nz_a].float().mean() < 0.65 and 0.35 < b[nz_b].float().mean() < 0.65
        assert (a[both] != b[both]).float().mean() > 0.3


# ------------------------------------------------------------------- item 4

def test_coarsen_outputs_are_checked(tmp_path, capsys):
    from pyg_skeleton.mesh.hierarchy import MeshHierarchy
    rng = np.random.default_rng(0)
    n = 6
    faces = [f for i in range(n - 1) for j in range(n - 1) for f in (
        [i * n + j, i * n + j + 1, (i + 1) * n + j],
        [i * n + j + 1, (i + 1) * n + j + 1, (i + 1) * n + j])]
    mesh = tmp_path / 'm.npz'
    np.savez(mesh, vertices=rng.random((n * n, 3)), faces=np.array(faces))
    mesh_bytes = mesh.read_bytes()

    def coarsen(*extra):
        return main(['coarsen', str(mesh), '--max-nodes', '5', *extra])

    def err():
        return capsys.readouterr().err

    assert coarsen('-o', str(tmp_path / 'levels.png')) == 2
    assert '.pt' in err()
    for bad, expected in ((['--levels', '-1'], '--levels must be in 1..32'),
                          (['--levels', '100000'], '--levels must be in 1..32'),
                          (['--max-nodes', '0'], '--max-nodes must be at least 1')):
        assert coarsen('-o', str(tmp_path / 'h.pt'), *bad) == 2
        assert expected in err()
    assert not (tmp_path / 'h.pt').exists()
    assert coarsen('-o', str(tmp_path / 'h.pt'), '--plot', str(tmp_path / 'h.pt')) == 2
    assert 'same file' in err()
    assert coarsen('-o', str(tmp_path / 'h.pt'), '--plot', str(tmp_path / 'h.jpg')) == 2
    assert '.png' in err()
    (tmp_path / 'm.pt').symlink_to(mesh)
    assert coarsen('-o', str(tmp_path / 'm.pt'), '--overwrite') == 2
    assert 'input mesh' in err()
    assert mesh.read_bytes() == mesh_bytes
    (tmp_path / 'm.pt').unlink()
    assert coarsen('-o', str(tmp_path / 'h.pt')) == 0
    first = (tmp_path / 'h.pt').read_bytes()
    assert (tmp_path / 'h.png').stat().st_size > 0
    assert coarsen('-o', str(tmp_path / 'h.pt')) == 2
    assert 'exists' in err() and (tmp_path / 'h.pt').read_bytes() == first
    # --overwrite replaces a link in the output's place, not its target
    outside = tmp_path / 'outside.png'
    outside.write_bytes(b'keep')
    (tmp_path / 'h.png').unlink()
    (tmp_path / 'h.png').symlink_to(outside)
    assert coarsen('-o', str(tmp_path / 'h.pt'), '--overwrite') == 0
    assert outside.read_bytes() == b'keep' and not (tmp_path / 'h.png').is_symlink()
    assert MeshHierarchy.load(tmp_path / 'h.pt').num_nodes[0] == n * n
    assert not [p for p in tmp_path.iterdir() if '.tmp' in p.name]


def test_given_options_tell_defaults_from_choices():
    from pyg_skeleton.cli.main import _given_options
    argv = ['train', '--resume', '--lr', '0.001', '--no-flip-test', '--out', 'x']
    args = build_parser().parse_args(argv)
    # --lr 0.001 is the default value, but it was written: it counts
    assert _given_options(argv, args) == {'resume', 'lr', 'flip_test', 'out'}
    # a namespace built without main(): the options that differ from the defaults
    ns = build_parser().parse_args(['train', '--epochs', '3', '--lr', '0.001'])
    assert cli_train.given_options(ns) == {'epochs'}

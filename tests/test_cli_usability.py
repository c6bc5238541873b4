"""The command line as a new user meets it: optional plots, help on every
option, model names, HGN's mesh, every skeleton, logs, and evaluation
reports (issue 23)."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.cli import MODELS, build_model, main
from pyg_skeleton.cli.main import build_parser
from pyg_skeleton.training.trainer import CRASH_ENV

REPO = Path(__file__).resolve().parents[1]
# a tiny, fast run: 100 synthetic poses x 2 views, small model
TINY = ['--dataset', 'synthetic', '--synthetic-train', '100', '--synthetic-test', '10',
        '--views', '2', '--batch-size', '32', '--hidden-channels', '8', '--num-layers', '1',
        '--epochs', '1', '--no-plots']
# runs the command line in a fresh process with matplotlib hidden (as after a
# plain `pip install`, which does not bring it)
NO_MATPLOTLIB = ("import sys; sys.modules['matplotlib'] = None; "
                 "from pyg_skeleton.cli import main; sys.exit(main(sys.argv[1:]))")


def run_cli(args, env=None, code=None, timeout=300):
    full_env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(REPO), **(env or {}))
    cmd = [sys.executable, '-c', code] if code else [sys.executable, '-m', 'pyg_skeleton.cli']
    return subprocess.run(cmd + list(args), cwd=REPO, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def sphere_obj(path: Path, rings: int = 10, segments: int = 16) -> Path:
    """A closed UV sphere (an .obj written here, no asset)."""
    verts = [(0.0, 1.0, 0.0)]
    for i in range(1, rings):
        t = np.pi * i / rings
        verts += [(np.sin(t) * np.cos(2 * np.pi * j / segments), np.cos(t),
                   np.sin(t) * np.sin(2 * np.pi * j / segments)) for j in range(segments)]
    verts.append((0.0, -1.0, 0.0))

    def ring(i, j):
        return 1 + (i - 1) * segments + j % segments
    faces = [(0, ring(1, j + 1), ring(1, j)) for j in range(segments)]
    for i in range(1, rings - 1):
        for j in range(segments):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [(a, b, d), (a, d, c)]
    last = len(verts) - 1
    faces += [(last, ring(rings - 1, j), ring(rings - 1, j + 1)) for j in range(segments)]
    path.write_text(''.join(f'v {x} {y} {z}\n' for x, y, z in verts)
                    + ''.join(f'f {a + 1} {b + 1} {c + 1}\n' for a, b, c in faces))
    return path


def bandai_layout_file(path: Path, frames_per_sequence: int = 30) -> Path:
    """A small file of the Bandai layout: 3 actors x 2 sequences of
    synthetic h36m17 poses (not Bandai-Namco's data)."""
    from pyg_skeleton.datasets.synthetic import synthetic_poses
    seq_actor = np.array([0, 0, 1, 1, 2, 2])
    n = frames_per_sequence
    S = len(seq_actor)
    seq = np.repeat(np.arange(S), n)
    np.savez(path, positions=synthetic_poses(S * n, seed=5),
             sequence=seq, actor=seq_actor[seq], content=seq % 2, style=np.zeros(S * n, int),
             content_names=np.array(['walk', 'run']), style_names=np.array(['normal']),
             seq_file=np.array([f'take{s}.bvh' for s in range(S)]),
             seq_start=np.arange(S) * n, seq_len=np.full(S, n), seq_actor=seq_actor,
             seq_content=np.arange(S) % 2, seq_style=np.zeros(S, int))
    return path


# ---------------------------------------------------------- 1. plots optional

def test_coarsen_and_train_without_matplotlib(tmp_path):
    mesh = sphere_obj(tmp_path / 'ball.obj')
    r = run_cli(['coarsen', str(mesh), '-o', str(tmp_path / 'h.pt'), '--padded'],
                code=NO_MATPLOTLIB)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'h.pt').is_file() and not (tmp_path / 'h.png').exists()
    assert 'Traceback' not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and 'matplotlib is not installed' in lines[0]
    assert 'saved' in r.stdout and 'h.png' not in r.stdout
    assert not list(tmp_path.glob('.h.png*'))  # no temporary file left

    out = tmp_path / 'run'
    args = [a for a in TINY if a != '--no-plots']
    r = run_cli(['train', *args, '--no-progress', '--out', str(out)], code=NO_MATPLOTLIB)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        'no plots: matplotlib is not installed (pip install matplotlib)']
    listed = r.stdout.strip().splitlines()[-1]
    assert listed.startswith('outputs in') and '.png' not in listed
    assert not list(out.glob('*.png'))
    for name in ('best.pt', 'report.json', 'config.json', 'train.log'):
        assert name in listed and (out / name).is_file()


# ------------------------------------------------------- 2. help and models

def test_every_option_of_every_command_has_help():
    parser = build_parser()
    missing = []
    for name, sub in parser.subcommand_parsers.items():
        for action in sub._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS or not action.help.strip():
                missing.append(f'{name} {action.option_strings[-1]}')
    assert not missing, missing


def test_model_and_skeleton_choices_in_help_and_aliases():
    parser = build_parser()
    train_help = parser.subcommand_parsers['train'].format_help()
    names = list(MODELS)
    assert len(names) == len(set(names))
    for name in names:
        assert name in train_help
    for name in Skeleton.presets():
        assert name in train_help
    # one name per model: semgcn_sem was semgcn; it works, warned, unlisted
    assert 'semgcn_sem' not in names
    assert 'semgcn_sem,' not in train_help.replace('\n', ' ').replace(' ', '')
    assert 'semgcn_sem' in MODELS
    with pytest.warns(DeprecationWarning, match="now called 'semgcn'"):
        builder = MODELS['semgcn_sem']
    assert builder is MODELS['semgcn']
    # the listed names are different models: from the same initial draw,
    # no two have the same weights and outputs
    sk = Skeleton.preset('h36m17')
    x = torch.randn(3, 17, 2)
    seen = []
    for name in names:
        if name == 'hgn':
            continue
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # no listed name is deprecated
            torch.manual_seed(0)
            m = build_model(name, sk, argparse.Namespace(hidden_channels=8, num_layers=1))
        shapes = [(k, tuple(v.shape)) for k, v in m.state_dict().items()]
        out = m.eval()(x)
        for other, (other_shapes, other_out) in seen:
            assert shapes != other_shapes or not torch.allclose(out, other_out), (name, other)
        seen.append((name, (shapes, out)))


def test_evaluate_has_only_its_own_options():
    parser = build_parser()
    evaluate = {a.dest for a in parser.subcommand_parsers['evaluate']._actions}
    train = {a.dest for a in parser.subcommand_parsers['train']._actions}
    # options of training only: not offered by evaluate
    for dest in ('synthetic_train', 'max_frames', 'epochs', 'lr', 'val_fraction', 'resume',
                 'seed', 'hidden_channels'):
        assert dest in train and dest not in evaluate, dest
    help_text = parser.subcommand_parsers['evaluate'].format_help()
    assert '--synthetic-train' not in help_text and '--max-frames' not in help_text
    assert "'all'" in help_text  # --test-actor all


def test_old_model_name_trains_as_the_new_one(tmp_path, capsys):
    out = tmp_path / 'run'
    assert main(['train', *TINY, '--no-progress', '--model', 'semgcn_sem',
                 '--out', str(out)]) == 0
    err = capsys.readouterr().err
    assert "model 'semgcn_sem' is now called 'semgcn'" in err
    ckpt = torch.load(out / 'best.pt', weights_only=True)
    assert ckpt['model_name'] == 'semgcn' and ckpt['args']['model'] == 'semgcn'


# ------------------------------------------------------------ 3. HGN's mesh

def test_every_option_named_in_a_message_exists():
    # the advice of the command line's messages names its own options only
    # (pip's --no-deps aside)
    import re
    parser = build_parser()
    options = {'--debug', '--no-deps'}
    for sub in parser.subcommand_parsers.values():
        options |= set(sub._option_string_actions)
    for path in ('cli/train.py', 'training/trainer.py', 'training/outputs.py',
                 'training/checkpoint.py', 'nn/models/registry.py', 'datasets/lifting.py',
                 'datasets/synthetic.py', 'mesh/coarsen_cli.py'):
        text = (REPO / 'pyg_skeleton' / path).read_text()
        named = set(re.findall(r'--[a-z][a-z0-9-]*[a-z0-9]', text))
        assert named <= options, (path, sorted(named - options))


def test_hgn_trains_and_evaluates_on_a_mesh_file(tmp_path, capsys):
    mesh = sphere_obj(tmp_path / 'ball.obj')
    out = tmp_path / 'hgn'
    assert main(['train', *TINY, '--no-progress', '--model', 'hgn', '--mesh', str(mesh),
                 '--out', str(out)]) == 0
    ckpt = torch.load(out / 'best.pt', weights_only=True)
    assert ckpt['args']['mesh'] == str(mesh)
    capsys.readouterr()
    # the file is not reopened from the checkpoint: evaluate asks for it
    assert main(['evaluate', '--checkpoint', str(out / 'best.pt')]) == 2
    err = capsys.readouterr().err
    assert '--mesh' in err
    assert main(['evaluate', '--checkpoint', str(out / 'best.pt'), '--mesh', str(mesh)]) == 0
    # the error's advice names an option of the command
    assert main(['train', *TINY, '--model', 'semgcn', '--mesh', str(mesh),
                 '--out', str(tmp_path / 'x')]) == 2
    assert '--mesh is an option of model hgn' in capsys.readouterr().err


def test_hgn_mesh_hierarchy_file_and_missing_builtin(tmp_path, monkeypatch):
    from pyg_skeleton.mesh import MeshHierarchy
    from pyg_skeleton.mesh.io import read_mesh
    from pyg_skeleton.nn.models import registry
    mesh = sphere_obj(tmp_path / 'ball.obj')
    sk = Skeleton.preset('h36m17')
    # a saved padded hierarchy (as `pyg-skeleton coarsen --padded` writes it)
    h = MeshHierarchy.from_mesh(read_mesh(mesh), max_nodes=30, padded=True)
    h.save(tmp_path / 'h.pt')
    model = build_model('hgn', sk, argparse.Namespace(mesh=str(tmp_path / 'h.pt'),
                                                      hidden_channels=8))
    assert model(torch.randn(2, 17, 2)).shape == (2, 17, 3)
    # the HGN mesh branches have the sizes of the file's levels -2 and -3
    assert sum(p.numel() for p in model.parameters()) > 0
    MeshHierarchy.from_mesh(read_mesh(mesh), max_nodes=30).save(tmp_path / 'flat.pt')
    with pytest.raises(ValueError, match='not padded'):
        build_model('hgn', sk, argparse.Namespace(mesh=str(tmp_path / 'flat.pt')))
    # without the built-in mesh the advice names train's --mesh option
    def no_mesh():
        raise FileNotFoundError('no built-in mesh')
    monkeypatch.setattr(registry, 'body_hierarchy', no_mesh)
    with pytest.raises(ValueError, match='give --mesh FILE') as e:
        build_model('hgn', sk, argparse.Namespace())
    train = build_parser().subcommand_parsers['train']
    assert '--mesh' in train._option_string_actions
    assert 'reinstall pyg-skeleton' in str(e.value)


# ------------------------------------------------------ 4. every skeleton

@pytest.mark.parametrize('name', Skeleton.presets())
def test_every_preset_trains(tmp_path, capsys, name):
    out = tmp_path / name
    assert main(['train', *TINY, '--no-progress', '--skeleton', name, '--steps-per-epoch', '2',
                 '--out', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['synthetic'] and np.isfinite(report['final']['mpjpe'])
    ckpt = torch.load(out / 'best.pt', weights_only=True)
    assert ckpt['skeleton']['name'] == name
    assert tuple(ckpt['mean_pose'].shape) == (Skeleton.preset(name).num_joints, 3)


# --------------------------------------------- 5. and 6. progress and logs

def test_redirected_progress_config_and_log(tmp_path):
    out = tmp_path / 'run'
    args = ['train', *TINY, '--synthetic-train', '200', '--out', str(out)]
    r = run_cli(args)  # stdout and stderr are pipes, not terminals
    assert r.returncode == 0, r.stderr
    assert '\r' not in r.stderr and '\r' not in r.stdout
    progress = [ln for ln in r.stderr.splitlines() if ln.startswith('epoch 1/1: step')]
    assert len(progress) == 3  # a line per quarter epoch (the epoch line ends it)
    # train.log holds the console's lines (stdout here; no warnings)
    assert (out / 'train.log').read_text() == r.stdout
    config = json.loads((out / 'config.json').read_text())
    from pyg_skeleton import __version__
    assert config['version'] == __version__ and config['model'] == 'semgcn'
    assert config['skeleton']['name'] == 'h36m17'
    assert config['options']['epochs'] == 1 and config['options']['synthetic_train'] == 200
    assert config['options']['seed'] == 0 and config['options']['lr'] == 1e-3
    assert config['samples']['train'] == 2 * 200  # 2 views

    # a run that dies at its first step has already written both
    crashed = tmp_path / 'crashed'
    r = run_cli(['train', *TINY, '--no-progress', '--out', str(crashed)],
                env={CRASH_ENV: '1'})
    assert r.returncode == 17
    assert json.loads((crashed / 'config.json').read_text())['options']['out'] == str(crashed)
    log = (crashed / 'train.log').read_text().splitlines()
    assert log[0].startswith('pyg-skeleton train: semgcn on synthetic') and len(log) == 2
    assert not (crashed / 'last.pt').exists()


# ------------------------------------------------------------- 7. evaluate

def test_evaluate_names_the_file_and_scores_every_actor(tmp_path, capsys):
    from pyg_skeleton.datasets.bandai import bandai_label
    assert bandai_label('x/bandai2_h36m17.npz').startswith('Bandai-Namco mocap 2')
    data = bandai_layout_file(tmp_path / 'other.npz')
    out = tmp_path / 'run'
    assert main(['train', '--dataset', str(data), '--views', '1', '--frame-step', '2',
                 '--batch-size', '16', '--hidden-channels', '8', '--num-layers', '1',
                 '--epochs', '1', '--no-plots', '--no-progress', '--out', str(out)]) == 0
    assert 'other.npz (Bandai layout)' in capsys.readouterr().out
    ckpt = str(out / 'best.pt')

    single = {}
    for actor in (0, 1, 2):
        js = tmp_path / f'a{actor}.json'
        assert main(['evaluate', '--checkpoint', ckpt, '--dataset', str(data),
                     '--test-actor', str(actor), '--out', str(js)]) == 0
        text = capsys.readouterr().out
        assert 'Bandai-Namco' not in text and 'other.npz (Bandai layout)' in text
        # the settings kept from the checkpoint are said
        assert 'settings from the checkpoint:' in text and '--frame-step 2' in text
        assert '--test-actor' not in text.splitlines()[1]  # given on the command line
        single[actor] = json.loads(js.read_text())
        assert single[actor]['from_checkpoint']['frame_step'] == 2
    assert main(['evaluate', '--checkpoint', ckpt, '--dataset', str(data),
                 '--test-actor', 'all', '--out', str(tmp_path / 'all.json')]) == 0
    text = capsys.readouterr().out
    rows = [ln for ln in text.splitlines() if ln.startswith('| ')][1:]
    assert [r.split('|')[1].strip() for r in rows] == ['0 *', '1 *', '2', 'mean']
    result = json.loads((tmp_path / 'all.json').read_text())
    for actor in (0, 1, 2):
        got = result['per_actor'][str(actor)]
        assert got['metrics']['mpjpe'] == pytest.approx(single[actor]['metrics']['mpjpe'])
        assert got['samples'] == 2 * 30 // 2  # 2 sequences of 30 frames, every 2nd, 1 view
        assert got['in_training_data'] == (actor != 2)
    mean = np.mean([single[a]['metrics']['mpjpe'] for a in (0, 1, 2)])
    assert result['mean_over_actors']['mpjpe'] == pytest.approx(mean)
    assert f"{mean:7.1f}" in rows[-1]
    # 'all' needs a data set with actors
    assert main(['evaluate', '--checkpoint', ckpt, '--dataset', 'synthetic',
                 '--test-actor', 'all']) == 2
    assert 'has no actors' in capsys.readouterr().err


def test_lift_and_demo_without_matplotlib(tmp_path):
    # The README's main command (`python -m pyg_skeleton`, the demo) after a
    # plain `pip install`: one line says the pictures were skipped, the rest
    # is written, exit 0.
    kp = tmp_path / 'kp.npz'
    rng = np.random.default_rng(0)
    np.savez(kp, keypoints=np.concatenate(
        [rng.uniform(200, 800, (3, 17, 2)), np.ones((3, 17, 1))], -1).astype(np.float32))
    r = run_cli(['lift', str(kp), '--format', 'h36m17', '--out', str(tmp_path / 'lifted')],
                code=NO_MATPLOTLIB)
    assert r.returncode == 0, r.stderr
    assert 'Traceback' not in r.stderr
    assert 'no plots: matplotlib is not installed (pip install matplotlib)' in r.stderr
    assert sorted(p.name for p in (tmp_path / 'lifted').iterdir()) == [
        'poses3d.json', 'poses3d.npz']
    r = run_cli(['demo', '--steps', '4', '--out', str(tmp_path / 'demo')],
                code=NO_MATPLOTLIB, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        'no plots: matplotlib is not installed (pip install matplotlib)']
    written = {p.name for p in (tmp_path / 'demo').iterdir()}
    assert {'poses3d.npz', 'report.json', 'small_lifter.pt'} <= written
    assert not any(name.endswith(('.png', '.gif')) for name in written)
    listed = next(ln for ln in r.stdout.splitlines() if ln.startswith('outputs in'))
    assert '.png' not in listed and '.gif' not in listed and 'poses3d.json' in listed

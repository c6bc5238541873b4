"""The library trainer (pyg_skeleton.training): Trainer, TrainConfig and the
JSON config files of ``pyg-skeleton train --config``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.cli import main
from pyg_skeleton.datasets.lifting import LiftingTensors
from pyg_skeleton.training import (
    ConfigError,
    TrainConfig,
    Trainer,
    TrainingError,
    load_data,
    lr_at,
    read_config_file,
)
from pyg_skeleton.training.batches import StreamBatches

# a run of a few seconds: 400 poses x 2 views, a one-block SemGCN of width 16
TINY = dict(synthetic_train=200, synthetic_test=20, views=2, batch_size=32,
            hidden_channels=16, num_layers=1, no_progress=True, no_plots=True)


def quiet(text='', err=False):
    pass


def naive_mpjpe(model, data) -> float:
    """Mean joint distance in mm, one sample at a time."""
    model.eval()
    with torch.no_grad():
        errors = [(model(data.x[i:i + 1])[0] - data.y[i]).norm(dim=-1).mean()
                  for i in range(len(data))]
    return 1000 * float(torch.stack(errors).mean())


def test_fit_reduces_the_loss_and_evaluate_reads_the_checkpoint_back(tmp_path):
    config = TrainConfig(**TINY, epochs=3, val_fraction=0.2, flip_test=False,
                         out=str(tmp_path / 'run'))
    trainer = Trainer(config=config, log=quiet)
    report = trainer.fit()
    losses = [row['train_loss'] for row in trainer.history]
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0]
    for name in ('best.pt', 'last.pt', 'report.json', 'metrics.json', 'config.json'):
        assert (tmp_path / 'run' / name).is_file()
    written = json.loads((tmp_path / 'run' / 'report.json').read_text())['final']
    assert written['mpjpe'] == pytest.approx(report['final']['mpjpe'])
    # the trainer's model against a per-sample loop
    test = trainer.data[2]
    assert report['final']['mpjpe'] == pytest.approx(naive_mpjpe(trainer.model, test),
                                                     rel=1e-5)
    # a new trainer builds the model of the checkpoint and loads its weights
    fresh = Trainer(config=config, log=quiet)
    best = fresh.evaluate(tmp_path / 'run' / 'best.pt')
    assert best['mpjpe'] == pytest.approx(report['best']['test']['mpjpe'], rel=1e-6)
    last = fresh.evaluate(tmp_path / 'run' / 'last.pt')
    assert last['mpjpe'] == pytest.approx(report['final']['mpjpe'], rel=1e-6)
    # the weights keep PyTorch's module versions (a layout change can be
    # migrated on loading), as torch.save(model.state_dict()) does
    saved = torch.load(tmp_path / 'run' / 'last.pt', weights_only=True)['model']
    assert saved._metadata == trainer.model.state_dict()._metadata
    assert saved._metadata['input.bn']['version'] == 2  # BatchNorm's


def test_fit_a_model_and_data_of_ones_own(tmp_path):
    # any module mapping [*, J, 2] to [*, J, 3], on splits made beforehand
    config = TrainConfig(**TINY, epochs=2, val_fraction=0.0, lr=1e-2,
                         out=str(tmp_path / 'mlp'))
    data = load_data(config)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(-2), torch.nn.Linear(34, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 51), torch.nn.Unflatten(-1, (17, 3)))
    trainer = Trainer(model, config, data=data, log=quiet)
    trainer.fit()
    assert trainer.model is model
    assert trainer.history[-1]['train_loss'] < trainer.history[0]['train_loss']
    # evaluate() of the trainer's model, and of the checkpoint into a copy of it
    now = trainer.evaluate(flip=False)
    assert now['mpjpe'] == pytest.approx(naive_mpjpe(model, data[2]), rel=1e-5)
    assert trainer.evaluate(tmp_path / 'mlp' / 'last.pt', flip=False)['mpjpe'] == \
        pytest.approx(now['mpjpe'], rel=1e-6)


def test_resumed_fit_reaches_the_weights_of_an_uninterrupted_one(tmp_path):
    config = TrainConfig(**TINY, epochs=2, val_fraction=0.0)
    Trainer(config=config.replace(out=str(tmp_path / 'whole')), log=quiet).fit()
    part = config.replace(epochs=1, out=str(tmp_path / 'part'))
    Trainer(config=part, log=quiet).fit()
    resumed = Trainer(config=part.replace(epochs=2, resume=True), log=quiet)
    resumed.fit()
    assert [row['epoch'] for row in resumed.history] == [1, 2]
    whole = torch.load(tmp_path / 'whole' / 'last.pt', weights_only=True)['model']
    again = torch.load(tmp_path / 'part' / 'last.pt', weights_only=True)['model']
    for name, weight in whole.items():
        torch.testing.assert_close(again[name], weight, rtol=0, atol=0)
    # the options that define the run cannot change on resume
    with pytest.raises(TrainingError, match=r"the run has lr=0\.001, not 0\.01"):
        Trainer(config=part.replace(epochs=3, resume=True, lr=0.01), log=quiet).fit()


def test_fit_refuses_a_folder_holding_a_run(tmp_path):
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'last.pt').write_bytes(b'x')
    with pytest.raises(TrainingError, match='already holds a run'):
        Trainer(config=TrainConfig(**TINY, out=str(tmp_path / 'run')), log=quiet).fit()


@pytest.mark.parametrize('option, value, problem', [
    ('batch_size', 0, 'must be at least 1'),
    ('batch_size', 2.5, 'must be a whole number'),
    ('batch_size', True, 'must be a whole number'),
    ('epochs', '10', 'must be a whole number'),
    ('lr', 0.0, 'must be positive'),
    ('lr', float('nan'), 'must be finite'),
    ('lr', 'fast', 'must be a number'),
    ('lr_decay', -1.0, 'must be positive'),
    ('val_fraction', 1.0, 'must be in [0, 1)'),
    ('dropout', -0.1, 'must be at least 0'),
    ('hidden_channels', 10 ** 6, 'must be at most 65536'),
    ('lr_schedule', 'linear', 'must be one of exp, exp_to_min, cosine, constant'),
    ('loss', 'l1', 'must be one of semgcn, mse'),
    ('batch_order', 'random', 'must be one of sampler, stream'),
    ('flip_test', 1, 'must be true or false'),
    ('model', '', 'must be a non-empty string'),
    ('dataset', None, 'must be given'),
    ('samples', -1, 'must be at least 0'),
])
def test_config_rejects_each_bad_value_in_one_line(option, value, problem):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**{option: value})
    message = str(info.value)
    assert message == f"{option} {problem} (got {value!r})"
    assert '\n' not in message
    assert (info.value.option, info.value.problem) == (option, problem)


def test_config_defaults_and_out_dir():
    config = TrainConfig()
    assert (config.batch_size, config.lr, config.epochs, config.val_fraction) == \
        (256, 1e-3, 10, 0.1)
    assert str(config.out_dir) == 'runs/semgcn-synthetic'
    assert str(config.replace(dataset='data/poses.npz').out_dir) == 'runs/semgcn-poses'
    # paths are kept as the strings a checkpoint stores
    assert config.replace(out=Path('runs') / 'x').out == str(Path('runs') / 'x')
    with pytest.raises(ConfigError, match='views must be at least 1'):
        config.replace(views=0)


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / 'run.json'
    path.write_text(json.dumps({'epochs': 3, 'lr': 1, 'seed': 7, 'flip_test': False}))
    assert read_config_file(path) == {'epochs': 3, 'lr': 1.0, 'seed': 7, 'flip_test': False}
    config = TrainConfig.from_file(path, epochs=5)
    assert (config.epochs, config.lr, config.seed, config.flip_test) == (5, 1.0, 7, False)
    assert config.batch_size == 256  # neither in the file nor given: the default


@pytest.mark.parametrize('text, message', [
    ('{"epochs": 2, "learning_rate": 0.1}', "learning_rate is not an option"),
    ('{"epochs": "two"}', "epochs must be a whole number (got 'two')"),
    ('{"lr": null}', "lr must be given (got None)"),
    ('{"epochs": 2,}', "not a JSON config file"),
    ('[["epochs", 2]]', "a config file holds a JSON object of options, got list"),
])
def test_bad_config_file_is_one_line_naming_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / 'bad.json'
    path.write_text(text)
    with pytest.raises(TrainingError) as info:
        read_config_file(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert main(['train', '--config', str(path), '--out', str(tmp_path / 'r')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0, err
    assert err.startswith('pyg-skeleton train: error: ') and str(path) in err and message in err
    assert not (tmp_path / 'r').exists()


def test_command_line_wins_over_config_file(tmp_path, capsys):
    path = tmp_path / 'tiny.json'
    path.write_text(json.dumps({**TINY, 'epochs': 3, 'lr': 0.002, 'seed': 5,
                                'val_fraction': 0.0}))
    out = tmp_path / 'run'
    assert main(['train', '--config', str(path), '--epochs', '1', '--batch-size', '16',
                 '--out', str(out)]) == 0
    stored = torch.load(out / 'best.pt', weights_only=True)['args']
    # from the command line
    assert (stored['epochs'], stored['batch_size']) == (1, 16)
    # from the file
    assert (stored['lr'], stored['seed'], stored['hidden_channels']) == (0.002, 5, 16)
    # the defaults otherwise
    assert stored['lr_schedule'] == 'exp'
    options = json.loads((out / 'config.json').read_text())['options']
    assert options['lr'] == 0.002 and options['epochs'] == 1
    capsys.readouterr()
    # a missing file is one line too
    assert main(['train', '--config', str(tmp_path / 'none.json'), '--out',
                 str(tmp_path / 'r2')]) == 2
    assert 'file not found' in capsys.readouterr().err


def test_config_file_values_count_as_given_on_resume(tmp_path, capsys):
    out = tmp_path / 'run'
    args = ['train', '--synthetic-train', '200', '--synthetic-test', '20', '--views', '2',
            '--batch-size', '32', '--hidden-channels', '16', '--num-layers', '1',
            '--no-progress', '--no-plots', '--epochs', '1', '--out', str(out)]
    assert main(args) == 0
    capsys.readouterr()
    more = tmp_path / 'more.json'
    more.write_text(json.dumps({'epochs': 2}))
    assert main(['train', '--resume', '--config', str(more), '--out', str(out),
                 '--no-progress']) == 0
    assert torch.load(out / 'last.pt', weights_only=True)['epoch'] == 2
    capsys.readouterr()
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({'epochs': 3, 'lr': 0.5}))
    assert main(['train', '--resume', '--config', str(other), '--out', str(out)]) == 2
    assert '--lr 0.5 differs from the run' in capsys.readouterr().err


# ------------------------------------------------- the accuracy benchmarks' options

def small_lifter() -> torch.nn.Module:
    # dropout: the reference loop and the trainer must also agree on the random stream
    return torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(16, 3))


def random_poses(n: int, *lead: int) -> LiftingTensors:
    gen = torch.Generator().manual_seed(n)
    return LiftingTensors(torch.randn(n, *lead, 17, 2, generator=gen),
                          torch.randn(n, *lead, 17, 3, generator=gen),
                          torch.zeros(n, dtype=torch.long))


@pytest.mark.parametrize('lead', [(), (3,)])  # single poses and 3-frame clips
def test_stream_order_mse_and_per_step_decay_match_a_plain_loop(tmp_path, lead):
    # The loop that benchmarks/run_accuracy.py ran before it used the trainer,
    # written out: seed, initial weights, one generator whose successive
    # shuffles give the batches (a new one when no full batch is left), MSE,
    # Adam with ExponentialLR stepped after every step, down to lr_final.
    data, seed, steps, bs, lr, lr_final = random_poses(50, *lead), 3, 13, 8, 1e-2, 1e-4
    torch.manual_seed(seed)
    ref = small_lifter()
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, (lr_final / lr) ** (1 / steps))
    gen = torch.Generator().manual_seed(seed)
    order, pos, seen = torch.randperm(50, generator=gen), 0, []
    for _ in range(steps):
        if pos + bs > len(order):
            order, pos = torch.randperm(50, generator=gen), 0
        idx = order[pos:pos + bs]
        pos += bs
        seen.append(idx)
        loss = torch.nn.functional.mse_loss(ref(data.x[idx]), data.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    config = TrainConfig(seed=seed, batch_size=bs, batch_order='stream', epochs=3,
                         max_steps=steps, lr=lr, lr_schedule='exp_to_min', min_lr=lr_final,
                         loss='mse', flip_augment=False, flip_test=False, val_fraction=0.0,
                         no_progress=True, no_plots=True, out=str(tmp_path / 'run'))
    trainer = Trainer(small_lifter, config, data=(data, None, data),
                      skeleton=Skeleton.preset('h36m17'), log=quiet)
    report = trainer.fit()
    assert report['steps'] == steps and [h['epoch'] for h in trainer.history] == [1, 2, 3]
    # the builder was called after seeding: the same initial weights, the same
    # dropout masks, the same batches; Adam's updates are bit for bit the same
    for name, weight in ref.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], weight), name
    # the metrics count every pose of every clip once
    assert report['final']['num_joints_evaluated'] == data.y[..., 0].numel()
    # the batches of the stream, epoch by epoch
    batches = StreamBatches(data, bs, seed=seed)
    got = []
    for epoch in range(3):
        batches.set_epoch(epoch)
        got += [i for *_, i in batches]
    assert all(torch.equal(a, b) for a, b in zip(got, seen))


def test_exp_to_min_is_exponential_lr_stepped_per_step():
    config = TrainConfig(lr=1e-3, lr_schedule='exp_to_min', min_lr=1e-4)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.1 ** (1 / 1000))
    for step in range(1001):
        assert lr_at(config, step, 7, 1000) == pytest.approx(opt.param_groups[0]['lr'],
                                                             rel=1e-12)
        sched.step()
    assert lr_at(config, 1000, 7, 1000) == pytest.approx(1e-4, rel=1e-12)


def test_stream_batches_resume_replay_and_split_over_ranks():
    data = random_poses(30)
    one = StreamBatches(data, 6, seed=1)
    gen = torch.Generator().manual_seed(1)
    perms = [torch.randperm(30, generator=gen) for _ in range(3)]
    for epoch in (0, 1, 2, 1, 0, 2):  # in order, and replayed out of order
        one.set_epoch(epoch)
        assert torch.equal(one.indices(), perms[epoch])
        assert len(one) == 5
    # two ranks: their batch k together is the single-process batch k
    ranks = [StreamBatches(data, 6, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    one.set_epoch(2)
    for (*_, a), (*_, b), (*_, both) in zip(*ranks, one):
        assert sorted(torch.cat([a, b]).tolist()) == sorted(both.tolist())


def test_a_builder_must_give_a_module_and_options_that_do_not_fit(tmp_path):
    data = random_poses(40)
    config = TrainConfig(batch_size=8, epochs=1, val_fraction=0.0, no_progress=True,
                         no_plots=True, flip_augment=False, flip_test=False)
    sk = Skeleton.preset('h36m17')
    with pytest.raises(TrainingError, match='returned a dict, not a torch.nn.Module'):
        Trainer(dict, config.replace(out=str(tmp_path / 'a')), data=(data, None, data),
                skeleton=sk, log=quiet).fit()
    with pytest.raises(TrainingError, match='--bone-weight is a term of the semgcn loss, '
                                            'not of --loss mse'):
        Trainer(small_lifter, config.replace(loss='mse', bone_weight=1.0,
                                             out=str(tmp_path / 'b')),
                data=(data, None, data), skeleton=sk, log=quiet).fit()
    with pytest.raises(TrainingError, match='exp_to_min decays to --min-lr, which must be '
                                            'positive'):
        Trainer(small_lifter, config.replace(lr_schedule='exp_to_min', min_lr=0.0,
                                             out=str(tmp_path / 'c')),
                data=(data, None, data), skeleton=sk, log=quiet).fit()


def test_fit_without_a_test_split_trains_the_same_weights_and_scores_nothing(tmp_path):
    # the accuracy benchmarks score the final weights themselves
    data, sk = random_poses(40), Skeleton.preset('h36m17')
    config = TrainConfig(batch_size=8, epochs=2, val_fraction=0.0, no_progress=True,
                         flip_augment=False, flip_test=False, lr=1e-2)
    runs = {}
    for name, test in (('with', data), ('without', None)):
        trainer = Trainer(small_lifter, config.replace(out=str(tmp_path / name)),
                          data=(data, None, test), skeleton=sk, log=quiet)
        runs[name] = (trainer, trainer.fit())
    (a, with_test), (b, without) = runs['with'], runs['without']
    for name, weight in a.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[name], weight), name
    assert with_test['final'] is not None
    assert without['final'] is None and without['baseline'] is None
    assert without['best']['epoch'] == 2 and without['best']['test'] is None
    assert [h['test_mpjpe'] for h in b.history] == [None, None]
    assert [h['train_loss'] for h in b.history] == [h['train_loss'] for h in a.history]
    assert (tmp_path / 'without' / 'best.pt').is_file()
    assert not (tmp_path / 'without' / 'samples.png').exists()
    with pytest.raises(TrainingError, match='no test split to evaluate'):
        b.evaluate()


def test_device_option_overrides_the_automatic_choice(tmp_path, monkeypatch):
    # as on a machine whose automatic choice is another device (the GPU):
    # that device is `meta` here, on which no step could run
    monkeypatch.setattr('pyg_skeleton.training.trainer.setup_distributed',
                        lambda: (0, 1, torch.device('meta')))
    data, sk = random_poses(40), Skeleton.preset('h36m17')
    config = TrainConfig(batch_size=8, epochs=1, val_fraction=0.0, no_progress=True,
                         flip_augment=False, flip_test=False, device='cpu',
                         out=str(tmp_path / 'run'))
    trainer = Trainer(small_lifter, config, data=(data, None, data), skeleton=sk, log=quiet)
    report = trainer.fit()
    assert all(p.device.type == 'cpu' for p in trainer.model.parameters())
    assert json.loads((tmp_path / 'run' / 'config.json').read_text())['device'] == 'cpu'
    assert report['final']['mpjpe'] == pytest.approx(naive_mpjpe(trainer.model, data),
                                                     rel=1e-5)
    # the device is not an option that defines the run: resuming may change it
    monkeypatch.undo()
    resumed = Trainer(small_lifter, config.replace(epochs=2, resume=True, device=None),
                      data=(data, None, data), skeleton=sk, log=quiet)
    resumed.fit()
    assert [row['epoch'] for row in resumed.history] == [1, 2]
    with pytest.raises(ConfigError, match='device'):
        Trainer(small_lifter, config.replace(device='tpu'), data=(data, None, data),
                skeleton=sk, log=quiet).evaluate()


@pytest.mark.parametrize('device, problem', [
    ('tpu', "must be 'cpu', 'cuda' or 'cuda:N'"),
    ('meta', "must be 'cpu', 'cuda' or 'cuda:N'"),
    ('cuda:{count}', 'names a GPU this machine does not have ({count} CUDA device{s})'),
])
def test_device_option_is_checked_before_any_work(tmp_path, device, problem):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    s = '' if count == 1 else 's'
    device, problem = device.format(count=count), problem.format(count=count, s=s)
    data, sk = random_poses(8), Skeleton.preset('h36m17')
    config = TrainConfig(batch_size=8, epochs=1, no_progress=True, device=device,
                         out=str(tmp_path / 'run'))
    with pytest.raises(ConfigError) as info:
        Trainer(small_lifter, config, data=(data, None, data), skeleton=sk, log=quiet).fit()
    assert str(info.value) == f"device {problem} (got {device!r})"
    assert not (tmp_path / 'run' / 'config.json').exists()


def test_device_option_is_refused_under_torchrun(tmp_path, monkeypatch):
    import torch.distributed as dist
    monkeypatch.setenv('WORLD_SIZE', '2')
    monkeypatch.setenv('RANK', '0')
    data, sk = random_poses(8), Skeleton.preset('h36m17')
    config = TrainConfig(batch_size=8, epochs=1, no_progress=True, device='cpu',
                         out=str(tmp_path / 'run'))
    with pytest.raises(ConfigError, match='cannot be set when torchrun starts several '
                                          'processes'):
        Trainer(small_lifter, config, data=(data, None, data), skeleton=sk, log=quiet).fit()
    assert not dist.is_initialized()  # refused before the process group


def test_cli_train_device(tmp_path, capsys):
    out = tmp_path / 'run'
    args = ['train', '--synthetic-train', '40', '--synthetic-test', '8', '--views', '1',
            '--epochs', '1', '--batch-size', '16', '--hidden-channels', '8',
            '--num-layers', '1', '--no-progress', '--no-plots', '--out', str(out)]
    assert main(args + ['--device', 'tpu']) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--device must be 'cpu', 'cuda' or 'cuda:N' (got 'tpu')")
    assert len(err.splitlines()) == 1
    assert main(args + ['--device', 'cpu', '--overwrite']) == 0
    assert json.loads((out / 'config.json').read_text())['device'] == 'cpu'

"""The one model registry (:mod:`pyg_skeleton.nn.models.registry`): shared by
the command line, the trainer and ``benchmarks/run_accuracy.py``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import MODELS, build_model, register_model
from pyg_skeleton.nn.models import SemGCN, SkeletalGNN
from pyg_skeleton.nn.models.skeletal_gnn import HOP_CONVS

SK = Skeleton.preset('h36m17')


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_cli_names_are_the_library_registry():
    import pyg_skeleton.cli as cli
    from pyg_skeleton.cli import models
    assert cli.MODELS is MODELS and cli.build_model is build_model
    assert models.body_hierarchy is __import__(
        'pyg_skeleton.nn.models.registry', fromlist=['x']).body_hierarchy


def test_options_from_a_dict_and_constructor_kwargs():
    torch.manual_seed(0)
    got = build_model('semgcn', SK, {'hidden_channels': 12, 'num_layers': 2})
    torch.manual_seed(0)
    want = SemGCN(SK, hidden_channels=12, num_layers=2)
    assert same_weights(got, want)
    # constructor arguments win over what the builder derives from the options
    torch.manual_seed(0)
    got = build_model('semgcn_vanilla', SK, {'hidden_channels': 12}, non_local=True)
    torch.manual_seed(0)
    want = SemGCN(SK, hidden_channels=12, conv='vanilla', non_local=True)
    assert same_weights(got, want)


@pytest.mark.parametrize('conv', sorted(set(HOP_CONVS) - {'hcsf'}))
def test_hop_layers_are_models(conv):
    torch.manual_seed(1)
    got = build_model(f'skeletal_gnn_{conv}', SK, {'hidden_channels': 8})
    torch.manual_seed(1)
    assert same_weights(got, SkeletalGNN(SK, hidden_channels=8, conv=conv))
    assert got(torch.randn(2, 17, 2)).shape == (2, 17, 3)
    assert 'skeletal_gnn_hcsf' not in MODELS  # that is 'skeletal_gnn'


def test_register_model():
    register_model('_linear', lambda skeleton, options, **kw: torch.nn.Linear(2, 3))
    try:
        assert '_linear' in list(MODELS)
        assert build_model('_linear', SK)(torch.randn(1, 17, 2)).shape == (1, 17, 3)
    finally:
        del MODELS['_linear']
    with pytest.raises(ValueError, match="unknown model '_linear'"):
        build_model('_linear', SK)


def test_accuracy_benchmark_builds_through_the_registry():
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'benchmarks'))
    ra = pytest.importorskip('run_accuracy')
    cases = [(ra.semgcn('sem', True), 'semgcn_nonlocal', {}),
             (ra.semgcn('pre_agg'), 'semgcn_pre_agg', {}),
             (ra.skeletal('khop', k=1), 'skeletal_gnn_khop', {'k': 1}),
             (ra.skeletal(dynamic=True, graph='ori', offset=False), 'skeletal_gnn_dynamic',
              {'graph': 'ori', 'offset': False})]
    for build, name, kwargs in cases:
        torch.manual_seed(2)
        got = build(SK, 8)
        torch.manual_seed(2)
        assert same_weights(got, build_model(name, SK, {'hidden_channels': 8}, **kwargs)), name

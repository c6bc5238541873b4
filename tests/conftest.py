"""Fixtures and markers shared by the tests (plain helpers and tables are in
``_helpers.py``)."""
from __future__ import annotations

import pytest
import torch

from _helpers import SHARED_DATA


def pytest_configure(config):
    # Run the GPU tests alone with: pytest -m cuda tests/test_cuda.py
    config.addinivalue_line(
        'markers', 'cuda: needs a CUDA GPU; skipped when none is present')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU (none here)')
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)


@pytest.fixture
def shared_data():
    """The data beside the checkout (``../shared/data``), absent in a plain
    clone: ``shared_data('mocap/x.npz', ...)`` returns the path (a list for
    several) and skips the test, naming the first missing path, when one is
    not there."""
    def need(*relative):
        paths = [SHARED_DATA / p for p in relative]
        for path in paths:
            if not path.exists():
                pytest.skip(f'{path} not found (the shared data beside the '
                            'checkout)')
        return paths[0] if len(paths) == 1 else paths
    return need


@pytest.fixture
def one_thread():
    """One intra-op thread: the tensors of these tests are tiny, and on a
    busy machine OpenMP threads only contend (train-mode BatchNorm and the
    float64 gradchecks get orders of magnitude slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

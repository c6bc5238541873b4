"""The package leaves the process's warning filters alone: importing it adds
none, and the operators silence PyTorch's "Sparse CSR tensor support is in
beta state" only where they build their own CSR tensors.

Each check runs in a fresh interpreter: PyTorch gives that warning once per
process, and the test session has imported the package long before.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from _helpers import ROOT

BETA = 'Sparse CSR tensor support is in beta state'


def run_fresh(code):
    """Runs ``code`` in a new interpreter that imports this checkout, and
    returns its standard output."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get('PYTHONPATH')])])
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_importing_the_package_adds_no_warning_filter():
    # Every module, not only the top-level package: a filter set at import
    # anywhere would silence warnings of the user's own code.
    out = run_fresh("""
        import importlib, pkgutil, warnings
        import torch, torch_geometric
        before = list(warnings.filters)
        import pyg_skeleton
        for info in pkgutil.walk_packages(pyg_skeleton.__path__,
                                          'pyg_skeleton.'):
            if not info.name.endswith('__main__'):
                try:
                    importlib.import_module(info.name)
                except ImportError:  # optional dependencies (matplotlib)
                    pass
        added = [f for f in warnings.filters if f not in before]
        print(repr(added))
    """)
    assert out.strip() == '[]'


def test_operators_on_a_csr_graph_give_no_beta_warning():
    # A ring above the dense limit takes the CSR kernel, forward and
    # backward. The user turns the warning into an error before the first
    # CSR tensor of the process is built: nothing raises, and the filters
    # are the user's afterwards.
    out = run_fresh(f"""
        import warnings
        import torch
        from torch_geometric.utils import to_undirected
        from pyg_skeleton.nn import SemGraphConv
        from pyg_skeleton.nn.topology import DENSE_MAX_NODES
        built = []
        sparse_csr_tensor = torch.sparse_csr_tensor
        def counted(*args, **kwargs):
            built.append(1)
            return sparse_csr_tensor(*args, **kwargs)
        torch.sparse_csr_tensor = counted
        n = DENSE_MAX_NODES + 8
        i = torch.arange(n)
        ring = to_undirected(torch.stack([i, (i + 1) % n]), num_nodes=n)
        conv = SemGraphConv(4, 3, ring, n)
        warnings.filterwarnings('error', message={BETA!r})
        before = list(warnings.filters)
        for _ in range(2):
            conv(torch.randn(2, n, 4, requires_grad=True)).sum().backward()
        print(len(built) > 0, warnings.filters == before)
    """)
    assert out.split() == ['True', 'True']


def test_the_beta_warning_is_the_one_pytorch_gives():
    # The silenced message must still be PyTorch's: were it reworded, the
    # filter would silence nothing and the test above would fail, but this
    # names the cause.
    out = run_fresh("""
        import warnings
        import torch
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            torch.sparse_csr_tensor(torch.tensor([0, 1]), torch.tensor([0]),
                                    torch.ones(1), (1, 1))
        print(repr([str(w.message) for w in caught]))
    """)
    assert BETA in out

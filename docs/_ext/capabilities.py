"""Operator capability table, measured from the code at docs build time.

For every operator class of :mod:`pyg_skeleton.nn` this module builds a small
instance (one constructor recipe per class, in :data:`RECIPES`) on two
graphs, the ``h36m17`` skeleton (17 nodes) and a mesh level (a triangulated
grid coarsened once by HEM, a few hundred nodes: above
``DENSE_MAX_NODES``, so the layers take their sparse path), and
*tries* each capability on each:

* **static** -- ``op(x)`` on a static batch ``[B, N, C]``;
* **disjoint** -- the same samples as a disjoint :class:`~torch_geometric.data.Batch`
  give the same output (``op(batch.x, batch.edge_index)``, or
  ``op(batch.x, batch.batch)`` for the non-local block);
* **SparseTensor** -- ``op(x, adj_t)`` with a ``torch_sparse.SparseTensor``
  (only when torch-sparse is installed) gives the same output;
* **edge weights** -- whether the parameters that weight the edges (names
  like ``logits``, ``edge_weight``, ``alpha``, ``graph``) are learnable, fixed
  (buffers), or fixed on request (``edge_weights='fixed'``);
* **dynamic** -- the output is *not* an affine function of the input
  (``f(a) + f(b) != f(a + b) + f(0)`` with random parameters), i.e. the
  aggregation weights depend on the sample;
* **temporal** -- on ``[B, T, N, C]`` clips, changing frame 0 changes the
  output at another frame;
* **compile-clean** -- ``torch.compile(op, fullgraph=True)`` traces the
  static call without a graph break and gives the same output. The check
  uses the ``eager`` backend (it tests Dynamo's tracing, not code generation)
  and is cached on disk, keyed by the package sources and the versions.

Used as a Sphinx extension (the ``operator-capabilities`` directive) or as a
script: ``python docs/_ext/capabilities.py`` prints the RST tables.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

YES, NO, NA = 'yes', 'no', '--'
B, T, C_IN, C_OUT = 3, 5, 4, 8
EDGE_PARAM = re.compile(
    r'(^|\.)(logits?|edge_weights?|graph_weights?|alpha|graph|adj\w*|mask)$', re.I)

# name -> (call style, constructor kwargs beyond (in, out, edge_index)).
# Call styles: 'edge' (conv(x, edge_index)), 'nonlocal' (block(x, batch)).
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {
    'SemGraphConv': ('edge', {}),
    'FullSharingConv': ('edge', {}),
    'PreAggConv': ('edge', {'decoupled': True}),
    'PostAggConv': ('edge', {'decoupled': True}),
    'ConvStyleConv': ('edge', {'centre': 'CENTRE'}),
    'NoSharingConv': ('edge', {}),
    'HCSFConv': ('edge', {'S': 1, 'L': 2}),
    'DynamicHCSFConv': ('edge', {'S': 1, 'L': 2, 'temporal_kernel': 3}),
    'KHopConv': ('edge', {'k': 2}),
    'MixHopSkeletonConv': ('edge', {'hops': (1, 2, 3)}),
    'MSHopConv': ('edge', {'hops': (1, 2, 3)}),
    'NonLocalBlock': ('nonlocal', {}),
}
COLUMNS = ['static', 'disjoint', 'sparse', 'edge_weights', 'dynamic', 'temporal', 'compile']
# The first table's columns (short heads; capabilities.rst explains each),
# the edge weights get a table of their own.
HEADERS = {'static': 'static', 'disjoint': 'disjoint', 'sparse': 'sparse',
           'dynamic': 'dynamic', 'temporal': 'temporal', 'compile': 'compile'}
GRID = (26, 24)  # vertices of the mesh grid before one HEM step


class Graph:
    """The graph an operator is built on: node count, edges and a centre node."""

    def __init__(self, name: str, edge_index, num_nodes: int, centre: int):
        self.name, self.edge_index, self.N, self.centre = name, edge_index, num_nodes, centre

    def to_data(self, **kwargs):
        from torch_geometric.data import Data
        return Data(edge_index=self.edge_index, num_nodes=self.N, **kwargs)


def skeleton_graph() -> Graph:
    from pyg_skeleton import Skeleton
    skeleton = Skeleton.preset('h36m17')
    return Graph('skeleton', skeleton.edge_index, skeleton.num_joints, skeleton.centre)


def mesh_graph() -> Graph:
    """Level 1 of the HEM hierarchy of a triangulated ``GRID`` (self-loops of merged
    pairs dropped)."""
    import torch
    from torch_geometric.utils import remove_self_loops

    from pyg_skeleton.mesh import MeshHierarchy, mesh_from_arrays
    rows, cols = GRID
    y, x = torch.meshgrid(torch.arange(rows, dtype=torch.float),
                          torch.arange(cols, dtype=torch.float), indexing='ij')
    vertices = torch.stack([x, y, torch.zeros_like(x)], -1).reshape(-1, 3)
    v = torch.arange(rows * cols).reshape(rows, cols)
    a, b, c, d = v[:-1, :-1], v[:-1, 1:], v[1:, :-1], v[1:, 1:]
    faces = torch.cat([torch.stack([a, b, d], -1).reshape(-1, 3),
                       torch.stack([a, d, c], -1).reshape(-1, 3)])
    hierarchy = MeshHierarchy.from_mesh(mesh_from_arrays(vertices.numpy(), faces.numpy()),
                                        levels=1)
    edge_index, _ = remove_self_loops(hierarchy.edge_index(1))
    return Graph('mesh', edge_index, hierarchy.num_nodes[1], 0)


def operator_names() -> list[str]:
    """Every operator class: the convolutions of ``pyg_skeleton.nn.conv`` plus the
    non-local block."""
    import pyg_skeleton.nn.conv as conv
    return list(conv.__all__) + ['NonLocalBlock']


def _first_line(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    text = f'{type(exc).__name__}: {msg[0] if msg else ""}'
    return text if len(text) < 160 else text[:157] + '...'


class _Checker:
    def __init__(self, name: str, graph: Graph):
        import torch

        import pyg_skeleton.nn as nn
        self.torch = torch
        self.name = name
        self.graph = graph
        self.N = graph.N
        self.cls = getattr(nn, name)
        if name not in RECIPES:
            raise KeyError(f'no constructor recipe for {name}: add one to RECIPES in {__file__}')
        self.style, kwargs = RECIPES[name]
        self.kwargs = {k: (graph.centre if v == 'CENTRE' else v) for k, v in kwargs.items()}
        self.notes: list[str] = []

    # -- construction and calls ---------------------------------------------------
    def build(self, **extra):
        self.torch.manual_seed(0)
        kwargs = {**self.kwargs, **extra}
        if self.style == 'nonlocal':
            op = self.cls(C_OUT, **kwargs)
        else:
            op = self.cls(C_IN, C_OUT, self.graph.edge_index, **kwargs)
        return op.eval()

    def in_channels(self):
        return C_OUT if self.style == 'nonlocal' else C_IN

    def sample(self, *shape):
        gen = self.torch.Generator().manual_seed(1)
        return self.torch.randn(*shape, self.N, self.in_channels(), generator=gen)

    def close(self, a, b):
        return a.shape == b.shape and bool(self.torch.allclose(a, b, atol=1e-5, rtol=1e-4))

    # -- capabilities -------------------------------------------------------------------
    def static(self, op):
        x = self.sample(B)
        out = op(x)
        if tuple(out.shape) != (B, self.N, C_OUT):
            raise AssertionError(f'output shape {tuple(out.shape)}')
        return YES

    def disjoint(self, op):
        from torch_geometric.data import Batch
        x = self.sample(B)
        ref = op(x).reshape(B * self.N, C_OUT)
        data = [self.graph.to_data(x=p) for p in x]
        if self.style == 'nonlocal':
            batch = Batch.from_data_list(data)
            out = op(batch.x, batch.batch)
        else:
            batch = Batch.from_data_list(data)
            out = op(batch.x, batch.edge_index)
        if not self.close(out, ref):
            raise AssertionError('disjoint output differs from the static output')
        return YES

    def sparse(self, op):
        if 'edge_index' not in inspect.signature(self.cls.forward).parameters:
            return NA  # forward takes a batch vector, not an adjacency
        try:
            from torch_sparse import SparseTensor
        except ImportError:
            self.notes.append('torch-sparse is not installed in the docs build')
            return NA
        ei = self.graph.edge_index
        adj_t = SparseTensor(row=ei[1], col=ei[0], sparse_sizes=(self.N, self.N))
        x = self.sample(B)
        if not self.close(op(x, adj_t), op(x)):
            raise AssertionError('SparseTensor output differs from the static output')
        return YES

    def edge_weights(self, op):
        learn = [n for n, p in op.named_parameters() if EDGE_PARAM.search(n) and p.requires_grad]
        fixed = [n for n, _ in op.named_buffers() if EDGE_PARAM.search(n)]
        if learn:
            text = 'learnable (' + ', '.join(f'``{n}``' for n in learn[:2]) + ')'
            if 'edge_weights' in inspect.signature(self.cls.__init__).parameters:
                alt = self.build(edge_weights='fixed')
                if not any(EDGE_PARAM.search(n) for n, _ in alt.named_parameters()):
                    text += '; fixed with ``edge_weights='"'fixed'"'``'
            return text
        if self.style == 'nonlocal':
            return 'none (attention)'
        return 'fixed' + (' (' + ', '.join(f'``{n}``' for n in fixed[:2]) + ')' if fixed else '')

    def randomized(self, op):
        """A copy with random parameters (zero-initialised gates such as alpha open up)."""
        op = copy.deepcopy(op)
        gen = self.torch.Generator().manual_seed(2)
        with self.torch.no_grad():
            for p in op.parameters():
                p.copy_(0.5 * self.torch.randn(p.shape, generator=gen))
        return op

    def dynamic(self, op):
        op = self.randomized(op)
        a, b = self.sample(B), self.sample(B).flip(0) * 0.7 + 0.3
        zero = self.torch.zeros_like(a)
        lhs = op(a) + op(b)
        rhs = op(a + b) + op(zero)
        return NO if self.close(lhs, rhs) else YES

    def temporal(self, op):
        op = self.randomized(op)
        x = self.sample(B, T)
        try:
            out = op(x)
        except Exception as exc:  # [B, T, N, C] not accepted
            self.notes.append(f'temporal: ``[B, T, N, C]`` input raised {_first_line(exc)}')
            return NO
        y = x.clone()
        y[:, 0] += 1.0
        out2 = op(y)
        if out.dim() < 4 or out.shape[1] < 2:
            return NO
        changed = not self.torch.allclose(out[:, 1:], out2[:, 1:], atol=1e-6)
        return YES if changed else NO

    def compile(self, op):
        import torch
        torch._dynamo.reset()
        x = self.sample(B)
        compiled = torch.compile(op, fullgraph=True, backend='eager')
        out = compiled(x)
        if not self.close(out, op(x)):
            raise AssertionError('compiled output differs')
        return YES

    def run(self, with_compile: bool = True) -> dict[str, str]:
        row: dict[str, str] = {}
        try:
            op = self.build()
        except Exception as exc:
            self.notes.append(f'construction failed: {_first_line(exc)}')
            return {c: NO for c in COLUMNS} | {'notes': self.notes}
        for col in COLUMNS:
            if col == 'compile' and not with_compile:
                row[col] = 'not checked'
                continue
            try:
                with self.torch.no_grad() if col != 'compile' else _null():
                    row[col] = getattr(self, col)(op)
            except Exception as exc:
                row[col] = NO
                self.notes.append(f'{col}: {_first_line(exc)}')
        row['notes'] = self.notes
        return row


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- caching -------------------------------------------------------------------------------
def _fingerprint() -> str:
    import torch

    import pyg_skeleton
    h = hashlib.sha256()
    root = Path(pyg_skeleton.__file__).parent
    for path in sorted(root.rglob('*.py')):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    h.update(Path(__file__).read_bytes())
    try:
        import torch_sparse
        sparse = torch_sparse.__version__
    except ImportError:
        sparse = 'none'
    h.update(f'{torch.__version__}|{sparse}'.encode())
    return h.hexdigest()


def collect(cache_dir: Path | None = None, with_compile: bool | None = None
            ) -> dict[str, Any]:
    """Run every check on both graphs; reuse ``cache_dir/capabilities.json`` when the
    sources are unchanged.

    Returns ``{'nodes': {graph: N}, 'rows': {graph: {operator: row}}}``.
    ``PYG_SKELETON_DOCS_COMPILE=0`` skips the compile column (it then reads
    "not checked").
    """
    if with_compile is None:
        with_compile = os.environ.get('PYG_SKELETON_DOCS_COMPILE', '1') != '0'
    key = _fingerprint() + f'|compile={with_compile}'
    cache = cache_dir / 'capabilities.json' if cache_dir is not None else None
    if cache is not None and cache.exists():
        try:
            stored = json.loads(cache.read_text())
            if stored.get('key') == key:
                return stored['result']
        except (ValueError, KeyError):
            pass
    import warnings

    import torch
    result: dict[str, Any] = {'nodes': {}, 'rows': {}}
    # One thread: the inputs are tiny, and on a busy machine waiting threads
    # made the checks several times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for graph in (skeleton_graph(), mesh_graph()):
                result['nodes'][graph.name] = graph.N
                rows = result['rows'][graph.name] = {}
                for name in operator_names():
                    try:
                        rows[name] = _Checker(name, graph).run(with_compile)
                    # A missing recipe or import problem: show it, do not hide the row.
                    except Exception as exc:
                        rows[name] = {c: NO for c in COLUMNS} | {'notes': [_first_line(exc)]}
    finally:
        torch.set_num_threads(threads)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({'key': key, 'result': result}, indent=1))
    return result


def _cell(values: dict[str, str]) -> str:
    """One value when both graphs agree, else each graph's value."""
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return '; '.join(f'{graph}: {value}' for graph, value in values.items())


def to_rst(result: dict[str, Any]) -> list[str]:
    nodes, rows = result['nodes'], result['rows']
    graphs = list(rows)
    names = list(rows[graphs[0]])
    lines = ['Measured on ' + ' and '.join(f'the {g} graph ({n} nodes)' for g, n in nodes.items())
             + '; a cell names the graph where the two differ.', '',
             '.. list-table::', '   :header-rows: 1', '   :stub-columns: 1', '',
             '   * - Operator']
    lines += [f'     - {HEADERS[c]}' for c in HEADERS]
    for name in names:
        lines.append(f'   * - :class:`~pyg_skeleton.nn.{name}`')
        lines += [f'     - {_cell({g: rows[g][name][c] for g in graphs})}' for c in HEADERS]
    lines += ['', 'Edge weights:', '', '.. list-table::', '   :header-rows: 1',
              '   :stub-columns: 1', '', '   * - Operator', '     - edge weights']
    for name in names:
        lines.append(f'   * - :class:`~pyg_skeleton.nn.{name}`')
        lines.append(f'     - {_cell({g: rows[g][name]["edge_weights"] for g in graphs})}')
    lines.append('')
    notes = [(n, g, note) for g in graphs for n, row in rows[g].items()
             for note in row.get('notes', [])]
    if notes:
        lines += ['Why a check said no (first line of the error):', '']
        for name, graph, note in notes:
            note = note.replace('`', "'").replace('*', r'\*').replace('|', r'\|')
            note = note.replace("''[B, T, N, C]''", '[B, T, N, C]')
            lines.append(f'* ``{name}`` ({graph}): {note}')
        lines.append('')
    return lines


# -- Sphinx -------------------------------------------------------------------------------
def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive
    from docutils.statemachine import StringList

    class OperatorCapabilities(Directive):
        has_content = False

        def run(self):
            env = self.state.document.settings.env
            cache_dir = Path(env.app.doctreedir)
            rows = collect(cache_dir)
            env.note_dependency(__file__)
            node = nodes.container()
            self.state.nested_parse(StringList(to_rst(rows), source='capabilities'), 0, node)
            return node.children

    app.add_directive('operator-capabilities', OperatorCapabilities)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}


if __name__ == '__main__':
    import time
    t0 = time.perf_counter()
    print('\n'.join(to_rst(collect(Path(sys.argv[1]) if len(sys.argv) > 1 else None))))
    print(f'.. {time.perf_counter() - t0:.1f} s', file=sys.stderr)

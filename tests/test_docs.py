"""The documentation renders without the network and builds outside the source tree.

A small Sphinx project with the settings and extensions of ``docs/conf.py``
(one class page with math and a Shapes section, one generated API page with
its autosummary stubs, the generated benchmarks page) is built into a
temporary folder; the HTML must hold MathML and no raw TeX or literal bold
markers, and the checkout must be unchanged.
"""
from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / 'docs'

pytest.importorskip('sphinx', reason='the docs extra is not installed')
pytest.importorskip('myst_nb', reason='the docs extra is not installed')
pytest.importorskip('latex2mathml', reason='the docs extra is not installed')


def _import(path: Path):
    """Import a module of docs/ without writing its bytecode into the checkout."""
    old = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec = importlib.util.spec_from_file_location(f'_docs_{path.stem}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = old
    return module


def _snapshot(*folders: Path):
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in folders for p in folder.rglob('*')}


CONF = f"""\
import runpy
_conf = runpy.run_path({str(DOCS / 'conf.py')!r})
globals().update({{k: v for k, v in _conf.items() if not k.startswith('_')}})
templates_path = [{str(DOCS / '_templates')!r}]
api_page_modules = ['pyg_skeleton.kinematics']
nb_execution_mode = 'off'
nitpicky = False
"""

INDEX = """\
Test
====

.. toctree::

   api/pyg_skeleton.kinematics
   benchmarks

.. currentmodule:: pyg_skeleton.nn

.. autoclass:: SemGraphConv
   :no-index:

Display math: :math:`\\sum_{j \\in \\mathcal{N}(i)} \\mathbf{x}_j`

.. math::

   \\begin{aligned} a &= b \\odot c \\\\ d &= \\text{e} \\end{aligned}
"""


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    from sphinx.application import Sphinx
    tmp = tmp_path_factory.mktemp('docs')
    src, out = tmp / 'src', tmp / 'build' / 'html'
    src.mkdir()
    (src / 'conf.py').write_text(CONF)
    (src / 'index.rst').write_text(INDEX)
    checkout = (DOCS, ROOT / 'notebooks')
    before, src_before = _snapshot(*checkout), _snapshot(src)
    warnings = io.StringIO()
    old = sys.dont_write_bytecode
    try:
        app = Sphinx(str(src), str(src), str(out), str(out / '.doctrees'), 'html',
                     status=None, warning=warnings, freshenv=True)
        app.build()
    finally:
        sys.dont_write_bytecode = old  # conf.py turns it off for the build
    sources = {d: Path(app.env.doc2path(d)) for d in
               ('api/pyg_skeleton.kinematics',
                'generated/pyg_skeleton.kinematics.forward_kinematics', 'benchmarks')}
    return dict(tmp=tmp, src=src, out=out, warnings=warnings.getvalue(), sources=sources,
                unchanged=_snapshot(*checkout) == before and _snapshot(src) == src_before)


def test_class_page_has_mathml_and_bullet_shapes(built):
    html = (built['out'] / 'index.html').read_text()
    assert 'math not rendered' not in built['warnings'], built['warnings']
    assert html.count('<math') >= 5
    assert '<mtable' in html  # the aligned display is a table, not text with '&'
    assert '\\(' not in html and '\\[' not in html
    assert 'mathjax' not in html.lower()
    shapes = html[html.index('<p class="rubric">Shapes</p>'):]
    assert re.match(r'<p class="rubric">Shapes</p>\s*<ul[^>]*>\s*'
                    r'<li><p><strong>input:</strong>', shapes)
    assert '**input' not in html and '**output' not in html


def test_generated_pages_are_built(built):
    out = built['out']
    page = (out / 'api' / 'pyg_skeleton.kinematics.html').read_text()
    assert 'generated/pyg_skeleton.kinematics.forward_kinematics.html' in page
    assert (out / 'generated' / 'pyg_skeleton.kinematics.forward_kinematics.html').is_file()
    bench = (out / 'benchmarks.html').read_text()
    titles = re.findall(r'<h2>(.*?)<a class="headerlink"', bench)
    assert titles and len(titles) == len(set(titles)), titles


def test_build_writes_only_into_its_output_folder(built):
    assert built['unchanged'], ('the build changed files under docs/, notebooks/ or the source '
                                'folder')
    # The generated pages are read from the build's own folder.
    for docname, path in built['sources'].items():
        assert path.is_relative_to(built['out'] / '.doctrees'), (docname, path)
    # Nothing beside the output folder either (myst-nb's jupyter_execute/).
    assert sorted(p.name for p in (built['tmp'] / 'build').iterdir()) == ['html']


@pytest.mark.parametrize('latex,needle', [
    (r'\mathbf{x}_i = \sum_{j \in \mathcal{N}(i)} \mathbf{W} \mathbf{x}_j', '&#x1D431;'),
    (r'\mathbf{M} \odot \mathbf{A}', '&#x02299;'),
    (r'(1 \text{ or } F_{out})', '<mtext>'),
    (r'(B, \text{num\_classes})', '<mtext>num_classes</mtext>'),
    (r'\begin{aligned} a &= b \\ c &= d \end{aligned}', '<mtable'),
    (r'\Big\Vert_{g=1}^{G} \big\langle a, b \big\rangle', '\u27e8'),
])
def test_formulas_convert_to_mathml(latex, needle):
    mathml = _import(DOCS / '_ext' / 'mathml.py')
    out = mathml.to_mathml(latex, display=True)
    assert out.startswith('<math') and needle in out
    assert '\\' not in out


def test_unknown_command_is_an_error_not_text():
    mathml = _import(DOCS / '_ext' / 'mathml.py')
    with pytest.raises(ValueError, match='not converted'):
        mathml.to_mathml(r'\foo{x} + 1', display=False)


def test_html_checker_flags_raw_tex_and_literal_bold():
    check = _import(DOCS / 'check_html.py')
    assert check.check_page('<p>A <math><mi>x</mi></math>, <strong>**kwargs</strong></p>'
                            '<pre>f(**kw)</pre>') == []
    old_shapes = '<li><p><strong>- **input – **</strong> node features</p></li>'
    assert [p.split(':')[0] for p in check.check_page(old_shapes)] == ['literal **']
    assert check.check_page('<p>node features \\((N, F)\\)</p>')[0].startswith('raw TeX')
    assert check.check_page('<script src="https://cdn/mathjax/tex-mml.js"></script>')
    # Notebook outputs: a library's warning with its install path, a stray repr.
    tqdm = ('<div class="output stderr"><pre>'
            '/opt/venv/lib/python3.11/site-packages/tqdm/auto.py:21: '
            'TqdmWarning: IProgress not found.</pre></div>')
    assert check.check_page(tqdm)[0].startswith('library path in an output')
    gen = '<pre>&lt;torch._C.Generator at 0x7f3a381ac1d0&gt;</pre>'
    assert check.check_page(gen) == [
        'object repr in an output: &lt;torch._C.Generator at 0x7f3a381ac1d0&gt;']


def test_capabilities_are_measured_on_a_mesh_level_past_the_dense_path():
    from pyg_skeleton.nn.topology import DENSE_MAX_NODES
    caps = _import(DOCS / '_ext' / 'capabilities.py')
    mesh = caps.mesh_graph()
    assert DENSE_MAX_NODES < mesh.N < 1000
    # Hops beyond 3 from a node: the hop layers' far hop sets are not empty.
    import torch

    from pyg_skeleton.utils import hop_counts
    far = hop_counts(mesh.edge_index, mesh.N, torch.tensor([0]))[0]
    assert int(far.max()) > 3 and bool((mesh.edge_index[0] != mesh.edge_index[1]).all())
    row = caps._Checker('SemGraphConv', mesh).run(with_compile=False)
    assert [row[c] for c in ('static', 'disjoint', 'dynamic')] == ['yes', 'yes', 'no'], \
        row['notes']
    # Both graphs appear in the rendered table; a disagreement names each graph.
    result = {'nodes': {'skeleton': 17, 'mesh': mesh.N},
              'rows': {'skeleton': {'SemGraphConv': dict(row, static='yes')},
                       'mesh': {'SemGraphConv': dict(row, static='no')}}}
    text = '\n'.join(caps.to_rst(result))
    assert f'the mesh graph ({mesh.N} nodes)' in text
    assert '     - skeleton: yes; mesh: no' in text

"""Sphinx configuration of the pyg-skeleton documentation.

Build (warnings are errors, internal references must resolve)::

    python -m sphinx -W -n -b html docs /tmp/docs_html

The API pages are written from each subpackage's ``__all__`` (``_ext/api_pages.py``),
the operator capability tables are measured from the code (``_ext/capabilities.py``),
the mesh guide's figure is drawn from it (``_ext/mesh_figure.py``), math is
converted to MathML (``_ext/mathml.py``, no network needed to read the pages),
and the example notebooks in ``notebooks/`` are executed by myst-nb. Everything
generated goes under the output folder (``_ext/generated_pages.py``), nothing
into the checkout; ``python docs/check_html.py OUTPUT`` checks the built pages.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / '_ext'))
# The build writes nothing into the checkout, not even docs/_ext/__pycache__.
sys.dont_write_bytecode = True

import pyg_skeleton  # noqa: E402

project = 'pyg-skeleton'
author = 'pyg-skeleton developers'
copyright = '2026, pyg-skeleton developers'
version = release = pyg_skeleton.__version__  # the one place the version lives

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'myst_nb',
    'capabilities',
    'pyg_refs',
    'generated_pages',
    'mathml',
    'mesh_figure',
]
# Math is converted to MathML at build time (_ext/mathml.py): no MathJax, no network.
html_math_renderer = 'mathml'

source_suffix = {'.rst': 'restructuredtext', '.md': 'myst-nb', '.ipynb': 'myst-nb'}
templates_path = ['_templates']
# api/, generated/ and benchmarks.md are written outside the source tree
# (_ext/generated_pages.py); the same names left in docs/ by older builds are
# ignored.
exclude_patterns = ['_build', 'jupyter_execute', '**.ipynb_checkpoints', 'notebooks/README.md',
                    'api', 'generated', 'benchmarks.md']

# -- API reference ---------------------------------------------------------------------
# The pages and their autosummary stubs are written by _ext/generated_pages.py
# outside the source tree; autosummary's own generator would write into docs/.
autosummary_generate = False
autosummary_ignore_module_all = False
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_typehints_description_target = 'documented'
autodoc_class_signature = 'mixed'
# "Shapes:" holds a bullet list (``- **input:** ...``) kept as it is under a
# rubric; a parameter-style section would parse the bullets as names.
napoleon_custom_sections = ['Shapes']
napoleon_use_rtype = False

# -- Notebooks (myst-nb) --------------------------------------------------------------------
# The notebooks run their reduced sizes unless PYG_SKELETON_FULL is set (full-size runs
# by hand).
nb_execution_mode = os.environ.get('PYG_SKELETON_NB_EXECUTION', 'force')
# Per cell; the notebooks' reduced sizes take well under a minute on 2 cores.
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence']
myst_heading_anchors = 3
suppress_warnings = ['mystnb.unknown_mime_type']

# -- Nitpicky references ------------------------------------------------------------------
# No intersphinx (the build must work offline): external types are ignored,
# every pyg_skeleton reference must resolve.
nitpicky = True
nitpick_ignore_regex = [
    # The docstrings follow PyG's convention of :obj:`...` for argument names,
    # literal values and shapes (``(default: :obj:`128`)``): those are not
    # references. A :obj: that names a pyg_skeleton object must still resolve.
    (r'py:obj', r'(?s)(?!pyg_skeleton\.).*'),
    # Napoleon type descriptions that are prose, not types.
    (r'py:class', r'(hashable|pairs|sequences|iterable of .*)'),
    (r'py:func', r'(round|len|min|max|sum|abs|isinstance|repr|open)'),
    # Methods inherited from PyG's MessagePassing.
    (r'py:meth', r'(propagate|message|aggregate|update|message_and_aggregate|edge_update)'),
    (r'py:.*', r'(torch|torch_geometric|torch_sparse|torch_scatter|numpy|np|networkx|nx|'
               r'matplotlib|scipy|argparse|pathlib|os|typing|collections|abc|enum|'
               r'dataclasses)(\..*)?'),
    (r'py:.*', r'(Tensor|SparseTensor|Data|Batch|HeteroData|Module|Parameter|Linear|'
               r'ndarray|Path|PathLike|Graph|Figure|Axes|Generator|device|dtype|Size|'
               r'MessagePassing|Adj|OptTensor|PairTensor|Dataset|InMemoryDataset|'
               r'Namespace|ArgumentParser|Callable|Sequence|Mapping|Iterable|Iterator|'
               r'Optional|Union|Any|Tuple|List|Dict|Literal|BinaryIO|IO|TextIO|'
               r'Unpickler|Self|NamedTuple)'),
    (r'py:.*', r'(int|float|str|bool|bytes|dict|list|tuple|set|object|None|callable|'
               r'optional|type|slice|range|Ellipsis|iterable|sequence|array[- ]like|'
               r'ValueError|TypeError|KeyError|RuntimeError|UserWarning|FileNotFoundError|'
               r'OSError|IndexError|NotImplementedError|ImportError|Exception|'
               r'pickle\..*|io\..*|json\..*)'),
]


# -- HTML ----------------------------------------------------------------------------------
html_theme = 'alabaster'
html_static_path = []
html_theme_options = {
    'description': 'PyG operators, models and graph builders for skeletons and body meshes',
    'fixed_sidebar': True,
}

"""Sphinx configuration of the pyg-skeleton documentation."""
import pyg_skeleton

project = 'pyg-skeleton'
author = 'pyg-skeleton developers'
version = release = pyg_skeleton.__version__

extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.mathjax',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
]
autosummary_generate = True
autodoc_member_order = 'bysource'
napoleon_custom_sections = [('Shapes', 'params_style')]
exclude_patterns = ['_build']
html_theme = 'alabaster'

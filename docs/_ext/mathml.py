"""Math as MathML, converted when the documentation is built.

Sphinx's default HTML math renderer loads MathJax from a CDN, so an offline
reader sees raw ``\\(...\\)`` TeX. This extension registers the ``mathml``
HTML math renderer instead: every inline and display math node (reST
``:math:``, ``.. math::``, MyST ``$...$`` and ``$$...$$``, the amsmath
environments of the notebooks) is converted to MathML with the pure-Python
``latex2mathml`` package. Chromium, Firefox and Safari render MathML
natively, so the pages need no script and no network.

A formula that the converter does not understand would come out as text
with its backslashes (``<mi>\\foo</mi>``) or a stray ``&`` column separator;
that is reported as a warning (an error under ``-W``) naming the document
and the formula, and the TeX is shown as code.
"""
from __future__ import annotations

import html
import re

from docutils import nodes
from sphinx.util import logging

logger = logging.getLogger(__name__)

# latex2mathml lays out ``align*`` as a table but not ``aligned``/``split``
# (their ``&`` would come out as text): they mean the same inside one
# display, so they are renamed before conversion.
_ALIGNED = re.compile(r'\\(begin|end)\{(aligned|split|align)\}')
# latex2mathml keeps a delimiter command after a size command (``\big\langle``)
# as text: the delimiter is given as its character.
_SIZED = re.compile(r'(\\[Bb]igg?[lr]?)\s*\\(langle|rangle|lVert|rVert|Vert|vert)(?![a-zA-Z])')
_DELIMITERS = {'langle': '\u27e8', 'rangle': '\u27e9', 'lVert': '\u2016', 'rVert': '\u2016',
               'Vert': '\u2016', 'vert': '|'}
# ``\_`` inside ``\text{...}`` is kept as ``\_``; an underscore there is literal.
_TEXT = re.compile(r'\\text\{([^{}]*)\}')
# Text nodes that still hold TeX: an unknown command or a column separator.
_LEFTOVER = re.compile(r'<m(i|o|n|text)[^>]*>[^<]*(\\|&(?![#\w]+;))[^<]*</m\1>')


def to_mathml(latex: str, display: bool) -> str:
    """Convert one formula; raise :class:`ValueError` if the result still holds TeX."""
    from latex2mathml.converter import convert
    latex = _ALIGNED.sub(lambda m: f'\\{m.group(1)}{{align*}}', latex.strip())
    latex = _SIZED.sub(lambda m: m.group(1) + _DELIMITERS[m.group(2)], latex)
    latex = _TEXT.sub(lambda m: '\\text{' + m.group(1).replace('\\_', '_') + '}', latex)
    try:
        mathml = convert(latex, display='block' if display else 'inline')
    except Exception as exc:  # the converter's own parse errors
        raise ValueError(f'{type(exc).__name__}: {exc}') from exc
    leftover = _LEFTOVER.search(mathml)
    if leftover:
        raise ValueError(f'not converted: {leftover.group(0)}')
    return mathml


def _render(self, node, latex: str, display: bool) -> str:
    try:
        return to_mathml(latex, display)
    except ValueError as exc:
        logger.warning('math not rendered (%s): %s', exc, latex, location=node)
        return f'<code class="math-tex">{html.escape(latex)}</code>'


def visit_math(self, node):
    self.body.append(_render(self, node, node.astext(), display=False))
    raise nodes.SkipNode


def visit_displaymath(self, node):
    # Like Sphinx's MathJax renderer: paragraphs of a block are separate
    # equations, shown as the rows of one aligned display.
    parts = [p for p in node.astext().split('\n\n') if p.strip()]
    latex = parts[0] if len(parts) == 1 or node.get('nowrap') else (
        '\\begin{align*}' + '\\\\'.join(parts) + '\\end{align*}')
    self.body.append(self.starttag(node, 'div', CLASS='math notranslate nohighlight'))
    if node.get('number'):
        number = html.escape(str(node['number']))
        self.body.append(f'<span class="eqno">({number})</span>')
    self.body.append(_render(self, node, latex, display=True))
    self.body.append('</div>\n')
    raise nodes.SkipNode


def setup(app):
    app.add_html_math_renderer('mathml', (visit_math, None), (visit_displaymath, None))
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}

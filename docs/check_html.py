"""Check built HTML pages for math and markup that did not render.

Run after a docs build: ``python docs/check_html.py docs/_build/html``.
Reports, one line each, every page whose text (outside code and
preformatted blocks) still holds raw TeX delimiters (``\\(``, ``\\[``), a
MathJax script, or Markdown/reST bold markers (``**word``) shown literally,
or whose notebook outputs show a path into an installed package (a warning
printed by a library) or the bare repr of an object (``<... at 0x...>``, a
cell that ends in a call whose value nobody wanted), and exits 1 if there
is any. A var-keyword parameter shown in bold
(``<strong>**kwargs</strong>``) is a name, not markup.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

_SKIP = re.compile(r'<(pre|code|script|style|textarea)\b.*?</\1>', re.S | re.I)
_VAR_KEYWORD = re.compile(r'<strong>\*\*\w+</strong>')
_TAG = re.compile(r'<[^>]+>')
_PROBLEMS = [
    ('raw TeX', re.compile(r'\\\(|\\\[')),
    ('literal **', re.compile(r'\*\*(?=\S)')),
]
_MATHJAX = re.compile(r'<script[^>]+mathjax', re.I)
# Checked in the whole page, outputs included (they are <pre> blocks).
_OUTPUT_PROBLEMS = [
    ('library path in an output', re.compile(r'[\w/.-]*(site|dist)-packages/[\w/.-]*')),
    ('object repr in an output', re.compile(r'&lt;[\w.]+ (object )?at 0x[0-9a-fA-F]+&gt;')),
]


def check_page(text: str) -> list[str]:
    """The problems of one page, as ``'what: excerpt'`` strings."""
    found = []
    if _MATHJAX.search(text):
        found.append('MathJax script: math needs the network')
    for what, pattern in _OUTPUT_PROBLEMS:
        found += [f'{what}: {m.group(0)}' for m in pattern.finditer(text)]
    visible = _TAG.sub(' ', _VAR_KEYWORD.sub(' ', _SKIP.sub(' ', text)))
    for what, pattern in _PROBLEMS:
        for match in pattern.finditer(visible):
            excerpt = ' '.join(visible[max(0, match.start() - 40):match.end() + 40].split())
            found.append(f'{what}: ...{excerpt}...')
    return found


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        print('usage: python docs/check_html.py BUILT_HTML_FOLDER', file=sys.stderr)
        return 2
    root = Path(args[0])
    bad = 0
    pages = sorted(root.rglob('*.html'))
    for page in pages:
        if '_modules' in page.relative_to(root).parts:
            continue  # highlighted source code, not rendered text
        for problem in check_page(page.read_text(encoding='utf-8')):
            print(f'{page.relative_to(root)}: {problem}')
            bad += 1
    print(f'{len(pages)} pages checked, {bad} problems', file=sys.stderr)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())

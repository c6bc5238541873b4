"""Pages generated from files and parsers of the repository at build time.

* :func:`write_benchmarks_page` -- ``docs/benchmarks.md`` includes every
  ``benchmarks/results/*.md`` (and shows every ``*.png`` there), so a new
  result file appears without editing the docs.
* The ``cli-help`` directive -- the ``--help`` text of a ``pyg-skeleton``
  subcommand, taken from the real argument parser.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

BENCH_INTRO = """\
# Benchmark results

The tables below are the Markdown files in `benchmarks/results/` of the
repository, included as they are; the scripts that write them are in
`benchmarks/` (each file names its script, machine and library versions).
Times were taken on a shared 2-core CPU machine: compare ratios measured in
the same run, not absolute times across files. Run them again with
`python benchmarks/bench_<name>.py`.

Numbers computed on the Bandai-Namco motion capture use data licensed under
CC BY-NC 4.0 (non-commercial); see the attribution on {doc}`notebooks/03_train_lifting_mocap`.
"""


def write_benchmarks_page(docs_dir: Path) -> None:
    results = docs_dir.parent / 'benchmarks' / 'results'
    parts = [BENCH_INTRO]
    md_files = sorted(results.glob('*.md')) if results.is_dir() else []
    png_files = sorted(results.glob('*.png')) if results.is_dir() else []
    if not md_files:
        parts.append('\nNo result files were found when these pages were built.\n')
    for path in md_files:
        parts.append(f'\n```{{include}} ../benchmarks/results/{path.name}\n'
                     ':heading-offset: 1\n:relative-images:\n```\n')
    if png_files:
        parts.append('\n## Plots\n')
        for path in png_files:
            parts.append(f'\n```{{image}} ../benchmarks/results/{path.name}\n'
                         f':alt: {path.stem}\n:width: 90%\n```\n')
    text = ''.join(parts)
    page = docs_dir / 'benchmarks.md'
    if not page.exists() or page.read_text() != text:
        page.write_text(text)


def _help_text(command: str) -> str:
    from pyg_skeleton.cli.main import build_parser
    parser = build_parser()
    if not command:
        return parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command].format_help()
    raise ValueError(f'no pyg-skeleton subcommand {command!r}')


def setup(app):
    from docutils import nodes
    from docutils.parsers.rst import Directive

    class CLIHelp(Directive):
        """``.. cli-help:: train`` -- the help text of ``pyg-skeleton train``."""
        optional_arguments = 1

        def run(self):
            old = os.environ.get('COLUMNS')
            os.environ['COLUMNS'] = '88'
            try:
                text = _help_text(self.arguments[0] if self.arguments else '')
            finally:
                if old is None:
                    os.environ.pop('COLUMNS', None)
                else:
                    os.environ['COLUMNS'] = old
            block = nodes.literal_block(text, text)
            block['language'] = 'text'
            return [block]

    app.add_directive('cli-help', CLIHelp)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}

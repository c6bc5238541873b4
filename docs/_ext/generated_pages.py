"""Pages generated at build time, kept out of the source tree.

The API reference pages (one per subpackage, from its ``__all__``, see
``api_pages.py``), their autosummary stubs (one per public name) and
``benchmarks.md`` (every ``benchmarks/results/*.md`` and ``*.png``) are
written under the build's doctree folder (``<doctreedir>/generated_sources``,
inside the output folder unless ``-d`` puts it elsewhere) and added to the
project as documents, so the build never writes into ``docs/`` and works
from a read-only checkout. The executed notebooks of myst-nb go there too
(``<doctreedir>/jupyter_execute``) instead of beside the output folder.

Sphinx has no public hook for documents that are not files under the source
folder; the project's discovery step is extended instead
(:class:`_ProjectWithGenerated`): after the usual scan it adds every file of
the generated folder under its path relative to that folder, so
``generated_sources/api/pyg_skeleton.nn.rst`` is the document
``api/pyg_skeleton.nn``. Leftovers of older builds that wrote into ``docs/``
(``docs/api``, ``docs/generated``, ``docs/benchmarks.md``) are excluded in
``conf.py``.

The ``cli-help`` directive is here too: the ``--help`` text of a
``pyg-skeleton`` subcommand, taken from the real argument parser.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from sphinx.project import Project

GENERATED = 'generated_sources'
RESULTS = Path(__file__).resolve().parents[2] / 'benchmarks' / 'results'

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


def _title(path: Path) -> str:
    first = path.read_text(encoding='utf-8').lstrip().splitlines()[:1]
    return first[0][2:].strip() if first and first[0].startswith('# ') else path.stem


def _variant(stem: str, stems: list[str]) -> str:
    """What tells ``stem`` apart from the other files of its group, as a heading."""
    prefix = os.path.commonprefix(stems)
    prefix = prefix[:prefix.rfind('_') + 1] if '_' in prefix else ''
    text = stem[len(prefix):].replace('_', ' ').replace('torch sparse', 'torch-sparse')
    return text[:1].upper() + text[1:]


def benchmarks_page(results: Path, page_dir: Path) -> str:
    """The Markdown of the benchmarks page.

    Result files that share a title (one benchmark run with and without
    torch-sparse) are shown under that title once, each under a subheading
    named after what tells its file name apart.
    """
    parts = [BENCH_INTRO]
    md_files = sorted(results.glob('*.md')) if results.is_dir() else []
    png_files = sorted(results.glob('*.png')) if results.is_dir() else []
    if not md_files:
        parts.append('\nNo result files were found when these pages were built.\n')
    groups: dict[str, list[Path]] = {}
    for path in md_files:
        groups.setdefault(_title(path), []).append(path)
    for title, paths in groups.items():
        if len(paths) == 1:
            rel = os.path.relpath(paths[0], page_dir)
            parts.append(f'\n```{{include}} {rel}\n:heading-offset: 1\n:relative-images:\n```\n')
            continue
        parts.append(f'\n## {title}\n')
        stems = [p.stem for p in paths]
        for path in paths:
            rel = os.path.relpath(path, page_dir)
            parts.append(f'\n### {_variant(path.stem, stems)}\n'
                         f'\n```{{include}} {rel}\n:start-line: 1\n:heading-offset: 2\n'
                         ':relative-images:\n```\n')
    if png_files:
        parts.append('\n## Plots\n')
        for path in png_files:
            rel = os.path.relpath(path, page_dir)
            parts.append(f'\n```{{image}} {rel}\n:alt: {path.stem}\n:width: 90%\n```\n')
    return ''.join(parts)


def _write(path: Path, text: str) -> None:
    """Write only when the text changed, so incremental builds skip unchanged pages."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text(encoding='utf-8') != text:
        path.write_text(text, encoding='utf-8')


def write_generated_sources(app) -> Path:
    """Write every generated page under the doctree folder; drop pages of names that are gone."""
    from api_pages import api_pages
    from sphinx.ext.autosummary.generate import generate_autosummary_docs

    root = Path(app.doctreedir) / GENERATED
    keep = set()
    for name, text in api_pages(app.config.api_page_modules).items():
        path = root / 'api' / f'{name}.rst'
        _write(path, text)
        keep.add(path)
    bench = root / 'benchmarks.md'
    _write(bench, benchmarks_page(RESULTS, root))
    keep.add(bench)
    stubs = generate_autosummary_docs(
        sorted(str(p) for p in keep if p.suffix == '.rst'), output_dir=root / 'generated',
        suffix='.rst', app=app, overwrite=True)
    keep.update(Path(p).resolve() for p in stubs)
    keep = {p.resolve() for p in keep}
    for path in root.rglob('*'):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
    return root


class _ProjectWithGenerated(Project):
    """The Sphinx project plus the documents of ``generated_dir`` (see the module docstring)."""

    generated_dir: Path

    def discover(self, exclude_paths=(), include_paths=('**',)):
        docnames = super().discover(exclude_paths, include_paths)
        for path in sorted(self.generated_dir.rglob('*')):
            if not path.is_file() or path.suffix not in self.source_suffix:
                continue
            docname = path.relative_to(self.generated_dir).with_suffix('').as_posix()
            if docname in docnames:
                raise RuntimeError(f'{self.doc2path(docname, absolute=True)} has the name of a '
                                   f'generated page ({path}): delete or rename it')
            docnames.add(docname)
            self._docname_to_path[docname] = path
            self._path_to_docname[path] = docname
        return docnames


def _add_generated_sources(app) -> None:
    if not hasattr(app.project, '_docname_to_path'):
        raise RuntimeError('docs/_ext/generated_pages.py needs Sphinx 8 or newer')
    root = write_generated_sources(app)
    for project in {id(p): p for p in (app.project, app.env.project)}.values():
        project.__class__ = _ProjectWithGenerated
        project.generated_dir = root


def _move_notebook_outputs(app) -> None:
    """Send the executed notebooks, which myst-nb writes beside the output folder, into
    the doctree folder."""
    config = getattr(app.env, 'mystnb_config', None)
    if config is None:
        return
    build = Path(app.doctreedir)
    app.env.mystnb_config = config.copy(output_folder=str(build / 'jupyter_execute'),
                                        execution_cache_path=str(build / 'jupyter_cache'))


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
            # argparse wraps the help to COLUMNS - 2: the width of a code block.
            os.environ['COLUMNS'] = '70'
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
    # None: a page for every subpackage; a list of module names: only those.
    app.add_config_value('api_page_modules', None, 'env')
    # After myst-nb's own builder-inited handler (priority 500) has made its config.
    app.connect('builder-inited', _move_notebook_outputs, priority=600)
    app.connect('builder-inited', _add_generated_sources)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}

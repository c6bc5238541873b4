r"""The built-in body mesh: the MakeHuman hm08 base mesh (CC0 1.0).

The mesh ships with the package as ``pyg_skeleton/data/meshes/makehuman_body.npz``
(:data:`MAKEHUMAN_BODY_PATH`, 0.27 MB), with its licence text beside it
(``LICENSE-CC0-makehuman.md``). It was built by ``scripts/build_builtin_mesh.py`` from the
``makehuman_body.npz`` extract in ``../shared/data/meshes``: only the OBJ group ``body`` of
MakeHuman's ``base.obj`` (13,380 vertices, in file order), each quad split along its
shorter diagonal, decimetres converted to metres. The file holds plain arrays only
(``vertices`` float32, ``faces`` and ``orig_vertex_index`` uint16) and is read without
:obj:`allow_pickle`.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from .io import Mesh, check_mesh, read_npz_arrays

__all__ = ['MAKEHUMAN_BODY_PATH', 'makehuman_body']

#: The packaged MakeHuman hm08 body mesh.
MAKEHUMAN_BODY_PATH = (Path(__file__).resolve().parents[1] / 'data' / 'meshes'
                       / 'makehuman_body.npz')


@functools.lru_cache(maxsize=1)
def _load(path: str) -> Mesh:
    arrays = read_npz_arrays(path, required=('vertices', 'faces', 'orig_vertex_index'))
    # uint16 [F, 3] on disk (every index < 2 ** 16); the Mesh convention is int64 [3, F]
    mesh = Mesh(pos=torch.from_numpy(arrays['vertices'].astype('float32')),
                face=torch.from_numpy(arrays['faces'].T.astype('int64', order='C')),
                vertex_map=torch.from_numpy(arrays['orig_vertex_index'].astype('int64')),
                meta={'source': path, 'name': 'makehuman_body', 'unit': 'm', 'up_axis': '+y',
                      'license': 'CC0-1.0 (MakeHuman hm08 base mesh)'})
    if mesh.vertex_map.shape != (mesh.num_vertices,):
        raise ValueError(f"{path}: orig_vertex_index has {mesh.vertex_map.numel()} "
                         f"entries for {mesh.num_vertices} vertices")
    return check_mesh(mesh)


def makehuman_body() -> Mesh:
    r"""The MakeHuman hm08 body mesh shipped with the package (CC0 1.0): 13,380
    vertices, 26,756 triangles (counter-clockwise seen from outside), metres, +y up,
    facing +z, in MakeHuman's A-pose.

    Returns:
        Mesh: a fresh copy; :obj:`Mesh.vertex_map` gives each vertex's index in
        MakeHuman's ``base.obj`` (needed to apply MakeHuman targets or rig weights).

    Raises:
        FileNotFoundError: If the packaged file is missing (a broken install).
        ValueError: One line naming the file if it is corrupt.
    """
    mesh = _load(str(MAKEHUMAN_BODY_PATH))
    return Mesh(pos=mesh.pos.clone(), face=mesh.face.clone(),
                vertex_map=mesh.vertex_map.clone(), meta=dict(mesh.meta))

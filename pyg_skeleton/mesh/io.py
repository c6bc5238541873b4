r"""Reading triangle and quad meshes (OBJ, PLY, NPZ), checking them and
turning them into PyG graphs.

Every reader returns a :class:`Mesh` in PyG's layout: ``float32`` positions
:obj:`pos` ``[V, 3]`` and ``int64`` triangles :obj:`face` ``[3, F]``. Quads
are split along their shorter diagonal (:func:`split_quads`) unless
:obj:`require_triangles=True`, which rejects them; faces with more than four
corners are always rejected.

:func:`check_mesh` validates a mesh and raises a :class:`ValueError` naming
the first defect, or removes it when the matching cleanup option is set:

========================  =====================================  ==========================
defect                    always an error?                       cleanup option
========================  =====================================  ==========================
face index out of range   yes                                    --
NaN / infinite vertex     yes                                    --
degenerate face           no                                     :obj:`drop_degenerate`
duplicate face            no                                     :obj:`drop_duplicates`
unreferenced vertex       no                                     :obj:`drop_unreferenced`
several components        no                                     :obj:`largest_component`
========================  =====================================  ==========================

A face is *degenerate* when it repeats a vertex index or has exactly zero
area; two faces are *duplicates* when they use the same three vertices, in
any order or orientation (the first one is kept).

The readers themselves refuse truncated, binary-garbage, NaN-laden and empty
files with one :class:`ValueError` line naming the file (never an empty or
NaN mesh). Every :obj:`.npz` member's header is checked against the bytes
the member holds before anything is allocated (:func:`npz_members`,
``read_npz_arrays``, shared with the dataset readers).
"""
from __future__ import annotations

import math
import os
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from pyg_skeleton.utils import as_index_tensor, faces_to_edges
from pyg_skeleton.utils import connected_components as graph_components

PathLike = str | Path


class Mesh:
    r"""A triangle mesh in PyG's layout: :obj:`pos` ``[V, 3]`` (float) and
    :obj:`face` ``[3, F]`` (int64, 0-based). These are the attributes of a
    :class:`~torch_geometric.data.Data` mesh: :meth:`to_data` shares the
    tensors and :meth:`from_data` takes them back, so PyG's mesh transforms
    apply in between. :obj:`vertex_map` gives, for every vertex, its index
    in the source file (it differs from the identity after a group
    selection or a cleanup); :obj:`meta` holds the source and other notes.

    The constructor takes the tensors as given; :func:`check_mesh`
    validates them.

    The names of the earlier ``[F, 3]`` layout still work, each use with a
    :class:`DeprecationWarning`: the attributes :obj:`vertices` (now
    :obj:`pos`) and :obj:`faces` (now :obj:`face.t()`, a view), and the
    constructor's :obj:`vertices` and :obj:`faces` arguments. The second
    positional argument is always the old :obj:`faces` ``[F, 3]``: with
    three faces both layouts are ``[3, 3]``, so the layout is never guessed
    from the shape, and the new one is passed as :obj:`face=`.

    Args:
        pos (torch.Tensor): The vertex positions ``[V, 3]``.
        faces (torch.Tensor, optional): Deprecated: the triangles in the old
            ``[F, 3]`` layout. (default: :obj:`None`)
        vertex_map (torch.Tensor, optional): ``[V]`` indices into the source
            file's vertices. (default: :obj:`None`)
        meta (dict, optional): Notes such as :obj:`'source'`, the file
            named in :func:`check_mesh`'s errors. (default: :obj:`None`, an
            empty dict)
        face (torch.Tensor): The triangles ``[3, F]``.
        vertices (torch.Tensor, optional): Deprecated alias of :obj:`pos`.
            (default: :obj:`None`)

    Raises:
        TypeError: If a layout is given twice (:obj:`pos` and
            :obj:`vertices`, :obj:`face` and :obj:`faces`) or not at all.
        ValueError: If the deprecated :obj:`faces` is not two-dimensional.
    """
    def __init__(self, pos: Tensor | None = None, faces: Any = None,
                 vertex_map: Tensor | None = None,
                 meta: dict[str, object] | None = None, *,
                 face: Tensor | None = None,
                 vertices: Tensor | None = None):
        if vertices is not None:
            if pos is not None:
                raise TypeError("Mesh() got both 'pos' and its deprecated "
                                "alias 'vertices'")
            _deprecated("Mesh(vertices=...)", "Mesh(pos=...)")
            pos = vertices
        if faces is not None:
            if face is not None:
                raise TypeError("Mesh() got both 'face' [3, F] and the "
                                "deprecated 'faces' [F, 3]")
            _deprecated("Mesh(vertices, faces) with 'faces' [F, 3]",
                        "Mesh(pos=..., face=...) with 'face' [3, F]")
            face = _legacy_faces(faces)
        if pos is None or face is None:
            raise TypeError("Mesh() needs 'pos' [V, 3] and 'face' [3, F]")
        self.pos = pos
        self.face = face
        self.vertex_map = vertex_map
        self.meta: dict[str, object] = {} if meta is None else meta

    @property
    def num_vertices(self) -> int:
        r"""The number of vertices :math:`V`."""
        return int(self.pos.size(0))

    @property
    def num_faces(self) -> int:
        r"""The number of triangles :math:`F`."""
        return int(self.face.size(1))

    @property
    def vertices(self) -> Tensor:
        r"""Deprecated alias of :obj:`pos`."""
        _deprecated("Mesh.vertices", "Mesh.pos")
        return self.pos

    @vertices.setter
    def vertices(self, value: Tensor) -> None:
        _deprecated("Mesh.vertices", "Mesh.pos")
        self.pos = value

    @property
    def faces(self) -> Tensor:
        r"""The triangles ``[F, 3]``, a view of :obj:`face.t()`
        (deprecated)."""
        _deprecated("Mesh.faces [F, 3]", "Mesh.face [3, F]")
        return self.face.t()

    @faces.setter
    def faces(self, value: Any) -> None:
        _deprecated("Mesh.faces [F, 3]", "Mesh.face [3, F]")
        self.face = _legacy_faces(value)

    def edge_index(self) -> Tensor:
        r"""The undirected, coalesced :obj:`edge_index` ``[2, E]`` of the
        triangle edges (both directions, no self-loops): PyG's
        :class:`~torch_geometric.transforms.FaceToEdge` through
        :func:`pyg_skeleton.utils.faces_to_edges`, after its checks."""
        return faces_to_edges(self.face, self.num_vertices)

    def to_data(self) -> Data:
        r"""A :class:`~torch_geometric.data.Data` with :obj:`pos`
        ``[V, 3]``, :obj:`face` ``[3, F]`` and :obj:`edge_index`; :obj:`pos`
        and :obj:`face` are the mesh's own tensors, except that a
        non-contiguous :obj:`face` (*e.g.* a transposed ``[F, 3]``) is made
        contiguous, as PyG's mesh transforms need it."""
        return Data(pos=self.pos, face=self.face.contiguous(),
                    edge_index=self.edge_index(), num_nodes=self.num_vertices)

    @classmethod
    def from_data(cls, data: Data, *, vertex_map: Tensor | None = None,
                  meta: dict[str, object] | None = None) -> Mesh:
        r"""The :class:`Mesh` of a :class:`~torch_geometric.data.Data`'s
        :obj:`pos` ``[V, 3]`` and :obj:`face` ``[3, F]`` (shared, not
        copied), *e.g.* after a PyG transform of :meth:`to_data`.

        Raises:
            ValueError: If :obj:`data` has no :obj:`pos` or no :obj:`face`.
        """
        missing = [k for k in ('pos', 'face') if getattr(data, k, None) is None]
        if missing:
            raise ValueError(f"Mesh.from_data() needs 'pos' and 'face' (the "
                             f"data has no {' and no '.join(map(repr, missing))})")
        return cls(pos=data.pos, face=data.face, vertex_map=vertex_map,
                   meta=meta)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_vertices={self.num_vertices}, '
                f'num_faces={self.num_faces})')


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated; use {new} (PyG's layout)",
                  DeprecationWarning, stacklevel=3)


def _face_tensor(tri: np.ndarray) -> Tensor:
    # A reader's triangles [F, 3] (int64) as PyG's contiguous [3, F].
    return torch.from_numpy(np.ascontiguousarray(tri.T))


def _legacy_faces(faces: Any) -> Tensor:
    # The old [F, 3] layout, stored as PyG's [3, F].
    faces = torch.as_tensor(faces)
    if faces.dim() != 2:
        raise ValueError(f"the deprecated 'faces' must be [F, 3] "
                         f"(got {list(faces.shape)})")
    return faces.t().contiguous()


# ---------------------------------------------------------------------------
# Graph helpers


def faces_to_edge_index(faces: Tensor | np.ndarray,
                        num_nodes: int | None = None) -> Tensor:
    r"""Undirected :obj:`edge_index` of a triangle (or polygon) face array
    in the row-per-face layout of mesh files, ``[F, k]``:
    :func:`pyg_skeleton.utils.faces_to_edges` of the faces in PyG's
    ``[k, F]`` layout (PyG's :class:`~torch_geometric.transforms.FaceToEdge`
    for triangles). A :class:`Mesh` has :meth:`Mesh.edge_index`.

    Raises:
        ValueError: If :obj:`faces` is not ``[F, k]``, holds non-integral
            values, or an index outside ``[0, num_nodes)``.
    """
    faces = as_index_tensor(faces, "'faces'")
    if faces.dim() != 2 or faces.size(1) < 2:
        raise ValueError(f"'faces' must have shape [F, k] with k >= 2 "
                         f"(got {list(faces.shape)})")
    return faces_to_edges(faces.t(), num_nodes, name='faces')


def connected_components(edge_index: Tensor | np.ndarray,
                         num_nodes: int) -> tuple[int, np.ndarray]:
    r""":func:`pyg_skeleton.utils.connected_components` with the labels as
    a NumPy array. Returns :obj:`(count, labels)`, labels numbered
    ``0..count-1`` in order of each component's smallest node."""
    count, labels = graph_components(torch.as_tensor(edge_index), num_nodes)
    return count, labels.cpu().numpy()


# ---------------------------------------------------------------------------
# Faces


def split_quads(vertices: np.ndarray, quads: np.ndarray) -> np.ndarray:
    r"""Splits quads :math:`(a, b, c, d)` into two triangles along their
    shorter diagonal, keeping the orientation: :math:`(a, b, c), (a, c, d)`
    when :math:`|ac| \le |bd|`, else :math:`(a, b, d), (b, c, d)`. Returns
    ``[2 Q, 3]``, the two triangles of quad :obj:`q` at rows :obj:`2q` and
    :obj:`2q + 1`."""
    quads = np.asarray(quads, dtype=np.int64).reshape(-1, 4)
    v = np.asarray(vertices, dtype=np.float64)
    a, b, c, d = quads.T
    ac = np.einsum('ij,ij->i', v[a] - v[c], v[a] - v[c])
    bd = np.einsum('ij,ij->i', v[b] - v[d], v[b] - v[d])
    use_ac = ac <= bd
    t1 = np.where(use_ac[:, None], np.stack([a, b, c], 1),
                  np.stack([a, b, d], 1))
    t2 = np.where(use_ac[:, None], np.stack([a, c, d], 1),
                  np.stack([b, c, d], 1))
    return np.stack([t1, t2], 1).reshape(-1, 3)


def _polygons_to_triangles(vertices: np.ndarray, polygons: list[np.ndarray],
                           require_triangles: bool, source: str) -> np.ndarray:
    out = []
    for poly in polygons:
        if poly.size == 0:
            continue
        k = poly.shape[1]
        if k == 3:
            out.append(poly)
        elif k == 4 and not require_triangles:
            out.append(split_quads(vertices, poly))
        elif k == 4:
            raise ValueError(f"{source}: {poly.shape[0]} quad faces, but "
                             f"triangles are required (pass "
                             f"require_triangles=False to split each quad "
                             f"along its shorter diagonal)")
        else:
            raise ValueError(f"{source}: {poly.shape[0]} faces with {k} "
                             f"corners; only triangles and quads are "
                             f"supported")
    if not out:
        return np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(out).astype(np.int64)


def _group_polygons(faces: list[list[int]]) -> list[np.ndarray]:
    # triangles first, then quads, ...; file order within each size
    by_size: dict[int, list[list[int]]] = {}
    for f in faces:
        by_size.setdefault(len(f), []).append(f)
    return [np.asarray(by_size[k], dtype=np.int64) for k in sorted(by_size)]


# ---------------------------------------------------------------------------
# NPZ archives

# Deflate cannot expand data by more than about 1032:1, so a member whose
# directory entry claims more is lying about its size.
_MAX_DEFLATE_RATIO = 1100


def _read_npy_header(fh, path: Path, key: str):
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as e:  # numpy parses the header with ast/tokenize
        raise ValueError(f"{path}: member {key!r} has no valid .npy header "
                         f"({_first_line(e)})") from None
    return shape, dtype, fh.tell()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def npz_members(path: PathLike) -> dict[str, tuple[tuple[int, ...],
                                                   np.dtype]]:
    r"""Checks every array of an :obj:`.npz` archive without loading it and
    returns :obj:`{key: (shape, dtype)}`.

    Every member's :obj:`.npy` header must be readable, must not hold Python
    objects (pickles are never loaded), and the bytes its shape and dtype
    claim must equal the bytes the member holds, so a header claiming
    ``[1e13, 3]`` is refused before anything is allocated. A compressed
    member may not claim more bytes than deflate can produce from its
    compressed size.

    Raises:
        ValueError: One line naming the file (and the member) on any defect.
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError) as e:  # OSErrors pass as they are
        raise ValueError(f"{path}: cannot read as an .npz archive "
                         f"({_first_line(e)})") from None
    size = os.path.getsize(path)
    out = {}
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith('.npy'):
                continue
            key = info.filename[:-4]
            if info.header_offset + info.compress_size > size:
                raise ValueError(f"{path}: member {key!r} claims "
                                 f"{info.compress_size} bytes beyond the end "
                                 f"of the file (truncated archive)")
            if (info.compress_type != zipfile.ZIP_STORED and info.file_size
                    > _MAX_DEFLATE_RATIO * info.compress_size + 4096):
                raise ValueError(f"{path}: member {key!r} claims "
                                 f"{info.file_size} bytes from "
                                 f"{info.compress_size} compressed bytes, "
                                 f"more than deflate can produce")
            try:
                with zf.open(info) as fh:
                    shape, dtype, header = _read_npy_header(fh, path, key)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                raise ValueError(f"{path}: member {key!r} is unreadable "
                                 f"({_first_line(e)})") from None
            if dtype.hasobject:
                raise ValueError(f"{path}: member {key!r} holds Python "
                                 f"objects (dtype {dtype}); only plain "
                                 f"arrays are read")
            claimed = math.prod(shape) * dtype.itemsize
            if claimed != info.file_size - header:
                raise ValueError(f"{path}: member {key!r} claims shape "
                                 f"{list(shape)} of {dtype} ({claimed} bytes)"
                                 f" but holds {info.file_size - header} "
                                 f"bytes")
            out[key] = (tuple(shape), dtype)
    return out


def read_npy_array(path: PathLike) -> np.ndarray:
    r"""Loads a plain :obj:`.npy` array after checking its header against
    the file's size, as :func:`npz_members` does for archive members (never
    with :obj:`allow_pickle`).

    Raises:
        ValueError: One line naming the file if the header is unreadable,
            holds Python objects or claims more or fewer bytes than the file.
    """
    path = Path(path)
    size = os.path.getsize(path)
    with open(path, 'rb') as fh:
        shape, dtype, header = _read_npy_header(fh, path, path.stem)
        if dtype.hasobject:
            raise ValueError(f"{path}: holds Python objects (dtype {dtype}); only plain "
                             f"arrays are read")
        claimed = math.prod(shape) * dtype.itemsize
        if claimed != size - header:
            raise ValueError(f"{path}: header claims shape {list(shape)} of {dtype} "
                             f"({claimed} bytes) but the file holds {size - header} bytes")
        fh.seek(0)
        return np.lib.format.read_array(fh, allow_pickle=False)


def read_npz_arrays(path: PathLike, keys: Sequence[str] | None = None, *,
                    required: Sequence[str] = ()) -> dict[str, np.ndarray]:
    r"""Loads plain arrays from an :obj:`.npz` archive after
    :func:`npz_members` has checked every member's header against its size
    (never with :obj:`allow_pickle`).

    Args:
        path (str or Path): The archive.
        keys (sequence of str, optional): The arrays to load; those absent
            are skipped. (default: all)
        required (sequence of str, optional): Arrays that must be present.

    Returns:
        dict: :obj:`{key: numpy.ndarray}`.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: One line naming the file (and the member) if it is not
            an archive of plain arrays, a member is truncated, corrupt or
            lies about its size, or a required array is missing.
    """
    path = Path(path)
    members = npz_members(path)
    missing = [k for k in required if k not in members]
    if missing:
        raise ValueError(f"{path}: no array {missing[0]!r} (arrays: "
                         f"{sorted(members)})")
    wanted = list(members) if keys is None else [k for k in keys
                                                  if k in members]
    out = {}
    with np.load(path, allow_pickle=False) as z:
        for key in wanted:
            try:
                out[key] = z[key]
            except Exception as e:  # zlib, CRC, EOF: a corrupt member
                raise ValueError(f"{path}: member {key!r} is corrupt "
                                 f"({_first_line(e)})") from None
    return out


# ---------------------------------------------------------------------------
# Readers


def _finish(path: Path, v: np.ndarray, polys: list[np.ndarray],
            require_triangles: bool) -> np.ndarray:
    r"""Checks a reader's vertices and polygons and triangulates them: an
    empty or non-finite result is an error, never a mesh."""
    if v.shape[0] == 0:
        raise ValueError(f"{path}: no vertices (empty or not a mesh file)")
    finite = np.isfinite(v).all(axis=1)
    if not finite.all():
        raise ValueError(f"{path}: {int((~finite).sum())} vertices have NaN "
                         f"or infinite coordinates (first: vertex "
                         f"{int(np.flatnonzero(~finite)[0])})")
    if not any(p.shape[0] for p in polys):
        raise ValueError(f"{path}: no faces")
    for poly in polys:
        _check_range(poly, v.shape[0], str(path))
    return _polygons_to_triangles(v, polys, require_triangles, str(path))


def read_obj(path: PathLike, *, groups: Sequence[str] | None = None,
             require_triangles: bool = False,
             scale: float = 1.0) -> Mesh:
    r"""Reads a Wavefront OBJ file (:obj:`v` and :obj:`f` records; texture
    and normal indices and negative indices are understood).

    Args:
        groups (sequence of str, optional): Keep only the faces of these
            :obj:`g` groups, and only the vertices they use (in file order;
            :obj:`Mesh.vertex_map` gives their original indices).
        require_triangles (bool, optional): Reject quads instead of splitting
            them. (default: :obj:`False`)
        scale (float, optional): Factor applied to the vertices, *e.g.*
            :obj:`0.1` for decimetres to metres. (default: :obj:`1.0`)

    Raises:
        ValueError: One line naming the file (and the line where there is
            one) for binary data, a malformed record, a face index out of
            range (reported as written), NaN or infinite vertices, or a file
            without vertices or faces.
    """
    path = Path(path)
    with open(path, 'rb') as f:
        raw = f.read()
    if b'\0' in raw:
        raise ValueError(f"{path}: binary data (NUL bytes), not an OBJ text "
                         f"file")
    text = raw.decode('utf-8', errors='replace')
    del raw
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    face_lines: list[int] = []
    wanted = None if groups is None else set(groups)
    current = ['default']
    seen_groups = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        if tag == 'v':
            try:
                verts.append([float(t) for t in parts[1:4]])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: bad vertex record "
                                 f"{line.strip()!r}") from None
            if len(verts[-1]) != 3:
                raise ValueError(f"{path}:{lineno}: a vertex needs 3 "
                                 f"coordinates")
        elif tag == 'g':
            current = parts[1:] or ['default']
            seen_groups.update(current)
        elif tag == 'f':
            if wanted is not None and not wanted.intersection(current):
                continue
            try:
                idx = [int(t.split('/')[0]) for t in parts[1:]]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: bad face record "
                                 f"{line.strip()!r}") from None
            if len(idx) < 3:
                raise ValueError(f"{path}:{lineno}: a face needs at least 3 "
                                 f"corners (got {len(idx)})")
            n = len(verts)
            if 0 in idx or min(idx) < -n:
                # 1-based; negative counts back from the last vertex so far
                i = next(i for i in idx if i == 0 or i < -n)
                raise ValueError(f"{path}:{lineno}: face index {i} refers "
                                 f"to no vertex ({n} vertices before this "
                                 f"line; OBJ indices start at 1)")
            faces.append([i - 1 if i > 0 else n + i for i in idx])
            face_lines.append(lineno)
    if wanted is not None and not wanted.issubset(seen_groups):
        raise ValueError(f"{path}: no group(s) {sorted(wanted - seen_groups)}"
                         f" (the file has {len(seen_groups)} groups)")
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3) * scale
    # positive indices may point forward, so their range is known only now
    if faces and max(map(max, faces)) >= v.shape[0]:
        k = next(k for k, f in enumerate(faces) if max(f) >= v.shape[0])
        raise ValueError(f"{path}:{face_lines[k]}: face index "
                         f"{max(faces[k]) + 1} out of range for "
                         f"{v.shape[0]} vertices")
    tri = _finish(path, v, _group_polygons(faces), require_triangles)
    vertex_map = None
    if wanted is not None:
        used = np.unique(tri)
        remap = np.full(v.shape[0], -1, dtype=np.int64)
        remap[used] = np.arange(used.size)
        v, tri, vertex_map = v[used], remap[tri], torch.from_numpy(used)
    return Mesh(pos=torch.from_numpy(v).float(), face=_face_tensor(tri),
                vertex_map=vertex_map, meta={'source': str(path)})


_PLY_TYPES = {
    'char': 'i1', 'int8': 'i1', 'uchar': 'u1', 'uint8': 'u1',
    'short': 'i2', 'int16': 'i2', 'ushort': 'u2', 'uint16': 'u2',
    'int': 'i4', 'int32': 'i4', 'uint': 'u4', 'uint32': 'u4',
    'float': 'f4', 'float32': 'f4', 'double': 'f8', 'float64': 'f8',
}


def _ply_header(raw: bytes, path: Path):
    r"""Parses a PLY header: :obj:`(format, elements, body_start)`."""
    if not raw.startswith(b'ply'):
        raise ValueError(f"{path}: not a PLY file (no 'ply' magic)")
    end = raw.find(b'end_header')
    if end < 0:
        raise ValueError(f"{path}: PLY header has no 'end_header'")
    newline = raw.find(b'\n', end)
    if newline < 0:
        raise ValueError(f"{path}: PLY file ends after 'end_header' (no "
                         f"data)")
    header = raw[:end].decode('ascii', errors='replace').splitlines()
    fmt = None
    elements: list[tuple[str, int, list]] = []
    for line in header[1:]:
        parts = line.split()
        if not parts or parts[0] in ('comment', 'obj_info'):
            continue
        if parts[0] == 'property' and not elements:
            raise ValueError(f"{path}: property before any element")
        try:
            if parts[0] == 'format':
                fmt = parts[1]
            elif parts[0] == 'element':
                count = int(parts[2])
                if count < 0:
                    raise ValueError
                elements.append((parts[1], count, []))
            elif parts[0] == 'property' and parts[1] == 'list':
                elements[-1][2].append((parts[4], 'list', parts[2],
                                        parts[3]))
            elif parts[0] == 'property':
                elements[-1][2].append((parts[2], parts[1]))
        except (IndexError, ValueError):
            raise ValueError(f"{path}: bad PLY header line "
                             f"{line.strip()!r}") from None
    if fmt not in ('ascii', 'binary_little_endian', 'binary_big_endian'):
        raise ValueError(f"{path}: unsupported PLY format {fmt!r}")
    for name, _, props in elements:
        for p in props:
            for t in (p[1:] if p[1] != 'list' else p[2:]):
                if t not in _PLY_TYPES:
                    raise ValueError(f"{path}: unknown PLY type {t!r}")
            if p[1] == 'list' and _PLY_TYPES[p[2]][0] == 'f':
                raise ValueError(f"{path}: element {name!r}: list "
                                 f"{p[0]!r} has a float count type")
    return fmt, elements, newline + 1


def _ply_ascii(body: bytes, elements, path: Path) -> dict[str, dict]:
    tokens = body.split()
    pos = 0
    data: dict[str, dict] = {}
    for name, count, props in elements:
        if all(p[1] != 'list' for p in props):
            n = len(props)
            if pos + n * count > len(tokens):
                raise ValueError(f"{path}: ASCII PLY body is truncated in "
                                 f"element {name!r} (needs {n * count} "
                                 f"values, {len(tokens) - pos} left)")
            try:
                block = np.asarray(tokens[pos:pos + n * count],
                                   dtype=np.float64).reshape(count, n)
            except ValueError:
                raise ValueError(f"{path}: ASCII PLY element {name!r} holds "
                                 f"a value that is not a number") from None
            pos += n * count
            data[name] = {p[0]: block[:, i] for i, p in enumerate(props)}
            continue
        rows: dict[str, list] = {p[0]: [] for p in props}
        for row in range(count):
            for p in props:
                if pos >= len(tokens):
                    raise ValueError(f"{path}: ASCII PLY body is truncated "
                                     f"in element {name!r} (row {row} of "
                                     f"{count})")
                try:
                    if p[1] == 'list':
                        k = int(tokens[pos])
                        if k < 0 or pos + 1 + k > len(tokens):
                            raise ValueError
                        rows[p[0]].append([float(t) for t in
                                           tokens[pos + 1:pos + 1 + k]])
                        pos += 1 + k
                    else:
                        rows[p[0]].append(float(tokens[pos]))
                        pos += 1
                except ValueError:
                    raise ValueError(f"{path}: ASCII PLY element {name!r}, "
                                     f"row {row}: bad or truncated "
                                     f"{p[0]!r}") from None
        data[name] = rows
    return data


def _ply_binary(buf: memoryview, elements, endian: str, path: Path
                ) -> dict[str, dict]:
    pos = 0
    data: dict[str, dict] = {}

    def truncated(name, row=None):
        at = '' if row is None else f" (row {row})"
        return ValueError(f"{path}: binary PLY body is truncated in element "
                          f"{name!r}{at}")

    for name, count, props in elements:
        if all(p[1] != 'list' for p in props):
            dt = np.dtype([(p[0], endian + _PLY_TYPES[p[1]])
                           for p in props])
            if pos + dt.itemsize * count > len(buf):
                raise truncated(name)
            arr = np.frombuffer(buf, dtype=dt, count=count, offset=pos)
            pos += dt.itemsize * count
            data[name] = {p[0]: arr[p[0]] for p in props}
            continue
        if (name == 'face' and len(props) == 1 and count > 0):
            # fast path: every face has the same corner count
            _, _, ct, it = props[0]
            cdt = np.dtype(endian + _PLY_TYPES[ct])
            idt = np.dtype(endian + _PLY_TYPES[it])
            if pos + cdt.itemsize > len(buf):
                raise truncated(name, 0)
            k = int(np.frombuffer(buf, cdt, 1, pos)[0])
            if k >= 0:
                rec = np.dtype([('n', cdt), ('i', idt, (k, ))])
                if pos + rec.itemsize * count <= len(buf):
                    arr = np.frombuffer(buf, rec, count, pos)
                    if np.all(arr['n'] == k):
                        pos += rec.itemsize * count
                        data[name] = {props[0][0]: arr['i']}
                        continue
        rows = {p[0]: [] for p in props}
        for row in range(count):
            for p in props:
                if p[1] == 'list':
                    cdt = np.dtype(endian + _PLY_TYPES[p[2]])
                    idt = np.dtype(endian + _PLY_TYPES[p[3]])
                    if pos + cdt.itemsize > len(buf):
                        raise truncated(name, row)
                    k = int(np.frombuffer(buf, cdt, 1, pos)[0])
                    pos += cdt.itemsize
                    if k < 0:
                        raise ValueError(f"{path}: element {name!r}, row "
                                         f"{row}: negative list length {k}")
                    if pos + idt.itemsize * k > len(buf):
                        raise truncated(name, row)
                    rows[p[0]].append(np.frombuffer(buf, idt, k, pos))
                    pos += idt.itemsize * k
                else:
                    dt = np.dtype(endian + _PLY_TYPES[p[1]])
                    if pos + dt.itemsize > len(buf):
                        raise truncated(name, row)
                    rows[p[0]].append(np.frombuffer(buf, dt, 1, pos)[0])
                    pos += dt.itemsize
        data[name] = rows
    return data


def _integral_faces(values, path: Path, k: int) -> list[int]:
    out = []
    for t in values:
        if not float(t).is_integer():
            raise ValueError(f"{path}: face {k} has the non-integral index "
                             f"{t}")
        out.append(int(t))
    return out


def read_ply(path: PathLike, *, require_triangles: bool = False) -> Mesh:
    r"""Reads a PLY file, ASCII or binary (little or big endian), with a
    :obj:`vertex` element (properties :obj:`x`, :obj:`y`, :obj:`z`; others
    are skipped) and a :obj:`face` element whose list property is
    :obj:`vertex_indices` or :obj:`vertex_index`.

    Raises:
        ValueError: One line naming the file for a bad header, a truncated
            or malformed body, non-integral or out-of-range face indices,
            NaN or infinite vertices, or a file without vertices or faces.
    """
    path = Path(path)
    with open(path, 'rb') as f:
        raw = f.read()
    fmt, elements, body_start = _ply_header(raw, path)
    if fmt == 'ascii':
        data = _ply_ascii(raw[body_start:], elements, path)
    else:
        endian = '<' if fmt == 'binary_little_endian' else '>'
        data = _ply_binary(memoryview(raw)[body_start:], elements, endian,
                           path)

    if 'vertex' not in data or not {'x', 'y', 'z'} <= set(data['vertex']):
        raise ValueError(f"{path}: PLY has no vertex element with x, y, z")
    vert = data['vertex']
    v = np.stack([np.asarray(vert[c], dtype=np.float64)
                  for c in 'xyz'], axis=1)
    face_el = data.get('face', {})
    key = next((k for k in ('vertex_indices', 'vertex_index')
                if k in face_el), None)
    if key is None:
        raise ValueError(f"{path}: PLY has no face element with "
                         f"'vertex_indices'")
    faces = face_el[key]
    if isinstance(faces, np.ndarray):
        if faces.dtype.kind == 'f':
            bad = faces != np.round(faces)
            if bad.any():
                raise ValueError(f"{path}: face "
                                 f"{int(np.flatnonzero(bad.any(1))[0])} has "
                                 f"a non-integral index")
        polys = [faces.astype(np.int64)]
    else:
        rows = []
        for k, fc in enumerate(faces):
            if len(fc) < 3:
                raise ValueError(f"{path}: face {k} has {len(fc)} corners")
            rows.append(_integral_faces(fc, path, k))
        polys = _group_polygons(rows)
    tri = _finish(path, v, polys, require_triangles)
    return Mesh(pos=torch.from_numpy(v).float(), face=_face_tensor(tri),
                meta={'source': str(path)})


#: The arrays of a SMPL-family model file (SMPL, SMPL-X, MANO) that make
#: its template mesh.
SMPL_KEYS = ('v_template', 'f')


def read_npz(path: PathLike, *, vertices_key: str | None = None,
             faces_key: str | None = None,
             require_triangles: bool = False) -> Mesh:
    r"""Reads vertices and faces (``[F, 3]`` or ``[F, 4]``) from an
    :obj:`.npz` archive of plain arrays (checked and loaded with
    ``read_npz_arrays``, never with :obj:`allow_pickle`), *e.g.* the
    MakeHuman and MHR meshes; for the MHR LOD file pass
    :obj:`vertices_key='lod3_vertices'`, :obj:`faces_key='lod3_faces'`.

    Without keys it reads :obj:`vertices` and :obj:`faces`, or, in an
    archive without those that holds :obj:`v_template` and :obj:`f` (an
    :obj:`.npz` export of a SMPL, SMPL-X or MANO model), the model's
    template mesh.

    Raises:
        ValueError: One line naming the file for a corrupt archive, a
            missing array, bad shapes, non-integer faces, out-of-range
            indices, NaN or infinite vertices, or an empty mesh.
    """
    path = Path(path)
    if vertices_key is None and faces_key is None:
        members = npz_members(path)
        smpl = ('vertices' not in members and 'faces' not in members
                and all(k in members for k in SMPL_KEYS))
        vertices_key, faces_key = SMPL_KEYS if smpl else ('vertices', 'faces')
    vertices_key = 'vertices' if vertices_key is None else vertices_key
    faces_key = 'faces' if faces_key is None else faces_key
    arrays = read_npz_arrays(path, (vertices_key, faces_key),
                             required=(vertices_key, faces_key))
    v, faces = arrays[vertices_key], arrays[faces_key]
    if v.dtype.kind not in 'iuf':
        raise ValueError(f"{path}: {vertices_key!r} must hold numbers (got "
                         f"{v.dtype})")
    v = v.astype(np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{path}: {vertices_key!r} must be [V, 3] "
                         f"(got {list(v.shape)})")
    if faces.ndim != 2 or faces.shape[1] < 3:
        raise ValueError(f"{path}: {faces_key!r} must be [F, 3] or [F, 4] "
                         f"(got {list(faces.shape)})")
    if not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"{path}: {faces_key!r} must hold integers (got "
                         f"{faces.dtype})")
    tri = _finish(path, v, [faces.astype(np.int64)], require_triangles)
    return Mesh(pos=torch.from_numpy(v).float(), face=_face_tensor(tri),
                meta={'source': str(path)})


def _read_smpl_pkl(path: Path, *, require_triangles: bool = False) -> Mesh:
    from .smpl import load_smpl  # smpl.py imports this module
    mesh = load_smpl(path).to_mesh()  # SMPL faces are triangles
    mesh.meta['source'] = str(path)
    return mesh


def read_mesh(path: PathLike, *, require_triangles: bool = False,
              check: bool = True, **cleanup) -> Mesh:
    r"""Reads an OBJ, PLY or NPZ mesh, or the template mesh of a SMPL,
    SMPL-X or MANO model file (:obj:`.pkl`, read by
    :func:`~pyg_skeleton.mesh.load_smpl` without running pickled code), by
    its suffix and (by default) passes it through :func:`check_mesh` with
    the given cleanup options (:obj:`drop_degenerate`,
    :obj:`drop_duplicates`, :obj:`drop_unreferenced`,
    :obj:`largest_component`). An :obj:`.npz` is read by :func:`read_npz`
    (a SMPL-layout archive included)."""
    path = Path(path)
    suffix = path.suffix.lower()
    readers = {'.obj': read_obj, '.ply': read_ply, '.npz': read_npz,
               '.pkl': _read_smpl_pkl}
    if suffix not in readers:
        raise ValueError(f"{path}: unknown mesh format {suffix!r} (expected "
                         f".obj, .ply, .npz or a SMPL .pkl)")
    mesh = readers[suffix](path, require_triangles=require_triangles)
    return check_mesh(mesh, **cleanup) if check else mesh


# ---------------------------------------------------------------------------
# Validation and cleanup


def _check_range(faces: np.ndarray, num_vertices: int, source: str) -> None:
    if faces.size and (faces.min() < 0 or faces.max() >= num_vertices):
        bad = faces[(faces < 0) | (faces >= num_vertices)]
        raise ValueError(f"{source}: face index {int(bad[0])} out of range "
                         f"for {num_vertices} vertices "
                         f"({bad.size} bad indices)")


def check_mesh(mesh: Mesh, *, drop_degenerate: bool = False,
               drop_duplicates: bool = False,
               drop_unreferenced: bool = False,
               largest_component: bool = False) -> Mesh:
    r"""Validates a triangle mesh; see the module docstring for the checks.
    Returns the mesh unchanged when it is clean, else a cleaned copy (when
    the matching options are set) whose :obj:`Mesh.vertex_map` points back
    to the input's vertices.

    Raises:
        ValueError: On out-of-range face indices, non-finite vertices, or a
            defect whose cleanup option is not set.
    """
    v = mesh.pos
    src = mesh.meta.get('source', 'mesh')
    face = as_index_tensor(mesh.face, f"{src}: face")
    if v.dim() != 2 or v.size(1) != 3:
        raise ValueError(f"{src}: pos must be [V, 3] "
                         f"(got {list(v.shape)})")
    if face.dim() != 2 or face.size(0) != 3:
        raise ValueError(f"{src}: face must be triangles [3, F] "
                         f"(got {list(face.shape)})")
    n = v.size(0)
    f = face.t().numpy()  # one row per face below
    _check_range(f, n, src)
    finite = torch.isfinite(v).all(dim=1)
    if not bool(finite.all()):
        bad = (~finite).nonzero().view(-1)
        raise ValueError(f"{src}: {bad.numel()} vertices have NaN or "
                         f"infinite coordinates (first: {int(bad[0])})")

    keep = np.ones(f.shape[0], dtype=bool)
    repeated = ((f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) |
                (f[:, 0] == f[:, 2]))
    vd = v.double().numpy()
    area2 = np.linalg.norm(np.cross(vd[f[:, 1]] - vd[f[:, 0]],
                                    vd[f[:, 2]] - vd[f[:, 0]]), axis=1)
    degenerate = repeated | (area2 == 0)
    if degenerate.any():
        if not drop_degenerate:
            raise ValueError(f"{src}: {int(degenerate.sum())} degenerate "
                             f"faces (repeated vertex or zero area; first: "
                             f"face {int(degenerate.nonzero()[0][0])}); pass "
                             f"drop_degenerate=True to remove them")
        keep &= ~degenerate
    key = np.sort(f, axis=1)
    _, first = np.unique(key, axis=0, return_index=True)
    unique_mask = np.zeros(f.shape[0], dtype=bool)
    unique_mask[first] = True
    duplicate = ~unique_mask & keep
    if duplicate.any():
        if not drop_duplicates:
            raise ValueError(f"{src}: {int(duplicate.sum())} duplicate faces "
                             f"(first: face {int(duplicate.nonzero()[0][0])})"
                             f"; pass drop_duplicates=True to remove them")
        keep &= ~duplicate
    f = f[keep]

    used = np.zeros(n, dtype=bool)
    used[f.reshape(-1)] = True
    if not used.all():
        if not drop_unreferenced:
            raise ValueError(f"{src}: {int((~used).sum())} vertices are not "
                             f"used by any face (first: "
                             f"{int((~used).nonzero()[0][0])}); pass "
                             f"drop_unreferenced=True to remove them")
    count, labels = connected_components(
        faces_to_edges(torch.from_numpy(f.T), n), n)
    count_used = np.unique(labels[used]).size
    if count_used > 1:
        if not largest_component:
            raise ValueError(f"{src}: the mesh has {count_used} connected "
                             f"components; pass largest_component=True to "
                             f"keep the largest one")
        sizes = np.bincount(labels[used], minlength=count)
        used &= labels == int(np.argmax(sizes))
        f = f[used[f[:, 0]]]

    if keep.all() and used.all():
        return mesh
    index = np.nonzero(used)[0]
    remap = np.full(n, -1, dtype=np.int64)
    remap[index] = np.arange(index.size)
    base = (mesh.vertex_map if mesh.vertex_map is not None else
            torch.arange(n))
    return Mesh(pos=v[torch.from_numpy(index)], face=_face_tensor(remap[f]),
                vertex_map=base[torch.from_numpy(index)], meta=dict(mesh.meta))


def mesh_from_arrays(vertices, faces, *, require_triangles: bool = False,
                     check: bool = True, **cleanup) -> Mesh:
    r"""A :class:`Mesh` from array-likes in the row-per-element layout of
    mesh files: :obj:`vertices` ``[V, 3]`` and :obj:`faces` ``[F, 3]`` or
    ``[F, 4]`` (quads are split unless :obj:`require_triangles`)."""
    v = np.asarray(vertices, dtype=np.float64)
    fc = as_index_tensor(faces, 'faces').numpy()
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be [V, 3] (got {list(v.shape)})")
    if fc.ndim != 2 or fc.shape[1] not in (3, 4):
        raise ValueError(f"faces must be [F, 3] or [F, 4] "
                         f"(got {list(fc.shape)})")
    _check_range(fc, v.shape[0], 'mesh')
    tri = _polygons_to_triangles(v, [fc], require_triangles, 'mesh')
    mesh = Mesh(pos=torch.from_numpy(v).float(), face=_face_tensor(tri))
    return check_mesh(mesh, **cleanup) if check else mesh

r"""Loading SMPL, SMPL-X and MANO model files without running pickled code.

SMPL-family models are distributed (after registration; they may not be
redistributed) as Python-2 pickles that hold NumPy arrays, SciPy sparse
matrices and `chumpy` arrays, or as :obj:`.npz` archives. Unpickling such a
file with :func:`pickle.load` executes whatever the file asks for.
:class:`SafeModelUnpickler` instead resolves only

* NumPy's array, dtype and scalar reconstructors (:data:`NUMPY_GLOBALS`;
  an array is allocated only as large as the data the file holds);
* SciPy's CSC / CSR / COO sparse matrix classes, mapped onto
  :obj:`SparseMatrixStub`, which keeps their arrays (SciPy is not needed);
* every class of a :obj:`chumpy` module, mapped onto :obj:`ChumpyStub`,
  which keeps its state (the array payload is its :obj:`x` entry);
* :obj:`copyreg._reconstructor`, :obj:`builtins.object`, :obj:`set`,
  :obj:`frozenset` and :obj:`_codecs.encode`, in restricted forms that only
  build the stubs above, plain containers and Latin-1 byte strings.

Any other global (:obj:`os.system`, :obj:`builtins.eval`, ...) raises
:class:`pickle.UnpicklingError` before anything is called. The mechanism,
``RestrictedUnpickler`` with an allow-list, is shared with the
Human3.6M reader (:mod:`pyg_skeleton.datasets.h36m`).
"""
from __future__ import annotations

import importlib
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .io import Mesh


class ChumpyStub:
    r"""Stands in for any :obj:`chumpy` object of a model pickle; keeps its
    pickled state. :meth:`to_array` returns the array payload (the state's
    :obj:`x`)."""
    def __init__(self, *args, **kwargs):
        self.state: dict[str, Any] = {}

    def __setstate__(self, state):
        self.state = dict(state) if isinstance(state, dict) else {
            'state': state}

    def to_array(self) -> np.ndarray:
        if 'x' not in self.state:
            raise ValueError(f"chumpy object without an array payload "
                             f"(state keys: {sorted(self.state)})")
        return np.asarray(_to_numpy(self.state['x']))

    def __repr__(self) -> str:
        return f'ChumpyStub({sorted(self.state)})'


#: A sparse matrix of a model file is made dense (:meth:`SparseMatrixStub.
#: to_array`) only up to this many bytes, or :data:`DENSE_RATIO` times the
#: bytes it holds, whichever is larger: its shape is only a claim of the file.
MAX_DENSE_BYTES = 64 * 2 ** 20
DENSE_RATIO = 1024


class SparseMatrixStub:
    r"""Stands in for a SciPy sparse matrix of a model pickle; keeps its
    arrays and converts to a dense NumPy array or a :obj:`torch.sparse`
    tensor."""
    fmt = 'csc'

    def __init__(self, *args, **kwargs):
        self.state: dict[str, Any] = {}

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("bad sparse matrix state")
        self.state = dict(state)

    @property
    def shape(self):
        shape = self.state.get('_shape', self.state.get('shape'))
        if shape is None:
            raise ValueError("sparse matrix without a shape")
        return tuple(int(s) for s in shape)

    def _coo(self):
        # checked against the shape before anything of the shape's size is
        # allocated: a crafted file can claim any shape
        s = self.state
        shape = self.shape
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"sparse matrix shape must be two sizes, got {shape}")
        data = np.asarray(s.get('data'))
        if self.fmt == 'coo':
            # SciPy >= 1.13 keeps the indices as 'coords', older as 'row', 'col'
            row, col = s['coords'] if 'coords' in s else (s.get('row'), s.get('col'))
            if row is None or col is None:
                raise ValueError("coo sparse matrix without indices")
            row, col = np.asarray(row, dtype=np.int64), np.asarray(col, dtype=np.int64)
            if not row.shape == col.shape == data.shape or row.ndim != 1:
                raise ValueError("sparse matrix row, col and data differ in length")
        else:
            indptr = np.asarray(s.get('indptr'), dtype=np.int64)
            indices = np.asarray(s.get('indices'), dtype=np.int64)
            n_major = shape[1] if self.fmt == 'csc' else shape[0]
            if (indptr.shape != (n_major + 1,) or indices.ndim != 1
                    or indices.shape != data.shape or indptr[0] != 0
                    or indptr[-1] != len(data) or (np.diff(indptr) < 0).any()):
                raise ValueError(f"malformed {self.fmt} sparse matrix of shape {shape}")
            major = np.repeat(np.arange(n_major), np.diff(indptr))
            row, col = (indices, major) if self.fmt == 'csc' else (major, indices)
        if len(row) and (row.min() < 0 or row.max() >= shape[0]
                         or col.min() < 0 or col.max() >= shape[1]):
            raise ValueError(f"sparse matrix indices outside its shape {shape}")
        return row, col, data

    def to_array(self) -> np.ndarray:
        row, col, data = self._coo()
        stored = sum(np.asarray(v).nbytes for v in self.state.values()
                     if isinstance(v, np.ndarray))
        dense = int(np.prod(self.shape, dtype=np.int64)) * data.dtype.itemsize
        if dense > max(MAX_DENSE_BYTES, DENSE_RATIO * stored):
            raise ValueError(f"sparse matrix of shape {self.shape} would take "
                             f"{dense / 2 ** 20:.0f} MiB dense from {stored} "
                             f"stored bytes (limit: {DENSE_RATIO}x, or "
                             f"{MAX_DENSE_BYTES // 2 ** 20} MiB)")
        out = np.zeros(self.shape, dtype=data.dtype)
        np.add.at(out, (row, col), data)
        return out

    def to_torch(self) -> Tensor:
        row, col, data = self._coo()
        return torch.sparse_coo_tensor(
            torch.from_numpy(np.stack([row, col]).astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(data)), self.shape,
            check_invariants=True).coalesce()


class _CSR(SparseMatrixStub):
    fmt = 'csr'


class _COO(SparseMatrixStub):
    fmt = 'coo'


_STUBS = (ChumpyStub, SparseMatrixStub, _CSR, _COO)


def _safe_reconstructor(cls, base, state):
    if cls not in _STUBS or base is not object or state is not None:
        raise pickle.UnpicklingError(
            f"refused copyreg._reconstructor({cls!r}, {base!r})")
    return cls.__new__(cls)


def _safe_codecs_encode(obj, encoding='utf-8'):
    if not isinstance(obj, str) or encoding not in ('latin1', 'latin-1'):
        raise pickle.UnpicklingError("refused _codecs.encode call")
    return obj.encode('latin1')


def _numpy_global(module: str, name: str):
    # NumPy 2 moved numpy.core to numpy._core; pickles name either
    for mod in (module.replace('numpy.core', 'numpy._core'),
                module.replace('numpy._core', 'numpy.core')):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


def _safe_array_reconstruct(subtype, shape, dtype):
    # NumPy pickles an array as an empty ``_reconstruct(ndarray, (0,), 'b')``
    # whose data arrives with ``__setstate__`` (which checks the data length
    # against the shape). A non-empty shape here would allocate memory the
    # file does not hold.
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"refused array subclass {subtype!r}")
    try:
        empty = int(np.prod(shape, dtype=np.int64)) == 0
    except (TypeError, ValueError, OverflowError):
        empty = False
    if not empty:
        raise pickle.UnpicklingError(
            f"refused array reconstruction with shape {shape!r} (NumPy pickles "
            f"start from an empty array)")
    return _numpy_global('numpy.core.multiarray', '_reconstruct')(subtype, shape, dtype)


def _numpy_allowed() -> dict[tuple[str, str], Any]:
    # protocol-2 pickles store the arrays' bytes as _codecs.encode(str, 'latin1')
    allowed: dict[tuple[str, str], Any] = {
        ('numpy', 'ndarray'): np.ndarray, ('numpy', 'dtype'): np.dtype,
        ('_codecs', 'encode'): _safe_codecs_encode}
    for core in ('numpy.core', 'numpy._core'):
        allowed[(f'{core}.multiarray', '_reconstruct')] = _safe_array_reconstruct
        for module, name in ((f'{core}.multiarray', 'scalar'),
                             (f'{core}.numeric', '_frombuffer')):
            allowed[(module, name)] = _numpy_global(module, name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    r"""A :class:`pickle.Unpickler` that resolves only the globals of an
    allow-list; any other global (:obj:`os.system`, :obj:`builtins.eval`,
    ...) raises :class:`pickle.UnpicklingError` before anything is called.

    Subclasses set ``ALLOWED`` (``(module, name)`` to the object
    returned for it) and :attr:`CONTENT` (what the files hold, for the
    error message), and may override :meth:`resolve` for names matched by
    pattern. :data:`NUMPY_GLOBALS` is the allow-list of plain NumPy arrays,
    dtypes and scalars (no array subclasses, :obj:`_reconstruct` only of the
    empty array that NumPy's pickles start from) and of the Latin-1 byte
    strings of protocol-2 pickles.
    """
    ALLOWED: dict[tuple[str, str], Any] = {}
    CONTENT = 'plain containers'

    def resolve(self, module: str, name: str) -> Any | None:
        """The object for a global outside ``ALLOWED`` (default: none)."""
        return None

    def find_class(self, module: str, name: str):
        obj = self.ALLOWED.get((module, name))
        if obj is None:
            obj = self.resolve(module, name)
        if obj is None:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': these files only "
                f"hold {self.CONTENT}")
        return obj


#: Allow-list of ``RestrictedUnpickler`` for plain NumPy arrays.
NUMPY_GLOBALS: dict[tuple[str, str], Any] = _numpy_allowed()

# harmless builtins chumpy states use (plain containers) and the base class
# that copyreg._reconstructor names
_BUILTINS = {'object': object, 'set': set, 'frozenset': frozenset}

_SPARSE = {'csc_matrix': SparseMatrixStub, 'csr_matrix': _CSR,
           'coo_matrix': _COO, 'csc_array': SparseMatrixStub,
           'csr_array': _CSR, 'coo_array': _COO}


class SafeModelUnpickler(RestrictedUnpickler):
    r"""A ``RestrictedUnpickler`` that builds only NumPy arrays, SciPy
    sparse matrices (as :obj:`SparseMatrixStub`) and chumpy objects (as
    :obj:`ChumpyStub`); see the module docstring."""
    ALLOWED = {**NUMPY_GLOBALS,
               **{(m, '_reconstructor'): _safe_reconstructor for m in ('copyreg', 'copy_reg')},
               **{(m, k): v for m in ('builtins', '__builtin__') for k, v in _BUILTINS.items()}}
    CONTENT = 'numpy arrays, scipy sparse matrices and chumpy arrays (SMPL-family model files)'

    def resolve(self, module: str, name: str) -> Any | None:
        if module.startswith('scipy.sparse') and name in _SPARSE:
            return _SPARSE[name]
        if module == 'chumpy' or module.startswith('chumpy.'):
            return ChumpyStub
        return None


def safe_load_pickle(source: str | Path | bytes) -> Any:
    r"""Unpickles a model file (path or bytes) with
    :class:`SafeModelUnpickler` (Latin-1 decoding of Python-2 strings)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return SafeModelUnpickler(io.BytesIO(data), encoding='latin1').load()


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, (ChumpyStub, SparseMatrixStub)):
        return obj.to_array()
    return obj


@dataclass
class SMPLModel:
    r"""The template of a SMPL-family model.

    Attributes:
        v_template (Tensor): ``[V, 3]`` rest vertices (float32).
        faces (Tensor): ``[F, 3]`` triangles (int64).
        J_regressor (Tensor): ``[J, V]`` joint regressor (dense, float32).
        arrays (dict): Every other entry of the file that converts to a
            NumPy array (*e.g.* :obj:`weights`, :obj:`shapedirs`).
        kind (str): :obj:`'smpl'`, :obj:`'smplx'`, :obj:`'mano'` or
            :obj:`'unknown'`, from the vertex count.
    """
    v_template: Tensor
    faces: Tensor
    J_regressor: Tensor
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = 'unknown'

    def to_mesh(self) -> Mesh:
        r"""The template as a :class:`Mesh` (copies; :obj:`face` is
        :obj:`faces.t()`, PyG's ``[3, F]`` layout)."""
        return Mesh(pos=self.v_template.clone(),
                    face=self.faces.t().contiguous(),
                    meta={'source': f'{self.kind} template'})

    def joints(self, vertices: Tensor | None = None) -> Tensor:
        r"""Joint positions :math:`\mathbf{J} \mathbf{V}` of
        :obj:`vertices` ``[..., V, 3]`` (default: the template)."""
        v = self.v_template if vertices is None else vertices
        return torch.matmul(self.J_regressor.to(v.dtype), v)


_KINDS = {6890: 'smpl', 10475: 'smplx', 778: 'mano'}


def load_smpl(path: str | Path) -> SMPLModel:
    r"""Loads the template vertices (:obj:`v_template`), faces (:obj:`f`)
    and joint regressor (:obj:`J_regressor`) of a SMPL, SMPL-X or MANO
    model file (:obj:`.pkl` as distributed, or :obj:`.npz`), without
    executing pickled code.

    Raises:
        pickle.UnpicklingError: If the pickle asks for anything but arrays,
            or claims an array larger than the data it holds.
        ValueError: If an entry is missing or has the wrong shape, or a
            sparse matrix is malformed or would be too large dense (see
            ``MAX_DENSE_BYTES``).
    """
    path = Path(path)
    if path.suffix.lower() == '.npz':
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
        except ValueError as e:
            raise ValueError(f"{path}: an npz model must hold plain arrays "
                             f"({e})") from None
    else:
        raw = safe_load_pickle(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict of arrays, got "
                         f"{type(raw).__name__}")
    arrays: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        try:
            value = _to_numpy(value)
        except (ValueError, KeyError) as e:
            if key in ('v_template', 'f', 'J_regressor'):
                raise ValueError(f"{path}: {key}: {e}") from None
            continue  # an entry this loader does not need
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[str(key)] = value
    for key in ('v_template', 'f', 'J_regressor'):
        if key not in arrays:
            raise ValueError(f"{path}: no array {key!r} (found "
                             f"{sorted(arrays)})")
    v = arrays.pop('v_template')
    f = arrays.pop('f')
    j = arrays.pop('J_regressor')
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{path}: v_template must be [V, 3] "
                         f"(got {list(v.shape)})")
    if f.ndim != 2 or f.shape[1] != 3 or f.min() < 0 or f.max() >= len(v):
        raise ValueError(f"{path}: f must be [F, 3] indices into the "
                         f"{len(v)} vertices")
    if j.ndim != 2 or j.shape[1] != v.shape[0]:
        raise ValueError(f"{path}: J_regressor must be [J, {len(v)}] "
                         f"(got {list(j.shape)})")
    return SMPLModel(torch.from_numpy(np.asarray(v, np.float32)),
                     torch.from_numpy(f.astype(np.int64)),
                     torch.from_numpy(np.asarray(j, np.float32)), arrays,
                     _KINDS.get(v.shape[0], 'unknown'))

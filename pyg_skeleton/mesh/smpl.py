r"""Loading SMPL, SMPL-X and MANO model files without running pickled code.

SMPL-family models are distributed (after registration; they may not be
redistributed) as Python-2 pickles that hold NumPy arrays, SciPy sparse
matrices and `chumpy` arrays, or as :obj:`.npz` archives. Unpickling such a
file with :func:`pickle.load` executes whatever the file asks for.
:class:`SafeModelUnpickler` instead resolves only

* NumPy's array, dtype and scalar reconstructors;
* SciPy's CSC / CSR / COO sparse matrix classes, mapped onto
  :obj:`SparseMatrixStub`, which keeps their arrays (SciPy is not needed);
* every class of a :obj:`chumpy` module, mapped onto :obj:`ChumpyStub`,
  which keeps its state (the array payload is its :obj:`x` entry);
* :obj:`copyreg._reconstructor`, :obj:`builtins.object`, :obj:`set`,
  :obj:`frozenset` and :obj:`_codecs.encode`, in restricted forms that only
  build the stubs above, plain containers and Latin-1 byte strings.

Any other global (:obj:`os.system`, :obj:`builtins.eval`, ...) raises
:class:`pickle.UnpicklingError` before anything is called.
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import importlib

import numpy as np
import torch
from torch import Tensor

from .io import Mesh


class ChumpyStub:
    r"""Stands in for any :obj:`chumpy` object of a model pickle; keeps its
    pickled state. :meth:`to_array` returns the array payload (the state's
    :obj:`x`)."""
    def __init__(self, *args, **kwargs):
        self.state: Dict[str, Any] = {}

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


class SparseMatrixStub:
    r"""Stands in for a SciPy sparse matrix of a model pickle; keeps its
    arrays and converts to a dense NumPy array or a :obj:`torch.sparse`
    tensor."""
    fmt = 'csc'

    def __init__(self, *args, **kwargs):
        self.state: Dict[str, Any] = {}

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
        s = self.state
        if self.fmt == 'coo':
            return (np.asarray(s['row']), np.asarray(s['col']),
                    np.asarray(s['data']))
        indptr = np.asarray(s['indptr'], dtype=np.int64)
        indices = np.asarray(s['indices'], dtype=np.int64)
        major = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
        if self.fmt == 'csc':
            return indices, major, np.asarray(s['data'])
        return major, indices, np.asarray(s['data'])

    def to_array(self) -> np.ndarray:
        row, col, data = self._coo()
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
    for mod in (module.replace('numpy.core', 'numpy._core'), module):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


_NUMPY_ALLOWED = {
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', 'scalar'),
    ('numpy._core.numeric', '_frombuffer'),
}

# harmless builtins chumpy states use (plain containers) and the base class
# that copyreg._reconstructor names
_BUILTINS = {'object': object, 'set': set, 'frozenset': frozenset}

_SPARSE = {'csc_matrix': SparseMatrixStub, 'csr_matrix': _CSR,
           'coo_matrix': _COO, 'csc_array': SparseMatrixStub,
           'csr_array': _CSR, 'coo_array': _COO}


class SafeModelUnpickler(pickle.Unpickler):
    r"""A :class:`pickle.Unpickler` that builds only NumPy arrays, SciPy
    sparse matrices (as :obj:`SparseMatrixStub`) and chumpy objects (as
    :obj:`ChumpyStub`); see the module docstring."""
    def find_class(self, module: str, name: str):
        if (module, name) in _NUMPY_ALLOWED:
            return _numpy_global(module, name)
        if module == 'numpy' and name in ('ndarray', 'dtype'):
            return getattr(np, name)
        if module in ('copyreg', 'copy_reg') and name == '_reconstructor':
            return _safe_reconstructor
        if module in ('builtins', '__builtin__') and name in _BUILTINS:
            return _BUILTINS[name]
        if module == '_codecs' and name == 'encode':
            return _safe_codecs_encode
        if module.startswith('scipy.sparse') and name in _SPARSE:
            return _SPARSE[name]
        if module == 'chumpy' or module.startswith('chumpy.'):
            return ChumpyStub
        raise pickle.UnpicklingError(
            f"refused to load global '{module}.{name}': SMPL-family model "
            f"files only hold numpy arrays, scipy sparse matrices and "
            f"chumpy arrays")


def safe_load_pickle(source: Union[str, Path, bytes]) -> Any:
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
    arrays: Dict[str, np.ndarray] = field(default_factory=dict)
    kind: str = 'unknown'

    def to_mesh(self) -> Mesh:
        return Mesh(self.v_template.clone(), self.faces.clone(), None,
                    {'source': f'{self.kind} template'})

    def joints(self, vertices: Optional[Tensor] = None) -> Tensor:
        r"""Joint positions :math:`\mathbf{J} \mathbf{V}` of
        :obj:`vertices` ``[..., V, 3]`` (default: the template)."""
        v = self.v_template if vertices is None else vertices
        return torch.matmul(self.J_regressor.to(v.dtype), v)


_KINDS = {6890: 'smpl', 10475: 'smplx', 778: 'mano'}


def load_smpl(path: Union[str, Path]) -> SMPLModel:
    r"""Loads the template vertices (:obj:`v_template`), faces (:obj:`f`)
    and joint regressor (:obj:`J_regressor`) of a SMPL, SMPL-X or MANO
    model file (:obj:`.pkl` as distributed, or :obj:`.npz`), without
    executing pickled code.

    Raises:
        pickle.UnpicklingError: If the pickle asks for anything but arrays.
        ValueError: If an entry is missing or has the wrong shape.
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
    arrays: Dict[str, np.ndarray] = {}
    for key, value in raw.items():
        try:
            value = _to_numpy(value)
        except (ValueError, KeyError):
            continue
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

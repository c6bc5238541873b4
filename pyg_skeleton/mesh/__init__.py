r"""Body meshes: reading, checking, HEM coarsening, pooling and hierarchies."""
from __future__ import annotations

from .builtin import MAKEHUMAN_BODY_PATH, makehuman_body
from .coarsening import (
    Coarsening,
    binary_tree_permutations,
    hem_coarsen,
)
from .hierarchy import MeshHierarchy
from .io import (
    Mesh,
    check_mesh,
    connected_components,
    faces_to_edge_index,
    mesh_from_arrays,
    read_mesh,
    read_npz,
    read_obj,
    read_ply,
    split_quads,
)
from .pooling import HEMPool, HEMUnpool, hem_pool, hem_unpool, pool_weights
from .smpl import SafeModelUnpickler, SMPLModel, load_smpl, safe_load_pickle

__all__ = [
    'Mesh',
    'check_mesh',
    'connected_components',
    'faces_to_edge_index',
    'mesh_from_arrays',
    'read_mesh',
    'read_npz',
    'read_obj',
    'read_ply',
    'split_quads',
    'Coarsening',
    'binary_tree_permutations',
    'hem_coarsen',
    'HEMPool',
    'HEMUnpool',
    'hem_pool',
    'hem_unpool',
    'pool_weights',
    'MeshHierarchy',
    'SMPLModel',
    'SafeModelUnpickler',
    'load_smpl',
    'safe_load_pickle',
    'MAKEHUMAN_BODY_PATH',
    'makehuman_body',
]

r"""Lifting models by name: the one registry of the command line, the
:class:`~pyg_skeleton.training.Trainer` and the benchmarks.

:data:`MODELS` maps a name to a builder
:obj:`(skeleton, options, **kwargs) -> nn.Module` whose module lifts 2D joints
:obj:`[B, N, 2]` to 3D joints :obj:`[B, N, 3]`. :obj:`options` holds the
shared options (``hidden_channels``, ``num_layers``, ``dropout``, ``mesh``):
an object with attributes (a :class:`~pyg_skeleton.training.TrainConfig`, an
:class:`argparse.Namespace`), a dict, or :obj:`None`; builders read it with
:func:`option`, so a partial one works. :obj:`kwargs` go to the model's
constructor and win over what the builder derives from :obj:`options`
(e.g. ``build_model('hgn', skeleton, num_blocks=(4, 4))``). Adding a model
is one line (or :func:`register_model`)::

    MODELS['hcsf'] = lambda skeleton, options, **kwargs: HCSFLifting(
        skeleton, hidden_channels=option(options, 'hidden_channels', 128), **kwargs)

Besides the fixed entries (``semgcn``, ``semgcn_nonlocal``,
``skeletal_gnn``, ``skeletal_gnn_dynamic`` and ``hgn``: HGN's pose output,
its mesh branches on the built-in body mesh or on the mesh of the ``mesh``
option, see :func:`hgn_hierarchy`), every graph convolution registered in
:data:`~pyg_skeleton.nn.models.semgcn.GRAPH_CONVS` is available as
``semgcn_<conv>`` (e.g. ``semgcn_pre_agg``) and every hop layer of
:data:`~pyg_skeleton.nn.models.skeletal_gnn.HOP_CONVS` but the default
``hcsf`` as ``skeletal_gnn_<conv>`` (e.g. ``skeletal_gnn_khop``): these
entries are looked up in those registries at call time, so layers
registered later appear without a change here. ``semgcn_sem`` is the same
model as ``semgcn``: it is listed once, as ``semgcn``; the old name (an
entry of :data:`ALIASES`) still works, with a :class:`DeprecationWarning`.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import torch

from pyg_skeleton.skeleton import Skeleton

__all__ = ['MODELS', 'ALIASES', 'build_model', 'register_model', 'canonical_model_name',
           'option', 'ModelBuilder', 'PoseOutput', 'body_hierarchy', 'hgn_hierarchy',
           'HIERARCHY_SUFFIXES']

#: Old model names -> the name they are listed under (same model, same
#: weights); accepted with a :class:`DeprecationWarning`, never listed.
ALIASES: dict[str, str] = {'semgcn_sem': 'semgcn'}

ModelBuilder = Callable[..., torch.nn.Module]


def option(options: Any, name: str, default: Any) -> Any:
    """The option :obj:`name` of :obj:`options` (a dict or an object with
    attributes) if present and not :obj:`None`, else :obj:`default`."""
    if isinstance(options, Mapping):
        value = options.get(name)
    else:
        value = getattr(options, name, None)
    return default if value is None else value


def _semgcn(conv: str = 'sem', non_local: bool = False) -> ModelBuilder:
    def build(skeleton: Skeleton, options: Any = None, **kwargs: Any) -> torch.nn.Module:
        from pyg_skeleton.nn.models.semgcn import SemGCN
        return SemGCN(skeleton, **{'hidden_channels': option(options, 'hidden_channels', 128),
                                   'num_layers': option(options, 'num_layers', 4),
                                   'dropout': option(options, 'dropout', None) or None,
                                   'non_local': non_local, 'conv': conv, **kwargs})
    return build


def _skeletal_gnn(conv: str = 'hcsf', dynamic: bool = False) -> ModelBuilder:
    def build(skeleton: Skeleton, options: Any = None, **kwargs: Any) -> torch.nn.Module:
        from pyg_skeleton.nn.models.skeletal_gnn import SkeletalGNN
        return SkeletalGNN(skeleton, **{
            'hidden_channels': option(options, 'hidden_channels', 128),
            'dropout': option(options, 'dropout', 0.25), 'dynamic': dynamic, 'conv': conv,
            **kwargs})
    return build


class PoseOutput(torch.nn.Module):
    r"""Keeps the pose, the first output, of a model with several outputs
    (:class:`~pyg_skeleton.nn.HGN`: the pose and each mesh branch's
    vertices), so that it lifts :obj:`[B, N, 2]` to :obj:`[B, N, 3]`."""
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


@functools.lru_cache(maxsize=1)
def body_hierarchy():
    r"""The canonical body hierarchy: the HEM hierarchy
    (:class:`~pyg_skeleton.mesh.MeshHierarchy`) of the built-in MakeHuman
    body with 10 levels; its levels :obj:`-2` and :obj:`-3` are padded to 48
    and 96 nodes, HGN's sizes on SMPL (which may not be redistributed).
    Built once per process.

    Raises:
        FileNotFoundError: The built-in mesh is missing from the
            installation.
    """
    from pyg_skeleton.mesh import MeshHierarchy
    from pyg_skeleton.mesh.builtin import makehuman_body
    return MeshHierarchy.from_mesh(makehuman_body(), levels=10, padded=True)


#: Suffixes of a hierarchy saved by ``pyg-skeleton coarsen``; any other file
#: is read as a mesh.
HIERARCHY_SUFFIXES = ('.pt', '.pth')


def hgn_hierarchy(mesh: Any = None):
    r"""The mesh hierarchy of the ``hgn`` model: the built-in body
    (:func:`body_hierarchy`) when :obj:`mesh` is :obj:`None`, a hierarchy
    saved by ``pyg-skeleton coarsen`` (a ``.pt`` file, used as saved; it
    must be padded, ``--padded``) or a mesh file that ``coarsen`` reads
    (``.obj``, ``.ply``, ``.npz``), coarsened like the built-in body (10
    padded levels).

    Raises:
        ValueError: The file is missing, malformed or unpadded, or, without
            a file, the built-in mesh is unavailable (naming the ``--mesh``
            option of ``pyg-skeleton train``).
    """
    from pyg_skeleton.mesh import MeshHierarchy
    if mesh is None:
        try:
            return body_hierarchy()
        except FileNotFoundError:
            raise ValueError("model 'hgn' needs a body mesh and the built-in one is "
                             "missing from this installation (reinstall pyg-skeleton): "
                             "give --mesh FILE (an .obj, .ply or .npz mesh, or a "
                             "hierarchy .pt of `pyg-skeleton coarsen --padded`)") from None
    path = Path(mesh)
    if not path.is_file():
        raise ValueError(f"--mesh: file not found: {path}")
    if path.suffix.lower() in HIERARCHY_SUFFIXES:
        hierarchy = MeshHierarchy.load(path)
        if hierarchy.perms is None:
            raise ValueError(f"--mesh {path}: the hierarchy is not padded (make it with "
                             f"`pyg-skeleton coarsen --padded`)")
        if hierarchy.num_levels < 3:
            raise ValueError(f"--mesh {path}: HGN needs at least 3 coarsening levels, the "
                             f"hierarchy has {hierarchy.num_levels}")
        return hierarchy
    from pyg_skeleton.mesh.io import read_mesh
    try:
        return MeshHierarchy.from_mesh(read_mesh(path), levels=10, padded=True)
    except OSError as e:
        raise ValueError(f"--mesh {path}: cannot read: {e.strerror or e}") from None


def _hgn(skeleton: Skeleton, options: Any = None, **kwargs: Any) -> torch.nn.Module:
    # The data sets have no meshes, so only the pose is trained (lambda_M = 0).
    from pyg_skeleton.nn.models.hgn import HGN
    return PoseOutput(HGN.from_hierarchy(
        skeleton, hgn_hierarchy(option(options, 'mesh', None)), **{
            'mesh_levels': (-2, -3),
            'hidden_channels': option(options, 'hidden_channels', 128), **kwargs}))


class ModelRegistry(MutableMapping):
    r"""A dict of model builders plus the ``semgcn_<conv>`` and
    ``skeletal_gnn_<conv>`` entries derived from
    :data:`~pyg_skeleton.nn.models.semgcn.GRAPH_CONVS` and
    :data:`~pyg_skeleton.nn.models.skeletal_gnn.HOP_CONVS` when looked up.
    Explicit entries win."""

    def __init__(self, builders: dict[str, ModelBuilder]):
        self._builders = dict(builders)

    @staticmethod
    def _conv_entries() -> dict[str, ModelBuilder]:
        from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS
        from pyg_skeleton.nn.models.skeletal_gnn import HOP_CONVS
        out = {f'semgcn_{conv}': _semgcn(conv) for conv in GRAPH_CONVS
               if f'semgcn_{conv}' not in ALIASES}
        # 'hcsf' is SkeletalGNN's default layer: that model is 'skeletal_gnn'
        out.update({f'skeletal_gnn_{conv}': _skeletal_gnn(conv) for conv in HOP_CONVS
                    if conv != 'hcsf'})
        return out

    def _all(self) -> dict[str, ModelBuilder]:
        out = self._conv_entries()
        out.update(self._builders)
        return out

    def __getitem__(self, name: str) -> ModelBuilder:
        name = canonical_model_name(name)
        if name in self._builders:
            return self._builders[name]
        return self._conv_entries()[name]

    def __setitem__(self, name: str, builder: ModelBuilder) -> None:
        self._builders[name] = builder

    def __delitem__(self, name: str) -> None:
        del self._builders[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._all()))

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, name: object) -> bool:
        name = ALIASES.get(name, name) if isinstance(name, str) else name
        return name in self._builders or name in self._conv_entries()


def canonical_model_name(name: str) -> str:
    """The listed name of a model: :obj:`name` itself, or for an old name
    of :data:`ALIASES` its new name (with a :class:`DeprecationWarning`)."""
    if name in ALIASES:
        warnings.warn(f"model {name!r} is now called {ALIASES[name]!r} (the same model)",
                      DeprecationWarning, stacklevel=2)
        return ALIASES[name]
    return name


#: Model builders by name (see the module docs).
MODELS = ModelRegistry({
    'semgcn': _semgcn('sem'),
    'semgcn_nonlocal': _semgcn('sem', non_local=True),
    'skeletal_gnn': _skeletal_gnn(),
    'skeletal_gnn_dynamic': _skeletal_gnn(dynamic=True),
    'hgn': _hgn,
})


def register_model(name: str, builder: ModelBuilder) -> None:
    """Adds (or replaces) the model :obj:`name` of :data:`MODELS`: a builder
    :obj:`(skeleton, options, **kwargs) -> nn.Module` (see the module docs)."""
    MODELS[name] = builder


def build_model(name: str, skeleton: Skeleton, options: Any = None,
                **kwargs: Any) -> torch.nn.Module:
    """Builds the model :obj:`name` of :data:`MODELS` on :obj:`skeleton`.

    Args:
        name (str): A name of :data:`MODELS`.
        skeleton (Skeleton): The skeleton the model lifts.
        options (optional): The shared options (see the module docs).
        **kwargs: Arguments of the model's constructor, over those the
            builder derives from :obj:`options`.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    return MODELS[name](skeleton, options, **kwargs)

r"""Models of the command line, by name.

:data:`MODELS` maps a name to a builder :obj:`(skeleton, args) -> nn.Module`
whose module lifts 2D joints :obj:`[B, N, 2]` to 3D joints :obj:`[B, N, 3]`.
``args`` is the parsed command line (an :class:`argparse.Namespace`; read
options with :func:`option` so a builder also works with a partial
namespace). Adding a model is one line::

    MODELS['hcsf'] = lambda skeleton, args: HCSFLifting(skeleton, hidden_channels=option(
        args, 'hidden_channels', 128))

Besides the fixed entries (``semgcn``, ``semgcn_nonlocal``,
``skeletal_gnn``, ``skeletal_gnn_dynamic`` and ``hgn``: HGN's pose output,
its mesh branches on the built-in body mesh), every graph
convolution registered in :data:`pyg_skeleton.nn.models.semgcn.GRAPH_CONVS`
is available as ``semgcn_<conv>`` (e.g. ``semgcn_pre_agg``): these entries
are looked up in that registry at call time, so convolutions registered
later appear without a change here.
"""
from __future__ import annotations

import functools
from collections.abc import MutableMapping
from typing import Any, Callable, Dict, Iterator

import torch

from pyg_skeleton.skeleton import Skeleton

__all__ = ['MODELS', 'build_model', 'option', 'ModelBuilder', 'PoseOutput']

ModelBuilder = Callable[[Skeleton, Any], torch.nn.Module]


def option(args: Any, name: str, default: Any) -> Any:
    """``args.name`` if present and not :obj:`None`, else :obj:`default`."""
    value = getattr(args, name, None)
    return default if value is None else value


def _semgcn(conv: str = 'sem', non_local: bool = False) -> ModelBuilder:
    def build(skeleton: Skeleton, args: Any) -> torch.nn.Module:
        from pyg_skeleton.nn.models.semgcn import SemGCN
        return SemGCN(skeleton, hidden_channels=option(args, 'hidden_channels', 128),
                      num_layers=option(args, 'num_layers', 4),
                      dropout=option(args, 'dropout', None) or None,
                      non_local=non_local, conv=conv)
    return build


def _skeletal_gnn(dynamic: bool = False) -> ModelBuilder:
    def build(skeleton: Skeleton, args: Any) -> torch.nn.Module:
        from pyg_skeleton.nn.models.skeletal_gnn import SkeletalGNN
        return SkeletalGNN(skeleton,
                           hidden_channels=option(args, 'hidden_channels', 128),
                           dropout=option(args, 'dropout', 0.25),
                           dynamic=dynamic)
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
    r"""The HEM hierarchy of the built-in MakeHuman body with 10 levels: its
    levels :obj:`-2` and :obj:`-3` are padded to 48 and 96 nodes, HGN's
    sizes on SMPL (which may not be redistributed)."""
    from pyg_skeleton.mesh import MeshHierarchy
    from pyg_skeleton.mesh.builtin import makehuman_body
    return MeshHierarchy.from_mesh(makehuman_body(), levels=10, padded=True)


def _hgn(skeleton: Skeleton, args: Any) -> torch.nn.Module:
    # The data sets have no meshes, so only the pose is trained (lambda_M = 0).
    from pyg_skeleton.nn.models.hgn import HGN
    return PoseOutput(HGN.from_hierarchy(
        skeleton, body_hierarchy(), mesh_levels=(-2, -3),
        hidden_channels=option(args, 'hidden_channels', 128)))


class ModelRegistry(MutableMapping):
    r"""A dict of model builders plus the ``semgcn_<conv>`` entries derived
    from :data:`GRAPH_CONVS` when looked up. Explicit entries win."""

    def __init__(self, builders: Dict[str, ModelBuilder]):
        self._builders = dict(builders)

    @staticmethod
    def _conv_entries() -> Dict[str, ModelBuilder]:
        from pyg_skeleton.nn.models.semgcn import GRAPH_CONVS
        return {f'semgcn_{conv}': _semgcn(conv) for conv in GRAPH_CONVS}

    def _all(self) -> Dict[str, ModelBuilder]:
        out = self._conv_entries()
        out.update(self._builders)
        return out

    def __getitem__(self, name: str) -> ModelBuilder:
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
        return name in self._builders or name in self._conv_entries()


#: Model builders by name (see the module docs).
MODELS = ModelRegistry({
    'semgcn': _semgcn('sem'),
    'semgcn_nonlocal': _semgcn('sem', non_local=True),
    'skeletal_gnn': _skeletal_gnn(),
    'skeletal_gnn_dynamic': _skeletal_gnn(dynamic=True),
    'hgn': _hgn,
})


def build_model(name: str, skeleton: Skeleton, args: Any = None) -> torch.nn.Module:
    """Builds a model of :data:`MODELS`.

    Raises:
        ValueError: For an unknown name (the message lists the known ones).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    return MODELS[name](skeleton, args)

r"""Loading the weights published with the papers' official code into this
package's models: SemGCN (`garyzhao/SemGCN
<https://github.com/garyzhao/SemGCN>`_), the decoupled pre-aggregation model
of the weight-sharing study (`RufusDing/3D-HPE-using-GCN
<https://github.com/RufusDing/3D-HPE-using-GCN>`_, a SemGCN fork) and HGN
(`qingshi9974/BMVC2021-Hierarchical-Graph-Networks-for-3D-Human-Pose-Estimation
<https://github.com/qingshi9974/BMVC2021-Hierarchical-Graph-Networks-for-3D-Human-Pose-Estimation>`_).

Checkpoints are read with :obj:`torch.load(..., weights_only=True)`: only
tensors and plain containers, never code. The official layouts are mapped
as follows:

* a semantic graph convolution's stacked :obj:`W` of shape
  :obj:`[2, F_in, F_out]` becomes the transposed :obj:`lin_self` and
  :obj:`lin_neighbor` weights; the weight-sharing fork's :obj:`[2N, F_in,
  F_out]` bank is our :class:`~pyg_skeleton.nn.PreAggConv` layout unchanged;
* the edge logits :obj:`e` of shape :obj:`[1, nnz]` follow the non-zeros of
  the official adjacency row by row (target, then source), which is the slot
  order of :class:`~pyg_skeleton.nn.topology.Topology`. A slot the official
  adjacency lacks (HGN's coarse graphs have self-loops only where HEM merged
  two vertices) gets the official fill :math:`-9 \cdot 10^{15}`, so that its
  softmax weight, and its gradient, are exactly zero;
* the non-local block's 1x1 convolutions (:obj:`g`, :obj:`theta`,
  :obj:`phi`, :obj:`W.0`, the concatenation projection) become linear maps,
  its :obj:`W.1` batch norm our :obj:`bn`; SemGCN's grouped joint order and
  pairwise max-pooling become the skeleton's groups (the same keys for equal
  groups of consecutive pairs);
* HGN's node-axis :obj:`Conv1d` maps :obj:`fc_{a}_{b}_{t}` (weight
  :obj:`[N_b, N_a, 1]`) become :class:`~pyg_skeleton.nn.NodeMap` weights.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from pyg_skeleton.nn.conv import PreAggConv, SemGraphConv
from pyg_skeleton.nn.models.hgn import NodeMap
from pyg_skeleton.nn.non_local import NonLocalBlock
from pyg_skeleton.nn.topology import fixed_graph
from pyg_skeleton.utils import edge_key, edge_lookup

#: The logit the official dense softmax gives to entries outside the
#: adjacency; a slot of ours that the official graph lacks gets it.
OFFICIAL_FILL = -9e15

#: Where the official training scripts keep the model in their checkpoint
#: dictionaries (SemGCN and its fork: ``state_dict``; HGN:
#: ``model_state_dict``).
STATE_KEYS = ('state_dict', 'model_state_dict')

Source = str | Path | Mapping


def load_official_state_dict(source: Source) -> dict[str, Tensor]:
    r"""Reads an official checkpoint safely and returns its model state
    dict.

    Args:
        source (str, Path or dict): A checkpoint file (read with
            :obj:`torch.load(..., weights_only=True)` on the CPU), or an
            already loaded dictionary. A checkpoint dictionary holding the
            model under :obj:`'state_dict'` or :obj:`'model_state_dict'`,
            or a plain state dict, is accepted; the :obj:`'module.'` prefix of
            a model saved inside :class:`torch.nn.DataParallel` is removed.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if the file does not load with :obj:`weights_only=True`
            (it holds more than tensors and plain containers), or holds no
            state dict of tensors.
    """
    if isinstance(source, Mapping):
        obj, name = source, 'The checkpoint dictionary'
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"No checkpoint file '{path}'")
        name = f"Checkpoint '{path}'"
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc:  # any unpickling failure says the same
            # PyTorch's message spans many lines; keep the one that names
            # what was refused.
            lines = [line.strip() for line in str(exc).splitlines()
                     if line.strip()]
            reason = next((line for line in lines if line.startswith(
                ('Unsupported', 'WeightsUnpickler error'))),
                lines[-1] if lines else type(exc).__name__)
            reason = reason.split(' was not an allowed global')[0]
            raise ValueError(f"{name} does not load with torch.load("
                             f"weights_only=True), so it is not read: "
                             f"{reason}") from None
    if isinstance(obj, Mapping):
        for key in STATE_KEYS:
            if key in obj:
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, Tensor)
            for k, v in obj.items()):
        raise ValueError(f"{name} holds no model state dict of tensors "
                         f"(looked at the top level and under "
                         f"{' and '.join(repr(k) for k in STATE_KEYS)})")
    state = dict(obj)
    if all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


class _Mapper:
    r"""Moves tensors of an official state dict into our names and layouts,
    checking shapes, and reports missing and unused official keys."""
    def __init__(self, state: dict[str, Tensor], model: str):
        self.state = state
        self.model = model
        self.used = set()
        self.missing: list[str] = []
        self.out: dict[str, Tensor] = {}

    def take(self, key: str, shape: Sequence[int]) -> Tensor | None:
        if key not in self.state:
            self.missing.append(key)
            return None
        self.used.add(key)
        value = self.state[key]
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"Official {self.model} weight '{key}' has shape "
                             f"{list(value.shape)}, the model needs "
                             f"{list(shape)}")
        return value

    def put(self, name: str, value: Tensor | None) -> None:
        if value is not None:
            self.out[name] = value

    def logits(self, key: str, ours: str, topology,
               official_keys: Tensor) -> None:
        e = self.take(key, (1, official_keys.numel()))
        if e is None:
            return
        pos = edge_lookup(topology.key.cpu(), official_keys)
        logits = torch.full((topology.num_slots, ), OFFICIAL_FILL,
                            dtype=e.dtype)
        logits[pos] = e[0]
        self.out[ours] = logits

    def sem_conv(self, key: str, ours: str, conv: SemGraphConv,
                 official_keys: Tensor) -> None:
        i, o = conv.in_channels, conv.out_channels
        w = self.take(f'{key}.W', (2, i, o))
        if w is not None:
            self.out[f'{ours}.lin_self.weight'] = w[0].t()
            self.out[f'{ours}.lin_neighbor.weight'] = w[1].t()
        self.logits(f'{key}.e', f'{ours}.logits', conv.topology,
                    official_keys)
        if conv.bias is not None:
            self.put(f'{ours}.bias', self.take(f'{key}.bias', (o, )))

    def pre_agg_conv(self, key: str, ours: str, conv: PreAggConv,
                     official_keys: Tensor) -> None:
        self.put(f'{ours}.weight', self.take(f'{key}.W',
                                             tuple(conv.weight.shape)))
        self.logits(f'{key}.e', f'{ours}.logits', conv.topology,
                    official_keys)
        if conv.bias is not None:
            self.put(f'{ours}.bias',
                     self.take(f'{key}.bias', (conv.out_channels, )))

    def conv(self, key: str, ours: str, conv: torch.nn.Module,
             official_keys: Tensor | None = None) -> None:
        if official_keys is None:  # the official adjacency is A + I
            official_keys = conv.topology.key.cpu()
        if isinstance(conv, SemGraphConv) and not conv.channelwise:
            self.sem_conv(key, ours, conv, official_keys)
        elif isinstance(conv, PreAggConv) and conv.decoupled:
            self.pre_agg_conv(key, ours, conv, official_keys)
        else:
            raise ValueError(f"No official layout for {conv!r}")

    def batch_norm(self, key: str, ours: str,
                   bn: torch.nn.BatchNorm1d) -> None:
        c = bn.num_features
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            self.put(f'{ours}.{name}', self.take(f'{key}.{name}', (c, )))
        # Saved only by PyTorch >= 0.4.1; ours stays as it is without it.
        if f'{key}.num_batches_tracked' in self.state:
            self.put(f'{ours}.num_batches_tracked',
                     self.take(f'{key}.num_batches_tracked', ()))

    def conv_block(self, key: str, ours: str, block: torch.nn.Module,
                   official_keys: Tensor | None = None) -> None:
        self.conv(f'{key}.gconv', f'{ours}.conv', block.conv, official_keys)
        self.batch_norm(f'{key}.bn', f'{ours}.bn', block.bn)

    def res_block(self, key: str, ours: str, block: torch.nn.Module,
                  official_keys: Tensor | None = None) -> None:
        self.conv_block(f'{key}.gconv1', f'{ours}.block1', block.block1,
                        official_keys)
        self.conv_block(f'{key}.gconv2', f'{ours}.block2', block.block2,
                        official_keys)

    def non_local(self, key: str, ours: str, block: NonLocalBlock) -> None:
        c, m = block.in_channels, block.inter_channels
        # With sub_sample > 1 the official g and phi are Sequential(conv,
        # MaxPool1d): their weights sit one level deeper.
        pooled = '.0' if block.groups is not None else ''
        for name, sub in (('theta', ''), ('phi', pooled), ('g', pooled)):
            w = self.take(f'{key}.{name}{sub}.weight', (m, c, 1))
            self.put(f'{ours}.{name}.weight', None if w is None else w[..., 0])
            self.put(f'{ours}.{name}.bias',
                     self.take(f'{key}.{name}{sub}.bias', (m, )))
        w = self.take(f'{key}.concat_project.0.weight', (1, 2 * m, 1, 1))
        self.put(f'{ours}.concat_weight', None if w is None else w.view(-1))
        w = self.take(f'{key}.W.0.weight', (c, m, 1))
        self.put(f'{ours}.out.weight', None if w is None else w[..., 0])
        self.put(f'{ours}.out.bias', self.take(f'{key}.W.0.bias', (c, )))
        self.batch_norm(f'{key}.W.1', f'{ours}.bn', block.bn)

    def node_map(self, key: str, ours: str, node_map: torch.nn.Module) -> None:
        if not isinstance(node_map, NodeMap):
            raise ValueError(f"The official HGN has learned node maps, not "
                             f"{node_map!r} (use fusion='linear')")
        a, b = node_map.in_nodes, node_map.out_nodes
        w = self.take(f'{key}.conv.weight', (b, a, 1))
        self.put(f'{ours}.weight', None if w is None else w[..., 0])
        if node_map.bias is not None:
            self.put(f'{ours}.bias', self.take(f'{key}.conv.bias', (b, )))

    def load_into(self, module: torch.nn.Module) -> None:
        unused = sorted(set(self.state) - self.used)
        if self.missing or unused:
            def listed(keys):
                more = f' and {len(keys) - 5} more' if len(keys) > 5 else ''
                return ', '.join(keys[:5]) + more
            parts = []
            if self.missing:
                parts.append(f"missing {listed(self.missing)}")
            if unused:
                parts.append(f"unexpected {listed(unused)}")
            raise ValueError(f"The official {self.model} state dict does not "
                             f"fit the model: {'; '.join(parts)}")
        ours = module.state_dict()
        # A guard on the mapping itself: every tensor of ours is written.
        unset = [k for k in ours if k not in self.out
                 and not k.endswith('num_batches_tracked')]
        if unset:
            raise ValueError(f"The official {self.model} mapping leaves "
                             f"{', '.join(unset[:5])} unset")
        state = {k: v.to(ours[k].dtype) for k, v in self.out.items()}
        module.load_state_dict(state, strict=False)


def _require(state: dict[str, Tensor], key: str, model: str) -> Tensor:
    if key not in state:
        raise ValueError(f"The official {model} state dict has no '{key}' "
                         f"(is it a {model} checkpoint?)")
    return state[key]


#: The skeleton of an official SemGCN-style checkpoint by the length of its
#: edge logits: SemGCN's 16 joints (46 non-zeros of A + I), the fork's 17
#: (49).
SKELETON_BY_NNZ = {46: 'h36m16', 49: 'h36m17'}


def semgcn_from_official(cls, source: Source, skeleton=None,
                         conv: str | None = None, **kwargs):
    r"""See :meth:`pyg_skeleton.nn.SemGCN.from_official`."""
    from pyg_skeleton.skeleton import Skeleton
    state = load_official_state_dict(source)
    w = _require(state, 'gconv_input.0.gconv.W', 'SemGCN')
    if skeleton is None:
        nnz = _require(state, 'gconv_input.0.gconv.e', 'SemGCN').numel()
        if nnz not in SKELETON_BY_NNZ:
            raise ValueError(f"The official SemGCN weights have {nnz} edge "
                             f"logits per layer, which is neither the 16- "
                             f"nor the 17-joint Human3.6M skeleton: pass "
                             f"'skeleton'")
        skeleton = SKELETON_BY_NNZ[nnz]
    if isinstance(skeleton, str):
        skeleton = Skeleton.preset(skeleton)
    n = skeleton.num_joints
    if conv is None:
        if w.dim() != 3 or w.size(0) not in (2, 2 * n):
            raise ValueError(f"Official weight 'gconv_input.0.gconv.W' has "
                             f"shape {list(w.shape)}: neither SemGCN's [2, "
                             f"F_in, F_out] nor the pre-aggregation fork's "
                             f"[{2 * n}, F_in, F_out] for {n} joints")
        conv = 'sem' if w.size(0) == 2 else 'pre_agg_decoupled'
    if conv not in ('sem', 'pre_agg_decoupled'):
        raise ValueError(f"No official checkpoint layout for conv={conv!r} "
                         f"(use 'sem' or 'pre_agg_decoupled')")
    out = _require(state, 'gconv_output.W', 'SemGCN')
    non_local = 'gconv_input.1.nonlocal.theta.weight' in state
    step = 2 if non_local else 1
    num_layers = 0
    while f'gconv_layers.{step * num_layers}.gconv1.gconv.W' in state:
        num_layers += 1
    model = cls(skeleton, in_channels=w.size(1),
                   hidden_channels=w.size(2), out_channels=out.size(-1),
                   num_layers=num_layers, non_local=non_local, conv=conv,
                   **kwargs)
    m = _Mapper(state, 'SemGCN')
    m.conv_block('gconv_input.0', 'input', model.input)
    if non_local:
        m.non_local('gconv_input.1.nonlocal', 'non_locals.0',
                    model.non_locals[0])
    for i, block in enumerate(model.blocks):
        m.res_block(f'gconv_layers.{step * i}', f'blocks.{i}', block)
        if non_local:
            m.non_local(f'gconv_layers.{step * i + 1}.nonlocal',
                        f'non_locals.{i + 1}', model.non_locals[i + 1])
    m.conv('gconv_output', 'output', model.output)
    m.load_into(model)
    return model.eval()


def _official_keys(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""The non-zeros of an official adjacency given as an
    :obj:`edge_index` (self-loops only where it has them), row-major."""
    ei, n = fixed_graph(edge_index, num_nodes)
    return torch.unique(edge_key(ei, n))


def hgn_from_official(cls, source: Source, mesh_graphs,
                      skeleton='h36m17', mesh_levels: Sequence[int] = (-2, -3),
                      **kwargs):
    r"""See :meth:`pyg_skeleton.nn.HGN.from_official`."""
    hierarchy = None
    if hasattr(mesh_graphs, 'padded_edge_index'):  # a MeshHierarchy
        hierarchy = mesh_graphs
        mesh_graphs = [(hierarchy.padded_edge_index(lv, self_loops=True),
                        hierarchy.num_padded(lv)) for lv in mesh_levels]
    state = load_official_state_dict(source)
    w = _require(state, 'gconv_input.0.gconv.W', 'HGN')
    out = _require(state, 'gconv_output.W', 'HGN')
    num_blocks = []
    for k in range(len(mesh_graphs) + 1):
        prefix = f'gconv_layers_{k + 1}_'
        num_blocks.append(len({key.split('.')[0] for key in state
                               if key.startswith(prefix)}))
    options = dict(in_channels=w.size(1), hidden_channels=w.size(2),
                   out_channels=out.size(-1), num_blocks=num_blocks,
                   non_local=True, fusion='linear',
                   fusion_order='sequential', fuse_on_join=True,
                   padded_nodes='uniform')
    options.update(kwargs)
    model = cls(skeleton, mesh_graphs, **options)
    official = [None] + [_official_keys(ei, n) for ei, n in mesh_graphs]
    m = _Mapper(state, 'HGN')
    m.conv_block('gconv_input.0', 'input', model.input)
    for k, blocks in enumerate(model.blocks):
        for i, block in enumerate(blocks):
            key = f'gconv_layers_{k + 1}_{model.start[k] + i + 1}'
            m.res_block(f'{key}.0', f'blocks.{k}.{i}', block, official[k])
            if model.non_local:
                m.non_local(f'{key}.1.nonlocal1', f'non_locals.{k}.{i}',
                            model.non_locals[k][i])
    # fc_{a}_{b}_{t}: branch a to branch b (from 1), t = 1 for the join of
    # branch 2 at stage 0; a fusion before stage s and the joins at s have
    # t = s + 1, the fusion after stage s has t = s + 2.
    for k, join in model.joins.items():
        s = model.start[int(k)]
        existing = [i for i in range(int(k)) if model.start[i] <= s]
        for i, node_map in zip(existing, join.maps):
            m.node_map(f'fc_{i + 1}_{int(k) + 1}_{s + 1}',
                       f'joins.{k}.maps.{existing.index(i)}', node_map)
    for group, shift in (('pre_join_fusions', 1), ('fusions', 2)):
        for s, fusion in getattr(model, group).items():
            for name, node_map in fusion.maps.items():
                a, b = (int(v) for v in name.split('_'))
                m.node_map(f'fc_{a + 1}_{b + 1}_{int(s) + shift}',
                           f'{group}.{s}.maps.{name}', node_map)
    for k, head in enumerate(model.heads):
        key = 'gconv_output' if k == 0 else \
            f'gconv_output_{model.num_nodes[k]}'
        m.conv(key, f'heads.{k}', head, official[k])
    m.load_into(model)
    if hierarchy is not None:
        for k, lv in enumerate(mesh_levels):
            model.register_buffer(f'real_mask_{k + 1}',
                                  hierarchy.real_mask(lv), persistent=False)
    return model.eval()

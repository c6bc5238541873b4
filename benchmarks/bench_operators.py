"""Forward+backward time and peak memory of every operator against its dense
formulation, from skeletons to mesh-sized graphs, eager and compiled.

Operators (``OPS``): ``SemGraphConv``; the weight-sharing convolutions
``FullSharingConv`` (vanilla), ``PreAggConv``, ``PostAggConv``,
``ConvStyleConv``, ``NoSharingConv``; the hop convolutions ``KHopConv``
(k=2), ``MixHopSkeletonConv`` and ``MSHopConv`` (hops 1, 5, 7), ``HCSFConv``
(S=1, L=2, d=1/8) and ``DynamicHCSFConv`` (same hops, learnable graph and
offsets); ``NonLocalBlock`` (concatenation affinity).

Each runs as ``ours`` (``op(x)`` on a static batch ``[B, N, C]``) and as
``dense``, its dense formulation written here or in the older benchmark
scripts with the layer's own parameters (``N x N`` matrices; the SemGCN
-9e15/softmax edge weights; einsum weight banks, a dense ``[N, N, C, C]``
bank for no-sharing; per-hop ``N x N`` hop matrices; the dynamic HCSF
offsets on all ``N^2`` pairs, masked to the layer's hop pairs; the official
non-local code's materialised ``[B, N, N, 2C']`` concatenation). Both are
checked to compute the same function before timing.

Graphs: Human3.6M 17 joints and NTU RGB+D 25 joints at B = 1, 64, 256, 1024
(C = 128); the MHR LOD6..LOD1 meshes (595 to 18,439 vertices) and the
MakeHuman body (13,380 vertices) at B = 1 and 8 (C = 64). A dense
formulation whose estimated working set exceeds ``--cap-gb`` is not run and
reported as "does not fit"; every memory measurement also runs under an
address-space limit, so an underestimate fails the cell instead of the
machine.

Times: best of interleaved rounds (``dense``, ``ours``, ``dense``, ...) of
the median forward+backward time, so that load from other processes hits
both alike. Peak memory: peak RSS growth of a forked child running one
forward+backward on one thread (``malloc_trim`` first, so freed pages of the
parent are not reused silently). ``torch.compile`` (default mode) is timed
on h36m17 at B=256; a compile failure is reported in its cell.

Usage: ``python benchmarks/bench_operators.py [--quick]``. Writes
``benchmarks/results/operators_{with,without}_torch_sparse.md`` (the suffix
follows ``torch_geometric.typing.WITH_TORCH_SPARSE``; run it once in an
environment without torch-sparse for the other file).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_sem_graph_conv import DenseSemGraphConv  # noqa: E402
from bench_weight_sharing import DenseWeightSharing  # noqa: E402

from pyg_skeleton import Skeleton  # noqa: E402
from pyg_skeleton.nn import NonLocalBlock  # noqa: E402
from pyg_skeleton.nn.conv import (  # noqa: E402
    ConvStyleConv,
    DynamicHCSFConv,
    FullSharingConv,
    HCSFConv,
    KHopConv,
    MixHopSkeletonConv,
    MSHopConv,
    NoSharingConv,
    PostAggConv,
    PreAggConv,
    SemGraphConv,
)

import _common as common  # noqa: E402

MHR = common.SHARED / 'data' / 'meshes' / 'mhr' / 'mhr_lods.npz'
GiB = 2**30


# ---------------------------------------------------------------- graphs

def skeleton_graph(name):
    s = Skeleton.preset(name)
    return dict(name=name, edge_index=s.edge_index, n=s.num_joints,
                centre=s.centre, mesh=False)


def mesh_graphs(quick=False):
    """MHR LOD6..LOD1 and MakeHuman, sorted by size."""
    out = []
    if MHR.exists():
        z = np.load(MHR)
        for k in ([6, 4] if quick else [6, 5, 4, 3, 2, 1]):
            faces = torch.from_numpy(z[f'lod{k}_faces'].astype(np.int64))
            n = z[f'lod{k}_vertices'].shape[0]
            out.append(dict(name=f'MHR LOD{k}', n=n, centre=0, mesh=True,
                            edge_index=common.faces_to_edge_index(faces, n)))
    if not quick:
        edge_index, n, desc = common.body_mesh()
        out.append(dict(name=desc.replace(' body mesh', ''), n=n, centre=0,
                        edge_index=edge_index, mesh=True))
    return sorted(out, key=lambda g: g['n'])


# ------------------------------------------------------ dense formulations

def dense_hops(conv):
    """``[G, N, N]``: row ``i`` of group ``g`` holds the (normalised) weights
    of the sources within group ``g``'s hops of target ``i``."""
    n, g = conv.num_nodes, conv.num_groups
    src, dst = conv.hop_edge_index
    adj = torch.zeros(g, n, n)
    gi, ei = conv.membership[:, conv.hop].bool().nonzero(as_tuple=True)
    adj[gi, dst[ei], src[ei]] = conv.group_norm[dst[ei], gi]
    return adj


class DenseHop(torch.nn.Module):
    """k-hop / MixHop / MS-Hop / HCSF with dense per-group hop matrices and
    the layer's own, unfolded, linear maps."""
    def __init__(self, kind, conv):
        super().__init__()
        self.kind, self.conv = kind, conv
        self.register_buffer('adj', dense_hops(conv))

    def forward(self, x):
        conv = self.conv
        if self.kind == 'khop':
            return conv.lin(self.adj[0] @ x)
        hs = [(self.adj[g] @ x) @ lin.weight.t()
              for g, lin in enumerate(conv.lins)]
        if self.kind == 'mixhop':
            return torch.cat(hs, -1) + conv.bias
        if self.kind == 'mshop':
            return sum(hs) / len(hs) + conv.bias
        # HCSF: close hops concatenated and projected, then fused.
        close = (torch.cat(hs[:conv.S + 1], -1) @ conv.lin_close.weight.t()
                 if conv.lin_close is not None else hs[0])
        out = torch.cat([close] + hs[conv.S + 1:], -1)
        if conv.lin_fuse is not None:
            out = out @ conv.lin_fuse.weight.t()
        return out + conv.bias


class DenseDynamicHCSF(torch.nn.Module):
    """Eq. 8 with dense ``[B, N, K, N]`` hop graphs: learnable graph plus
    offsets on all ``N^2`` pairs (masked to the layer's hop pairs when the
    layer keeps only those), then ``A @ x`` and the layer's fusion."""
    def __init__(self, conv):
        super().__init__()
        self.conv = conv
        n, k = conv.num_nodes, conv.num_hop_slots
        # the pairs in the layout of graph_weight ('hop' candidates)
        (src, dst), hop = (conv.graph_weight_pairs() if conv.candidates == 'hop'
                           else (conv.hop_edge_index, conv.hop))
        mask = torch.zeros(n, k, n)
        mask[dst, hop, src] = 1
        self.register_buffer('mask', mask)
        self.register_buffer('flat', (dst * k + hop) * n + src)

    def forward(self, x):
        conv = self.conv
        n, k, c = conv.num_nodes, conv.num_hop_slots, conv.embed_channels
        b = x.size(0)
        if conv.candidates == 'all':
            graph = conv.graph_weight
        else:
            graph = x.new_zeros(n * k * n).index_put(
                (self.flat, ), conv.graph_weight).view(n, k, n)
        xt = x.unsqueeze(1).permute(0, 3, 1, 2)  # [B, C, 1, N]
        theta = conv.theta(xt).view(b, k, c, n)
        phi = conv.phi(xt).view(b, k, c, n)
        off = torch.tanh(torch.einsum('bkci,bkcj->bikj', theta, phi))
        if conv.candidates != 'all':
            off = off * self.mask
        adj = (graph + conv.alpha * off).reshape(b, n * k, n)
        return conv.combine((adj @ x).unflatten(-2, (n, k)))


class DenseNonLocal(torch.nn.Module):
    """The official SemGCN ``GraphNonLocal``: the concatenation
    ``[theta_i || phi_j]`` materialised as ``[B, N, N, 2C']`` and projected,
    ReLU, divided by ``N``, then ``f @ g``."""
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, x):
        blk = self.block
        theta, phi, g = blk.theta(x), blk.phi(x), blk.g(x)
        n = x.size(1)
        cat = torch.cat([theta.unsqueeze(2).expand(-1, -1, n, -1),
                         phi.unsqueeze(1).expand(-1, n, -1, -1)], -1)
        f = torch.relu(cat @ blk.concat_weight) / n
        h = blk.out(f @ g)
        return x + blk.bn(h.reshape(-1, h.size(-1))).view(x.shape)


# ------------------------------------------------------------- operators

def _ws(cls, **kw):
    return lambda g, c: cls(c, c, g['edge_index'], num_nodes=g['n'], **kw)


# name -> (builder(graph, C), dense builder(op), estimated dense bytes
# (n, slots, b, c), estimated bytes of ours)
OPS = {
    'SemGraphConv': (
        lambda g, c: SemGraphConv(c, c, g['edge_index'], num_nodes=g['n']),
        DenseSemGraphConv, lambda n, e, b, c: 12 * n * n * 4),
    'FullSharingConv': (_ws(FullSharingConv),
                        lambda m: DenseWeightSharing('vanilla', m),
                        lambda n, e, b, c: 10 * n * n * 4),
    'PreAggConv': (_ws(PreAggConv), lambda m: DenseWeightSharing('pre_agg', m),
                   lambda n, e, b, c: 10 * n * n * 4),
    'PostAggConv': (_ws(PostAggConv),
                    lambda m: DenseWeightSharing('post_agg', m),
                    lambda n, e, b, c: 10 * n * n * 4),
    'ConvStyleConv': (
        lambda g, c: ConvStyleConv(c, c, g['edge_index'], g['centre'],
                                   num_nodes=g['n']),
        lambda m: DenseWeightSharing('conv_style', m),
        lambda n, e, b, c: 20 * n * n * 4),
    'NoSharingConv': (_ws(NoSharingConv),
                      lambda m: DenseWeightSharing('no_sharing', m),
                      lambda n, e, b, c: 4 * n * n * c * c * 4),
    'KHopConv (k=2)': (_ws(KHopConv, k=2), lambda m: DenseHop('khop', m),
                       lambda n, e, b, c: 3 * n * n * 4),
    'MixHopSkeletonConv (1,5,7)': (
        _ws(MixHopSkeletonConv), lambda m: DenseHop('mixhop', m),
        lambda n, e, b, c: 5 * n * n * 4),
    'MSHopConv (1,5,7)': (_ws(MSHopConv), lambda m: DenseHop('mshop', m),
                          lambda n, e, b, c: 5 * n * n * 4),
    'HCSFConv (S=1,L=2)': (_ws(HCSFConv), lambda m: DenseHop('hcsf', m),
                           lambda n, e, b, c: 5 * n * n * 4),
    'DynamicHCSFConv (S=1,L=2)': (
        _ws(DynamicHCSFConv, alpha_init=0.5), DenseDynamicHCSF,
        lambda n, e, b, c: (4 + 9 * b) * 3 * n * n * 4),
    'NonLocalBlock': (
        lambda g, c: NonLocalBlock(c), DenseNonLocal,
        lambda n, e, b, c: b * n * n * (2 * c + 12) * 4),
}
# Estimated bytes of ours beyond the B x N x C activations: per-slot weight
# banks of no-sharing, the N x N affinities of the non-local block, the
# dynamic layer's offsets.
OURS_BYTES = {
    'NoSharingConv': lambda n, e, b, c: 3 * (e + n) * c * c * 4,
    'NonLocalBlock': lambda n, e, b, c: 6 * b * n * n * 4,
    'DynamicHCSFConv (S=1,L=2)': lambda n, e, b, c: 3 * (n * 9 + 200 * n) *
    b * 4,
}


def build(op, graph, b, c, seed=0):
    torch.manual_seed(seed)
    with torch.device(common.DEVICE):
        module = OPS[op][0](graph, c)
        with torch.no_grad():
            if hasattr(module, 'logits'):  # trained logits, not uniform
                module.logits.normal_()
            if op == 'NonLocalBlock':  # otherwise the block is the identity
                module.bn.weight.fill_(1.0)
        x = torch.randn(b, graph['n'], c, requires_grad=True)
    return module, x


def dense_of(op, module):
    """The dense formulation of ``module``, on its device."""
    with torch.device(common.DEVICE):
        return OPS[op][1](module)


def estimate(op, graph, b, c, impl, module=None):
    n, e = graph['n'], graph['edge_index'].size(1)
    act = 8 * b * n * c * 4
    if impl == 'dense':
        return OPS[op][2](n, e, b, c) + act
    extra = OURS_BYTES.get(op, lambda *a: 0)(n, e, b, c)
    if getattr(module, 'dense_adj', 1) is None:  # hop message passing:
        extra += 3 * b * module.hop.numel() * c * 4  # messages, fwd + bwd
    return extra + act


# ---------------------------------------------------------------- memory

_libc = ctypes.CDLL('libc.so.6')


def forked_peak_mib(fn, inputs, limit_bytes):
    """Peak RSS growth (MiB) of one forward+backward in a forked child on
    one thread, under an address-space limit; a string when it fails. On a
    GPU (a forked child cannot use CUDA), the peak allocated GPU memory of
    one forward+backward in this process."""
    if common.DEVICE.type == 'cuda':
        try:
            base = common.reset_peak_memory(common.DEVICE)
            out = fn(*inputs)
            out.backward(torch.ones_like(out))
            del out
            return common.peak_memory_since(common.DEVICE, base)
        except RuntimeError as err:  # out of memory: reported in the cell
            return f'{type(err).__name__}: {str(err)[:80]}'
        finally:
            torch.cuda.empty_cache()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            torch.set_num_threads(1)
            _libc.malloc_trim(0)
            vm = common._status_kib('VmSize') * 1024
            resource.setrlimit(resource.RLIMIT_AS,
                               (vm + limit_bytes, vm + limit_bytes))
            base = common.reset_peak_memory(torch.device('cpu'))
            out = fn(*inputs)
            out.backward(torch.ones_like(out))
            res = {'peak_mib': common.peak_memory_since(
                torch.device('cpu'), base)}
        except BaseException as err:  # noqa: B036 (reported, not raised)
            res = {'error': f'{type(err).__name__}: {str(err)[:80]}'}
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not data:
        return f'child died (status {status})'
    res = json.loads(data)
    return res.get('peak_mib', res.get('error'))


# ---------------------------------------------------------------- timing

def params_of(module, x):
    return [x, *module.parameters()]


def time_pair(fns, x, params, rounds, min_time, max_reps=7):
    """Best over interleaved rounds of the median fwd+bwd time of each."""
    best = {name: float('inf') for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], common.time_fwd_bwd(
                fn, (x, ), params, min_time=min_time, max_reps=max_reps))
    return best


def fmt_ms(sec):
    return f'{sec * 1e3:.3g}' if sec < 10 else f'{sec * 1e3:.0f}'


def fmt_mem(mem):
    return f'{mem:.0f}' if isinstance(mem, float) else 'fail'


def run_cell(op, graph, b, c, args, log):
    """One row: times and peak memory of dense and ours."""
    module, x = build(op, graph, b, c)
    est_dense = estimate(op, graph, b, c, 'dense')
    est_ours = estimate(op, graph, b, c, 'ours', module)
    cap = args.cap_gb * GiB
    fns, notes = {}, {}
    if est_ours > cap:
        notes['ours'] = (f'does not fit (est. {est_ours / GiB:.1f} GB '
                         f'> {args.cap_gb:g} GB)')
    else:
        fns['ours'] = module
    if est_dense > cap:
        notes['dense'] = (f'does not fit (est. {est_dense / GiB:.1f} GB '
                          f'> {args.cap_gb:g} GB)')
    else:
        try:
            fns['dense'] = dense_of(op, module)
        except RuntimeError as err:  # allocation of the dense buffers
            notes['dense'] = f'fails: {str(err)[:60]}'
    fns = {k: fns[k] for k in ('dense', 'ours') if k in fns}
    if 'ours' in fns and 'dense' in fns:
        with torch.no_grad():
            ref = fns['ours'](x)
            torch.testing.assert_close(fns['dense'](x), ref, atol=2e-4,
                                       rtol=2e-4)
            del ref
    mems = {}
    for name in list(fns):
        mem = forked_peak_mib(fns[name], (x, ), int(1.5 * cap))
        mems[name] = mem
        if not isinstance(mem, float):
            notes[name] = f'fails: {mem}'
            del fns[name]
    # One round of the interleaved pair per cell (more with --rounds): the
    # full grid has ~290 cells on a loaded 2-core machine.
    times = time_pair(fns, x, params_of(module, x), args.rounds,
                      0.03) if fns else {}
    row = {'op': op, 'graph': graph['name'], 'n': graph['n'],
           'e': graph['edge_index'].size(1), 'b': b, 'c': c}
    for name in ('dense', 'ours'):
        row[name + '_s'] = times.get(name)
        row[name + '_mib'] = mems.get(name)
        row[name + '_note'] = notes.get(name)
    log(row)
    return row


def compile_cell(op, graph, b, c, args, log):
    module, x = build(op, graph, b, c)
    fns = {'dense': dense_of(op, module), 'ours': module}
    out = {}
    for name, fn in fns.items():
        eager = fn
        try:
            torch._dynamo.reset()
            t0 = time.perf_counter()
            compiled = torch.compile(fn)
            y = compiled(x)
            y.backward(torch.ones_like(y))
            ct = time.perf_counter() - t0
            with torch.no_grad():
                torch.testing.assert_close(y.detach(), eager(x), atol=2e-4,
                                           rtol=2e-4)
            out[name] = (compiled, ct)
        except Exception as err:  # a failure is a cell, not a crash
            msg = f'{type(err).__name__}: {str(err).splitlines()[0][:90]}'
            out[name] = (None, msg)
            print(f'compile {op} {name} failed:\n{traceback.format_exc()}',
                  file=sys.stderr)
    timed = {'dense eager': fns['dense'], 'ours eager': fns['ours']}
    for name, (compiled, _) in out.items():
        if compiled is not None:
            timed[f'{name} compiled'] = compiled
    times = time_pair(timed, x, params_of(module, x),
                      1 if args.quick else 2, 0.05)
    row = {'op': op, 'times': times,
           'compile': {k: v[1] for k, v in out.items()}}
    log(row)
    return row


# ---------------------------------------------------------------- report

def ratio(row):
    if row['ours_s'] is None or row['dense_s'] is None:
        return '-'
    return f'{row["ours_s"] / row["dense_s"]:.2f}'


def cell(row, name, what):
    if row[name + '_s'] is None:
        return row[name + '_note'] or '-'
    if what == 's':
        return fmt_ms(row[name + '_s'])
    return fmt_mem(row[name + '_mib'])


def section_table(rows):
    body = []
    for r in rows:
        body.append([r['op'], r['b'], cell(r, 'dense', 's'),
                     cell(r, 'ours', 's'), ratio(r),
                     cell(r, 'dense', 'm') if r['dense_s'] is not None
                     else '-', cell(r, 'ours', 'm')
                     if r['ours_s'] is not None else '-',
                     f'{r["ours_s"] / r["b"] * 1e6:.3g}'
                     if r['ours_s'] is not None else '-'])
    return common.markdown_table(
        ['operator', 'B', 'dense ms', 'ours ms', 'ours / dense',
         'dense peak MiB', 'ours peak MiB', 'ours µs / sample'], body)


def summary(rows):
    """Per operator: median ratio on skeletons, and the largest graph on
    which the dense formulation ran."""
    out = []
    for op in OPS:
        mine = [r for r in rows if r['op'] == op]
        skel = [r['ours_s'] / r['dense_s'] for r in mine
                if r['n'] < 100 and r['ours_s'] and r['dense_s']]
        mesh = [r for r in mine if r['n'] >= 100 and r['ours_s']
                and r['dense_s']]
        big = max(mesh, key=lambda r: (r['n'], r['b'])) if mesh else None
        nofit = [r for r in mine if r['n'] >= 100 and r['dense_s'] is None]
        out.append([
            op,
            f'{min(skel):.2f} – {max(skel):.2f}' if skel else '-',
            (f'{big["graph"]} (N={big["n"]:,}, B={big["b"]}): '
             f'{big["ours_s"] / big["dense_s"]:.3g}') if big else '-',
            (f'from N={min(r["n"] for r in nofit):,}' if nofit else
             'never'),
        ])
    return common.markdown_table(
        ['operator', 'ours / dense on skeletons (range over B, graphs)',
         'ours / dense on the largest mesh where dense ran',
         'dense does not fit'], out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='a few cells, one round (CI smoke run, < 60 s)')
    parser.add_argument('--cap-gb', type=float, default=2.0,
                        help='largest estimated dense working set that is '
                        'run (GB; default 2)')
    parser.add_argument('--no-compile', action='store_true')
    parser.add_argument('--rounds', type=int, default=1,
                        help='interleaved rounds per cell (default 1)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch threads (default 1: on a shared, loaded '
                        '2-core machine OpenMP barriers dominate otherwise)')
    common.add_device_argument(parser)
    args = parser.parse_args()
    common.use_device(args.device)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    load0 = os.getloadavg()

    def log(row):
        print(json.dumps(row, default=str), file=sys.stderr, flush=True)

    if args.quick:
        ops = ['SemGraphConv', 'HCSFConv (S=1,L=2)', 'NonLocalBlock']
        cases = [(skeleton_graph('h36m17'), (1, 256), 128)] + [
            (g, (8, ), 64) for g in mesh_graphs(quick=True)[:1]]
        compile_ops = ['SemGraphConv']
    else:
        ops = list(OPS)
        cases = [(skeleton_graph(s), (1, 64, 256, 1024), 128)
                 for s in ('h36m17', 'ntu25')] + [
            (g, (1, 8), 64) for g in mesh_graphs()]
        compile_ops = ops
    if args.no_compile:
        compile_ops = []

    sections, all_rows = [], []
    for graph, batches, c in cases:
        rows = [run_cell(op, graph, b, c, args, log)
                for op in ops for b in batches]
        all_rows += rows
        sections.append(
            f'### {graph["name"]}: N={graph["n"]:,}, directed edges='
            f'{graph["edge_index"].size(1):,}, C_in=C_out={c}\n\n' +
            section_table(rows) + '\n')

    comp_rows = []
    cgraph = skeleton_graph('h36m17')
    for op in compile_ops:
        comp_rows.append(compile_cell(op, cgraph, 256, 128, args, log))
    comp_table = []
    for r in comp_rows:
        t = r['times']
        line = [r['op']]
        for impl in ('dense', 'ours'):
            e = t[f'{impl} eager']
            comp = r['compile'][impl]
            if isinstance(comp, str):
                line += [fmt_ms(e), f'fails: {comp}', '-']
            else:
                cs = t[f'{impl} compiled']
                line += [fmt_ms(e), f'{fmt_ms(cs)} (compile {comp:.0f} s)',
                         f'{cs / e:.2f}']
        ours_c = t.get('ours compiled', t['ours eager'])
        dense_c = t.get('dense compiled', t['dense eager'])
        line.append(f'{ours_c / dense_c:.2f}')
        comp_table.append(line)

    load1 = os.getloadavg()
    wall = time.time() - t_start
    note = [
        f'Load average (1, 5, 15 min) at start {load0[0]:.2f}, '
        f'{load0[1]:.2f}, {load0[2]:.2f}; at end {load1[0]:.2f}, '
        f'{load1[1]:.2f}, {load1[2]:.2f}; torch threads '
        f'{torch.get_num_threads()}; wall time of this run {wall / 60:.1f} '
        f'min{" (--quick: a few cells, one round)" if args.quick else ""}.',
        '',
        '`ours` is the operator called on a static batch `x` of shape '
        '`[B, N, C]`; `dense` is its dense formulation with the same '
        'parameters (see the script\'s docstring; both are checked to give '
        'the same output before timing). Times are forward+backward: '
        f'{args.rounds} interleaved round(s) per cell (dense then ours, '
        'best round kept) of the median of 3 to 7 repetitions (one where a '
        'run takes over 0.15 s); repeats were cut, not cells, to keep the '
        'full grid affordable on a loaded 2-core machine, so single cells '
        'are noisy (compare the trend over B and graphs); '
        '`ours / dense` is the ratio of times measured in this run (lower '
        'is better: < 1 means ours is faster). Peak memory is the resident '
        'set growth of a forked child running one forward+backward on one '
        'thread (on a GPU: the peak allocated GPU memory). On meshes B is '
        '1 and 8 only and C = 64; a dense '
        f'formulation (or ours) whose estimated working set exceeds '
        f'{args.cap_gb:g} GB (an estimate from the N x N matrices it keeps; '
        'for ours the per-edge weight banks of no-sharing, the N x N '
        'affinities of the non-local block, or the B x (hop pairs) x C '
        'messages of the hop convolutions on meshes, where hops up to 7 '
        'reach ~150 nodes per vertex) is not run and reads "does not '
        'fit". The skeleton operators (hop convolutions, '
        'non-local, dynamic HCSF) use dense products themselves below 128 '
        'nodes, so on skeletons `ours` and `dense` differ mainly in folded '
        'weights and fewer intermediates.',
        '',
        '## Summary', '', summary(all_rows), '',
        '## All cells', '', *sections,
    ]
    if comp_rows:
        note += [
            '## torch.compile (h36m17, B=256, C=128)', '',
            'Default `torch.compile` mode, one compilation per module; '
            'compile time is wall time of the first forward+backward. '
            '`compiled / eager` < 1: compilation helps.', '',
            common.markdown_table(
                ['operator', 'dense eager ms', 'dense compiled ms',
                 'compiled / eager', 'ours eager ms', 'ours compiled ms',
                 'compiled / eager', 'ours / dense (both compiled)'],
                comp_table), '']
    path = common.write_report(
        f'operators_{common.sparse_suffix()}',
        'Operators: forward+backward against their dense formulations',
        '\n'.join(note))
    print(f'wrote {path} in {wall:.0f} s', file=sys.stderr)


if __name__ == '__main__':
    main()

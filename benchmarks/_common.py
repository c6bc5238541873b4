"""Shared helpers of the benchmark scripts: timing, peak memory, graphs, reports.

Timings are medians of repeated forward+backward passes in this process.
Peak memory is measured in a fresh child process per implementation (peak
resident set size on CPU after resetting the kernel's high-water mark, or
``torch.cuda.max_memory_allocated`` on a GPU), so one implementation's
allocations cannot hide another's.

Every timing benchmark (``bench_*.py``) and ``run_accuracy.py`` take
``--device`` (``cpu``, ``cuda``, ``cuda:1``; default ``cpu``; the
self-adaptive experiments run on the CPU only): ``use_device`` sets
``DEVICE``, the scripts build their modules and inputs on it (graphs read
from files stay on the CPU until an operator takes them), child processes
inherit it, and the results header records it.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch_geometric.typing as pyg_typing

from pyg_skeleton.mesh import faces_to_edge_index

SHARED = Path(__file__).resolve().parents[2] / 'shared'
MAKEHUMAN = SHARED / 'data' / 'meshes' / 'makehuman_body.npz'
RESULTS = Path(__file__).resolve().parent / 'results'

#: The device of this run (``--device``, see ``use_device``).
DEVICE = torch.device('cpu')
_DEVICE_ENV = 'PYG_SKELETON_BENCH_DEVICE'


def add_device_argument(parser) -> None:
    parser.add_argument(
        '--device', default=os.environ.get(_DEVICE_ENV, 'cpu'),
        help="where to run: 'cpu', 'cuda', 'cuda:1', ... (default: cpu); "
        "recorded in the results header")


def use_device(name: str) -> torch.device:
    """Sets ``DEVICE`` to ``name`` (checked), for this process and the
    child processes it starts."""
    global DEVICE
    try:
        device = torch.device(name)
    except RuntimeError:
        raise SystemExit(f'--device: unknown device {name!r}') from None
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise SystemExit(f'--device {name}: this machine has no CUDA device')
        if device.index is None:
            device = torch.device('cuda', torch.cuda.current_device())
        torch.cuda.set_device(device)
    DEVICE = device
    os.environ[_DEVICE_ENV] = str(device)
    return device


def grid_mesh(rows: int, cols: int):
    """A triangulated ``rows x cols`` grid: the stand-in mesh when the
    MakeHuman body in ``../shared`` is not there."""
    idx = torch.arange(rows * cols).view(rows, cols)
    a, b = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    c, d = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, b, d], 1), torch.stack([a, d, c], 1)])
    return faces_to_edge_index(faces, rows * cols), rows * cols


def body_mesh():
    """``(edge_index, num_nodes, description)`` of the MakeHuman body mesh,
    or of a grid of the same size when ``../shared`` is absent."""
    if MAKEHUMAN.exists():
        data = np.load(MAKEHUMAN, allow_pickle=False)
        faces = torch.from_numpy(data['faces']).long()
        n = data['vertices'].shape[0]
        return faces_to_edge_index(faces, n), n, 'MakeHuman body mesh'
    edge_index, n = grid_mesh(135, 99)
    return edge_index, n, 'triangulated 135x99 grid (MakeHuman mesh absent)'


def time_fwd_bwd(fn, inputs, params, min_time=1.0, max_reps=50, warmup=1):
    """Median seconds of ``fn(*inputs)`` forward + backward."""
    def step():
        for p in params:
            p.grad = None
        out = fn(*inputs)
        out.backward(torch.ones_like(out))
        if out.is_cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (time.perf_counter() - start < min_time
                                     or len(times) < 3):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
        if times[-1] > 5 * min_time:  # one run is enough for slow ones
            break
    return statistics.median(times)


def child_json(script: str, args: list) -> dict:
    """Runs ``script --child ARGS`` in a new process and returns the JSON
    object it prints on its last output line."""
    out = subprocess.run([sys.executable, script, '--child', *map(str, args)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def reset_peak_memory(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # resets VmHWM, the peak resident set size
    return _status_kib('VmRSS') * 1024


def peak_memory_since(device, base: int) -> float:
    if device.type == 'cuda':
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    return (_status_kib('VmHWM') * 1024 - base) / 2**20


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def environment() -> dict:
    name = (torch.cuda.get_device_name(DEVICE) if DEVICE.type == 'cuda' else
            platform.processor() or platform.machine())
    return {
        'device': f'{DEVICE}: {name}',
        'threads': torch.get_num_threads(),
        'torch': torch.__version__,
        'torch_geometric': __import__('torch_geometric').__version__,
        'torch_scatter': pyg_typing.WITH_TORCH_SCATTER,
        'torch_sparse': pyg_typing.WITH_TORCH_SPARSE,
        'cpus': os.cpu_count(),
    }


def sparse_suffix() -> str:
    return ('with_torch_sparse'
            if pyg_typing.WITH_TORCH_SPARSE else 'without_torch_sparse')


def markdown_table(header, rows) -> str:
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def bar_plot(path: Path, panels, xlabel: str = 'forward+backward (ms)'):
    """Writes a PNG with one horizontal bar chart per panel.

    ``panels`` is a list of ``(title, [(label, value, annotation), ...])``;
    the value axis is logarithmic, so implementations that differ by orders
    of magnitude stay readable."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(5.5 * len(panels), 0.5 + 0.45 * max(
                                 len(bars) for _, bars in panels)))
    for ax, (title, bars) in zip(axes[0], panels):
        labels = [b[0] for b in bars][::-1]
        values = [b[1] for b in bars][::-1]
        ax.barh(labels, values, color='tab:blue')
        ax.set_xscale('log')
        # Minor tick labels of a log axis that spans less than a decade
        # collide; the bar annotations carry the numbers anyway.
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlim(min(values) / 2, max(values) * 8)
        for y, (value, note) in enumerate(zip(values, [b[2] for b in bars
                                                       ][::-1])):
            ax.text(value * 1.1, y, note, va='center', fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(name: str, title: str, body: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    env = environment()
    path = RESULTS / f'{name}.md'
    command = ' '.join(['python', f'benchmarks/{Path(sys.argv[0]).name}'] +
                       sys.argv[1:])
    head = [f'# {title}', '',
            f'Written by `{command}` on {time.strftime("%Y-%m-%d")}.', '',
            ', '.join(f'{k}: {v}' for k, v in env.items()), '']
    path.write_text('\n'.join(head) + '\n' + body + '\n')
    return path

r"""``coarsen``: build a HEM mesh hierarchy, save it, print a summary and draw
the levels.

Usage::

    pyg-skeleton coarsen [MESH] -o hierarchy.pt \
        --max-nodes 49 --padded --plot levels.png

:obj:`MESH` is an OBJ, PLY or NPZ file, or a SMPL, SMPL-X or MANO model
(the ``.pkl`` as distributed, read without running pickled code, or an
``.npz`` with ``v_template`` and ``f``); without it the built-in MakeHuman
body mesh shipped with the package is used (see
:mod:`pyg_skeleton.mesh.builtin`). ``--preset hgn`` builds HGN's hierarchy
(:meth:`~pyg_skeleton.mesh.MeshHierarchy.hgn`: nine levels of the official
HEM, padded; on SMPL levels 7 and 8 are HGN's 96- and 48-node graphs)::

    pyg-skeleton coarsen SMPL_NEUTRAL.pkl --preset hgn -o hgn_smpl.pt

The hierarchy (``-o``, a ``.pt`` file) and the picture (``--plot``, a
``.png`` file, drawn only when matplotlib is installed: without it the
command says so in one line and still succeeds) must be different files,
and neither may be the input mesh; existing files are replaced only with
``--overwrite``. Both are written
atomically (a temporary file renamed over the output), so a symbolic link
in their place is replaced, never written through.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from ..files import atomic_output
from .coarsening import METHODS, ORDERS, SCORES

HELP = 'coarsen a mesh into a multi-level HEM hierarchy and draw its levels'

#: Named settings of ``--preset``.
PRESETS = ('hgn', )

#: Most coarsening steps: each about halves the nodes, and a padded
#: hierarchy has a binary tree of 2 ** levels leaves.
MAX_LEVELS = 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('mesh', nargs='?', default=None,
                        help='mesh file (.obj, .ply, .npz) or SMPL-family '
                        'model (.pkl, .npz); default: the built-in MakeHuman '
                        'body mesh')
    parser.add_argument('-o', '--output', default='hierarchy.pt',
                        help='where to save the hierarchy, a .pt file (torch.save '
                        'of plain tensors; default: %(default)s)')
    parser.add_argument('--levels', type=int, default=None,
                        help=f'number of coarsening steps (1 to {MAX_LEVELS})')
    parser.add_argument('--max-nodes', type=int, default=None,
                        help='coarsen until at most this many nodes '
                        '(default: 49 when --levels is not given)')
    parser.add_argument('--preset', choices=PRESETS, default=None,
                        help="hgn: HGN's hierarchy, 9 levels of the official "
                        'HEM, padded (replaces --levels, --max-nodes, '
                        '--method, --score, --order, --padded)')
    parser.add_argument('--score', choices=SCORES, default=None,
                        help='edge score that picks the pairs to merge '
                        '(default: xavier)')
    parser.add_argument('--order', choices=ORDERS, default=None,
                        help='order in which vertices pick their partner '
                        '(default: degree)')
    parser.add_argument('--method', choices=METHODS, default=None,
                        help="matching algorithm (default: parallel; "
                        "official: HGN's code, detail for detail)")
    parser.add_argument('--seed', type=int, default=None,
                        help='seed of --order random')
    parser.add_argument('--padded', action='store_true',
                        help='add the binary-tree ordering with fake nodes')
    parser.add_argument('--vertices-key', default=None,
                        help='npz array of the vertices (default: vertices, '
                        'or v_template in a SMPL-layout npz)')
    parser.add_argument('--faces-key', default=None,
                        help='npz array of the faces (default: faces, or f in '
                        'a SMPL-layout npz)')
    parser.add_argument('--largest-component', action='store_true',
                        help='keep only the largest connected component')
    parser.add_argument('--plot', default=None,
                        help='PNG picture of the levels, a .png file (default: '
                        'OUTPUT with .png)')
    parser.add_argument('--no-plot', action='store_true',
                        help='draw no picture (plots also need matplotlib)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace existing output files')


def _load(args):
    from .io import check_mesh, read_mesh, read_npz
    if args.mesh is None:
        from .builtin import makehuman_body
        return makehuman_body(), 'built-in MakeHuman body mesh'
    path = Path(args.mesh)
    cleanup = dict(largest_component=args.largest_component,
                   drop_unreferenced=args.largest_component)
    if path.suffix.lower() == '.npz':
        mesh = read_npz(path, vertices_key=args.vertices_key,
                        faces_key=args.faces_key)
        return check_mesh(mesh, **cleanup), str(path)
    return read_mesh(path, **cleanup), str(path)  # a SMPL .pkl included


def plot_levels(hierarchy, path, max_panels: int = 6) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    n = len(hierarchy)
    picks = sorted({round(i * (n - 1) / max(min(max_panels, n) - 1, 1))
                    for i in range(min(max_panels, n))})
    fig, axes = plt.subplots(1, len(picks), figsize=(3 * len(picks), 4.5))
    axes = [axes] if len(picks) == 1 else list(axes)
    pos0 = hierarchy.pos
    for ax, level in zip(axes, picks):
        pos = hierarchy.level_positions(level).numpy()
        ei = hierarchy.edge_index(level)
        ei = ei[:, ei[0] < ei[1]].numpy()
        if level == 0 or pos.shape[0] > 4000:
            label = hierarchy.assignment(0, level).numpy()
            ax.scatter(pos0[:, 0], pos0[:, 1], c=label % 20, cmap='tab20',
                       s=0.2, linewidths=0)
        else:
            segs = pos[ei.T][:, :, :2]
            ax.add_collection(LineCollection(segs, linewidths=0.4,
                                             colors='0.4'))
            ax.scatter(pos[:, 0], pos[:, 1], s=4, c='C3', zorder=3)
        ax.set_title(f'level {level}: {pos.shape[0]} nodes', fontsize=9)
        ax.set_aspect('equal')
        ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _settings(args) -> dict:
    """The coarsening options, from ``--preset`` or the single options.

    Raises:
        ValueError: A preset combined with an option it sets.
    """
    if args.preset == 'hgn':
        given = [opt for opt, value in (
            ('--levels', args.levels), ('--max-nodes', args.max_nodes),
            ('--method', args.method), ('--score', args.score),
            ('--order', args.order), ('--seed', args.seed)) if value is not None]
        if given:
            raise ValueError(f"--preset hgn sets the coarsening; drop "
                             f"{', '.join(given)}")
        from .hierarchy import MeshHierarchy
        return dict(levels=MeshHierarchy.HGN_LEVELS, max_nodes=None,
                    padded=True, method='official', score='xavier',
                    order='degree', seed=None)
    max_nodes = args.max_nodes
    if args.levels is None and max_nodes is None:
        max_nodes = 49
    return dict(levels=args.levels, max_nodes=max_nodes, padded=args.padded,
                method=args.method or 'parallel',
                score=args.score or 'xavier', order=args.order or 'degree',
                seed=args.seed)


def _check_counts(args) -> None:
    if args.levels is not None and not 1 <= args.levels <= MAX_LEVELS:
        raise ValueError(f"--levels must be in 1..{MAX_LEVELS}, got {args.levels}")
    if args.max_nodes is not None and args.max_nodes < 1:
        raise ValueError(f"--max-nodes must be at least 1, got {args.max_nodes}")


def _outputs(args):
    """``(hierarchy path, plot path or None)``, checked before any work.

    Raises:
        ValueError: A wrong extension, an output that is the input or the
            other output, or an existing file without ``--overwrite``.
    """
    out = Path(args.output)
    if out.suffix.lower() not in ('.pt', '.pth'):
        raise ValueError(f"-o {out}: the hierarchy is saved with torch.save; give a .pt "
                         f"file")
    png = None
    if not args.no_plot:
        png = Path(args.plot) if args.plot else out.with_suffix('.png')
        if _same_file(out, png):
            raise ValueError(f"-o {out} and --plot {png} are the same file")
        if png.suffix.lower() != '.png':
            raise ValueError(f"--plot {png}: the picture is a PNG; give a .png file")
    for path, opt in ((out, '-o'), (png, '--plot')):
        if path is None:
            continue
        if args.mesh is not None and _same_file(path, Path(args.mesh)):
            raise ValueError(f"{opt} {path} is the input mesh; give another file")
        if (path.exists() or path.is_symlink()) and not args.overwrite:
            raise ValueError(f"{opt} {path} exists; use --overwrite to replace it")
        if path.is_dir():
            raise ValueError(f"{opt} {path} is a folder")
    return out, png


def run(args) -> int:
    from .hierarchy import MeshHierarchy
    try:
        _check_counts(args)
        settings = _settings(args)
        out, png = _outputs(args)
        mesh, name = _load(args)
    except (OSError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        h = MeshHierarchy.from_mesh(mesh, **settings)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    print(f'{name}: {mesh.num_vertices} vertices, {mesh.num_faces} faces; '
          f'{h.num_levels} levels in {seconds:.2f} s ({settings["method"]} '
          f'HEM, {settings["score"]} score, {settings["order"]} order)')
    header = ['level', 'nodes', 'padded', 'edges', 'self_loops', 'rounds']
    rows = [[r[k] if r[k] is not None else '-' for k in header]
            for r in h.summary()]
    widths = [max(len(str(x)) for x in [c] + [r[i] for r in rows])
              for i, c in enumerate(header)]
    for row in [header] + rows:
        print('  '.join(str(x).rjust(w) for x, w in zip(row, widths)))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_output(out, h.save)
        print(f'saved {out}')
        if png is not None:
            try:
                atomic_output(png, lambda path: plot_levels(h, path))
                print(f'saved {png}')
            except ImportError as e:
                # plots are optional: a plain install has no matplotlib
                if not (e.name or '').startswith('matplotlib'):
                    raise
                print(f'no plot: matplotlib is not installed (pip install matplotlib); '
                      f'{png} not written', file=sys.stderr)
    except OSError as e:
        print(f'error: cannot write {e.filename or out}: {e.strerror or e}', file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m pyg_skeleton.mesh.coarsen_cli',
        description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())

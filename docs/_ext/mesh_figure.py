"""The figure of the mesh guide, drawn from the code when the docs are built.

``.. body-hierarchy-figure::`` coarsens the built-in MakeHuman body with
:meth:`pyg_skeleton.mesh.MeshHierarchy.from_mesh` (``max_nodes=49``, as in
the guide's code) and draws, for a few levels, the body's triangles (front
view) coloured by the cluster of that level they fall into, with the
level's own graph on top where it is small enough to read. The PNG is
written under the build's doctree folder, never into the source tree, and
reused while the package sources and this file are unchanged (coarsening the
13,380-vertex body takes about 10 s).

Without the body mesh the directive reports a warning (an error under
``-W``) that names the missing mesh instead of leaving the figure out.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

LEVELS = (3, 5, 6, 7, 8, 9)
MAX_EDGES_DRAWN = 1500  # denser graphs are drawn as their clusters only


def _fingerprint() -> str:
    import pyg_skeleton
    h = hashlib.sha256(Path(__file__).read_bytes())
    root = Path(pyg_skeleton.__file__).parent / 'mesh'
    for path in sorted(root.rglob('*.py')):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def draw(path: Path) -> None:
    """Coarsen the built-in body and save the figure to ``path``.

    Runs on one thread: on a busy 2-core machine waiting threads made the
    coarsening many times slower.
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _draw(path)
    finally:
        torch.set_num_threads(threads)


def _draw(path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.collections import LineCollection, PolyCollection

    from pyg_skeleton.mesh import MeshHierarchy, makehuman_body

    mesh = makehuman_body()
    hierarchy = MeshHierarchy.from_mesh(mesh, max_nodes=49)
    levels = [k for k in LEVELS if k <= hierarchy.num_levels]
    xyz = mesh.pos.numpy()
    faces = mesh.face.t().numpy()  # one row per triangle
    # Front view (x right, y up, the body faces +z): the triangles nearest
    # the viewer are painted last.
    faces = faces[np.argsort(xyz[faces, 2].mean(1))]
    # Three panels a row: each body stays large enough to see its clusters.
    cols = 3
    rows = (len(levels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(7.5, 3.6 * rows), squeeze=False)
    palette = plt.get_cmap('tab20')
    for ax in axes.flat:
        ax.axis('off')
    for ax, level in zip(axes.flat, levels):
        cluster = hierarchy.assignment(0, level).numpy()[faces[:, 0]]
        # Neighbouring clusters have neighbouring numbers: scatter the colours.
        colours = palette(cluster * 7919 % 20 / 20)
        ax.add_collection(PolyCollection(xyz[faces][:, :, :2], facecolors=colours,
                                         edgecolors='none', rasterized=True))
        edges = hierarchy.edge_index(level)
        if edges.shape[1] <= MAX_EDGES_DRAWN:
            pos = hierarchy.level_positions(level)[:, :2].numpy()
            ax.add_collection(LineCollection(pos[edges.t().numpy()], colors='k',
                                             linewidths=0.4))
            ax.scatter(pos[:, 0], pos[:, 1], s=2, c='k', linewidths=0)
        ax.autoscale_view()
        ax.set_title(f'level {level}: {hierarchy.num_nodes[level]:,} nodes', fontsize=11)
        ax.set_aspect('equal')
    fig.tight_layout(pad=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches='tight', pad_inches=0.05)
    plt.close(fig)


def setup(app):
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class BodyHierarchyFigure(SphinxDirective):
        """``.. body-hierarchy-figure::`` followed by the caption as content."""
        has_content = True

        def run(self):
            out = Path(self.env.app.doctreedir) / 'generated_figures' / (
                f'body_hierarchy_{_fingerprint()}.png')
            if not out.exists():
                try:
                    draw(out)
                except FileNotFoundError as exc:
                    return [self.state.document.reporter.warning(
                        f'body-hierarchy-figure: no body mesh to draw: {exc}', line=self.lineno)]
            self.env.note_dependency(__file__)
            doc_dir = Path(self.env.doc2path(self.env.docname)).parent
            image = nodes.image(uri=os.path.relpath(out, doc_dir), width='100%',
                                alt='The MakeHuman body coloured by the HEM clusters of '
                                    'several levels, with the coarse graphs on top')
            figure = nodes.figure('', image)
            if self.content:
                caption = nodes.caption()
                self.state.nested_parse(self.content, self.content_offset, caption)
                figure += nodes.caption('', '', *caption[0].children)
            return [figure]

    app.add_directive('body-hierarchy-figure', BodyHierarchyFigure)
    return {'version': '1.0', 'parallel_read_safe': True, 'parallel_write_safe': True}

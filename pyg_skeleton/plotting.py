r"""Pictures of lifted poses: the 2D input beside the 3D skeleton, upright,
and animations of sequences (needs matplotlib: ``pip install
pyg-skeleton[plot]``).

3D poses are in the camera frame of the package (x right, y down, z
forward). :func:`upright` turns them so that the body's up direction (the
mean pelvis-to-thorax direction) points up, keeping the camera's viewing
direction horizontal: a skeleton seen by a tilted or rolled camera is drawn
standing, viewed from where the camera stood. Left limbs are drawn in blue,
right limbs in red, the trunk in black.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: What the commands print when they skip their pictures.
NO_PLOTS = 'no plots: matplotlib is not installed (pip install matplotlib)'


def plots_available() -> bool:
    r"""Whether matplotlib can be imported: the pictures of the commands are
    optional (the ``plot`` extra; a plain ``pip install`` does not bring
    matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True

__all__ = ['upright', 'plot_lifted', 'animate_lifted']

_LEFT, _RIGHT, _MID = '#1f5fbf', '#d03030', '#222222'


def upright(poses: np.ndarray, up_from: Sequence[int] = (0, 8)) -> np.ndarray:
    r"""Rotates camera-frame poses :obj:`[..., N, 3]` into a plotting frame
    with z up (see the module docs): one rotation for all poses given, from
    the mean direction of joint :obj:`up_from[0]` to :obj:`up_from[1]`
    (pelvis to thorax in ``h36m17``). Returns :obj:`[..., N, 3]` with x to
    the camera's right, y away from the camera, z up."""
    p = np.asarray(poses, dtype=np.float64)
    v = (p[..., up_from[1], :] - p[..., up_from[0], :]).reshape(-1, 3)
    v = v[np.isfinite(v).all(1)]
    up = v.mean(0) if len(v) else np.array([0.0, -1.0, 0.0])
    n = np.linalg.norm(up)
    up = up / n if n > 1e-9 else np.array([0.0, -1.0, 0.0])
    # keep the camera's forward axis as the depth direction, made horizontal
    fwd = np.array([0.0, 0.0, 1.0]) - up * up[2]
    if np.linalg.norm(fwd) < 1e-6:   # looking straight down the body axis
        fwd = np.array([0.0, 1.0, 0.0]) - up * up[1]
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, up)   # with up = -y and fwd = z this is +x: rows are right-handed
    rot = np.stack([right, fwd, up])
    return p @ rot.T


def _colour(skeleton, child: int) -> str:
    names = skeleton.joint_names
    name = names[child].lower() if names else ''
    if name.startswith('l'):
        return _LEFT
    if name.startswith('r'):
        return _RIGHT
    return _MID


def _draw_2d(ax, uv, mask, skeleton, title: str = '', box_points=None) -> None:
    uv = np.asarray(uv, dtype=np.float64)
    mask = np.ones(len(uv), bool) if mask is None else np.asarray(mask, bool)
    for c, p in skeleton.bones().tolist():
        if mask[c] and mask[p]:
            ax.plot(uv[[c, p], 0], uv[[c, p], 1], color=_colour(skeleton, c), lw=2)
    ax.scatter(uv[mask, 0], uv[mask, 1], s=8, color='k', zorder=3)
    if (~mask).any():
        ax.text(0.02, 0.02, f'{(~mask).sum()} joint(s) missing', transform=ax.transAxes,
                fontsize=7, color='gray')
    # the pose's own box, or a fixed box (box_points: all points of a sequence)
    vis = np.asarray(box_points) if box_points is not None else (
        uv[mask] if mask.any() else np.zeros((1, 2)))
    lo, hi = vis.min(0), vis.max(0)
    c, r = (lo + hi) / 2, max((hi - lo).max() / 2, 1e-6) * 1.15
    ax.set_xlim(c[0] - r, c[0] + r)
    ax.set_ylim(c[1] + r, c[1] - r)   # image v grows downwards
    ax.set_aspect('equal')
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def _draw_3d(ax, pose, skeleton, truth=None, title: str = '', radius: float = 1.0) -> None:
    for p3, style in ((truth, dict(color='0.6', lw=3, alpha=0.7)), (pose, None)):
        if p3 is None:
            continue
        for c, p in skeleton.bones().tolist():
            kw = style or dict(color=_colour(skeleton, c), lw=2)
            ax.plot(p3[[c, p], 0], p3[[c, p], 1], p3[[c, p], 2], **kw)
    centre = (pose if truth is None else truth).mean(0)
    ax.set_xlim(centre[0] - radius, centre[0] + radius)
    ax.set_ylim(centre[1] - radius, centre[1] + radius)
    ax.set_zlim(centre[2] - radius, centre[2] + radius)
    ax.set_box_aspect((1, 1, 1), zoom=1.2)
    # from a little to the camera's right and above: the camera's view turned by
    # 30 degrees, so that depth shows
    ax.view_init(elev=15, azim=-60)
    for axis, lo in ((ax.xaxis, centre[0]), (ax.yaxis, centre[1]), (ax.zaxis, centre[2])):
        axis.pane.set_alpha(0.15)
        axis.set_ticks(np.arange(np.ceil((lo - radius) * 2), np.floor((lo + radius) * 2) + 1)
                       / 2)
        axis.set_ticklabels([])
    ax.set_title(title, fontsize=8)


def plot_lifted(uv: np.ndarray, mask: np.ndarray | None, poses: np.ndarray, skeleton,
                path: str | Path, titles: list[str] | None = None,
                truth: np.ndarray | None = None, suptitle: str = '') -> None:
    r"""One row per sample: the 2D input (pixels, :obj:`[K, N, 2]` with a
    mask :obj:`[K, N]`) beside its 3D pose (:obj:`[K, N, 3]`, camera frame,
    drawn upright), with the ground truth in grey when given. Writes a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    k = len(poses)
    cols = min(k, 2)   # pairs of (2D, 3D) panels per row
    rows = -(-k // cols)
    fig = plt.figure(figsize=(5.6 * cols, 2.9 * rows + 0.5))
    grid = fig.add_gridspec(rows, 2 * cols, width_ratios=[1.0, 1.4] * cols)
    for i in range(k):
        r, c = divmod(i, cols)
        both = upright(np.stack([poses[i]] + ([truth[i]] if truth is not None else [])))
        ax2 = fig.add_subplot(grid[r, 2 * c])
        _draw_2d(ax2, uv[i], None if mask is None else mask[i], skeleton,
                 '2D input' if titles is None else titles[i])
        ax3 = fig.add_subplot(grid[r, 2 * c + 1], projection='3d')
        _draw_3d(ax3, both[0], skeleton, both[1] if truth is not None else None,
                 '3D, 0.5 m grid' + (' (grey: truth)' if truth is not None else ''),
                 radius=0.85)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def animate_lifted(uv: np.ndarray, mask: np.ndarray | None, poses: np.ndarray, skeleton,
                   path: str | Path, fps: float = 15.0, title: str = '',
                   max_frames: int = 90) -> None:
    r"""An animated GIF of a sequence: the 2D input beside the upright 3D
    pose, frame by frame (at most :obj:`max_frames`, evenly picked)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter
    T = len(poses)
    pick = np.unique(np.linspace(0, T - 1, min(T, max_frames)).round().astype(int))
    up = upright(poses)
    fig = plt.figure(figsize=(8, 4))
    ax2 = fig.add_subplot(1, 2, 1)
    ax3 = fig.add_subplot(1, 2, 2, projection='3d')
    span = np.nanmax(np.abs(up - up[:, :1]))
    seen = uv[mask] if mask is not None else uv.reshape(-1, 2)

    def draw(t):
        ax2.cla()
        ax3.cla()
        _draw_2d(ax2, uv[t], None if mask is None else mask[t], skeleton, f'2D input, frame {t}',
                 box_points=seen)
        _draw_3d(ax3, up[t], skeleton, title='3D, 0.5 m grid', radius=max(span, 0.5))
        if title:
            fig.suptitle(title, fontsize=9)

    anim = FuncAnimation(fig, draw, frames=list(pick), interval=1000 / fps)
    anim.save(str(path), writer=PillowWriter(fps=fps), dpi=80)
    plt.close(fig)

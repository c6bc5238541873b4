r"""Relation pairs of poses and motions (2D or 3D) and random camera roll
(see :mod:`.self_adaptive`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ['POSE_RELATIONS', 'MOTION_RELATIONS', 'RELATIONS', 'mirror', 'inplane_rotate',
           'flip_inplane', 'reverse_time', 'temporal_resample', 'flip_backward',
           'slow_backward', 'relation_pair', 'random_inplane_rotate']


def random_inplane_rotate(x: Tensor, max_deg: float, sample_dims: int = 1,
                          generator: torch.Generator | None = None,
                          frac: float = 1.0) -> Tensor:
    r"""Random camera roll: rotates :obj:`x` :obj:`[..., N, C]` about the
    optical axis (coordinates 0 and 1, as :func:`inplane_rotate`) by an angle
    drawn uniformly from :obj:`[-max_deg, max_deg]`, one angle per index of
    the first :obj:`sample_dims` dimensions (:obj:`1` for poses
    :obj:`[B, N, 3]`; also :obj:`1` for clips :obj:`[B, T, N, 3]`, so all
    frames of a clip share one roll). With :obj:`frac < 1` only that fraction
    of the samples (chosen at random) is rotated, the rest is kept upright.
    Rotations about the optical axis keep bone lengths."""
    if max_deg <= 0 or frac <= 0:
        return x
    shape = x.shape[:sample_dims]
    theta = (torch.rand(shape, generator=generator) * 2 - 1) * math.radians(max_deg)
    if frac < 1:
        theta = theta * (torch.rand(shape, generator=generator) < frac)
    theta = theta.to(x.device, x.dtype).view(*shape, *([1] * (x.dim() - sample_dims - 1)))
    c, s = theta.cos(), theta.sin()
    a, b = x[..., 0], x[..., 1]
    out = x.clone()
    out[..., 0] = c * a - s * b
    out[..., 1] = s * a + c * b
    return out


# ------------------------------------------------------------ relation pairs
def mirror(x: Tensor, skeleton, lateral_axis: int = 0) -> Tensor:
    r"""Left/right mirror of poses :obj:`[..., N, C]` (2D or 3D): swaps the
    skeleton's flip pairs and negates :obj:`lateral_axis` (camera :math:`x`,
    or normalised :math:`u'`)."""
    return skeleton.flip(x, lateral_axis=lateral_axis)


def inplane_rotate(x: Tensor, theta_deg: float, axes: tuple[int, int] = (0, 1)) -> Tensor:
    r"""Rotation by :obj:`theta_deg` about the camera's optical axis:
    :math:`a' = a\cos\theta - b\sin\theta`, :math:`b' = a\sin\theta + b\cos\theta`
    for the coordinates :obj:`axes = (a, b)` of the last dimension (camera
    :math:`x, y`, or normalised :math:`u', v'`); other coordinates (depth)
    are kept. With :math:`y` pointing down this turns the image clockwise."""
    t = math.radians(theta_deg)
    c, s = math.cos(t), math.sin(t)
    i, j = axes
    a, b = x[..., i], x[..., j]
    out = x.clone()
    out[..., i] = c * a - s * b
    out[..., j] = s * a + c * b
    return out


def flip_inplane(x: Tensor, skeleton, theta_deg: float = 50.0, lateral_axis: int = 0) -> Tensor:
    r"""Mirror, then in-plane rotation (the paper's best pose relation uses
    :math:`\theta = 50^\circ`)."""
    return inplane_rotate(mirror(x, skeleton, lateral_axis), theta_deg)


def reverse_time(seq: Tensor, time_dim: int = -3) -> Tensor:
    r"""Plays sequences :obj:`[..., T, N, C]` backwards."""
    return seq.flip(time_dim)


def temporal_resample(seq: Tensor, rate: float, length: int | None = None,
                      time_dim: int = -3) -> Tensor:
    r"""Resamples a sequence in time around its middle: output frame
    :math:`t \in [0, L)` reads source time
    :math:`s = (T-1)/2 + rate\,(t - (L-1)/2)` with linear interpolation
    (clamped to the ends). :obj:`rate < 1` gives a slow-motion clip of the
    mid region (the paper plays the middle 15 frames of a clip over 30
    frames), :obj:`rate > 1` a fast one. :obj:`length` defaults to :math:`T`."""
    seq = seq.movedim(time_dim, 0)
    T = seq.size(0)
    L = T if length is None else int(length)
    t = torch.arange(L, dtype=torch.float64, device=seq.device)
    s = ((T - 1) / 2 + rate * (t - (L - 1) / 2)).clamp(0, T - 1)
    lo = s.floor().long().clamp(max=T - 1)
    hi = (lo + 1).clamp(max=T - 1)
    w = (s - lo).to(seq.dtype).view(-1, *([1] * (seq.dim() - 1)))
    out = seq[lo] * (1 - w) + seq[hi] * w
    return out.movedim(0, time_dim)


def flip_backward(seq: Tensor, skeleton, theta_deg: float = 0.0,
                  lateral_axis: int = 0) -> Tensor:
    r"""Mirrored (and, if :obj:`theta_deg`, in-plane rotated) motion played
    backwards (Algorithm 1's :math:`T_2^v` uses flip + in-plane + backward)."""
    return reverse_time(flip_inplane(seq, skeleton, theta_deg, lateral_axis))


def slow_backward(seq: Tensor, rate: float = 0.5) -> Tensor:
    r"""Slow motion of the middle of the clip, played backwards."""
    return reverse_time(temporal_resample(seq, rate))


POSE_RELATIONS = ('flip', 'inplane', 'flip_inplane')
MOTION_RELATIONS = ('flip_backward', 'slow_backward')
RELATIONS = POSE_RELATIONS + MOTION_RELATIONS


def relation_pair(name: str, x: Tensor, skeleton, theta_deg: float = 50.0,
                  rate: float = 0.5) -> Tensor:
    r"""The partner :math:`x^+` of poses / motions :obj:`x` (2D or 3D) under
    relation :obj:`name` of :data:`RELATIONS`."""
    if name == 'flip':
        return mirror(x, skeleton)
    if name == 'inplane':
        return inplane_rotate(x, theta_deg)
    if name == 'flip_inplane':
        return flip_inplane(x, skeleton, theta_deg)
    if name == 'flip_backward':
        return flip_backward(x, skeleton)
    if name == 'slow_backward':
        return slow_backward(x, rate)
    raise ValueError(f"unknown relation {name!r} (choose from {RELATIONS})")



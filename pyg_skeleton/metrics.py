r"""Pose-estimation metrics, batched in torch.

All functions take predicted and ground-truth joints of shape
:obj:`[..., N, 3]` (any number of leading batch dimensions) in the same unit
(this package uses metres; multiply by 1000 to report millimetres) and an
optional :obj:`mask` of shape :obj:`[..., N]` (bool or 0/1 weights) that
selects the joints (or mesh vertices) that count; weights must be finite
and non-negative. A joint that does not count has no effect at all, even if
its prediction or target is NaN. A mean over no counted joint (a fully
masked sample with :obj:`reduction='sample'`, a joint masked in every sample
with :obj:`reduction='joint'`, an all-zero mask) is :obj:`nan`, never a
perfect :obj:`0`. Poses are compared as given: make them root-relative first
where a protocol asks for it.

* :func:`mpjpe` -- mean per-joint position error (Protocol #1).
* :func:`p_mpjpe` -- MPJPE after a similarity Procrustes alignment (rotation,
  translation and scale; Protocol #2); reflections are excluded as usual, so
  the aligned prediction is always a proper rotation of the input.
* :func:`n_mpjpe` -- MPJPE after the optimal scale only.
* :func:`mpvpe` -- mean per-vertex position error for meshes (the same
  computation on vertices).
* :func:`pck` / :func:`auc` -- 3D percentage of correct keypoints under a
  threshold (150 mm) and the area under the PCK curve over 0--150 mm.

Every function returns the per-sample, per-joint errors with
:obj:`reduction='none'`, the mean per joint with :obj:`reduction='joint'`
and a scalar with :obj:`reduction='mean'` (the default). :func:`group_mean`
averages per-sample values per action / content label, and
:class:`MetricAccumulator` accumulates all of them over an evaluation run,
reducing across :mod:`torch.distributed` ranks.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    'joint_errors', 'mpjpe', 'p_mpjpe', 'n_mpjpe', 'mpvpe', 'pck', 'auc',
    'procrustes_align', 'scale_align', 'group_mean', 'MetricAccumulator',
    'process_group_device',
]


def process_group_device() -> torch.device:
    r"""The device on which the default :mod:`torch.distributed` process
    group reduces tensors: the process's GPU for the NCCL backend, which
    reduces only CUDA tensors (:obj:`cuda:LOCAL_RANK` under
    :obj:`torchrun`, else the current CUDA device), and the CPU otherwise
    (gloo, or no process group)."""
    import torch.distributed as dist
    if (dist.is_available() and dist.is_initialized()
            and dist.get_backend() == 'nccl'):
        local = os.environ.get('LOCAL_RANK')
        index = int(local) if local is not None else torch.cuda.current_device()
        return torch.device('cuda', index)
    return torch.device('cpu')


def _check(pred: Tensor, target: Tensor, mask: Tensor | None) -> Tensor:
    if pred.shape != target.shape or pred.dim() < 2:
        raise ValueError(f"expected predicted and target joints of the same shape [..., N, D], "
                         f"got {list(pred.shape)} and {list(target.shape)}")
    if mask is None:
        return torch.ones(pred.shape[:-1], dtype=pred.dtype, device=pred.device)
    mask = torch.as_tensor(mask).to(device=pred.device, dtype=pred.dtype)
    # A negative or NaN weight would subtract from (or poison) the joint
    # counts and return a number that means nothing.
    if not bool(torch.all(torch.isfinite(mask) & (mask >= 0))):
        raise ValueError("mask weights must be finite and non-negative")
    try:
        return mask.expand(pred.shape[:-1])
    except RuntimeError:
        raise ValueError(f"mask of shape {list(mask.shape)} does not broadcast to "
                         f"{list(pred.shape[:-1])}") from None


def _check_threshold(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value < 0:
        raise ValueError(f"{name!r} must be a finite number >= 0 (got {value!r})")


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name!r} must be an integer >= {minimum} (got {value!r})")
    return value


def _check_groups(labels: Tensor, size: int, num_groups: int, name: str) -> Tensor:
    labels = labels.reshape(-1)
    if labels.numel() != size:
        raise ValueError(f"{name!r} has {labels.numel()} entries for {size} samples")
    if labels.is_floating_point() and bool((labels != labels.round()).any()):
        raise ValueError(f"{name!r} must hold integer group ids")
    labels = labels.long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_groups):
        raise ValueError(f"{name!r} has ids in [{int(labels.min())}, {int(labels.max())}], "
                         f"outside [0, {num_groups - 1}] for num_groups={num_groups}")
    return labels


def _masked(values: Tensor, mask: Tensor) -> Tensor:
    """:obj:`values * mask` (broadcast) with masked-out entries exactly zero:
    a NaN or Inf at a joint that does not count must not reach any sum
    (``0 * nan`` is ``nan``)."""
    return torch.where(mask > 0, values * mask, values.new_zeros(()))


def _ratio(total: Tensor, count: Tensor) -> Tensor:
    """``total / count``, NaN where nothing was counted (never a perfect 0)."""
    return torch.where(count > 0, total / count.clamp_min(1e-12), torch.nan)


def _reduce(values: Tensor, mask: Tensor, reduction: str) -> Tensor:
    """Masked reduction of per-joint values ``[..., N]``; NaN where no joint
    counts."""
    if reduction == 'none':
        return values
    values = _masked(values, mask)
    if reduction == 'joint':
        dims = tuple(range(values.dim() - 1))
        return _ratio(values.sum(dims), mask.sum(dims))
    if reduction == 'sample':
        return _ratio(values.sum(-1), mask.sum(-1))
    if reduction == 'mean':
        return _ratio(values.sum(), mask.sum())
    raise ValueError(f"unknown reduction {reduction!r} (use 'mean', 'sample', 'joint' or 'none')")


def joint_errors(pred: Tensor, target: Tensor) -> Tensor:
    r"""Euclidean distance per joint, :obj:`[..., N]`."""
    return (pred - target).norm(dim=-1)


def mpjpe(pred: Tensor, target: Tensor, mask: Tensor | None = None,
          reduction: str = 'mean') -> Tensor:
    r"""Mean per-joint position error.

    Args:
        pred (torch.Tensor): Predicted joints :obj:`[..., N, D]`.
        target (torch.Tensor): Ground truth :obj:`[..., N, D]`.
        mask (torch.Tensor, optional): Joints that count, :obj:`[..., N]`.
        reduction (str, optional): :obj:`'mean'` (scalar), :obj:`'sample'`
            (:obj:`[...]`), :obj:`'joint'` (:obj:`[N]`) or :obj:`'none'`
            (:obj:`[..., N]`, unmasked). (default: :obj:`'mean'`)

    Returns:
        torch.Tensor: The reduced errors; :obj:`nan` where no joint counts.

    Raises:
        ValueError: If the shapes differ, the mask does not broadcast or has
            negative or non-finite weights, or :obj:`reduction` is unknown.
    """
    m = _check(pred, target, mask)
    return _reduce(joint_errors(pred, target), m, reduction)


def mpvpe(pred: Tensor, target: Tensor, mask: Tensor | None = None,
          reduction: str = 'mean') -> Tensor:
    r"""Mean per-vertex position error of meshes :obj:`[..., V, 3]`; the
    same computation as :func:`mpjpe` over vertices."""
    return mpjpe(pred, target, mask, reduction)


def procrustes_align(pred: Tensor, target: Tensor, mask: Tensor | None = None,
                     scale: bool = True) -> Tensor:
    r"""Aligns :obj:`pred` to :obj:`target` with the similarity transform
    :math:`s R p + t` minimising the (masked) squared error, per sample.

    Solved in closed form with one batched SVD of the :math:`D \times D`
    cross-covariance (Kabsch / Umeyama). :math:`R` is a proper rotation:
    when the best orthogonal matrix would be a reflection, the sign of the
    smallest singular direction is flipped, as the standard P-MPJPE does.

    Args:
        pred (torch.Tensor): :obj:`[..., N, D]`.
        target (torch.Tensor): :obj:`[..., N, D]`.
        mask (torch.Tensor, optional): Joints used for the fit and weights,
            :obj:`[..., N]`.
        scale (bool, optional): Fit the scale :math:`s` (else :math:`s=1`).

    Returns:
        torch.Tensor: The aligned prediction, same shape as :obj:`pred`.
    """
    w = _check(pred, target, mask).unsqueeze(-1)  # [..., N, 1]
    dtype = pred.dtype
    # The SVD is done in float64: cheap for 3x3 and it keeps the metric exact.
    p, t, w = pred.double(), target.double(), w.double()
    # The fit sees masked-out joints as zeros, so that a NaN there (a
    # missing ground truth) does not reach the SVD; the transform is then
    # applied to every joint of the prediction as given.
    pw, tw = _masked(p, w), _masked(t, w)
    wsum = w.sum(-2, keepdim=True).clamp_min(1e-12)
    mu_p = pw.sum(-2, keepdim=True) / wsum
    mu_t = tw.sum(-2, keepdim=True) / wsum
    p0 = p - mu_p
    pw0 = _masked(p0, w)                          # w * (p - mu_p), 0 if masked
    t0 = torch.where(w > 0, t - mu_t, 0.0)
    cov = pw0.transpose(-1, -2) @ t0                      # [..., D, D] = sum w p t^T
    u, s, vh = torch.linalg.svd(cov)
    v = vh.transpose(-1, -2)
    det = torch.linalg.det(v @ u.transpose(-1, -2))
    sign = torch.ones_like(s)
    sign[..., -1] = torch.where(det < 0, -1.0, 1.0)
    rot = (v * sign.unsqueeze(-2)) @ u.transpose(-1, -2)   # V diag(sign) U^T
    if scale:
        var = _masked(p0.square(), w).sum((-2, -1))
        k = (s * sign).sum(-1) / var.clamp_min(1e-12)
    else:
        k = torch.ones_like(s[..., 0])
    aligned = k[..., None, None] * p0 @ rot.transpose(-1, -2) + mu_t
    return aligned.to(dtype)


def scale_align(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Rescales :obj:`pred` by the least-squares optimal factor
    :math:`s = \langle p, t \rangle / \langle p, p \rangle` per sample (the
    alignment of N-MPJPE)."""
    w = _check(pred, target, mask).unsqueeze(-1)
    num = _masked(pred * target, w).sum((-2, -1), keepdim=True)
    den = _masked(pred * pred, w).sum((-2, -1), keepdim=True).clamp_min(1e-12)
    return pred * (num / den)


def p_mpjpe(pred: Tensor, target: Tensor, mask: Tensor | None = None,
            reduction: str = 'mean') -> Tensor:
    r"""MPJPE after Procrustes alignment with scale (Protocol #2); see
    :func:`procrustes_align` and :func:`mpjpe` for the arguments."""
    return mpjpe(procrustes_align(pred, target, mask), target, mask, reduction)


def n_mpjpe(pred: Tensor, target: Tensor, mask: Tensor | None = None,
            reduction: str = 'mean') -> Tensor:
    r"""MPJPE after the optimal scale of the prediction (no rotation or
    translation); see :func:`scale_align`."""
    return mpjpe(scale_align(pred, target, mask), target, mask, reduction)


def pck(pred: Tensor, target: Tensor, threshold: float = 0.15,
        mask: Tensor | None = None, reduction: str = 'mean') -> Tensor:
    r"""3D percentage of correct keypoints: the fraction of joints within
    :obj:`threshold` (in the unit of the poses; :obj:`0.15` is 150 mm for
    poses in metres). Returns fractions in :math:`[0, 1]`.

    Raises:
        ValueError: If :obj:`threshold` is negative or not finite, or as
            :func:`mpjpe`.
    """
    _check_threshold(threshold, 'threshold')
    m = _check(pred, target, mask)
    return _reduce((joint_errors(pred, target) <= threshold).to(pred.dtype), m, reduction)


def auc(pred: Tensor, target: Tensor, max_threshold: float = 0.15, num_thresholds: int = 31,
        mask: Tensor | None = None, reduction: str = 'mean') -> Tensor:
    r"""Area under the PCK curve: the mean of :func:`pck` over
    :obj:`num_thresholds` evenly spaced thresholds from 0 to
    :obj:`max_threshold` (inclusive), as in the MPI-INF-3DHP protocol.

    Raises:
        ValueError: If :obj:`max_threshold` is negative or not finite,
            :obj:`num_thresholds` is not a positive integer, or as
            :func:`mpjpe`.
    """
    _check_threshold(max_threshold, 'max_threshold')
    _check_count(num_thresholds, 'num_thresholds', 1)
    m = _check(pred, target, mask)
    err = joint_errors(pred, target)
    thr = torch.linspace(0, max_threshold, num_thresholds, device=pred.device, dtype=pred.dtype)
    frac = (err.unsqueeze(-1) <= thr).to(pred.dtype).mean(-1)
    return _reduce(frac, m, reduction)


def group_mean(values: Tensor, labels: Tensor, num_groups: int | None = None,
               weights: Tensor | None = None) -> Tensor:
    r"""Averages per-sample :obj:`values` :obj:`[B]` per integer label
    :obj:`[B]` (e.g. action or content id). Returns :obj:`[num_groups]`,
    :obj:`nan` for groups without samples (or with zero total weight).

    Raises:
        ValueError: If :obj:`labels` or :obj:`weights` do not have one entry
            per value, a label lies outside :obj:`[0, num_groups - 1]`, or a
            weight is negative or not finite.
    """
    values = values.flatten()
    if num_groups is None:
        num_groups = int(labels.max()) + 1 if labels.numel() else 0
    _check_count(num_groups, 'num_groups', 1)
    labels = _check_groups(labels, values.numel(), num_groups, 'labels')
    if weights is None:
        w = torch.ones_like(values)
    else:
        w = weights.flatten().to(values.dtype)
        if w.numel() != values.numel():
            raise ValueError(f"'weights' has {w.numel()} entries for {values.numel()} values")
        if not bool(torch.all(torch.isfinite(w) & (w >= 0))):
            raise ValueError("'weights' must be finite and non-negative")
    total = torch.zeros(num_groups, dtype=values.dtype, device=values.device)
    count = torch.zeros_like(total)
    total.index_add_(0, labels, _masked(values, w))
    count.index_add_(0, labels, w)
    return _ratio(total, count)


class MetricAccumulator:
    r"""Accumulates MPJPE, P-MPJPE, N-MPJPE, PCK and AUC over batches, per
    joint and per group label, as sums so results are exact whatever the
    batching and can be summed across :mod:`torch.distributed` ranks.

    .. code-block:: python

        acc = MetricAccumulator(num_joints=17, num_groups=10)
        for x, y, content in loader:
            acc.update(model(x), y, groups=content)
        acc.all_reduce()          # no-op without torch.distributed
        print(acc.compute()['mpjpe'])

    Values are reported in the unit of the poses times :obj:`scale`
    (:obj:`scale=1000` turns metres into millimetres); PCK and AUC are
    percentages. A metric over no counted joint (nothing accumulated, or a
    joint that was always masked) is :obj:`nan`, never a perfect :obj:`0`;
    groups without a counted joint are left out of :obj:`'per_group'`.

    Raises:
        ValueError: On a non-positive :obj:`num_joints`, a negative
            :obj:`num_groups`, a non-positive or non-finite :obj:`scale` or
            a negative or non-finite :obj:`pck_threshold`; in
            :meth:`update`, on poses without :obj:`num_joints` joints, and
            on group ids outside :obj:`[0, num_groups - 1]` or without one
            per sample.
    """
    METRICS = ('mpjpe', 'p_mpjpe', 'n_mpjpe', 'pck', 'auc')

    def __init__(self, num_joints: int, num_groups: int = 0, scale: float = 1000.0,
                 pck_threshold: float = 0.15):
        _check_count(num_joints, 'num_joints', 1)
        _check_count(num_groups, 'num_groups', 0)
        _check_threshold(scale, 'scale')
        if scale == 0:
            raise ValueError("'scale' must be positive (got 0)")
        _check_threshold(pck_threshold, 'pck_threshold')
        self.num_joints = num_joints
        self.num_groups = num_groups
        self.scale = scale
        self.pck_threshold = pck_threshold
        self.joint_sums = torch.zeros(len(self.METRICS), num_joints, dtype=torch.float64)
        self.joint_counts = torch.zeros(num_joints, dtype=torch.float64)
        self.group_sums = torch.zeros(len(self.METRICS), max(num_groups, 1), dtype=torch.float64)
        self.group_counts = torch.zeros(max(num_groups, 1), dtype=torch.float64)

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None,
               groups: Tensor | None = None) -> None:
        if pred.shape != target.shape or pred.dim() < 2 or pred.size(-2) != self.num_joints:
            raise ValueError(f"'MetricAccumulator' expects predicted and target joints of the "
                             f"same shape [..., {self.num_joints}, D], got {list(pred.shape)} "
                             f"and {list(target.shape)}")
        lead = pred.shape[:-2]
        pred = pred.detach().reshape(-1, *pred.shape[-2:]).cpu().double()
        target = target.detach().reshape(-1, *target.shape[-2:]).cpu().double()
        if mask is not None:
            mask = torch.as_tensor(mask).cpu()
            try:
                mask = mask.expand(lead + (self.num_joints, ))
            except RuntimeError:
                raise ValueError(f"mask of shape {list(mask.shape)} does not broadcast to "
                                 f"{list(lead) + [self.num_joints]}") from None
            mask = mask.reshape(-1, self.num_joints)
        m = _check(pred, target, mask)
        g = None
        if groups is not None:
            if not self.num_groups:
                raise ValueError("'groups' given to a MetricAccumulator built with num_groups=0")
            g = _check_groups(torch.as_tensor(groups).cpu(), pred.size(0), self.num_groups,
                              'groups')
        per_joint = _masked(torch.stack([
            mpjpe(pred, target, m, 'none'),
            p_mpjpe(pred, target, m, 'none'),
            n_mpjpe(pred, target, m, 'none'),
            pck(pred, target, self.pck_threshold, m, 'none'),
            auc(pred, target, self.pck_threshold, mask=m, reduction='none'),
        ]), m)  # [M, B, N]
        self.joint_sums += per_joint.sum(1)
        self.joint_counts += m.sum(0)
        if g is not None:
            for k in range(len(self.METRICS)):
                self.group_sums[k].index_add_(0, g, per_joint[k].sum(-1))
            self.group_counts.index_add_(0, g, m.sum(-1))

    def all_reduce(self) -> None:
        r"""Sums the accumulators over all ranks of the default process group
        (if one is initialised), on the group's device
        (:func:`process_group_device`); the sums stay on the CPU."""
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flat = torch.cat([self.joint_sums.flatten(), self.joint_counts,
                              self.group_sums.flatten(), self.group_counts])
            flat = flat.to(process_group_device())
            dist.all_reduce(flat)
            flat = flat.cpu()
            sizes = [self.joint_sums.numel(), self.joint_counts.numel(),
                     self.group_sums.numel(), self.group_counts.numel()]
            a, b, c, d = flat.split(sizes)
            self.joint_sums = a.view_as(self.joint_sums).clone()
            self.joint_counts = b.clone()
            self.group_sums = c.view_as(self.group_sums).clone()
            self.group_counts = d.clone()

    def _factor(self, name: str) -> float:
        return 100.0 if name in ('pck', 'auc') else self.scale

    def compute(self, group_names: Sequence[str] | None = None) -> dict[str, object]:
        r"""Returns a dict with the overall value of every metric, and
        :obj:`'per_joint'` and :obj:`'per_group'` dicts of lists."""
        out: dict[str, object] = {}
        total = self.joint_counts.sum()
        for k, name in enumerate(self.METRICS):
            out[name] = float(_ratio(self.joint_sums[k].sum(), total) * self._factor(name))
        out['per_joint'] = {
            name: (_ratio(self.joint_sums[k], self.joint_counts) * self._factor(name)).tolist()
            for k, name in enumerate(self.METRICS)}
        if self.num_groups:
            names = list(group_names) if group_names is not None else [
                str(i) for i in range(self.num_groups)]
            if len(names) != self.num_groups:
                raise ValueError(f"'group_names' has {len(names)} names for "
                                 f"num_groups={self.num_groups}")
            per_group = {}
            for g in range(self.num_groups):
                if self.group_counts[g] > 0:
                    per_group[names[g]] = {
                        name: float(self.group_sums[k, g] / self.group_counts[g]
                                    * self._factor(name))
                        for k, name in enumerate(self.METRICS)}
            out['per_group'] = per_group
        out['num_joints_evaluated'] = float(total)
        return out

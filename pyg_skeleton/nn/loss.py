from __future__ import annotations

import math

import torch
from torch import Tensor

from pyg_skeleton.skeleton import Skeleton


class SemGCNLoss(torch.nn.Module):
    r"""The loss of the `"Semantic Graph Convolutional Networks for 3D Human
    Pose Regression" <https://arxiv.org/abs/1904.03345>`_ paper (Eq. 7):
    squared errors of the joint positions plus squared errors of the bone
    vectors

    .. math::
        \mathcal{L} = \sum_{k=1}^{M} \| \tilde{\mathbf{B}}_k -
        \mathbf{B}_k \|^2 + \sum_{i=1}^{N} \| \tilde{\mathbf{J}}_i -
        \mathbf{J}_i \|^2,
        \qquad \mathbf{B}_k = \mathbf{J}_k - \mathbf{J}_{\mathrm{parent}(k)},

    averaged over the samples. The bones are the skeleton's
    :meth:`~pyg_skeleton.Skeleton.bones` (child minus parent; the edges of a
    skeleton without a parent tree). The paper's experiments with 2D joints
    as input use the joint term alone (:obj:`bone_weight=0`).

    Args:
        skeleton (Skeleton): The skeleton.
        bone_weight (float, optional): Weight of the bone term.
            (default: :obj:`1.0`)

    Raises:
        ValueError: If :obj:`bone_weight` is negative or not finite, or (in
            :meth:`forward`) the poses do not have the skeleton's joints.

    Shapes:
        - **input:** predicted and target joints :math:`(*, N, D)`
        - **output:** scalar
    """
    def __init__(self, skeleton: Skeleton, bone_weight: float = 1.0):
        super().__init__()
        if isinstance(bone_weight, bool) or not isinstance(
                bone_weight, (int, float)) or not math.isfinite(
                    bone_weight) or bone_weight < 0:
            raise ValueError(f"'{self.__class__.__name__}' needs a finite "
                             f"bone_weight >= 0 (got {bone_weight!r})")
        self.num_joints = skeleton.num_joints
        self.bone_weight = bone_weight
        bones = skeleton.bones()
        self.register_buffer('child', bones[:, 0].clone(), persistent=False)
        self.register_buffer('parent', bones[:, 1].clone(), persistent=False)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape or pred.dim() < 2 or pred.size(
                -2) != self.num_joints:
            raise ValueError(f"'{self.__class__.__name__}' expects predicted "
                             f"and target joints of the same shape [..., "
                             f"{self.num_joints}, D] (got {list(pred.shape)} "
                             f"and {list(target.shape)})")
        err = pred - target
        loss = err.square().sum(dim=(-2, -1))
        if self.bone_weight:
            bone_err = err[..., self.child, :] - err[..., self.parent, :]
            loss = loss + self.bone_weight * bone_err.square().sum(
                dim=(-2, -1))
        return loss.mean()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_joints={self.num_joints}, '
                f'bone_weight={self.bone_weight})')

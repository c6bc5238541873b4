r"""Self-adaptive 3D pose estimation by non-local latent relation distillation.

After Kundu et al., *Non-Local Latent Relation Distillation for Self-Adaptive
3D Human Pose Estimation*, NeurIPS 2021 (written from the paper's
supplementary; no official code exists). The pieces:

* :class:`PoseAAE` - an adversarial auto-encoder over 3D poses whose latent
  :math:`z \in [-1, 1]^{32}` follows a uniform prior; its decoder outputs unit
  bone directions that go through forward kinematics
  (:class:`~pyg_skeleton.kinematics.KinematicTree`) with fixed bone lengths,
  so every decoded pose has a valid bone structure.
* :class:`MotionAE` - a two-layer BiLSTM auto-encoder over sequences (length
  30) of pose latents, with a :math:`[-1, 1]^{128}` motion embedding.
* :class:`RelationNet` - four-layer MLPs :math:`T: \mathcal{Z}\to\mathcal{Z}`
  or :math:`\mathcal{V}\to\mathcal{V}` trained on relation pairs built from
  unpaired 3D motion data by the plain functions :func:`mirror`,
  :func:`inplane_rotate`, :func:`flip_inplane`, :func:`reverse_time`,
  :func:`temporal_resample`, :func:`flip_backward`, :func:`slow_backward`.
* :class:`LatentLifter` plus :func:`adapt` - the *input-to-latent* model
  :math:`G` (its output decoded by the frozen pose decoder) and the
  unsupervised adaptation of a small subset of its parameters to an unlabelled
  target domain by relation distillation and a contrastive term.

**Adaptation of the paper to 2D-to-3D lifting.** The paper's :math:`G` maps
RGB images (ResNet-50) to the latent and relation pairs on the target side are
made by transforming images and videos. Here :math:`G` maps **2D keypoints**
(normalised screen coordinates, :obj:`[..., N, 2]`) to the latent. The same
pair builders apply to the 2D inputs and are exact counterparts of the 3D
ones for a pinhole camera with the principal point at the image centre:
mirroring negates :math:`u'` and swaps left/right joints (3D: negates camera
:math:`x`), and an in-plane rotation of the normalised image about the
principal point equals a rotation of the camera-frame 3D pose about the
optical axis. The time relations are identical in both modalities.

**Caveats found in ``benchmarks/run_self_adaptive.py``.** (1) Relation
distillation constrains only how :math:`G` transforms *together with* its
inputs; with the first residual block trainable the relation losses fall about
six-fold, close to those of the ideal lifter :math:`G(x) = E_p(y)`, while the
target error grows by about 40%, i.e. :math:`G` drifts to latents where the
frozen relation networks are self-consistent. (2) A pose AAE trained on
camera-frame poses without camera roll cannot represent poses rotated
in-plane by 50 degrees (reconstruction error of about 300 mm against 55 mm
upright), so the in-plane relation targets lie off the pose manifold. Fixed
by ``roll_deg`` in :func:`train_pose_aae` and :func:`train_motion_ae`
(random rolls, :func:`random_inplane_rotate`); the body-frame decomposition
keeps the view-dependent root bones in the camera frame and the other
directions in the body frame, so a roll only changes the three root bones,
which the decoder outputs freely, and forward kinematics keeps the bone
lengths. With a roll of up to 90 degrees the error on poses rotated by 50
degrees is within about 10% of the upright one. (3) Without
``latent_weight`` in :func:`train_source_lifter` the source lifter's latents
lie away from :math:`E_p(\mathcal{Y})` and the relation networks do not apply
to them. (4) Even with the in-plane targets on the prior, adaptation did not
lower the target error in the benchmark (see
``benchmarks/results/self_adaptive.md``). (5) Under a real camera shift
(``benchmarks/run_domain_shift.py``: CMU through lab cameras to other people
seen from 30-60 degrees above, rolled, wide-angle or telephoto) adaptation
does not close the gap to a target-supervised lifter either: most of that gap
is camera elevation, which none of the relations can see (a lifter exact but
for a 30 degree elevation error has lower relation losses than the oracle),
and the relation losses fall below the oracle's while the error does not.
The weak-perspective :func:`reprojection_loss` (``adapt(...,
reprojection=pose_aae)``, not in the paper) sees it: with it the benchmark's
selected setting closes 42% of the MPJPE gap (the P-MPJPE gets worse), and
the term alone, without relations, closes about all of it."""
from __future__ import annotations

from .models import LatentLifter, MotionAE, PoseAAE, RelationNet
from .relations import (
                        MOTION_RELATIONS,
                        POSE_RELATIONS,
                        RELATIONS,
                        flip_backward,
                        flip_inplane,
                        inplane_rotate,
                        mirror,
                        random_inplane_rotate,
                        relation_pair,
                        reverse_time,
                        slow_backward,
                        temporal_resample,
)
from .training import (
                        CONTRASTIVE,
                        aae_train_step,
                        adapt,
                        adaptation_losses,
                        contrastive_loss,
                        freeze,
                        reprojection_loss,
                        temporal_contrastive_loss,
                        train_motion_ae,
                        train_pose_aae,
                        train_relation_net,
                        train_source_lifter,
)

__all__ = [
    'PoseAAE', 'MotionAE', 'RelationNet', 'LatentLifter', 'POSE_RELATIONS',
    'MOTION_RELATIONS', 'RELATIONS', 'mirror', 'inplane_rotate', 'flip_inplane',
    'reverse_time', 'temporal_resample', 'flip_backward', 'slow_backward', 'relation_pair',
    'train_pose_aae', 'aae_train_step', 'train_motion_ae', 'train_relation_net',
    'train_source_lifter', 'adapt', 'adaptation_losses', 'contrastive_loss',
    'temporal_contrastive_loss', 'CONTRASTIVE', 'freeze', 'random_inplane_rotate',
    'reprojection_loss',
]


# The networks are also exported by pyg_skeleton.nn: under this package's
# path (as before the split into modules) the API pages document each once
# and name the other page's entry an alias.
for _cls in (PoseAAE, MotionAE, RelationNet, LatentLifter):
    _cls.__module__ = __name__
del _cls

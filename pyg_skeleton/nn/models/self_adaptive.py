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
``benchmarks/results/self_adaptive.md``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...kinematics import KinematicTree

__all__ = [
    'PoseAAE', 'MotionAE', 'RelationNet', 'LatentLifter', 'POSE_RELATIONS',
    'MOTION_RELATIONS', 'RELATIONS', 'mirror', 'inplane_rotate', 'flip_inplane',
    'reverse_time', 'temporal_resample', 'flip_backward', 'slow_backward', 'relation_pair',
    'train_pose_aae', 'aae_train_step', 'train_motion_ae', 'train_relation_net',
    'train_source_lifter', 'adapt', 'adaptation_losses', 'contrastive_loss',
    'temporal_contrastive_loss', 'CONTRASTIVE', 'freeze', 'random_inplane_rotate',
]


def _mlp(dims: Sequence[int], act: Callable[[], nn.Module] = lambda: nn.LeakyReLU(0.2)
         ) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def freeze(module: nn.Module) -> nn.Module:
    r"""Sets :obj:`requires_grad=False` on all parameters and eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


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


# ------------------------------------------------------------------ pose AAE
class PoseAAE(nn.Module):
    r"""Adversarial auto-encoder :math:`\{E_p, D_p\}` over 3D poses with a
    uniform latent prior :math:`\mathbb{U}[-1, 1]^{D}` (paper Fig. 2A).

    The encoder reads the unit bone directions of a pose
    (:meth:`KinematicTree.decompose`, body frame by default as in the paper)
    and ends in :obj:`tanh`; the decoder outputs one 3-vector per bone that is
    normalised and placed by forward kinematics with :obj:`bone_lengths`
    (or lengths given to :meth:`decode`). The discriminator tells encoded
    latents from prior samples.

    Args:
        skeleton (Skeleton): A skeleton with parents.
        latent_dim (int): :math:`D`. (default: :obj:`32`)
        hidden (int): Width of the hidden layers. (default: :obj:`512`)
        frame (str): Direction frame, :obj:`"body"` (paper) or
            :obj:`"camera"`. (default: :obj:`"body"`)
        bone_lengths (torch.Tensor, optional): Fixed bone lengths
            :obj:`[N-1]`; defaults to ones until :meth:`set_bone_lengths`.
    """

    def __init__(self, skeleton, latent_dim: int = 32, hidden: int = 512,
                 frame: str = 'body', bone_lengths: Tensor | None = None):
        super().__init__()
        self.tree = KinematicTree.from_skeleton(skeleton, frame)
        nb = self.tree.num_bones
        self.latent_dim = latent_dim
        self.encoder = _mlp([nb * 3, hidden, hidden, latent_dim])
        self.decoder = _mlp([latent_dim, hidden, hidden, nb * 3])
        self.discriminator = _mlp([latent_dim, hidden // 2, hidden // 2, 1])
        if bone_lengths is None:
            bone_lengths = torch.ones(nb)
        self.register_buffer('bone_lengths', torch.as_tensor(bone_lengths, dtype=torch.float))

    def set_bone_lengths(self, poses: Tensor) -> Tensor:
        r"""Sets :obj:`bone_lengths` to the mean bone lengths of poses
        :obj:`[..., N, 3]` and returns them."""
        lengths = self.tree.decompose(poses.float())[0].reshape(-1, self.tree.num_bones)
        self.bone_lengths.copy_(lengths.mean(0))
        return self.bone_lengths

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters()) + list(self.decoder.parameters())

    def encode(self, pose: Tensor) -> Tensor:
        r"""Poses :obj:`[..., N, 3]` to latents :obj:`[..., D]` in [-1, 1]."""
        dirs = self.tree.decompose(pose)[1]
        return torch.tanh(self.encoder(dirs.flatten(-2)))

    def decode_directions(self, z: Tensor) -> Tensor:
        r"""Latents to unit bone directions :obj:`[..., N-1, 3]`."""
        out = self.decoder(z).unflatten(-1, (self.tree.num_bones, 3))
        return self.tree._unit(out)

    def decode(self, z: Tensor, bone_lengths: Tensor | None = None) -> Tensor:
        r"""Latents :obj:`[..., D]` to root-relative poses :obj:`[..., N, 3]`
        whose bones have exactly :obj:`bone_lengths` (default
        :obj:`bone_lengths`, broadcast)."""
        lengths = self.bone_lengths if bone_lengths is None else bone_lengths
        return self.tree(lengths, self.decode_directions(z))

    def forward(self, pose: Tensor, keep_lengths: bool = True) -> Tensor:
        r"""Reconstruction; with :obj:`keep_lengths` the input's own bone
        lengths are used so only the directions are modelled."""
        lengths = self.tree.decompose(pose)[0] if keep_lengths else None
        return self.decode(self.encode(pose), lengths)

    def sample_prior(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(num, self.latent_dim, generator=generator,
                          device=self.bone_lengths.device) * 2 - 1

    def sample(self, num: int, generator: torch.Generator | None = None) -> Tensor:
        r"""Decodes :obj:`num` prior samples to poses."""
        return self.decode(self.sample_prior(num, generator))


def aae_train_step(model: PoseAAE, poses: Tensor, opt_ae: torch.optim.Optimizer,
                   opt_disc: torch.optim.Optimizer, adv_weight: float = 0.02) -> dict:
    r"""One AAE step on a batch of root-relative poses :obj:`[B, N, 3]`:
    a discriminator update (prior samples real, encoded latents fake), then an
    auto-encoder update on direction + position reconstruction plus
    :obj:`adv_weight` times the generator loss. Returns the loss values."""
    z = model.encode(poses)
    d_real = model.discriminator(model.sample_prior(poses.size(0)))
    d_fake = model.discriminator(z.detach())
    loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_disc.zero_grad()
    loss_d.backward()
    opt_disc.step()

    lengths, dirs = model.tree.decompose(poses)
    dirs_hat = model.decode_directions(z)
    rec_dir = (dirs_hat - dirs).pow(2).sum(-1).mean()
    rec_pos = (model.tree(lengths, dirs_hat) - model.tree(lengths, dirs)).norm(dim=-1).mean()
    d_gen = model.discriminator(z)
    loss_g = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
    loss = rec_dir + rec_pos + adv_weight * loss_g
    opt_ae.zero_grad()
    loss.backward()
    opt_ae.step()
    return {'rec_dir': rec_dir.item(), 'rec_pos': rec_pos.item(), 'gen': loss_g.item(),
            'disc': loss_d.item()}


def _batches(num: int, batch_size: int, steps: int, generator: torch.Generator):
    for _ in range(steps):
        yield torch.randint(num, (min(batch_size, num),), generator=generator)


def train_pose_aae(model: PoseAAE, poses: Tensor, steps: int = 2000, batch_size: int = 256,
                   lr: float = 1e-3, adv_weight: float = 0.02, seed: int = 0,
                   roll_deg: float = 0.0, roll_frac: float = 1.0) -> list[dict]:
    r"""Algorithm 1, step 2: trains :obj:`model` on unpaired root-relative 3D
    poses :obj:`[P, N, 3]` and sets its bone lengths to their mean.

    With :obj:`roll_deg > 0` every batch is augmented by
    :func:`random_inplane_rotate` (uniform roll in :obj:`[-roll_deg,
    roll_deg]` for a :obj:`roll_frac` fraction of the poses). Camera-frame
    poses of mocap seen by level cameras have no roll, so without this the
    in-plane relation targets :math:`E_p(r(y))` lie off the pose prior (see
    the module docs). The bone lengths are those of :obj:`poses` (a roll does
    not change them)."""
    model.train()
    model.set_bone_lengths(poses)
    opt_ae = torch.optim.Adam(model.autoencoder_parameters(), lr=lr)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)
    log = [aae_train_step(model, random_inplane_rotate(poses[idx], roll_deg, 1, g, roll_frac),
                          opt_ae, opt_d, adv_weight)
           for idx in _batches(poses.size(0), batch_size, steps, g)]
    return log


# ----------------------------------------------------------------- motion AE
class MotionAE(nn.Module):
    r"""Motion auto-encoder :math:`\{E_m, D_m\}` over sequences of pose
    latents :obj:`[B, T, D]` (paper Fig. 1B): the encoder is two stacked
    BiLSTMs whose final forward and backward hidden states (last layer) are
    concatenated and mapped by a linear layer with :obj:`tanh` to
    :math:`v \in [-1, 1]^{M}`; the decoder is two stacked BiLSTMs whose
    initial hidden and cell states are computed from :math:`v` alone (zero
    inputs, no auto-regressive chaining), followed by a linear layer to the
    pose latents (with :obj:`tanh`, since latents live in [-1, 1]).

    Args:
        latent_dim (int): Pose latent size :math:`D`. (default: :obj:`32`)
        motion_dim (int): Motion embedding size :math:`M`. (default: :obj:`128`)
        hidden (int): LSTM hidden units. (default: :obj:`128`)
        seq_len (int): Default decoded length :math:`T`. (default: :obj:`30`)
        num_layers (int): Stacked BiLSTMs per side. (default: :obj:`2`)
    """

    def __init__(self, latent_dim: int = 32, motion_dim: int = 128, hidden: int = 128,
                 seq_len: int = 30, num_layers: int = 2):
        super().__init__()
        self.latent_dim, self.motion_dim, self.hidden = latent_dim, motion_dim, hidden
        self.seq_len, self.num_layers = seq_len, num_layers
        self.enc = nn.LSTM(latent_dim, hidden, num_layers, batch_first=True, bidirectional=True)
        self.enc_fc = nn.Linear(2 * hidden, motion_dim)
        states = 2 * num_layers * hidden
        self.init_h = nn.Linear(motion_dim, states)
        self.init_c = nn.Linear(motion_dim, states)
        self.dec = nn.LSTM(1, hidden, num_layers, batch_first=True, bidirectional=True)
        self.dec_fc = nn.Linear(2 * hidden, latent_dim)

    def encode(self, z_seq: Tensor) -> Tensor:
        r""":obj:`[B, T, D]` to :obj:`[B, M]`."""
        _, (h, _) = self.enc(z_seq)
        return torch.tanh(self.enc_fc(torch.cat([h[-2], h[-1]], dim=-1)))

    def decode(self, v: Tensor, seq_len: int | None = None) -> Tensor:
        r""":obj:`[B, M]` to :obj:`[B, T, D]`."""
        T = seq_len or self.seq_len
        B = v.size(0)
        shape = (B, 2 * self.num_layers, self.hidden)
        h0 = self.init_h(v).view(shape).transpose(0, 1).contiguous()
        c0 = self.init_c(v).view(shape).transpose(0, 1).contiguous()
        out, _ = self.dec(v.new_zeros(B, T, 1), (torch.tanh(h0), c0))
        return torch.tanh(self.dec_fc(out))

    def forward(self, z_seq: Tensor) -> Tensor:
        return self.decode(self.encode(z_seq), z_seq.size(1))


def train_motion_ae(model: MotionAE, pose_aae: PoseAAE, motions: Tensor, steps: int = 1000,
                    batch_size: int = 64, lr: float = 1e-3, pose_weight: float = 1.0,
                    seed: int = 0, roll_deg: float = 0.0, roll_frac: float = 1.0
                    ) -> list[float]:
    r"""Algorithm 1, step 3: trains the motion AE on unpaired root-relative
    motions :obj:`[S, T, N, 3]` through the frozen pose encoder; the loss is
    the latent reconstruction error plus :obj:`pose_weight` times the MPJPE of
    the motion decoded by the frozen pose decoder. :obj:`roll_deg` and
    :obj:`roll_frac` augment each batch with one random camera roll per clip
    (:func:`random_inplane_rotate`), to match a pose AAE trained that way."""
    freeze(pose_aae)
    with torch.no_grad():
        lengths = pose_aae.tree.decompose(motions)[0]
        latents = None if roll_deg > 0 else pose_aae.encode(motions)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    log = []
    for idx in _batches(motions.size(0), batch_size, steps, g):
        if latents is None:
            target = random_inplane_rotate(motions[idx], roll_deg, 1, g, roll_frac)
            with torch.no_grad():
                z = pose_aae.encode(target)
        else:
            target, z = motions[idx], latents[idx]
        z_hat = model(z)
        loss = F.mse_loss(z_hat, z)
        if pose_weight:
            pose = pose_aae.decode(z_hat, lengths[idx])
            loss = loss + pose_weight * (pose - target).norm(dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.append(loss.item())
    model.eval()
    return log


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


class RelationNet(nn.Module):
    r"""A relation network :math:`T: \mathbb{R}^{D} \to [-1, 1]^{D}`: four
    fully connected layers (paper Fig. 1C) with a :obj:`tanh` output."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.net = _mlp([dim, hidden, hidden, hidden, dim])

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.net(z))


def train_relation_net(net: RelationNet, inputs: Tensor, targets: Tensor, steps: int = 1000,
                       batch_size: int = 256, lr: float = 1e-3, seed: int = 0) -> list[float]:
    r"""Algorithm 1, steps 5-7: fits :math:`\|T(e) - e^+\|^2` on embedding
    pairs :obj:`(inputs, targets)` (e.g. :obj:`E_p(y), E_p(y^+)`)."""
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    log = []
    for idx in _batches(inputs.size(0), batch_size, steps, g):
        loss = F.mse_loss(net(inputs[idx]), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        log.append(loss.item())
    net.eval()
    return log


# -------------------------------------------------------- input-to-latent G
class LatentLifter(nn.Module):
    r"""The *input-to-latent* model :math:`G`: 2D keypoints :obj:`[..., N, 2]`
    to a pose latent in :math:`[-1, 1]^{D}` (a :obj:`tanh` output, so that the
    frozen pose decoder always sees in-prior latents). A residual MLP: stem,
    :obj:`num_blocks` residual blocks (Linear-BN-ReLU twice), linear head. It
    replaces the paper's ResNet-50 image model.

    ``adaptable_parameters()`` names the small parameter set updated during
    adaptation: :obj:`"block"` (default) is the first residual block, the
    counterpart of the paper's mid-level *Res-3* block (stem, later blocks and
    head stay frozen); :obj:`"norm"` the affine parameters of the batch norms;
    :obj:`"head"` the last linear layer.
    """

    def __init__(self, num_joints: int, latent_dim: int = 32, hidden: int = 512,
                 num_blocks: int = 2, dropout: float = 0.1):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(2 * num_joints, hidden), nn.BatchNorm1d(hidden),
                                  nn.ReLU(), nn.Dropout(dropout))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                          nn.Dropout(dropout), nn.Linear(hidden, hidden),
                          nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout))
            for _ in range(num_blocks))
        self.head = nn.Linear(hidden, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-2]
        h = self.stem(x.reshape(-1, x.size(-2) * x.size(-1)))
        for block in self.blocks:
            h = h + block(h)
        return torch.tanh(self.head(h)).reshape(*lead, -1)

    def adaptable_parameters(self, which: str = 'block') -> list[nn.Parameter]:
        r"""The parameters updated during adaptation: :obj:`'block'` (the
        first residual block, the paper's choice of one block), :obj:`'norm'`
        (the batch-norm affine parameters), :obj:`'head'` (the output layer)
        or :obj:`'all'`.

        Raises:
            ValueError: For another name.
        """
        if which == 'block':
            return list(self.blocks[0].parameters())
        if which == 'norm':
            return [p for m in self.modules() if isinstance(m, nn.BatchNorm1d)
                    for p in m.parameters()]
        if which == 'head':
            return list(self.head.parameters())
        if which == 'all':
            return list(self.parameters())
        raise ValueError(f"unknown parameter set {which!r} (block, norm, head, all)")


def train_source_lifter(lifter: LatentLifter, pose_aae: PoseAAE, x: Tensor, y: Tensor,
                        steps: int = 2000, batch_size: int = 256, lr: float = 1e-3,
                        latent_weight: float = 0.0, seed: int = 0, roll_deg: float = 0.0,
                        roll_frac: float = 1.0) -> list[float]:
    r"""Algorithm 1, step 4: trains :math:`G^s` by minimising
    :math:`\|D_p(G^s(x^s)) - y^s\|` (per-joint Euclidean error) on labelled
    source pairs (2D :obj:`[B, N, 2]`, root-relative 3D :obj:`[B, N, 3]`),
    with the pose decoder frozen. Decoding uses each label's own bone lengths
    (known on the source domain), so :math:`G^s` learns directions only.

    With :obj:`latent_weight > 0` the loss also has
    :obj:`latent_weight` :math:`\cdot \|G^s(x^s) - E_p(y^s)\|^2` (mean over
    latent dimensions; not in the paper). The decoder is many-to-one, so a
    lifter trained through it alone puts its latents wherever they decode
    well, often far from the encoder's image :math:`E_p(\mathcal{Y})` where
    the relation networks were fitted; the latent term keeps :math:`G^s` on
    that image so that the relation networks apply to its outputs.

    With :obj:`roll_deg > 0` (not in the paper) each batch gets random camera
    rolls (:func:`random_inplane_rotate`), the same angle for a 2D input and
    its 3D label (exact for normalised coordinates centred on the principal
    point), so that :math:`G^s` has seen the rotated inputs that the in-plane
    relations feed it during adaptation."""
    freeze(pose_aae)
    lengths = pose_aae.tree.decompose(y)[0]
    if latent_weight and not roll_deg > 0:
        with torch.no_grad():
            z_true = torch.cat([pose_aae.encode(y[i:i + 4096]) for i in range(0, y.size(0), 4096)])
    lifter.train()
    opt = torch.optim.Adam(lifter.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    log = []
    for idx in _batches(x.size(0), batch_size, steps, g):
        xb, yb = x[idx], y[idx]
        if roll_deg > 0:      # one roll per sample, shared by input and label
            n = xb.size(-2)
            both = random_inplane_rotate(torch.cat([F.pad(xb, (0, 1)), yb], -2), roll_deg, 1,
                                         g, roll_frac)
            xb, yb = both[..., :n, :2], both[..., n:, :]
            if latent_weight:
                with torch.no_grad():
                    zb = pose_aae.encode(yb)
        elif latent_weight:
            zb = z_true[idx]
        z = lifter(xb)
        loss = (pose_aae.decode(z, lengths[idx]) - yb).norm(dim=-1).mean()
        if latent_weight:
            loss = loss + latent_weight * F.mse_loss(z, zb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log.append(loss.item())
    lifter.eval()
    return log


# ---------------------------------------------------------------- adaptation
def contrastive_loss(pred: Tensor, target: Tensor, temperature: float = 0.1) -> Tensor:
    r"""InfoNCE over a batch: :obj:`pred[i]` must be closer (cosine) to
    :obj:`target[i]` than to any other :obj:`target[j]`, and vice versa. It
    keeps the relation terms from collapsing all target samples onto a fixed
    point of the relation."""
    p = F.normalize(pred, dim=-1)
    t = F.normalize(target, dim=-1)
    logits = p @ t.t() / temperature
    labels = torch.arange(p.size(0), device=p.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def temporal_contrastive_loss(z_clips: Tensor, temperature: float = 0.1, offset: int = 1,
                              generator: torch.Generator | None = None) -> Tensor:
    r"""Contrastive term :math:`\mathcal{L}_{CR}` with *local* positives:
    for latent clips :obj:`[B, T, D]`, frame :math:`t` of clip :math:`i`
    (one random :math:`t` per call) is the anchor, frame :math:`t + `
    :obj:`offset` of the same clip its positive and the same frames of the
    other clips of the batch the negatives (:func:`contrastive_loss`).

    The paper's main text defines :math:`\mathcal{L}_{CR}` (the supplementary
    only names it); its abstract contrasts the non-local relations with
    "general contrastive relations where positive couplings are limited to a
    local neighborhood structure", which is what this is: temporal
    neighbours of a target video are positives. Needs no relation network."""
    T = z_clips.size(1)
    t = int(torch.randint(T - offset, (1,), generator=generator))
    return contrastive_loss(z_clips[:, t], z_clips[:, t + offset], temperature)


CONTRASTIVE = ('temporal', 'relation')


def adaptation_losses(lifter: nn.Module, relation_nets: dict, skeleton, frames: Tensor | None,
                      clips: Tensor | None, motion_ae: MotionAE | None = None,
                      relations: Iterable[str] = RELATIONS, contrastive: bool | str = True,
                      temperature: float = 0.1, theta_deg: float = 50.0,
                      rate: float = 0.5, generator: torch.Generator | None = None
                      ) -> dict[str, Tensor]:
    r"""The unsupervised losses on target inputs (paper Fig. 2D).

    For a pose relation :math:`r`: :math:`\mathcal{L}^z_r =
    \|T^z_r(G(x)) - G(r(x))\|^2` on 2D frames :obj:`[B, N, 2]`; for a
    motion relation: :math:`\mathcal{L}^v_r = \|T^v_r(E_m(G(X))) -
    E_m(G(r(X)))\|^2` on 2D clips :obj:`[B, T, N, 2]`. The relation networks
    (fitted on real 3D motion: :math:`T(E_p(y)) \approx E_p(r(y))`) and
    :math:`E_m` are frozen teachers; gradients flow into :math:`G` through
    both sides, i.e. the lifter's outputs of transformed target inputs are
    made to satisfy the relation learned on 3D.

    :obj:`contrastive` selects :obj:`"contrastive"`:
    :obj:`"temporal"` (or :obj:`True`) is :func:`temporal_contrastive_loss`
    on :math:`G(X)` of the clips (our reading of the paper's
    :math:`\mathcal{L}_{CR}`); :obj:`"relation"` is the earlier stand-in,
    :func:`contrastive_loss` between :math:`T(G(x))` and :math:`G(r(x))`
    averaged over the chosen relations; :obj:`False` leaves it out."""
    if contrastive is True:
        contrastive = 'temporal'
    if contrastive and contrastive not in CONTRASTIVE:
        raise ValueError(f"unknown contrastive term {contrastive!r} (choose from {CONTRASTIVE})")
    losses: dict[str, Tensor] = {}
    pairs = []
    z = None
    z_clips = None
    for name in relations:
        if name in POSE_RELATIONS:
            if frames is None:
                continue
            if z is None:
                z = lifter(frames)
            pred = relation_nets[name](z)
            target = lifter(relation_pair(name, frames, skeleton, theta_deg, rate))
        elif name in MOTION_RELATIONS:
            if clips is None or motion_ae is None:
                continue
            if z_clips is None:
                z_clips = lifter(clips)
            pred = relation_nets[name](motion_ae.encode(z_clips))
            target = motion_ae.encode(lifter(relation_pair(name, clips, skeleton,
                                                           theta_deg, rate)))
        else:
            raise ValueError(f"unknown relation {name!r}")
        losses[name] = F.mse_loss(pred, target)
        pairs.append((pred, target))
    if contrastive == 'relation' and pairs:
        losses['contrastive'] = torch.stack([contrastive_loss(p, t, temperature)
                                             for p, t in pairs]).mean()
    elif contrastive == 'temporal' and clips is not None and clips.size(0) > 1:
        if z_clips is None:
            z_clips = lifter(clips)
        losses['contrastive'] = temporal_contrastive_loss(z_clips, temperature,
                                                          generator=generator)
    return losses


def adapt(lifter: LatentLifter, relation_nets: dict, skeleton, frames: Tensor,
          clips: Tensor | None = None, motion_ae: MotionAE | None = None,
          relations: Iterable[str] = RELATIONS, contrastive: bool | str = True,
          contrastive_weight: float = 0.1, trainable: str | list = 'block', steps: int = 200,
          batch_size: int = 128, clip_batch_size: int = 16, lr: float = 1e-4,
          theta_deg: float = 50.0, rate: float = 0.5, seed: int = 0) -> list[dict]:
    r"""Unsupervised target adaptation (Algorithm 1, lines 8-11).

    Only :obj:`trainable` (a name for :meth:`~pyg_skeleton.nn.LatentLifter.adaptable_parameters`
    or an explicit parameter list) is updated; every other parameter of
    :obj:`lifter` is frozen and the lifter stays in eval mode, so batch-norm
    statistics and dropout are frozen too. The relation networks and motion
    encoder are frozen teachers. As in the paper, each loss term has its own
    Adam optimizer; per step the losses come from one forward pass and the
    optimizers step one after another, each with its own term's gradient.

    Args:
        frames (torch.Tensor): Unlabelled target 2D poses :obj:`[F, N, 2]`.
        clips (torch.Tensor, optional): Unlabelled target 2D clips
            :obj:`[S, T, N, 2]` for the motion relations.

    Returns:
        list of dict: The loss values of every step.
    """
    relations = list(relations)
    params = (lifter.adaptable_parameters(trainable) if isinstance(trainable, str)
              else list(trainable))
    keep = {id(p) for p in params}
    for p in lifter.parameters():
        p.requires_grad_(id(p) in keep)
    for m in list(relation_nets.values()) + ([motion_ae] if motion_ae is not None else []):
        freeze(m)
    lifter.eval()
    opts: dict[str, torch.optim.Optimizer] = {}
    g = torch.Generator().manual_seed(seed)
    log = []
    for _ in range(steps):
        fi = torch.randint(frames.size(0), (min(batch_size, frames.size(0)),), generator=g)
        ci = (torch.randint(clips.size(0), (min(clip_batch_size, clips.size(0)),), generator=g)
              if clips is not None else None)
        losses = adaptation_losses(lifter, relation_nets, skeleton, frames[fi],
                                   clips[ci] if ci is not None else None, motion_ae, relations,
                                   contrastive=contrastive, theta_deg=theta_deg, rate=rate,
                                   generator=g)
        if 'contrastive' in losses:
            losses['contrastive'] = contrastive_weight * losses['contrastive']
        # One forward pass; each term gets its own gradient and its own Adam
        # optimizer, stepped one after another (paper: "separate Adam
        # optimizers"). The gradients are all taken at the same parameters.
        names = list(losses)
        grads = [torch.autograd.grad(losses[n], params, retain_graph=i < len(names) - 1,
                                     allow_unused=True) for i, n in enumerate(names)]
        for name, grad in zip(names, grads):
            if name not in opts:
                opts[name] = torch.optim.Adam(params, lr=lr)
            for p, gp in zip(params, grad):
                p.grad = None if gp is None else gp
            opts[name].step()
        for p in params:
            p.grad = None
        log.append({n: v.item() for n, v in losses.items()})
    for p in lifter.parameters():
        p.requires_grad_(True)
    return log

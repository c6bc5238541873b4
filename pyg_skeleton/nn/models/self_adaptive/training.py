r"""Training loops of the self-adaptive system and the unsupervised adaptation
(see :mod:`.self_adaptive`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import LatentLifter, MotionAE, PoseAAE, RelationNet
from .relations import (
    MOTION_RELATIONS,
    POSE_RELATIONS,
    RELATIONS,
    random_inplane_rotate,
    relation_pair,
)

__all__ = ['train_pose_aae', 'aae_train_step', 'train_motion_ae', 'train_relation_net',
           'train_source_lifter', 'adapt', 'adaptation_losses', 'contrastive_loss',
           'temporal_contrastive_loss', 'reprojection_loss', 'CONTRASTIVE', 'freeze']


def freeze(module: nn.Module) -> nn.Module:
    r"""Sets :obj:`requires_grad=False` on all parameters and eval mode."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


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


def reprojection_loss(pose: Tensor, keypoints: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Weak-perspective reprojection residual of camera-frame 3D poses
    against their 2D inputs (not in the paper).

    With :math:`P \in \mathbb{R}^{N \times 2}` the camera :math:`x, y` of a
    pose (orthographic projection; image :math:`u, v` point along camera
    :math:`x, y`) and :math:`X \in \mathbb{R}^{N \times 2}` its 2D keypoints,
    the best scale :math:`s` and translation :math:`t \in \mathbb{R}^2` of
    :math:`\min_{s, t} \|X - sP - \mathbf{1}t^\top\|^2` are, in closed form
    with :math:`\bar{P} = P - \mathbf{1}\mu_P^\top`,
    :math:`\bar{X} = X - \mathbf{1}\mu_X^\top`:

    .. math::
        s = \frac{\langle \bar{X}, \bar{P} \rangle}{\|\bar{P}\|^2}, \qquad
        t = \mu_X - s\,\mu_P,

    and the loss is the mean over poses of
    :math:`\frac{1}{N}\|\bar{X} - s\bar{P}\|^2`. :math:`s` is not
    constrained to be positive (a least-squares fit). For keypoints
    normalised to unit RMS radius (:func:`~pyg_skeleton.datasets.wild.normalize_keypoints`)
    it equals :math:`1 - \cos^2` of the angle between :math:`\bar{X}` and
    :math:`\bar{P}` (flattened), so it lies in :math:`[0, 1]`.

    A pose decoded with fixed bone lengths cannot shorten its bones, so a pose
    lifted upright from a camera looking down (whose vertical bones are
    foreshortened in 2D) leaves a residual: the term sees a camera-elevation
    error that the relation losses do not.

    Args:
        pose (torch.Tensor): Camera-frame 3D poses :obj:`[..., N, 3]` (or
            :obj:`[..., N, 2]`, their projection).
        keypoints (torch.Tensor): 2D keypoints :obj:`[..., N, 2]`.
        eps (float): Lower bound of :math:`\|\bar{P}\|^2`. (default: :obj:`1e-8`)

    Returns:
        torch.Tensor: The scalar mean residual.

    Raises:
        ValueError: If the leading or joint dimensions of :obj:`pose` and
            :obj:`keypoints` differ or :obj:`keypoints` is not 2D.
    """
    if keypoints.size(-1) != 2 or pose.size(-1) not in (2, 3) or \
            pose.shape[:-1] != keypoints.shape[:-1]:
        raise ValueError(f"reprojection_loss needs poses [..., N, 3] and keypoints [..., N, 2] "
                         f"with the same [..., N], got {tuple(pose.shape)} and "
                         f"{tuple(keypoints.shape)}")
    p = pose[..., :2]
    p = p - p.mean(-2, keepdim=True)
    x = keypoints - keypoints.mean(-2, keepdim=True)
    s = (x * p).sum((-2, -1), keepdim=True) / p.square().sum((-2, -1), keepdim=True).clamp_min(eps)
    return (x - s * p).square().sum(-1).mean()


def adaptation_losses(lifter: nn.Module, relation_nets: dict, skeleton, frames: Tensor | None,
                      clips: Tensor | None, motion_ae: MotionAE | None = None,
                      relations: Iterable[str] = RELATIONS, contrastive: bool | str = True,
                      temperature: float = 0.1, theta_deg: float = 50.0,
                      rate: float = 0.5, generator: torch.Generator | None = None,
                      reprojection: PoseAAE | None = None) -> dict[str, Tensor]:
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
    averaged over the chosen relations; :obj:`False` leaves it out.

    With a pose AAE as :obj:`reprojection` (not in the paper; default off)
    the losses also have :obj:`"reprojection"`: :func:`reprojection_loss` of
    the decoded poses :math:`D_p(G(x))` (camera frame: the body-frame AAE
    keeps the root bones, hence the global orientation, in the camera frame)
    against the frames :math:`x`."""
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
    if reprojection is not None and frames is not None:
        if z is None:
            z = lifter(frames)
        losses['reprojection'] = reprojection_loss(reprojection.decode(z), frames)
    return losses


def adapt(lifter: LatentLifter, relation_nets: dict, skeleton, frames: Tensor,
          clips: Tensor | None = None, motion_ae: MotionAE | None = None,
          relations: Iterable[str] = RELATIONS, contrastive: bool | str = True,
          contrastive_weight: float = 0.1, trainable: str | list = 'block', steps: int = 200,
          batch_size: int = 128, clip_batch_size: int = 16, lr: float = 1e-4,
          theta_deg: float = 50.0, rate: float = 0.5, seed: int = 0,
          reprojection: PoseAAE | None = None, reprojection_weight: float = 1.0) -> list[dict]:
    r"""Unsupervised target adaptation (Algorithm 1, lines 8-11).

    Only :obj:`trainable` (a name for :meth:`~pyg_skeleton.nn.LatentLifter.adaptable_parameters`
    or an explicit parameter list) is updated; every other parameter of
    :obj:`lifter` is frozen and the lifter stays in eval mode, so batch-norm
    statistics and dropout are frozen too. The relation networks and motion
    encoder are frozen teachers. As in the paper, each loss term has its own
    Adam optimizer; per step the losses come from one forward pass and the
    optimizers step one after another, each with its own term's gradient.

    With a pose AAE as :obj:`reprojection` (not in the paper; default off)
    the :func:`reprojection_loss` of :math:`D_p(G(x))` against the target
    frames is one more term (see :func:`adaptation_losses`), scaled by
    :obj:`reprojection_weight`. Since each term has its own Adam optimizer,
    a weight changes little (Adam is nearly invariant to a gradient's
    scale); the term's influence is set by the learning rate and the other
    terms present.

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
    teachers = [motion_ae, reprojection, *relation_nets.values()]
    for m in teachers:
        if m is not None:
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
                                   generator=g, reprojection=reprojection)
        if 'contrastive' in losses:
            losses['contrastive'] = contrastive_weight * losses['contrastive']
        if 'reprojection' in losses:
            losses['reprojection'] = reprojection_weight * losses['reprojection']
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

r"""The networks of the self-adaptive system: pose AAE, motion AE, relation
networks and the input-to-latent lifter (see :mod:`.self_adaptive`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from ....kinematics import KinematicTree

__all__ = ['PoseAAE', 'MotionAE', 'RelationNet', 'LatentLifter']


def _mlp(dims: Sequence[int], act: Callable[[], nn.Module] = lambda: nn.LeakyReLU(0.2)
         ) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


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



class RelationNet(nn.Module):
    r"""A relation network :math:`T: \mathbb{R}^{D} \to [-1, 1]^{D}`: four
    fully connected layers (paper Fig. 1C) with a :obj:`tanh` output."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.net = _mlp([dim, hidden, hidden, hidden, dim])

    def forward(self, z: Tensor) -> Tensor:
        return torch.tanh(self.net(z))


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



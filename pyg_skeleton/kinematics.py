r"""Bone-length / bone-direction decomposition of poses and forward kinematics.

A root-relative 3D pose :obj:`[..., N, 3]` of a skeleton with a parents tree is
split into

* bone lengths :obj:`[..., N-1]` and
* parent-relative **unit bone directions** :obj:`[..., N-1, 3]`,

with bones indexed by child joint in ascending order (the order of
:meth:`pyg_skeleton.Skeleton.bones`). :meth:`KinematicTree.forward` (forward
kinematics, FK) puts them back together by accumulating bone vectors from the
root, one depth level of the tree at a time (the topological order is computed
once, in the constructor), so a pose costs :obj:`depth` vectorised steps, not
one per joint. Everything is batched over leading dimensions and
differentiable.

Two frames for the directions are supported:

* :obj:`frame="camera"` (default): every direction is expressed in the frame
  of the input pose (the camera frame for camera-space poses). No local
  rotations are involved; the decomposition is view-dependent.
* :obj:`frame="body"`: the paper's choice (Kundu et al., NeurIPS 2021,
  supplementary Sec. 5a): "parent-relative local unit vectors (i.e.
  view-invariant)", while "the view-variant information is retained in the
  coordinates of the neck, left-hip and right-hip joints with pelvis being
  their parent, as presented in the original root-relative system". Here the
  bones leaving the root stay in the camera frame; every other direction is
  expressed in a body frame built from three root children
  :obj:`(a, b, c)`: :math:`e_1 \propto p_a - p_b` (the lateral hip axis),
  :math:`e_2 \propto p_c - (p_c \cdot e_1) e_1` (the up-the-spine axis,
  Gram-Schmidt), :math:`e_3 = e_1 \times e_2`. A global rotation of the pose
  then changes only the root bones. (The paper's skeleton has the neck as a
  child of the pelvis; in :obj:`h36m17` the pelvis children are the two hips
  and the spine, which are used instead.) This is a per-pose rigid frame, not a
  per-joint local rotation chain. It is undefined when :math:`p_a` and
  :math:`p_b` coincide or :math:`p_c` (root-relative) is parallel to
  :math:`p_a - p_b`; such a pose raises a :class:`ValueError` naming the frame joints rather than
  giving directions in an arbitrary frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ['KinematicTree', 'bone_decompose', 'forward_kinematics']

FRAMES = ('camera', 'body')


class KinematicTree(torch.nn.Module):
    r"""Decomposition of poses into bone lengths and unit directions along a
    parents tree, and forward kinematics back to joint positions.

    .. code-block:: python

        tree = KinematicTree.from_skeleton(Skeleton.preset("h36m17"))
        lengths, dirs = tree.decompose(pose)         # [..., 16], [..., 16, 3]
        pose_again = tree.forward(lengths, dirs)     # [..., 17, 3], root at 0

    A **forest** (several roots, *e.g.* two persons without a bone between
    them) is a tree per root: :obj:`N - R` bones for :obj:`R` roots (bone
    :obj:`k` still ends at the :obj:`k`-th non-root joint), each tree's
    kinematics independent of the others', and :meth:`forward` puts every
    root at the origin unless :obj:`root_positions` places them (the
    decomposition has no bone between trees, so it loses where they are
    relative to each other).

    Args:
        parents (sequence of int): Parent of every joint, :obj:`-1` for the
            root (for every root of a forest).
        frame (str): :obj:`"camera"` or :obj:`"body"` (see the module
            docstring). (default: :obj:`"camera"`)
        frame_joints ((int, int, int), optional): The root children
            :obj:`(a, b, c)` that define the body frame. Only for
            :obj:`frame="body"`; required there unless :obj:`flip_pairs`
            contains a pair of root children and the root has a third child.
        flip_pairs (sequence of (int, int), optional): Left/right pairs, used
            only to find default :obj:`frame_joints`.
        eps (float): Lower bound of norms divided by; a body-frame axis
            shorter than this is degenerate. (default: :obj:`1e-8`)

    Raises:
        ValueError: If :obj:`parents` is not a forest (at least one root,
            no cycle) whose parents lie in :obj:`[0, N-1]`, :obj:`frame` or
            :obj:`frame_joints` is invalid (:obj:`frame="body"` needs a
            single root), or :obj:`eps` is not a positive finite number.
    """

    def __init__(self, parents: Sequence[int], frame: str = 'camera',
                 frame_joints: Sequence[int] | None = None,
                 flip_pairs: Sequence[tuple[int, int]] = (), eps: float = 1e-8):
        super().__init__()
        parents = [int(p) for p in parents]
        bad = [(j, p) for j, p in enumerate(parents)
               if p < -1 or p >= len(parents) or p == j]
        if bad:
            j, p = bad[0]
            raise ValueError(f"parents[{j}] = {p} is not a joint of the {len(parents)}-joint "
                             f"tree (use -1 for the root, else a parent in "
                             f"[0, {len(parents) - 1}] other than {j})")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps must be a positive finite number, got {eps!r}")
        roots = [j for j, p in enumerate(parents) if p == -1]
        if not roots:
            raise ValueError("parents must have a root (-1), got none")
        if frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}, got {frame!r}")
        if frame == 'body' and len(roots) > 1:
            raise ValueError(f"frame='body' needs a single root; parents is a forest with "
                             f"roots {roots} (use frame='camera')")
        self.parents = parents
        self.roots = roots
        self.root = roots[0]
        self.num_joints = len(parents)
        self.frame = frame
        self.eps = float(eps)

        # Depth of every joint (also checks that parents form a tree).
        depth = [-1] * self.num_joints
        for r in roots:
            depth[r] = 0
        for joint in range(self.num_joints):
            path, node = [], joint
            while depth[node] < 0:
                if node in path or len(path) > self.num_joints:
                    raise ValueError(f"parents contain a cycle through joint {node}")
                path.append(node)
                node = parents[node]
            for k, n in enumerate(reversed(path)):
                depth[n] = depth[node] + k + 1
        self.depth = depth
        children = [j for j in range(self.num_joints) if parents[j] != -1]
        self.bone_children = children                      # bone k ends at joint children[k]
        bone_of = {c: k for k, c in enumerate(children)}
        self.register_buffer('bone_child', torch.tensor(children, dtype=torch.long),
                             persistent=False)
        self.register_buffer('bone_parent', torch.tensor([parents[c] for c in children],
                                                         dtype=torch.long), persistent=False)
        # Topological order as depth levels: (joints, their parents, their bones).
        self._levels = []
        for d in range(1, max(depth) + 1):
            joints = [j for j in children if depth[j] == d]
            self._levels.append((torch.tensor(joints),
                                 torch.tensor([parents[j] for j in joints]),
                                 torch.tensor([bone_of[j] for j in joints])))

        root_children = [j for j in children if parents[j] == self.root]
        if frame == 'body':
            if frame_joints is None:
                pair = next(((a, b) for a, b in flip_pairs
                             if a in root_children and b in root_children), None)
                rest = [j for j in root_children if pair is None or j not in pair]
                if pair is None or not rest:
                    raise ValueError("frame='body' needs frame_joints (a, b, c): three children "
                                     "of the root (none could be derived from flip_pairs)")
                frame_joints = (pair[0], pair[1], rest[0])
            frame_joints = tuple(int(j) for j in frame_joints)
            if len(frame_joints) != 3 or len(set(frame_joints)) != 3 or \
                    any(j not in root_children for j in frame_joints):
                raise ValueError(f"frame_joints must be three distinct children of the root "
                                 f"{root_children}, got {frame_joints}")
            self.frame_joints = frame_joints
            self._frame_bones = torch.tensor([bone_of[j] for j in frame_joints])
            local = torch.tensor([parents[c] != self.root for c in children])
        else:
            self.frame_joints = None
            self._frame_bones = None
            local = torch.zeros(len(children), dtype=torch.bool)
        self.register_buffer('local_mask', local, persistent=False)
        self.register_buffer('root_index', torch.tensor(roots, dtype=torch.long),
                             persistent=False)

    @classmethod
    def from_skeleton(cls, skeleton, frame: str = 'camera',
                      frame_joints: Sequence[int] | None = None, eps: float = 1e-8
                      ) -> KinematicTree:
        r"""Builds the tree of a :class:`~pyg_skeleton.Skeleton` (which must
        have :attr:`~pyg_skeleton.Skeleton.parents`); its flip pairs give the default body
        frame."""
        if skeleton.parents is None:
            raise ValueError("the skeleton has no parents tree")
        return cls(skeleton.parents, frame, frame_joints, skeleton.flip_pairs, eps)

    @property
    def num_bones(self) -> int:
        return self.num_joints - len(self.roots)

    # ------------------------------------------------------------- helpers
    def _unit(self, v: Tensor) -> Tensor:
        return v / v.norm(dim=-1, keepdim=True).clamp_min(self.eps)

    def body_frame(self, root_bones: Tensor) -> Tensor:
        r"""Body frame :obj:`[..., 3, 3]` (columns :math:`e_1, e_2, e_3`) from
        the camera-frame vectors of the three frame bones :obj:`[..., 3, 3]`
        (any positive lengths).

        Raises:
            ValueError: If the frame is undefined for some pose: bones
                :math:`a` and :math:`b` end at the same point, or :math:`c`
                is parallel to :math:`a - b` (axes shorter than :obj:`eps`).
                The check is skipped under :func:`torch.compile`.
        """
        a, b, c = root_bones.unbind(-2)
        lateral = a - b
        self._check_axis(lateral, 'joints {} and {} coincide')
        e1 = self._unit(lateral)
        up = c - (c * e1).sum(-1, keepdim=True) * e1
        self._check_axis(up, 'the bone to joint {2} is parallel to joint {0} minus joint {1}')
        e2 = self._unit(up)
        e3 = torch.linalg.cross(e1, e2, dim=-1)
        return torch.stack([e1, e2, e3], dim=-1)

    def _check_axis(self, axis: Tensor, problem: str) -> None:
        # A zero axis would be "normalised" to zero and every local
        # direction silently mapped to the root; NaN axes are left to
        # propagate as NaN (the input had one).
        if torch.compiler.is_compiling():
            return
        degenerate = axis.norm(dim=-1) < self.eps
        if bool(degenerate.any()):
            count = int(degenerate.sum())
            joints = self.frame_joints
            raise ValueError(f"frame='body' (frame_joints={joints}) is undefined for {count} "
                             f"pose(s): {problem.format(*joints)}")

    def bone_vectors(self, pose: Tensor) -> Tensor:
        r"""Child minus parent positions, :obj:`[..., N-R, 3]` (:obj:`R`
        roots)."""
        return pose.index_select(-2, self.bone_child) - pose.index_select(-2, self.bone_parent)

    # ----------------------------------------------------------- mappings
    def decompose(self, pose: Tensor) -> tuple[Tensor, Tensor]:
        r"""Splits poses :obj:`[..., N, 3]` into bone lengths :obj:`[..., N-R]`
        and unit directions :obj:`[..., N-R, 3]` (in :obj:`frame`; :obj:`R`
        roots, 1 for a tree). Any root position is ignored (the result is
        invariant to translating each tree)."""
        if pose.size(-2) != self.num_joints or pose.size(-1) != 3:
            raise ValueError(f"expected poses [..., {self.num_joints}, 3], got "
                             f"{list(pose.shape)}")
        vec = self.bone_vectors(pose)
        lengths = vec.norm(dim=-1)
        dirs = vec / lengths.clamp_min(self.eps).unsqueeze(-1)
        if self.frame == 'body':
            rot = self.body_frame(vec.index_select(-2, self._frame_bones.to(vec.device)))
            local = dirs @ rot                                # row-vector form of R^T d
            dirs = torch.where(self.local_mask.unsqueeze(-1), local, dirs)
        return lengths, dirs

    def forward(self, lengths: Tensor, directions: Tensor, normalize: bool = False,
                root_positions: Tensor | None = None) -> Tensor:
        r"""Forward kinematics: root-relative joint positions :obj:`[..., N, 3]`
        (root at the origin; every root of a forest at the origin, or at
        :obj:`root_positions`).

        Args:
            lengths (torch.Tensor): Bone lengths :obj:`[..., N-R]` or
                :obj:`[N-R]` (:obj:`R` roots); broadcast against
                :obj:`directions`.
            directions (torch.Tensor): Directions :obj:`[..., N-R, 3]` in
                :obj:`frame`.
            normalize (bool): Rescale the directions to unit length first, so
                that every output bone has exactly the given length (use this
                for raw network outputs). (default: :obj:`False`)
            root_positions (torch.Tensor, optional): Positions
                :obj:`[..., R, 3]` of the roots (in
                :attr:`Skeleton.roots <pyg_skeleton.Skeleton.roots>` order);
                each tree is built from its root. (default: :obj:`None`,
                every root at the origin)
        """
        if directions.size(-2) != self.num_bones or directions.size(-1) != 3:
            raise ValueError(f"expected directions [..., {self.num_bones}, 3], got "
                             f"{list(directions.shape)}")
        if lengths.dim() < 1 or lengths.size(-1) != self.num_bones:
            raise ValueError(f"expected bone lengths [..., {self.num_bones}], got "
                             f"{list(lengths.shape)}")
        try:
            torch.broadcast_shapes(lengths.shape, directions.shape[:-1])
        except RuntimeError:
            raise ValueError(f"bone lengths {list(lengths.shape)} do not broadcast against "
                             f"directions {list(directions.shape)}") from None
        if normalize:
            directions = self._unit(directions)
        vec = directions * lengths.unsqueeze(-1)
        if self.frame == 'body':
            rot = self.body_frame(vec.index_select(-2, self._frame_bones.to(vec.device)))
            cam = vec @ rot.transpose(-1, -2)                 # row-vector form of R d
            vec = torch.where(self.local_mask.unsqueeze(-1), cam, vec)
        shape = vec.shape[:-2] + (self.num_joints, 3)
        pose = vec.new_zeros(shape)
        if root_positions is not None:
            if root_positions.dim() < 2 or root_positions.shape[-2:] != (len(self.roots), 3):
                raise ValueError(f"expected root positions [..., {len(self.roots)}, 3], got "
                                 f"{list(root_positions.shape)}")
            shape = torch.broadcast_shapes(shape[:-2], root_positions.shape[:-2]) + shape[-2:]
            pose = pose.expand(shape).index_copy(
                -2, self.root_index.to(vec.device),
                root_positions.to(vec.dtype).expand(shape[:-2] + (len(self.roots), 3)))
        for joints, par, bones in self._levels:
            dev = vec.device
            joints, par, bones = joints.to(dev), par.to(dev), bones.to(dev)
            step = pose.index_select(-2, par) + vec.index_select(-2, bones)
            pose = pose.index_copy(-2, joints, step)
        return pose

    def roundtrip(self, pose: Tensor) -> Tensor:
        r"""Root-relative :obj:`forward(*decompose(pose))`."""
        return self.forward(*self.decompose(pose))

    def extra_repr(self) -> str:
        extra = f', frame_joints={self.frame_joints}' if self.frame == 'body' else ''
        return f'num_joints={self.num_joints}, frame={self.frame!r}{extra}'


def bone_decompose(pose: Tensor, parents: Sequence[int], frame: str = 'camera',
                   **kwargs) -> tuple[Tensor, Tensor]:
    r"""Functional form of :meth:`KinematicTree.decompose` (builds the tree on
    every call; keep a :class:`KinematicTree` for repeated use)."""
    return KinematicTree(parents, frame, **kwargs).to(pose.device).decompose(pose)


def forward_kinematics(lengths: Tensor, directions: Tensor, parents: Sequence[int],
                       frame: str = 'camera', normalize: bool = False, **kwargs) -> Tensor:
    r"""Functional form of :meth:`KinematicTree.forward`."""
    tree = KinematicTree(parents, frame, **kwargs).to(directions.device)
    return tree(lengths, directions, normalize=normalize)

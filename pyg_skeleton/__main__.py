"""``python -m pyg_skeleton``: a short SemGCN run on built-in defaults.

Builds SemGCN with non-local blocks on the Human3.6M 17-joint skeleton,
fits it for a few hundred steps to a synthetic 2D-to-3D mapping (random
joint positions seen by an orthographic camera; no data set is read or
downloaded) and prints the model, the loss curve and the edges whose
learned weights grew most.
"""
import argparse
import time

import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.nn import SemGCN, SemGCNLoss


def synthetic_poses(skeleton: Skeleton, num: int, generator: torch.Generator):
    """Random 3D poses: bone directions uniform on the sphere, bone lengths
    around 0.25 m, joints placed along the parent tree (metres, root at 0).
    The 2D input is the orthographic view (x, y)."""
    parents = skeleton.parents
    pose = torch.zeros(num, skeleton.num_joints, 3)
    bones = torch.randn(num, skeleton.num_joints, 3, generator=generator)
    bones = bones / bones.norm(dim=-1, keepdim=True) * 0.25
    for joint in range(skeleton.num_joints):  # parents precede children
        if parents[joint] >= 0:
            pose[:, joint] = pose[:, parents[joint]] + bones[:, joint]
    return pose[..., :2], pose


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--skeleton', default='h36m17',
                        choices=Skeleton.presets())
    parser.add_argument('--steps', type=int, default=300)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    skeleton = Skeleton.preset(args.skeleton)
    if skeleton.parents is None or any(
            p > j for j, p in enumerate(skeleton.parents)):
        parser.error(f"the demo needs a skeleton whose parents precede "
                     f"their children ('{args.skeleton}' does not)")
    model = SemGCN(skeleton, non_local=True)
    loss_fn = SemGCNLoss(skeleton)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    print(model)
    print(f'skeleton: {skeleton.num_joints} joints, {skeleton.num_edges} '
          f'bones; parameters: '
          f'{sum(p.numel() for p in model.parameters()):,}')

    x_test, y_test = synthetic_poses(skeleton, 512, gen)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, y = synthetic_poses(skeleton, args.batch_size, gen)
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == 1:
            model.eval()
            with torch.no_grad():
                err = (model(x_test) - y_test).norm(dim=-1).mean() * 1000
            model.train()
            print(f'step {step:4d}  loss {loss.item():.4f}  synthetic test '
                  f'MPJPE {err:.1f} mm')
    print(f'{args.steps} steps in {time.perf_counter() - start:.1f} s')

    edge_index, alpha = model.input.conv.edge_weights()
    base = 1.0 / torch.bincount(edge_index[1])[edge_index[1]]
    names = skeleton.joint_names
    print('input layer: edges whose weight grew most over the initial '
          'row-normalised adjacency')
    for k in (alpha - base).argsort(descending=True)[:5].tolist():
        j, i = edge_index[:, k].tolist()
        print(f'  {names[j]:>10s} -> {names[i]:<10s} {base[k]:.3f} -> '
              f'{alpha[k]:.3f}')


if __name__ == '__main__':
    main()

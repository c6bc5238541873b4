"""Streaming inference (pyg_skeleton.inference.Stream): frame by frame equal
to the offline batch for single-frame models and lifters, and to the model
run on each causal window for temporal models."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pyg_skeleton import Skeleton
from pyg_skeleton.inference import Stream
from pyg_skeleton.lifter import PRETRAINED_DIR, Lifter
from pyg_skeleton.nn import NoSharingConv, SemGCN, SemGraphConv, TemporalSkeletalGNN


def test_single_frame_model_equals_batch():
    torch.manual_seed(0)
    model = SemGCN('h36m17', hidden_channels=16, num_layers=1)
    model.train()  # the stream runs it in evaluation mode
    x = torch.randn(6, 17, 2)
    stream = Stream(model)
    out = torch.stack([stream.push(frame) for frame in x])
    assert stream.frames_seen == 6
    assert torch.allclose(out, model.eval()(x), atol=1e-6)
    # numpy frames as well
    assert torch.allclose(stream.push(x[0].numpy()), out[0], atol=1e-6)


@pytest.mark.parametrize('flip', [False, True])
def test_lifter_equals_lift(flip):
    lifter = Lifter.load(PRETRAINED_DIR / 'nosharing.pt')
    gen = torch.Generator().manual_seed(0)
    uv = 300 + 100 * torch.randn(5, 17, 2, generator=gen)
    mask = torch.rand(5, 17, generator=gen) > 0.2
    stream = Stream(lifter, flip=flip)
    out = torch.stack([stream.push(uv[i], mask[i]) for i in range(5)])
    assert torch.allclose(out, lifter.lift(uv, mask, flip=flip), atol=1e-5)
    # the default mask: the finite joints
    uv[2, 3] = float('nan')
    expected = lifter.lift(uv[2:3], flip=flip)[0]
    assert torch.allclose(stream.push(uv[2]), expected, atol=1e-5)


def test_temporal_model_is_causal_window():
    torch.manual_seed(0)
    T = 4
    model = TemporalSkeletalGNN('h36m17', hidden_channels=8, num_blocks=1)
    model.eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
    seq = torch.randn(9, 17, 2)
    stream = Stream(model, window=T)
    got = [stream.push(frame) for frame in seq]
    for t in range(len(seq)):
        # Frames t-T+1 .. t, the first frame repeated before the start.
        idx = [max(s, 0) for s in range(t - T + 1, t + 1)]
        expected = model(seq[idx].unsqueeze(0))[0, -1]
        assert torch.allclose(got[t], expected, atol=1e-5), t
    # The temporal model does look across frames: the causal output differs
    # from the one on the whole sequence, and future frames are not used.
    full = model(seq.unsqueeze(0))[0]
    assert not torch.allclose(torch.stack(got), full, atol=1e-4)
    stream.reset()
    changed = seq.clone()
    changed[5:] += 1
    again = [stream.push(frame) for frame in changed]
    for t in range(5):
        assert torch.allclose(again[t], got[t], atol=1e-6)
    assert not torch.allclose(again[5], got[5], atol=1e-4)


def test_bad_use():
    model = SemGCN('h36m17', hidden_channels=8, num_layers=1)
    with pytest.raises(ValueError, match="'window' must be a positive integer"):
        Stream(model, window=0)
    with pytest.raises(ValueError, match='use window=1'):
        Stream(Lifter('nosharing'), window=3)
    with pytest.raises(ValueError, match="'flip' applies to a Lifter only"):
        Stream(model, flip=True)
    stream = Stream(model)
    with pytest.raises(ValueError, match=r'one frame \[N, C\]'):
        stream.push(np.zeros((2, 17, 2), np.float32))
    with pytest.raises(ValueError, match="'mask' applies to a Lifter only"):
        stream.push(torch.zeros(17, 2), torch.ones(17, dtype=torch.bool))
    temporal = Stream(TemporalSkeletalGNN('h36m17', hidden_channels=8, num_blocks=1),
                      window=3)
    temporal.push(torch.zeros(17, 2))
    with pytest.raises(ValueError, match='call reset'):
        temporal.push(torch.zeros(16, 2))


# Inference caches of the static kernels ####################################
# SemGraphConv and the weight-sharing layers keep values computed from their
# parameters alone between calls when no gradient is needed; any change to a
# parameter must show in the next output.

def reference(conv, x):
    # The same layer with gradients enabled: nothing is cached.
    with torch.enable_grad():
        return conv(x).detach()


@pytest.mark.parametrize('make', [
    lambda: SemGraphConv(4, 5, Skeleton.preset('h36m17').edge_index, 17),
    lambda: NoSharingConv(4, 5, Skeleton.preset('h36m17').edge_index, 17),
])
def test_inference_cache_follows_parameters(make):
    torch.manual_seed(0)
    conv = make()
    x = torch.randn(2, 17, 4)
    with torch.no_grad():
        first = conv(x)
        assert torch.allclose(first, reference(conv, x))
        assert torch.equal(conv(x), first)  # cached: the same values
        conv.logits.normal_()  # in-place change (an optimiser step)
        assert torch.allclose(conv(x), reference(conv, x))
        assert not torch.allclose(conv(x), first)
    # load_state_dict, in inference mode
    other = make()
    with torch.no_grad():
        for p in other.parameters():
            p.normal_()
    with torch.inference_mode():
        conv(x)
        conv.load_state_dict(other.state_dict())
        assert torch.allclose(conv(x), other(x), atol=1e-6)
    # a replaced parameter, and a dtype change
    with torch.no_grad():
        conv.logits = torch.nn.Parameter(torch.randn_like(conv.logits))
        assert torch.allclose(conv(x), reference(conv, x))
        conv.double()
        out = conv(x.double())
        assert out.dtype == torch.float64
        assert torch.allclose(out, reference(conv, x.double()))
    # training: gradients reach the logits (nothing cached)
    conv.float()
    conv(x).sum().backward()
    assert conv.logits.grad is not None and conv.logits.grad.abs().sum() > 0

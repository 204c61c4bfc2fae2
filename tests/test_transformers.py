"""Transformer pose lifters built from timm blocks and einops: conversion with
``hidden="regular"``, exact equivariance, shared embeddings, flags, errors, training."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pytest.importorskip("timm")
pytest.importorskip("einops")

import einops
import timm.layers
from einops.layers.torch import Rearrange
from timm.models.vision_transformer import Block

from symmetrize import Rep, Spec, check, symmetrize
from symmetrize.data.windows import flip_pose
from symmetrize import ConversionError
from tests.transformer_models import DualStreamLike, PoseFormerLike

LIFT = Spec(input="n t j c", output="n t j c", skeleton="h36m", negate=(0,))
H36M = Rep.joints("h36m")


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _mirror(x: torch.Tensor) -> torch.Tensor:
    """(N, T, J, C) poses mirrored: twins swapped, x negated (C may hold a confidence)."""
    return flip_pose(x, "h36m")


def _assert_exact(result) -> None:
    for mode in ("eval", "train"):
        case = result.case(mode, "float64")
        assert case.max_rel < 1e-10, (mode, case)
        assert result.case(mode, "float32").max_rel < 1e-5


@pytest.fixture(scope="module")
def poseformer():
    torch.manual_seed(0)
    model = PoseFormerLike()
    chiral = symmetrize(model, LIFT, torch.randn(2, 9, 17, 2), hidden="regular")
    return model, chiral


def test_poseformer_converts_exactly(poseformer) -> None:
    model, chiral = poseformer
    _assert_exact(check(chiral))
    report = chiral.symmetrize_report
    assert report.parameters_before == _params(model)
    assert report.parameters_after == _params(chiral)
    assert 0.45 < report.parameters_after / report.parameters_before < 0.55
    x = torch.randn(3, 9, 17, 2, dtype=torch.float64)
    model64 = chiral.double().eval()
    out, out_mirrored = model64(x), model64(_mirror(x))
    assert out.shape == (3, 1, 17, 3)
    assert torch.allclose(out_mirrored, _mirror(out), atol=1e-12)
    chiral.float()


def test_poseformer_embeddings_are_mirror_shared(poseformer) -> None:
    _, chiral = poseformer
    rows = {row.name: row for row in chiral.symmetrize_report.rows}
    assert any(r.action == "shared" and "spatial_pos" in r.name for r in rows.values())
    pos = chiral.spatial_pos.detach()[0]  # (J, C): twins swap joints, channels swap in pairs
    channel = Rep.regular(pos.shape[1])
    mirrored = pos[torch.as_tensor(H36M.perm.copy())][:, torch.as_tensor(channel.perm.copy())]
    assert torch.allclose(mirrored, pos)
    # LayerNorm gains are tied across mirror twins too
    weight = chiral.spatial_norm.weight.detach()
    assert torch.allclose(weight[torch.as_tensor(channel.perm.copy())], weight)


def test_poseformer_trains_with_decreasing_loss(poseformer) -> None:
    _, chiral = poseformer
    torch.manual_seed(1)
    x, y = torch.randn(16, 9, 17, 2), torch.randn(16, 1, 17, 3)
    optimiser = torch.optim.Adam(chiral.parameters(), lr=1e-3)
    chiral.train()
    losses = []
    for _ in range(15):
        loss = (chiral(x) - y).square().mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    _assert_exact(check(chiral))  # still exactly equivariant after training


def test_dual_stream_with_confidence_and_flag() -> None:
    torch.manual_seed(0)
    model = DualStreamLike()
    x = torch.randn(2, 8, 17, 3)  # x, y, confidence: only x flips
    chiral = symmetrize(model, LIFT, x, hidden="regular")
    _assert_exact(check(chiral))
    # the learned fusion gate was made mirror-invariant so that its two halves can be sliced
    notes = "\n".join(chiral.symmetrize_report.notes)
    assert "fuse.0: output Rep fixed by the getitem" in notes
    x64 = torch.randn(2, 8, 17, 3, dtype=torch.float64)
    chiral.double().eval()
    assert torch.allclose(chiral(_mirror(x64)), _mirror(chiral(x64)), atol=1e-12)
    # the return_rep flag: a trailing Python value in example_inputs is fixed at trace time
    features = symmetrize(model, Spec(input="n t j c", output="n t j c", skeleton="h36m",
                                      negate=()), (x, True), hidden="regular", check=False)
    assert features(x, True).shape == (2, 8, 17, 16)
    assert check(features).case("eval", "float64").max_rel < 1e-10


def test_timm_block_unfused_path_layer_scale_and_token() -> None:
    """timm's own Block (explicit softmax path), timm LayerNorm, LayerScale, SiLU, attention
    dropout, an einops Rearrange layer, a learned class token and einops.repeat."""

    class Lifter(nn.Module):
        def __init__(self, dim: int = 8) -> None:
            super().__init__()
            self.embed = nn.Sequential(Rearrange("n t j c -> (n t) j c"), nn.Linear(2, dim))
            self.token = nn.Parameter(torch.randn(1, dim))
            self.pos = nn.Parameter(torch.randn(1, 18, dim))
            self.block = Block(dim, num_heads=2, norm_layer=timm.layers.LayerNorm,
                               act_layer=nn.SiLU, attn_drop=0.1, init_values=0.1)
            self.block.attn.fused_attn = False
            self.head = nn.Linear(dim, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n, t = x.shape[:2]
            x = self.embed(x)
            token = einops.repeat(self.token, "o c -> b o c", b=x.shape[0])
            x = self.block(torch.cat([token, x], dim=1) + self.pos)[:, 1:]
            return self.head(x).reshape(n, t, 17, 3)

    torch.manual_seed(0)
    chiral = symmetrize(Lifter(), LIFT, torch.randn(2, 3, 17, 2), hidden="regular")
    _assert_exact(check(chiral))
    report = chiral.symmetrize_report
    assert any("attention" in w or "dropout" in w for w in report.warnings), report.warnings
    shared = {r.name for r in report.rows if r.action == "shared"}
    assert any("token" in name for name in shared) and any("pos" in name for name in shared)


def test_timm_fused_attention_with_attention_dropout_warns() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(34, 32), Block(32, num_heads=4, attn_drop=0.2),
                          nn.Linear(32, 34))
    spec = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
    assert model[1].attn.fused_attn
    chiral = symmetrize(model, spec, torch.randn(2, 5, 34), hidden="regular")
    _assert_exact(check(chiral))
    assert any("attention dropout in module '1.attn'" in w
               for w in chiral.symmetrize_report.warnings)


def test_layer_norm_on_sign_flipping_channels_is_a_clear_error() -> None:
    torch.manual_seed(0)
    with pytest.raises(ConversionError, match=r"in module 'spatial_blocks\.0\.norm1'.*: "
                                              r"layer_norm subtracts the mean over channels that "
                                              r"flip sign.*Fix: convert with hidden='regular' or "
                                              r"'auto'"):
        symmetrize(PoseFormerLike(), LIFT, torch.randn(2, 9, 17, 2), hidden="skeleton")


def test_rms_norm_works_with_sign_flipping_channels() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(34, 51), nn.RMSNorm(51), nn.Tanh(), nn.Linear(51, 34))
    spec = Spec(input="n (j c)", output="n (j c)", skeleton="h36m", negate=(0,))
    chiral = symmetrize(model, spec, torch.randn(4, 34))  # skeleton layout: some dims flip
    _assert_exact(check(chiral))


def test_heads_that_split_mirror_twins_are_a_clear_error() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(34, 6), Block(6, num_heads=2), nn.Linear(6, 34))
    spec = Spec(input="n t (j c)", output="n t (j c)", skeleton="h36m", negate=(0,))
    with pytest.raises(ConversionError, match="hidden='regular'"):
        symmetrize(model, spec, torch.randn(2, 5, 34), hidden="regular")  # head size 3: odd

"""Transformer pose lifters in the style of PoseFormer and MotionBERT, written for the tests from
the papers' descriptions, built from timm blocks and einops as those projects build them."""

from __future__ import annotations

import torch
from einops import rearrange
from timm.layers import DropPath, Mlp, trunc_normal_
from timm.models.vision_transformer import Block
from torch import nn


class PoseFormerLike(nn.Module):
    """PoseFormer (Zheng et al. 2021): per-joint embedding of ``(N, T, J, 2)`` into joint
    tokens with a learned spatial position embedding, timm ``Block``s over the joints of each
    frame, then over the frames (tokens of ``J * dim`` features) with a learned temporal
    position embedding, a learned weighted mean over frames and a head to ``(N, 1, J, 3)``."""

    def __init__(self, frames: int = 9, joints: int = 17, dim: int = 8, depth: int = 2,
                 heads: int = 4, drop_path: float = 0.1) -> None:
        super().__init__()
        self.joints, self.frames = joints, frames
        wide = dim * joints
        self.joint_embed = nn.Linear(2, dim)
        self.spatial_pos = nn.Parameter(torch.zeros(1, joints, dim))
        self.temporal_pos = nn.Parameter(torch.zeros(1, frames, wide))
        self.pos_drop = nn.Dropout(0.1)
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.spatial_blocks = nn.ModuleList(
            Block(dim, num_heads=2, mlp_ratio=2.0, qkv_bias=True, drop_path=r) for r in rates)
        self.spatial_norm = nn.LayerNorm(dim)
        self.temporal_blocks = nn.ModuleList(
            Block(wide, num_heads=heads, mlp_ratio=2.0, qkv_bias=True, drop_path=r)
            for r in rates)
        self.temporal_norm = nn.LayerNorm(wide)
        self.weighted_mean = nn.Conv1d(frames, 1, kernel_size=1)
        self.head = nn.Sequential(nn.LayerNorm(wide), nn.Linear(wide, joints * 3))
        trunc_normal_(self.spatial_pos, std=0.02)
        trunc_normal_(self.temporal_pos, std=0.02)

    def receptive_field(self) -> int:
        """Input frames per output frame (the window length)."""
        return self.frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[:2]
        x = rearrange(x, "n t j c -> (n t) j c")
        x = self.pos_drop(self.joint_embed(x) + self.spatial_pos)
        for block in self.spatial_blocks:
            x = block(x)
        x = self.spatial_norm(x)
        x = rearrange(x, "(n t) j c -> n t (j c)", t=t)
        x = self.pos_drop(x + self.temporal_pos)
        for block in self.temporal_blocks:
            x = block(x)
        x = self.weighted_mean(self.temporal_norm(x))
        return self.head(x).view(n, 1, self.joints, 3)


class StreamAttention(nn.Module):
    """Multi-head self-attention over joints (``mode="spatial"``) or frames ("temporal") of a
    ``(N*T, J, C)`` token grid, as MotionBERT's DSTformer writes it (explicit softmax)."""

    def __init__(self, dim: int, heads: int, mode: str) -> None:
        super().__init__()
        self.heads, self.mode, self.scale = heads, mode, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor, frames: int = 1) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.mode == "temporal":  # tokens: the frames of each joint
            q, k, v = (rearrange(a, "(n t) h j d -> n h j t d", t=frames) for a in (q, k, v))
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = attn @ v
        if self.mode == "temporal":
            x = rearrange(x, "n h j t d -> (n t) j (h d)")
        else:
            x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class StreamBlock(nn.Module):
    """Pre-norm attention + MLP block with DropPath (spatial or temporal)."""

    def __init__(self, dim: int, heads: int, mode: str, drop_path: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = StreamAttention(dim, heads, mode)
        self.mlp = Mlp(dim, hidden_features=dim * 2, act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, frames: int = 1) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), frames))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DualStreamLike(nn.Module):
    """A MotionBERT-style dual-stream spatial-temporal transformer (DSTformer): ``(N, T, J, 3)``
    input whose third channel is a detection confidence, learned joint and frame embeddings,
    spatial-then-temporal and temporal-then-spatial streams fused by learned per-token weights,
    a ``return_rep`` flag in ``forward`` and a head to ``(N, T, J, 3)``."""

    def __init__(self, frames: int = 8, joints: int = 17, dim: int = 16, depth: int = 2,
                 heads: int = 2, drop_path: float = 0.1) -> None:
        super().__init__()
        self.joint_embed = nn.Linear(3, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, joints, dim))
        self.temp_embed = nn.Parameter(torch.zeros(1, frames, 1, dim))
        self.st1 = nn.ModuleList(StreamBlock(dim, heads, "spatial", drop_path) for _ in range(depth))
        self.st2 = nn.ModuleList(StreamBlock(dim, heads, "temporal", drop_path)
                                 for _ in range(depth))
        self.ts1 = nn.ModuleList(StreamBlock(dim, heads, "temporal", drop_path)
                                 for _ in range(depth))
        self.ts2 = nn.ModuleList(StreamBlock(dim, heads, "spatial", drop_path) for _ in range(depth))
        self.fuse = nn.ModuleList(nn.Linear(dim * 2, 2) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.pre_logits = nn.Sequential(nn.Linear(dim, dim), nn.Tanh())
        self.head = nn.Linear(dim, 3)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.temp_embed, std=0.02)

    def forward(self, x: torch.Tensor, return_rep: bool = False) -> torch.Tensor:
        t = x.shape[1]
        x = self.joint_embed(rearrange(x, "n t j c -> (n t) j c")) + self.pos_embed
        x = rearrange(x, "(n t) j c -> n t j c", t=t) + self.temp_embed[:, :t]
        x = rearrange(x, "n t j c -> (n t) j c")
        for st1, st2, ts1, ts2, fuse in zip(self.st1, self.st2, self.ts1, self.ts2, self.fuse):
            x_st = st2(st1(x, t), t)
            x_ts = ts2(ts1(x, t), t)
            alpha = fuse(torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
            x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
        x = self.pre_logits(self.norm(x))
        x = rearrange(x, "(n t) j c -> n t j c", t=t)
        if return_rep:
            return x
        return self.head(x)


class MixAttention(nn.Module):
    """Multi-head self-attention as MixSTE writes it: one qkv projection reshaped to
    ``(3, B, heads, N, head_dim)``, an explicit softmax of the scaled scores, attention dropout."""

    def __init__(self, dim: int, heads: int = 8, drop: float = 0.0) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.attn_drop = nn.Dropout(drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class MixBlock(nn.Module):
    """Pre-norm transformer block (attention + GELU MLP of ratio 2) with stochastic depth."""

    def __init__(self, dim: int, heads: int, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MixAttention(dim, heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=dim * 2, act_layer=nn.GELU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x


class MixSTELike(nn.Module):
    """MixSTE (Zhang et al., CVPR 2022), from its description: every joint of every frame is a
    token embedded to ``dim`` features, with a learned spatial embedding per joint and a learned
    temporal embedding per frame (so the clip length is fixed); ``depth`` alternating pairs of a
    spatial block (the joints of one frame) and a temporal block (the frames of one joint),
    rearranged with einops; a LayerNorm and a linear head to 3D for every frame.
    Published size: 243 frames, 512 features, depth 8, 8 heads."""

    def __init__(self, frames: int = 243, joints: int = 17, dim: int = 512, depth: int = 8,
                 heads: int = 8, drop_path: float = 0.1) -> None:
        super().__init__()
        self.frames, self.joints = frames, joints
        self.embed = nn.Linear(2, dim)
        self.spatial_pos = nn.Parameter(torch.zeros(1, joints, dim))
        self.temporal_pos = nn.Parameter(torch.zeros(1, frames, dim))
        rates = [r.item() for r in torch.linspace(0, drop_path, depth)]
        self.ste = nn.ModuleList([MixBlock(dim, heads, r) for r in rates])
        self.tte = nn.ModuleList([MixBlock(dim, heads, r) for r in rates])
        self.spatial_norm = nn.LayerNorm(dim)
        self.temporal_norm = nn.LayerNorm(dim)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))
        trunc_normal_(self.spatial_pos, std=0.02)
        trunc_normal_(self.temporal_pos, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, f, n, c = x.shape
        assert f == self.frames and n == self.joints, "MixSTE works on fixed-length clips"
        x = rearrange(x, "b f n c -> (b f) n c")
        x = self.embed(x)
        x += self.spatial_pos
        x = self.ste[0](x)
        x = self.spatial_norm(x)
        x = rearrange(x, "(b f) n c -> (b n) f c", f=f)
        x += self.temporal_pos
        x = self.tte[0](x)
        x = self.temporal_norm(x)
        x = rearrange(x, "(b n) f c -> b f n c", n=n)
        for ste, tte in zip(self.ste[1:], self.tte[1:]):
            x = rearrange(x, "b f n c -> (b f) n c")
            x = self.spatial_norm(ste(x))
            x = rearrange(x, "(b f) n c -> (b n) f c", f=f)
            x = self.temporal_norm(tte(x))
            x = rearrange(x, "(b n) f c -> b f n c", n=n)
        x = self.head(x)
        return x.view(b, f, n, -1)

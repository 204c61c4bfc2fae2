"""The action-recognition example's model: a small ST-GCN (spatial graph convolutions over the
H36M bones with learned edge importance, temporal convolutions, residual blocks, pooling)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence

import numpy as np
import torch
from action_data import SKELETON
from torch import Tensor, nn

from symmetrize import Skeleton


def spatial_partitions(skeleton: Skeleton, center: str = "spine") -> np.ndarray:
    """ST-GCN's spatial partitions ``(3, V, V)`` of the degree-normalised adjacency (with self
    loops): the joint itself, neighbours no farther from ``center``, neighbours farther away."""
    v = len(skeleton)
    adjacency = np.eye(v)
    for i, j in skeleton.edges:
        adjacency[i, j] = adjacency[j, i] = 1
    norm = adjacency / adjacency.sum(0, keepdims=True)  # column w: the neighbours of root w
    hops = np.full(v, np.inf)
    hops[skeleton.index(center)] = 0
    queue = deque([skeleton.index(center)])
    while queue:
        u = queue.popleft()
        for w in np.flatnonzero(adjacency[u]):
            if hops[w] == np.inf:
                hops[w] = hops[u] + 1
                queue.append(int(w))
    closer = hops[:, None] <= hops[None, :]
    off = ~np.eye(v, dtype=bool)
    return np.stack([norm * np.eye(v), norm * (closer & off), norm * (~closer & off)])


class Block(nn.Module):
    """Graph convolution over the joints (per partition), then a temporal ``(k, 1)``
    convolution, with a residual connection."""

    def __init__(self, c_in: int, c_out: int, partitions: int, kernel: int = 9,
                 stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.partitions = partitions
        self.gcn = nn.Conv2d(c_in, c_out * partitions, kernel_size=1)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0)),
            nn.BatchNorm2d(c_out))
        self.residual: nn.Module | None = None
        if residual and c_in == c_out and stride == 1:
            self.residual = nn.Identity()
        elif residual:
            self.residual = nn.Sequential(nn.Conv2d(c_in, c_out, 1, (stride, 1)),
                                          nn.BatchNorm2d(c_out))
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, adjacency: Tensor) -> Tensor:
        n, _, t, v = x.shape
        y = self.gcn(x).view(n, self.partitions, -1, t, v)
        y = self.tcn(torch.einsum("nkctv,kvw->nctw", y, adjacency))
        if self.residual is not None:
            y = y + self.residual(x)
        return self.relu(y)


class STGCN(nn.Module):
    """A small ST-GCN: ``(N, C, T, V, M)`` clips in, ``(N, classes)`` logits out."""

    def __init__(self, classes: int, in_channels: int = 3,
                 channels: Sequence[int] = (16, 16, 16, 32, 32, 64), kernel: int = 9) -> None:
        super().__init__()
        self.register_buffer("A", torch.tensor(spatial_partitions(SKELETON), dtype=torch.float32))
        k, v = self.A.shape[:2]
        self.data_bn = nn.BatchNorm1d(in_channels * v)
        widths = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            Block(c_in, c_out, k, kernel, stride=2 if c_out != c_in and i else 1, residual=i > 0)
            for i, (c_in, c_out) in enumerate(itertools.pairwise(widths)))
        self.edge_importance = nn.ParameterList(nn.Parameter(torch.ones(k, v, v))
                                                for _ in self.blocks)
        self.classifier = nn.Linear(channels[-1], classes)

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, v, m = x.shape
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block, importance in zip(self.blocks, self.edge_importance):
            x = block(x, self.A * importance)
        x = x.mean(dim=(2, 3)).view(n, m, -1).mean(dim=1)  # global pooling, then over persons
        return self.classifier(x)

"""Skeleton action recognisers written the way their authors write them, for the conversion tests.

Each imitates a well-known architecture from its description (not its code): an ST-GCN-style
spatial temporal graph convnet (Yan et al., AAAI 2018) over a partitioned skeleton adjacency, with
persons folded into the batch and learnable edge importance, and a plain recurrent classifier over
flattened joint coordinates.  Both are mirror invariant tasks: a mirrored clip has the same label.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from symmetrize.skeleton import Skeleton
from symmetrize.spec import Spec

# NTU-RGB+D (Kinect v2) bones, 1-based as the dataset numbers its joints; joint 21 is the spine
# at the shoulders, the graph's centre.  Same joint order as symmetrize's "ntu" preset.
NTU_EDGES_1BASED = [
    (1, 2), (2, 21), (21, 3), (3, 4),
    (21, 5), (5, 6), (6, 7), (7, 8), (8, 22), (8, 23),
    (21, 9), (9, 10), (10, 11), (11, 12), (12, 24), (12, 25),
    (1, 13), (13, 14), (14, 15), (15, 16),
    (1, 17), (17, 18), (18, 19), (19, 20),
]
NTU_CENTER = 21 - 1


def get_layout(layout: str) -> tuple[int, list[tuple[int, int]], int]:
    """``(num_node, edges, center)`` of a skeleton layout, edges 0-based."""
    if layout == "ntu-rgb+d":
        return 25, [(i - 1, j - 1) for i, j in NTU_EDGES_1BASED], NTU_CENTER
    if layout in ("h36m", "openpose"):  # Kinetics-skeleton: the 18 OpenPose joints
        sk = Skeleton.preset(layout)
        return len(sk), list(sk.edges), sk.index("spine" if layout == "h36m" else "neck")
    raise ValueError(f"unknown graph layout {layout!r}")


def get_hop_distance(num_node: int, edges, center: int) -> np.ndarray:
    """Graph hop distance of every joint to ``center`` (breadth-first over the bones)."""
    neighbours = [[] for _ in range(num_node)]
    for i, j in edges:
        neighbours[i].append(j)
        neighbours[j].append(i)
    dist = np.full(num_node, np.inf)
    dist[center] = 0
    queue = deque([center])
    while queue:
        u = queue.popleft()
        for w in neighbours[u]:
            if dist[w] == np.inf:
                dist[w] = dist[u] + 1
                queue.append(w)
    return dist


def normalize_digraph(A: np.ndarray) -> np.ndarray:
    Dl = np.sum(A, 0)
    Dn = np.zeros_like(A)
    for i in range(A.shape[0]):
        if Dl[i] > 0:
            Dn[i, i] = Dl[i] ** (-1)
    return np.dot(A, Dn)


def build_adjacency(layout: str = "ntu-rgb+d", strategy: str = "spatial") -> np.ndarray:
    """Partitioned adjacency ``A`` of shape ``(K, V, V)``; ``A[k, v, w]`` weighs neighbour ``v`` of
    root joint ``w``.  ``uniform``: K=1, all neighbours together; ``distance``: K=2, the root and
    its 1-hop neighbours; ``spatial``: K=3, the root itself, its neighbours nearer the centre
    (centripetal) and those farther away (centrifugal)."""
    num_node, edges, center = get_layout(layout)
    adjacency = np.eye(num_node, dtype=np.float32)
    for i, j in edges:
        adjacency[i, j] = adjacency[j, i] = 1
    norm = normalize_digraph(adjacency).astype(np.float32)
    if strategy == "uniform":
        return norm[None]
    identity = np.eye(num_node, dtype=bool)
    if strategy == "distance":
        return np.stack([norm * identity, norm * ~identity])
    if strategy != "spatial":
        raise ValueError(f"unknown partition strategy {strategy!r}")
    dist = get_hop_distance(num_node, edges, center)
    A = np.zeros((3, num_node, num_node), dtype=np.float32)
    for w in range(num_node):           # root
        for v in range(num_node):       # neighbour
            if norm[v, w] == 0:
                continue
            if v == w:
                A[0, v, w] = norm[v, w]
            elif dist[v] <= dist[w]:
                A[1, v, w] = norm[v, w]  # centripetal (same distance goes here too)
            else:
                A[2, v, w] = norm[v, w]  # centrifugal
    return A


class ConvTemporalGraphical(nn.Module):
    """Graph convolution: a (t_kernel_size x 1) conv to K groups of channels, each group mixed over
    joints by its own adjacency partition."""

    def __init__(self, in_channels, out_channels, kernel_size, t_kernel_size=1, t_stride=1,
                 t_padding=0, t_dilation=1, bias=True):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels * kernel_size,
                              kernel_size=(t_kernel_size, 1), padding=(t_padding, 0),
                              stride=(t_stride, 1), dilation=(t_dilation, 1), bias=bias)

    def forward(self, x, A):
        assert A.size(0) == self.kernel_size
        x = self.conv(x)
        n, kc, t, v = x.size()
        x = x.view(n, self.kernel_size, kc // self.kernel_size, t, v)
        x = torch.einsum('nkctv,kvw->nctw', (x, A))
        return x.contiguous(), A


class st_gcn(nn.Module):
    """Spatial graph conv, then a temporal conv, with a residual connection."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dropout=0,
                 residual=True):
        super().__init__()
        assert len(kernel_size) == 2
        assert kernel_size[0] % 2 == 1
        padding = ((kernel_size[0] - 1) // 2, 0)
        self.gcn = ConvTemporalGraphical(in_channels, out_channels, kernel_size[1])
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, (kernel_size[0], 1), (stride, 1), padding),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout, inplace=True),
        )
        if not residual:
            self.residual = lambda x: 0
        elif (in_channels == out_channels) and (stride == 1):
            self.residual = lambda x: x
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x, A):
        res = self.residual(x)
        x, A = self.gcn(x, A)
        x = self.tcn(x) + res
        return self.relu(x), A


class Model(nn.Module):
    """Spatial temporal graph convolutional network.

    Input ``(N, C, T, V, M)``: batch, coordinate channels, frames, joints, persons.  Output
    ``(N, num_class)`` class scores.
    """

    def __init__(self, in_channels=3, num_class=60, graph_layout="ntu-rgb+d",
                 strategy="spatial", edge_importance_weighting=True,
                 channels=(64, 64, 64, 64, 128, 128, 128, 256, 256, 256), temporal_kernel_size=9,
                 dropout=0):
        super().__init__()
        A = torch.tensor(build_adjacency(graph_layout, strategy), dtype=torch.float32,
                         requires_grad=False)
        self.register_buffer('A', A)

        spatial_kernel_size = A.size(0)
        kernel_size = (temporal_kernel_size, spatial_kernel_size)
        self.data_bn = nn.BatchNorm1d(in_channels * A.size(1))
        blocks = [st_gcn(in_channels, channels[0], kernel_size, 1, residual=False)]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            stride = 2 if c_out != c_in else 1
            blocks.append(st_gcn(c_in, c_out, kernel_size, stride, dropout=dropout))
        self.st_gcn_networks = nn.ModuleList(blocks)

        if edge_importance_weighting:
            self.edge_importance = nn.ParameterList([
                nn.Parameter(torch.ones(self.A.size()))
                for i in self.st_gcn_networks
            ])
        else:
            self.edge_importance = [1] * len(self.st_gcn_networks)

        self.fcn = nn.Conv2d(channels[-1], num_class, kernel_size=1)

    def features(self, x):
        """The last block's features ``(N * M, C', T', V)`` of ``(N, C, T, V, M)`` clips."""

        # data normalization
        N, C, T, V, M = x.size()
        x = x.permute(0, 4, 3, 1, 2).contiguous()
        x = x.view(N * M, V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T)
        x = x.permute(0, 1, 3, 4, 2).contiguous()
        x = x.view(N * M, C, T, V)

        # forward
        for gcn, importance in zip(self.st_gcn_networks, self.edge_importance):
            x, _ = gcn(x, self.A * importance)
        return x

    def forward(self, x):
        N, M = x.size(0), x.size(4)
        x = self.features(x)

        # global pooling
        x = F.avg_pool2d(x, x.size()[2:])
        x = x.view(N, M, -1, 1, 1).mean(dim=1)

        # prediction
        x = self.fcn(x)
        x = x.view(x.size(0), -1)

        return x

    def extract_feature(self, x):
        """Per-frame, per-joint, per-person class scores ``(N, num_class, T', V, M)`` and the
        features they come from ``(N, C', T', V, M)``."""
        N, M = x.size(0), x.size(4)
        x = self.features(x)
        _, c, t, v = x.size()
        feature = x.view(N, M, c, t, v).permute(0, 2, 3, 4, 1)

        # prediction
        x = self.fcn(x)
        output = x.view(N, M, -1, t, v).permute(0, 2, 3, 4, 1)

        return output, feature


#: ``(N, T, J, C)`` clips of the H36M skeleton to class scores, x negated
H36M_CLIPS = Spec(input="n t j c", output="n k", skeleton="h36m", negate=(0,))


def small_gru_classifier() -> SkeletonGRUClassifier:
    """A :class:`SkeletonGRUClassifier` over :data:`H36M_CLIPS` of 2D keypoints: 34 hidden
    channels (17 joints x 2), a 68-wide head (17 x 4), 6 classes."""
    return SkeletonGRUClassifier(num_joints=17, in_channels=2, hidden_size=34, fc_size=68,
                                 num_class=6)


class SkeletonGRUClassifier(nn.Module):
    """Recurrent action classifier on ``(N, T, J, C)`` joint sequences: a stacked GRU over frames,
    averaged over time, then a small MLP head."""

    def __init__(self, num_joints=25, in_channels=3, hidden_size=64, num_layers=2, fc_size=32,
                 num_class=60, dropout=0.0):
        super().__init__()
        self.num_joints = num_joints
        self.in_channels = in_channels
        self.rnn = nn.GRU(num_joints * in_channels, hidden_size, num_layers=num_layers,
                          batch_first=True, dropout=dropout)
        self.fc = nn.Linear(hidden_size, fc_size)
        self.classifier = nn.Linear(fc_size, num_class)

    def forward(self, x):
        n, t = x.shape[0], x.shape[1]
        x = x.reshape(n, t, self.num_joints * self.in_channels)
        x, _ = self.rnn(x)
        x = x.mean(1)
        x = F.relu(self.fc(x))
        return self.classifier(x)

"""Pose networks written the way their authors write them, for the conversion tests.

Each imitates a well-known architecture from its description (not its code): a VideoPose3D-style
dilated temporal convnet, a Martinez-style MLP lifter with residual blocks, and a seq2seq
recurrent forecaster with a residual velocity output.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TemporalModel(nn.Module):
    """Dilated temporal convolutions over 2D keypoint sequences (VideoPose3D style)."""

    def __init__(self, num_joints_in: int = 17, in_features: int = 2, num_joints_out: int = 17,
                 filter_widths: tuple[int, ...] = (3, 3, 3), causal: bool = False,
                 dropout: float = 0.25, channels: int = 68) -> None:
        super().__init__()
        self.num_joints_in = num_joints_in
        self.in_features = in_features
        self.num_joints_out = num_joints_out
        self.filter_widths = filter_widths
        self.drop = nn.Dropout(dropout)
        self.relu = nn.ReLU(inplace=True)
        self.pad = [filter_widths[0] // 2]
        self.causal_shift = [filter_widths[0] // 2 if causal else 0]
        self.expand_conv = nn.Conv1d(num_joints_in * in_features, channels, filter_widths[0],
                                     bias=False)
        self.expand_bn = nn.BatchNorm1d(channels, momentum=0.1)
        layers_conv, layers_bn = [], []
        next_dilation = filter_widths[0]
        for i in range(1, len(filter_widths)):
            self.pad.append((filter_widths[i] - 1) * next_dilation // 2)
            self.causal_shift.append((filter_widths[i] // 2 * next_dilation) if causal else 0)
            layers_conv.append(nn.Conv1d(channels, channels, filter_widths[i],
                                         dilation=next_dilation, bias=False))
            layers_bn.append(nn.BatchNorm1d(channels, momentum=0.1))
            layers_conv.append(nn.Conv1d(channels, channels, 1, dilation=1, bias=False))
            layers_bn.append(nn.BatchNorm1d(channels, momentum=0.1))
            next_dilation *= filter_widths[i]
        self.layers_conv = nn.ModuleList(layers_conv)
        self.layers_bn = nn.ModuleList(layers_bn)
        self.shrink = nn.Conv1d(channels, num_joints_out * 3, 1)

    def set_bn_momentum(self, momentum: float) -> None:
        self.expand_bn.momentum = momentum
        for bn in self.layers_bn:
            bn.momentum = momentum

    def receptive_field(self) -> int:
        frames = 0
        for f in self.pad:
            frames += f
        return 1 + 2 * frames

    def forward(self, x):
        assert len(x.shape) == 4
        assert x.shape[-2] == self.num_joints_in
        assert x.shape[-1] == self.in_features

        sz = x.shape[:3]
        x = x.view(x.shape[0], x.shape[1], -1)
        x = x.permute(0, 2, 1)

        x = self._forward_blocks(x)

        x = x.permute(0, 2, 1)
        x = x.view(sz[0], -1, self.num_joints_out, 3)
        return x

    def _forward_blocks(self, x):
        x = self.drop(self.relu(self.expand_bn(self.expand_conv(x))))
        for i in range(len(self.pad) - 1):
            pad = self.pad[i + 1]
            shift = self.causal_shift[i + 1]
            res = x[:, :, pad + shift : x.shape[2] - pad + shift]
            x = self.drop(self.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x))))
            x = res + self.drop(self.relu(
                self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x))))
        x = self.shrink(x)
        return x


class TemporalModelOptimized(nn.Module):
    """VideoPose3D's strided single-frame training variant (stride = filter width, no dilation)."""
    def __init__(self, filter_widths=(3, 3, 3), channels=68, dropout=0.0):
        super().__init__()
        self.filter_widths = filter_widths
        self.drop = nn.Dropout(dropout); self.relu = nn.ReLU(inplace=True)
        self.pad = [filter_widths[0] // 2]
        self.expand_conv = nn.Conv1d(34, channels, filter_widths[0], stride=filter_widths[0], bias=False)
        self.expand_bn = nn.BatchNorm1d(channels)
        conv, bn = [], []
        next_dilation = filter_widths[0]
        for i in range(1, len(filter_widths)):
            self.pad.append((filter_widths[i] - 1) * next_dilation // 2)
            conv.append(nn.Conv1d(channels, channels, filter_widths[i], stride=filter_widths[i], bias=False)); bn.append(nn.BatchNorm1d(channels))
            conv.append(nn.Conv1d(channels, channels, 1, bias=False)); bn.append(nn.BatchNorm1d(channels))
            next_dilation *= filter_widths[i]
        self.layers_conv = nn.ModuleList(conv); self.layers_bn = nn.ModuleList(bn)
        self.shrink = nn.Conv1d(channels, 51, 1)
    def forward(self, x):
        assert len(x.shape) == 4
        sz = x.shape[:3]
        x = x.view(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        x = self.drop(self.relu(self.expand_bn(self.expand_conv(x))))
        for i in range(len(self.pad) - 1):
            res = x[:, :, self.filter_widths[i + 1] // 2 :: self.filter_widths[i + 1]]
            x = self.drop(self.relu(self.layers_bn[2 * i](self.layers_conv[2 * i](x))))
            x = res + self.drop(self.relu(self.layers_bn[2 * i + 1](self.layers_conv[2 * i + 1](x))))
        x = self.shrink(x).permute(0, 2, 1)
        return x.view(sz[0], -1, 17, 3)


class LinearBlock(nn.Module):
    def __init__(self, size, p=0.5):
        super().__init__()
        self.w1 = nn.Linear(size, size); self.bn1 = nn.BatchNorm1d(size)
        self.w2 = nn.Linear(size, size); self.bn2 = nn.BatchNorm1d(size)
        self.relu = nn.ReLU(inplace=True); self.dropout = nn.Dropout(p)
    def forward(self, x):
        y = self.dropout(self.relu(self.bn1(self.w1(x))))
        y = self.dropout(self.relu(self.bn2(self.w2(y))))
        return x + y

class MLPLifter(nn.Module):
    def __init__(self, joints_in=17, joints_out=15, size=136, stages=2):
        super().__init__()
        self.joints_out = joints_out
        self.w1 = nn.Linear(joints_in * 2, size); self.bn1 = nn.BatchNorm1d(size)
        self.stages = nn.ModuleList([LinearBlock(size) for _ in range(stages)])
        self.w2 = nn.Linear(size, joints_out * 3)
        self.relu = nn.ReLU(inplace=True); self.dropout = nn.Dropout(0.5)
    def forward(self, x):
        y = self.dropout(self.relu(self.bn1(self.w1(x.view(x.shape[0], -1)))))
        for stage in self.stages:
            y = stage(y)
        return self.w2(y).view(x.shape[0], self.joints_out, 3)

class Seq2Seq(nn.Module):
    """Encoder-decoder forecaster on (N, T, J*2): the first ``input_len`` frames are observed,
    the rest are forecast; with teacher forcing the decoder reads the true previous frame."""

    def __init__(self, joints=17, hidden=68, input_len=8, output_len=5, cell=nn.LSTM):
        super().__init__()
        self.input_len, self.output_len = input_len, output_len
        self.encoder = cell(joints * 2, hidden, num_layers=2, batch_first=True)
        self.decoder = cell(joints * 2, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, joints * 2)

    def forward(self, x, teacher_forcing=False):
        _, state = self.encoder(x[:, : self.input_len - 1])
        prev = x[:, self.input_len - 1 : self.input_len]
        preds = []
        for t in range(self.output_len):
            h, state = self.decoder(prev, state)
            pred = prev + self.out(h)  # residual velocity
            preds.append(pred)
            if teacher_forcing:
                prev = x[:, self.input_len + t : self.input_len + t + 1]
            else:
                prev = pred
        return torch.cat(preds, dim=1)


class CellForecaster(nn.Module):
    """Residual seq2seq forecaster written with recurrent cells and a Python loop over frames
    (Martinez et al. 2017 style): encode the observed frames, then decode one frame at a time."""

    def __init__(self, joints=17, hidden=68, input_len=8, output_len=5, cell=nn.GRUCell):
        super().__init__()
        self.input_len, self.output_len, self.hidden = input_len, output_len, hidden
        self.cell = cell(joints * 2, hidden)
        self.out = nn.Linear(hidden, joints * 2)

    def init_state(self, x):
        h = torch.zeros(x.shape[0], self.hidden, dtype=x.dtype, device=x.device)
        return (h, torch.zeros_like(h)) if isinstance(self.cell, nn.LSTMCell) else h

    def step(self, frame, state):
        if isinstance(self.cell, nn.LSTMCell):
            h, c = self.cell(frame, state)
            state = (h, c)
        else:
            h = state = self.cell(frame, state)
        return frame + self.out(F.dropout(h, 0.0, self.training)), state

    def forward(self, x):
        state = self.init_state(x)
        for t in range(self.input_len - 1):
            state = self.cell(x[:, t], state)
        frame = x[:, self.input_len - 1]
        preds = []
        for _ in range(self.output_len):
            frame, state = self.step(frame, state)
            preds.append(frame)
        return torch.stack(preds, dim=1)


class LearnedStateGRU(nn.Module):
    """A GRU forecaster with a learned initial state, expanded to the batch in ``forward``
    (``self.h0.expand(...).contiguous()``), and a residual linear read-out per frame."""

    def __init__(self, joints=17, hidden=1024, layers=2, horizon=10):
        super().__init__()
        self.horizon = horizon
        self.h0 = nn.Parameter(torch.zeros(layers, 1, hidden))
        self.gru = nn.GRU(joints * 2, hidden, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden, joints * 2)

    def forward(self, x):
        n = x.shape[0]
        h = self.h0.expand(-1, n, -1).contiguous()
        out, h = self.gru(x, h)
        frame = x[:, -1]
        preds = []
        for _ in range(self.horizon):
            frame = frame + self.readout(out[:, -1])
            preds.append(frame)
            out, h = self.gru(frame.unsqueeze(1), h)
        return torch.stack(preds, dim=1)


class ActionConditionedSeq2Seq(nn.Module):
    """A seq2seq forecaster whose every input frame is the 2D pose concatenated with a one-hot
    action label (Martinez et al. 2017 style): features ``(j c) + k``; the decoder starts from a
    zero state made in ``forward`` and predicts residual velocities of the pose part."""

    def __init__(self, joints=17, actions=15, hidden=1024, horizon=10):
        super().__init__()
        self.pose, self.horizon, self.hidden = joints * 2, horizon, hidden
        self.encoder = nn.GRU(self.pose + actions, hidden, batch_first=True)
        self.cell = nn.GRUCell(self.pose + actions, hidden)
        self.out = nn.Linear(hidden, self.pose)

    def forward(self, x):
        n = x.shape[0]
        _, h = self.encoder(x[:, :-1])
        state = h[0] + torch.zeros(n, self.hidden)  # a state made in forward, default dtype
        frame = x[:, -1]
        label = frame[:, self.pose:]
        preds = []
        for _ in range(self.horizon):
            state = self.cell(frame, state)
            pose = frame[:, : self.pose] + self.out(state)
            preds.append(pose)
            frame = torch.cat([pose, label], dim=1)
        return torch.stack(preds, dim=1)

"""Chirality-equivariant layers: each is its PyTorch counterpart, stored and (where it pays) run
in the mirror's eigenbasis."""

from symmetrize.nn.activation import ODD_ACTIVATIONS, ChiralActivation, is_odd
from symmetrize.nn.batchnorm import ChiralBatchNorm1d
from symmetrize.nn.batchnorm2d import ChiralBatchNorm2d
from symmetrize.nn.cells import ChiralGRUCell, ChiralLSTMCell
from symmetrize.nn.conv import ChiralConv1d, InvariantConv1d
from symmetrize.nn.conv2d import ChiralConv2d, InvariantConv2d
from symmetrize.nn.linear import ChiralLinear, InvariantLinear
from symmetrize.nn.rnn import ChiralGRU, ChiralLSTM
from symmetrize.nn.shared import ChiralModule

__all__ = [
    "ODD_ACTIVATIONS",
    "ChiralActivation",
    "ChiralBatchNorm1d",
    "ChiralBatchNorm2d",
    "ChiralConv1d",
    "ChiralConv2d",
    "ChiralGRU",
    "ChiralGRUCell",
    "ChiralLSTM",
    "ChiralLSTMCell",
    "ChiralLinear",
    "ChiralModule",
    "InvariantConv1d",
    "InvariantConv2d",
    "InvariantLinear",
    "is_odd",
]

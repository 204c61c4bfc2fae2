"""Chirality-equivariant recurrent cells: ``nn.LSTMCell`` and ``nn.GRUCell`` in the eigenbasis.

The gate layout is that of :mod:`symmetrize.nn.rnn`: LSTM gates ``i, f, g, o`` transform with
``U + U + S + U`` and GRU gates ``r, z, n`` with ``U + U + S`` (``S`` the hidden Rep, ``U`` its
unsigned permutation). A cell is what a hand-written decoder loop calls once per frame: each call
runs the two block matmuls of each weight, then the gate functions in the original basis.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import BLOCKS, recurrent_execution
from symmetrize.nn.rnn import gates_rep
from symmetrize.nn.shared import BlockSpec, ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralGRUCell", "ChiralLSTMCell"]

_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class _ChiralCell(ChiralModule):
    """Shared logic: ``_dense_cls`` is the plain cell class (the second base), ``_gate_kinds``
    one letter per gate, ``"u"`` (unsigned hidden Rep) or ``"s"`` (signed)."""

    _dense_cls: ClassVar[type[nn.RNNCellBase]]
    _gate_kinds: ClassVar[str]

    def __init__(self, rep_in: Rep, rep_hidden: Rep, bias: bool = True,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        if not isinstance(rep_in, Rep) or not isinstance(rep_hidden, Rep):
            raise TypeError(f"{type(self).__name__} expects Reps for rep_in and rep_hidden, got "
                            f"{type(rep_in).__name__} and {type(rep_hidden).__name__}")
        self._dense_cls.__init__(self, rep_in.size, rep_hidden.size,  # type: ignore[call-arg]
                                 bias=bias, device="meta", dtype=dtype)
        for name in _NAMES:
            self._parameters.pop(name, None)
        self.rep_in, self.rep_hidden = rep_in, rep_hidden
        gates = self.gates_rep(rep_hidden)
        bound = 1.0 / max(rep_hidden.size, 1) ** 0.5
        self._register_blocks("weight_ih", BlockSpec(rep_in, gates, (), bound), device, dtype)
        self._register_blocks("weight_hh", BlockSpec(rep_hidden, gates, (), bound), device, dtype)
        if bias:
            self._register_blocks("bias_ih", BlockSpec(None, gates, (), bound), device, dtype)
            self._register_blocks("bias_hh", BlockSpec(None, gates, (), bound), device, dtype)
        else:
            self.register_parameter("bias_ih_plus", None)
            self.register_parameter("bias_hh_plus", None)
        self.execution = recurrent_execution(rep_hidden.size)
        self._sample_blocks()

    def __getattr__(self, name: str) -> Any:
        if name in ("bias_ih", "bias_hh") and "bias_ih" not in self.__dict__.get(
                "_block_specs", {"bias_ih": None}):
            return None
        return super().__getattr__(name)

    @classmethod
    def gates_rep(cls, rep_hidden: Rep) -> Rep:
        """The Rep of the stacked gate pre-activations (rows of every weight and bias)."""
        return gates_rep(rep_hidden, cls._gate_kinds)

    @property
    def rep_out(self) -> Rep:
        """The Rep of the hidden (and cell) state."""
        return self.rep_hidden

    def _gates(self, x: torch.Tensor, h: torch.Tensor, merged: bool) -> Any:
        """Gate pre-activations in the original basis: ``W_ih x + b_ih + W_hh h + b_hh``
        (``merged``), else the input part and the hidden part apart."""
        p: Any = self._parameters
        gates = eigenbasis(self.gates_rep(self.rep_hidden))
        xp, xm = eigenbasis(self.rep_in).to_eigen(x)
        hp, hm = eigenbasis(self.rep_hidden).to_eigen(h)
        zxp = _lin(xp, p["weight_ih_plus"], self.plus_bias("bias_ih"))
        zhp = _lin(hp, p["weight_hh_plus"], self.plus_bias("bias_hh"))
        zxm, zhm = _lin(xm, p["weight_ih_minus"]), _lin(hm, p["weight_hh_minus"])
        if merged:
            return gates.from_eigen(zxp + zhp, zxm + zhm)
        return gates.from_eigen(zxp, zxm), gates.from_eigen(zhp, zhm)

    @classmethod
    def from_dense(cls, module: nn.RNNCellBase, rep_in: Rep, rep_hidden: Rep) -> Any:
        """A chiral copy of a plain cell, its weights projected onto the equivariant ones."""
        if not isinstance(module, cls._dense_cls):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.{cls._dense_cls.__name__}, "
                            f"got {type(module).__name__}")
        if (module.input_size, module.hidden_size) != (rep_in.size, rep_hidden.size):
            raise ValueError(f"{cls.__name__}.from_dense: Reps of sizes ({rep_in.size}, "
                             f"{rep_hidden.size}) for a cell of input_size {module.input_size} "
                             f"and hidden_size {module.hidden_size}")
        with building_from(module):
            layer = cls(rep_in, rep_hidden, bias=module.bias, device=module.weight_ih.device,
                        dtype=module.weight_ih.dtype)
        for name in layer._block_specs:
            layer.assign_dense(name, getattr(module, name))
        return layer

    def to_dense(self) -> nn.RNNCellBase:
        """A plain cell with the dense weights (same outputs)."""
        ref = self._parameters["weight_ih_plus"]
        assert ref is not None
        dense = self._dense_cls(self.input_size, self.hidden_size, bias=self.bias,
                                device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for name in self._block_specs:
                getattr(dense, name).copy_(self.dense_tensor(name))
        return dense

    def _check_io(self, batch: int, generator: torch.Generator, dtype: torch.dtype) -> Any:
        x = torch.randn(batch, self.rep_in.size, generator=generator, dtype=dtype)
        rep = self.rep_hidden
        return ((x,), (self.rep_in.apply(x),),
                lambda y: tuple(rep.apply(s) for s in y) if isinstance(y, tuple)
                else rep.apply(y))

    def extra_repr(self) -> str:
        return f"{self.rep_in} -> {self.rep_hidden}, bias={self.bias}, " \
               f"execution={self.execution!r}"


def _lin(x: torch.Tensor | None, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    assert x is not None
    if w.shape[1] == 0:
        zeros = x.new_zeros(*x.shape[:-1], w.shape[0])
        return zeros if b is None else zeros + b
    return F.linear(x, w, b)


def _batched(x: torch.Tensor, state: Any, what: str) -> tuple[bool, Any]:
    if x.dim() not in (1, 2):
        raise ValueError(f"{what} expects a 1-D or 2-D input, got shape {tuple(x.shape)}")
    return x.dim() == 1, state


class ChiralLSTMCell(_ChiralCell, nn.LSTMCell):
    """``nn.LSTMCell`` whose gates follow the mirror: ``cell(T x, (T h, T c)) = (T h', T c')``."""

    _dense_cls = nn.LSTMCell
    _gate_kinds = "uusu"

    def forward(self, input: torch.Tensor,  # noqa: A002 - nn.LSTMCell's signature
                hx: tuple[torch.Tensor, torch.Tensor] | None = None) -> Any:
        if self.execution != BLOCKS:
            return nn.LSTMCell.forward(self, input, hx)
        single, _ = _batched(input, hx, type(self).__name__)
        x = input.unsqueeze(0) if single else input
        if hx is None:
            h = c = x.new_zeros(x.shape[0], self.hidden_size)
        else:
            h, c = (s.unsqueeze(0) for s in hx) if single else hx
        i, f, g, o = self._gates(x, h, merged=True).chunk(4, -1)
        c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h.squeeze(0), c.squeeze(0)) if single else (h, c)


class ChiralGRUCell(_ChiralCell, nn.GRUCell):
    """``nn.GRUCell`` whose gates follow the mirror: ``cell(T x, T h) = T h'``."""

    _dense_cls = nn.GRUCell
    _gate_kinds = "uus"

    def forward(self, input: torch.Tensor,  # noqa: A002 - nn.GRUCell's signature
                hx: torch.Tensor | None = None) -> torch.Tensor:
        if self.execution != BLOCKS:
            return nn.GRUCell.forward(self, input, hx)
        single, _ = _batched(input, hx, type(self).__name__)
        x = input.unsqueeze(0) if single else input
        h = x.new_zeros(x.shape[0], self.hidden_size) if hx is None else (
            hx.unsqueeze(0) if single else hx)
        zx, zh = self._gates(x, h, merged=False)
        size = self.hidden_size
        rz = torch.sigmoid(zx[..., : 2 * size] + zh[..., : 2 * size])
        r, z = rz[..., :size], rz[..., size:]
        n = torch.tanh(torch.addcmul(zx[..., 2 * size:], r, zh[..., 2 * size:]))
        h = torch.addcmul(n, z, h - n)
        return h.squeeze(0) if single else h

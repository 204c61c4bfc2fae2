"""Chirality-equivariant recurrent cells: ``nn.LSTMCell`` and ``nn.GRUCell`` with shared weights.

The gate layout is that of :mod:`symmetrize.nn.rnn`: LSTM gates ``i, f, g, o`` transform with
``U + U + S + U`` and GRU gates ``r, z, n`` with ``U + U + S`` (``S`` the hidden Rep, ``U`` its
unsigned permutation). A cell is what a hand-written decoder loop calls once per frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from symmetrize.nn.shared import ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralGRUCell", "ChiralLSTMCell"]


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
                                 bias=bias, device=device, dtype=dtype)
        self.rep_in, self.rep_hidden = rep_in, rep_hidden
        gates = self.gates_rep(rep_hidden)
        self._share("weight_ih", rep_in, gates)
        self._share("weight_hh", rep_hidden, gates)
        if bias:
            self._share("bias_ih", Rep.trivial(1), gates)
            self._share("bias_hh", Rep.trivial(1), gates)

    @classmethod
    def gates_rep(cls, rep_hidden: Rep) -> Rep:
        """The Rep of the stacked gate pre-activations (rows of every weight and bias)."""
        unsigned = rep_hidden.unsigned()
        return Rep.concat(rep_hidden if kind == "s" else unsigned for kind in cls._gate_kinds)

    @property
    def rep_out(self) -> Rep:
        """The Rep of the hidden (and cell) state."""
        return self.rep_hidden

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
            layer._copy_dense_from(module, ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        return layer

    def to_dense(self) -> nn.RNNCellBase:
        """A plain cell with the materialised weights (same outputs)."""
        dense = self._dense_cls(self.input_size, self.hidden_size, bias=self.bias,
                                device=self.weight_ih.device, dtype=self.weight_ih.dtype)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if getattr(dense, name, None) is not None:
                    getattr(dense, name).copy_(getattr(self, name))
        return dense

    def extra_repr(self) -> str:
        return f"{self.rep_in} -> {self.rep_hidden}, " + super().extra_repr()


class ChiralLSTMCell(_ChiralCell, nn.LSTMCell):
    """``nn.LSTMCell`` whose gates follow the mirror: ``cell(T x, (T h, T c)) = (T h', T c')``."""

    _dense_cls = nn.LSTMCell
    _gate_kinds = "uusu"


class ChiralGRUCell(_ChiralCell, nn.GRUCell):
    """``nn.GRUCell`` whose gates follow the mirror: ``cell(T x, T h) = T h'``."""

    _dense_cls = nn.GRUCell
    _gate_kinds = "uus"

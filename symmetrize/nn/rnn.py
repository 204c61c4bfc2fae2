"""Chirality-equivariant recurrent layers: ``nn.LSTM`` and ``nn.GRU`` in the mirror's eigenbasis.

The gates must not flip sign under the mirror (a sigmoid gate multiplies, it is not odd), but they
must still follow the permutation of the hidden units. With ``S`` the hidden Rep and
``U = S.unsigned()``, the gate pre-activations of an LSTM (PyTorch order ``i, f, g, o``) transform
with ``U + U + S + U`` and those of a GRU (``r, z, n``) with ``U + U + S``: only the cell candidate
``g`` (LSTM) and the new state ``n`` (GRU) carry the signs, and they pass through the odd ``tanh``.
Then ``c' = f * c + i * g``, ``h' = o * tanh(c')`` and ``h' = (1 - z) * n + z * h`` are equivariant
with ``S``. The mirror acts on features only, so it commutes with time reversal: bidirectional
layers need no extra care, their concatenated output transforms with ``S + S``.

Every weight ``weight_ih_l<k>`` / ``weight_hh_l<k>`` is stored as its two eigenbasis blocks
(``..._plus`` / ``..._minus``) and every bias as its ``+`` half; the dense tensors read under the
plain names. The input projection of all steps is one block matmul; the recurrence runs in
:mod:`symmetrize.nn.recurrence`. Packed sequences and narrow layers run PyTorch's fused kernel
with the dense weights.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from symmetrize.eigenbasis import eigenbasis
from symmetrize.nn.blockops import BLOCKS, _scaled, recurrent_execution
from symmetrize.nn.fastbasis import from_sums, to_sums
from symmetrize.nn.recurrence import GRUSequence, LSTMSequence
from symmetrize.nn.shared import BlockSpec, ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralGRU", "ChiralLSTM", "gates_rep"]

# cuDNN warns on every call whose weights are not one flat buffer; dense weights never are.
_NOT_CONTIGUOUS_WARNING = r"RNN module weights are not part of single contiguous chunk of memory"


def gates_rep(rep_hidden: Rep, kinds: str) -> Rep:
    """The Rep of stacked gate pre-activations: per gate ``"u"`` (unsigned) or ``"s"``."""
    unsigned = rep_hidden.unsigned()
    return Rep.concat(rep_hidden if kind == "s" else unsigned for kind in kinds)


class _ChiralRNN(ChiralModule):
    """Shared logic of :class:`ChiralLSTM` and :class:`ChiralGRU`: ``_dense_cls`` is the plain
    class (also the second base), ``_gate_kinds`` one letter per gate (``"u"`` / ``"s"``)."""

    _dense_cls: ClassVar[type[nn.RNNBase]]
    _gate_kinds: ClassVar[str]
    rep_in: Rep
    rep_hidden: Rep

    def __init__(self, rep_in: Rep, rep_hidden: Rep, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        if not isinstance(rep_in, Rep) or not isinstance(rep_hidden, Rep):
            raise TypeError(f"{type(self).__name__} expects Reps for rep_in and rep_hidden, got "
                            f"{type(rep_in).__name__} and {type(rep_hidden).__name__}")
        self._dense_cls.__init__(  # type: ignore[call-arg]
            self, rep_in.size, rep_hidden.size, num_layers=num_layers, bias=bias,
            batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
            device="meta", dtype=dtype)
        self.rep_in, self.rep_hidden = rep_in, rep_hidden
        gates = self.gates_rep(rep_hidden)
        bound = 1.0 / max(rep_hidden.size, 1) ** 0.5  # nn.LSTM's init bound
        for name in self._flat_weights_names:
            del self._parameters[name]
        for name in self._flat_weights_names:
            kind, layer = _parse_name(name)
            rep_from = {"weight_ih": self.layer_input_rep(layer), "weight_hh": rep_hidden}.get(kind)
            self._register_blocks(name, BlockSpec(rep_from, gates, (), bound), device, dtype)
        self._flat_weights = []
        self.execution = recurrent_execution(rep_hidden.size)
        self._sample_blocks()

    # ----------------------------------------------------------------- Reps
    @classmethod
    def gates_rep(cls, rep_hidden: Rep) -> Rep:
        """The Rep of the stacked gate pre-activations (rows of every weight and bias)."""
        return gates_rep(rep_hidden, cls._gate_kinds)

    def layer_input_rep(self, layer: int) -> Rep:
        """The Rep of layer ``layer``'s input: ``rep_in``, then the (concatenated) hidden output."""
        if layer == 0:
            return self.rep_in
        return self.rep_hidden.repeat(2 if self.bidirectional else 1)

    @property
    def rep_out(self) -> Rep:
        """The Rep of the output sequence's features (``S``, or ``S + S`` when bidirectional)."""
        return self.rep_hidden.repeat(2 if self.bidirectional else 1)

    # ----------------------------------------------------------------- nn.RNNBase hooks
    def _init_flat_weights(self) -> None:
        if "_block_specs" not in self.__dict__:  # inside nn.RNNBase.__init__
            super()._init_flat_weights()  # type: ignore[misc]
            return
        self._flat_weights = []

    def _update_flat_weights(self) -> None:
        """No-op: :meth:`_forward_dense` sets the dense weights itself."""

    def flatten_parameters(self) -> None:
        """No-op: the weights are stored as blocks, not as one flat buffer."""

    # ----------------------------------------------------------------- forward
    def forward(self, input: Any, hx: Any = None) -> Any:  # noqa: A002 - nn.LSTM's signature
        if isinstance(input, nn.utils.rnn.PackedSequence) or self.execution != BLOCKS:
            return self._forward_dense(input, hx)
        is_lstm = isinstance(self, nn.LSTM)
        unbatched = input.dim() == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first
                                                  else input)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__} expects input of shape (T, N, "
                             f"{self.input_size}) (batch_first: (N, T, ...); unbatched: (T, "
                             f"{self.input_size})), got {tuple(input.shape)}")
        dirs = 2 if self.bidirectional else 1
        states = self._initial_states(hx, x, dirs, unbatched, is_lstm)
        hidden, gates = eigenbasis(self.rep_hidden), eigenbasis(self.gates_rep(self.rep_hidden))
        last_h, last_c = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                k = layer * dirs + d
                run = self._lstm_direction if is_lstm else self._gru_direction
                out, h_n, c_n = run(x, sfx, states, k, hidden, gates, reverse=bool(d))
                outs.append(out)
                last_h.append(h_n)
                last_c.append(c_n)
            x = outs[0] if dirs == 1 else torch.cat(outs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        h_n = torch.stack(last_h)
        out = x.squeeze(1) if unbatched else (x.transpose(0, 1) if self.batch_first else x)
        if unbatched:
            h_n = h_n.squeeze(1)
        if not is_lstm:
            return out, h_n
        c_n = torch.stack(last_c)
        return out, (h_n, c_n.squeeze(1) if unbatched else c_n)

    def _initial_states(self, hx: Any, x: torch.Tensor, dirs: int, unbatched: bool,
                        is_lstm: bool) -> list[torch.Tensor]:
        shape = (self.num_layers * dirs, x.shape[1], self.hidden_size)
        if hx is None:
            zeros = x.new_zeros(shape)
            return [zeros, zeros] if is_lstm else [zeros]
        parts = list(hx) if is_lstm else [hx]
        if is_lstm and len(parts) != 2:
            raise ValueError(f"{type(self).__name__} expects hx = (h_0, c_0), got {len(parts)} "
                             "tensors")
        parts = [p.unsqueeze(1) if unbatched else p for p in parts]
        for p in parts:
            if tuple(p.shape) != shape:
                raise ValueError(f"{type(self).__name__}: expected hidden state of shape "
                                 f"{shape}, got {tuple(p.shape)}")
        return parts

    def _project_input(self, x: torch.Tensor, sfx: str,
                       extra_bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The input projection of every step, in the gates' sum coordinates
        (:mod:`symmetrize.nn.fastbasis`)."""
        layer = int(sfx[2:].split("_")[0])
        b_in = eigenbasis(self.layer_input_rep(layer))
        gates = eigenbasis(self.gates_rep(self.rep_hidden))
        x_plus, x_minus = to_sums(b_in, x, -1)
        x_plus, x_minus = _scaled(x_plus, b_in, "plus", -1), _scaled(x_minus, b_in, "minus", -1)
        w_plus = getattr(self, f"weight_ih{sfx}_plus")
        w_minus = getattr(self, f"weight_ih{sfx}_minus")
        assert x_plus is not None and x_minus is not None
        zp = F.linear(x_plus, w_plus) if w_plus.shape[1] else \
            x.new_zeros(*x.shape[:-1], w_plus.shape[0])
        zm = F.linear(x_minus, w_minus) if w_minus.shape[1] else \
            x.new_zeros(*x.shape[:-1], w_minus.shape[0])
        zp, zm = _scaled(zp, gates, "plus", -1), _scaled(zm, gates, "minus", -1)
        bias = getattr(self, f"bias_ih{sfx}_plus", None)  # orbit values = sum coordinates
        if bias is not None and extra_bias is not None:
            bias = bias + extra_bias
        assert zp is not None and zm is not None
        return (zp if bias is None else zp + bias), zm

    def _lstm_direction(self, x: torch.Tensor, sfx: str, states: list[torch.Tensor], k: int,
                        hidden: Any, gates: Any, reverse: bool) -> tuple[Any, ...]:
        zp, zm = self._project_input(x, sfx, getattr(self, f"bias_hh{sfx}_plus", None))
        return LSTMSequence.apply(zp, zm, states[0][k], states[1][k],
                                  getattr(self, f"weight_hh{sfx}_plus"),
                                  getattr(self, f"weight_hh{sfx}_minus"), hidden, gates, reverse)

    def _gru_direction(self, x: torch.Tensor, sfx: str, states: list[torch.Tensor], k: int,
                       hidden: Any, gates: Any, reverse: bool) -> tuple[Any, ...]:
        zp, zm = self._project_input(x, sfx, None)
        zx = from_sums(gates, zp, zm, -1)
        out, h_n = GRUSequence.apply(zx, states[0][k], getattr(self, f"weight_hh{sfx}_plus"),
                                     getattr(self, f"weight_hh{sfx}_minus"),
                                     getattr(self, f"bias_hh{sfx}_plus", None), hidden, gates,
                                     reverse)
        return out, h_n, None

    def _forward_dense(self, input: Any, hx: Any) -> Any:
        """PyTorch's fused kernel with the dense weights (packed sequences, narrow layers)."""
        self._flat_weights = [self.dense_tensor(n) for n in self._flat_weights_names]
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NOT_CONTIGUOUS_WARNING)
                return self._dense_cls.forward(self, input, hx)  # type: ignore[arg-type]
        finally:
            self._flat_weights = []

    # ----------------------------------------------------------------- conversion
    @classmethod
    def from_dense(cls, module: nn.RNNBase, rep_in: Rep, rep_hidden: Rep) -> Any:
        """A chiral copy of a plain ``module`` with its weights projected onto the equivariant
        ones (exactly reproduced when they already are).

        Raises:
            TypeError: ``module`` is not of this layer's plain class.
            ValueError: ``module`` has a projection (``proj_size``) or its sizes do not match
                the Reps.
        """
        dense_cls = cls._dense_cls
        if not isinstance(module, dense_cls):
            raise TypeError(f"{cls.__name__}.from_dense expects an nn.{dense_cls.__name__}, got "
                            f"{type(module).__name__}")
        if module.proj_size != 0:
            raise ValueError(f"{cls.__name__} does not support projections, got proj_size = "
                             f"{module.proj_size}")
        if module.input_size != rep_in.size:
            raise ValueError(f"{cls.__name__}.from_dense: rep_in has size {rep_in.size} but the "
                             f"{dense_cls.__name__} has input_size {module.input_size}")
        if module.hidden_size != rep_hidden.size:
            raise ValueError(f"{cls.__name__}.from_dense: rep_hidden has size {rep_hidden.size} "
                             f"but the {dense_cls.__name__} has hidden_size {module.hidden_size}")
        first = getattr(module, module._flat_weights_names[0])
        with building_from(module):
            layer = cls(rep_in, rep_hidden, num_layers=module.num_layers, bias=module.bias,
                        batch_first=module.batch_first, dropout=module.dropout,
                        bidirectional=module.bidirectional, device=first.device, dtype=first.dtype)
        for name in layer._flat_weights_names:
            layer.assign_dense(name, getattr(module, name))
        layer.train(module.training)
        return layer

    def to_dense(self) -> nn.RNNBase:
        """A plain ``nn.LSTM`` / ``nn.GRU`` with the dense weights (same outputs)."""
        module: nn.RNNBase = self  # type: ignore[assignment]
        names = module._flat_weights_names
        first = module._parameters[f"{names[0]}_plus"]
        dense = self._dense_cls(  # type: ignore[call-arg]
            module.input_size, module.hidden_size, num_layers=module.num_layers,
            bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
            bidirectional=module.bidirectional, device=first.device, dtype=first.dtype)
        with torch.no_grad():
            for name in names:
                getattr(dense, name).copy_(self.dense_tensor(name))
        dense.train(module.training)
        return dense

    def _check_io(self, batch: int, generator: torch.Generator, dtype: torch.dtype) -> Any:
        module: Any = self
        steps = 4
        shape = (batch, steps, module.input_size) if module.batch_first else \
            (steps, batch, module.input_size)
        x = torch.randn(shape, generator=generator, dtype=dtype)
        rep_out, rep_h = self.rep_out, self.rep_hidden
        return ((x,), (self.rep_in.apply(x),),
                lambda y: (rep_out.apply(y[0]), tuple(rep_h.apply(s) for s in y[1])
                           if isinstance(y[1], tuple) else rep_h.apply(y[1])))

    def extra_repr(self) -> str:
        base = nn.RNNBase.extra_repr(self)  # type: ignore[arg-type]
        options = base.split(", ")[2:]  # drop input_size, hidden_size: the Reps give them
        return ", ".join([f"{self.rep_in} -> {self.rep_hidden}", *options,
                          f"execution={self.execution!r}"])


def _parse_name(name: str) -> tuple[str, int]:
    """``"weight_ih_l2_reverse"`` -> ``("weight_ih", 2)``."""
    stem = name[: -len("_reverse")] if name.endswith("_reverse") else name
    kind, _, layer = stem.rpartition("_l")
    return kind, int(layer)


class ChiralLSTM(_ChiralRNN, nn.LSTM):
    """``nn.LSTM`` whose weights are equivariant so that the whole recurrence is too.

    ``f(T_in x, S h0, S c0) = (T_out y, S h_n, S c_n)`` with ``S = rep_hidden`` acting on the last
    axis of the states and ``T_out`` = ``S`` (``S + S`` when bidirectional) on the output features.
    The gates ``i, f, o`` transform with ``S.unsigned()``, the cell candidate ``g`` with ``S``.
    ``proj_size`` is not supported.

    Args:
        rep_in: how the mirror acts on the input features (``input_size = len(rep_in)``).
        rep_hidden: how it acts on the hidden and cell states (``hidden_size = len(rep_hidden)``).

    The other arguments are those of ``nn.LSTM`` (``proj_size`` aside).
    """

    _dense_cls = nn.LSTM
    _gate_kinds = "uusu"


class ChiralGRU(_ChiralRNN, nn.GRU):
    """``nn.GRU`` whose weights are equivariant so that the whole recurrence is too.

    ``f(T_in x, S h0) = (T_out y, S h_n)``, ``T_out`` as for :class:`ChiralLSTM`. The reset and
    update gates ``r, z`` transform with ``S.unsigned()``, the new state ``n`` with ``S``.

    Args:
        rep_in: how the mirror acts on the input features (``input_size = len(rep_in)``).
        rep_hidden: how it acts on the hidden state (``hidden_size = len(rep_hidden)``).

    The other arguments are those of ``nn.GRU`` (``proj_size`` aside).
    """

    _dense_cls = nn.GRU
    _gate_kinds = "uus"

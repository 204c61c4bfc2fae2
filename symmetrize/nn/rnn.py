"""Chirality-equivariant recurrent layers: ``nn.LSTM`` and ``nn.GRU`` with shared weights.

The gates must not flip sign under the mirror (a sigmoid gate multiplies, it is not odd), but they
must still follow the permutation of the hidden units. With ``S`` the hidden Rep and
``U = S.unsigned()``, the gate pre-activations of an LSTM (PyTorch order ``i, f, g, o``) transform
with ``U + U + S + U`` and those of a GRU (``r, z, n``) with ``U + U + S``: only the cell candidate
``g`` (LSTM) and the new state ``n`` (GRU) carry the signs, and they pass through the odd ``tanh``.
Then ``c' = f * c + i * g``, ``h' = o * tanh(c')`` and ``h' = (1 - z) * n + z * h`` are equivariant
with ``S`` (a product of an unsigned-permuted gate with a signed-permuted vector is signed-permuted).
The mirror acts on features only, so it commutes with time reversal: bidirectional layers need no
extra care, their concatenated output transforms with ``S + S``.

The layers are real ``nn.LSTM`` / ``nn.GRU`` modules: same parameter names, same fused kernels. Each
weight is materialised from its free parameters by one gather per forward.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from symmetrize.nn.shared import ChiralModule, building_from
from symmetrize.rep import Rep

__all__ = ["ChiralGRU", "ChiralLSTM"]

# cuDNN warns on every call whose weights are not one flat buffer; materialised weights never are.
_NOT_CONTIGUOUS_WARNING = r"RNN module weights are not part of single contiguous chunk of memory"


class _ChiralRNN(ChiralModule):
    """Shared logic of :class:`ChiralLSTM` and :class:`ChiralGRU`.

    Subclasses set ``_dense_cls`` (the plain PyTorch class, also their second base) and
    ``_gate_kinds``: one letter per gate in PyTorch's order, ``"u"`` for a gate that transforms
    with the unsigned hidden Rep and ``"s"`` for one that transforms with the signed hidden Rep.
    """

    _dense_cls: ClassVar[type[nn.RNNBase]]
    _gate_kinds: ClassVar[str]

    rep_in: Rep
    rep_hidden: Rep

    def _init_chiral(self, rep_in: Rep, rep_hidden: Rep, num_layers: int, bias: bool,
                     batch_first: bool, dropout: float, bidirectional: bool,
                     device: torch.device | str | None, dtype: torch.dtype | None) -> None:
        if not isinstance(rep_in, Rep) or not isinstance(rep_hidden, Rep):
            raise TypeError(f"{type(self).__name__} expects Reps for rep_in and rep_hidden, got "
                            f"{type(rep_in).__name__} and {type(rep_hidden).__name__}")
        self._dense_cls.__init__(  # type: ignore[call-arg]
            self, rep_in.size, rep_hidden.size, num_layers=num_layers, bias=bias,
            batch_first=batch_first, dropout=dropout, bidirectional=bidirectional,
            device=device, dtype=dtype)
        self.rep_in = rep_in
        self.rep_hidden = rep_hidden
        gates = self.gates_rep(rep_hidden)
        for name, rep_from in self._tensor_reps():
            self._share(name, rep_from, gates)
        # Drop the dense tensors nn.RNNBase cached before sharing (see _init_flat_weights).
        self._init_flat_weights()

    # ----------------------------------------------------------------- Reps
    @classmethod
    def gates_rep(cls, rep_hidden: Rep) -> Rep:
        """The Rep of the stacked gate pre-activations (rows of every weight and bias)."""
        unsigned = rep_hidden.unsigned()
        return Rep.concat(rep_hidden if kind == "s" else unsigned for kind in cls._gate_kinds)

    def layer_input_rep(self, layer: int) -> Rep:
        """The Rep of layer ``layer``'s input: ``rep_in``, then the (concatenated) hidden output."""
        if layer == 0:
            return self.rep_in
        return self.rep_hidden.repeat(2 if self.bidirectional else 1)

    @property
    def rep_out(self) -> Rep:
        """The Rep of the output sequence's features (``S``, or ``S + S`` when bidirectional)."""
        return self.rep_hidden.repeat(2 if self.bidirectional else 1)

    def _tensor_reps(self) -> list[tuple[str, Rep]]:
        """``(name, input Rep)`` of every weight and bias, in ``_flat_weights_names`` order."""
        out = []
        hidden = self.rep_hidden
        for name in self._flat_weights_names:
            kind, layer = _parse_name(name)
            if kind == "weight_ih":
                out.append((name, self.layer_input_rep(layer)))
            elif kind == "weight_hh":
                out.append((name, hidden))
            elif kind in ("bias_ih", "bias_hh"):
                out.append((name, Rep.trivial(1)))
            else:  # pragma: no cover - proj_size is not supported
                raise ValueError(f"{type(self).__name__} does not support the tensor {name!r}")
        return out

    # ----------------------------------------------------------------- flat weights
    # nn.RNNBase keeps ``_flat_weights``, the list of tensors handed to the fused kernel. Its own
    # refresh (``_weights_have_changed`` + ``_init_flat_weights``) reads every parametrized weight
    # to compare identities and then reads them again, and ``flatten_parameters`` would try to
    # compact freshly materialised (non-leaf) tensors into one cuDNN buffer. Here the list is
    # rebuilt once per forward (one gather per tensor) and emptied again afterwards, so the module
    # holds no autograd graph between calls and stays deep-copyable.
    def _update_flat_weights(self) -> None:
        if not self._shared_names:
            super()._update_flat_weights()  # type: ignore[misc]
            return
        # getattr once per name: ``hasattr`` would materialise the weight a second time.
        self._flat_weights = [getattr(self, name, None) for name in self._flat_weights_names]

    def _init_flat_weights(self) -> None:
        if not self._shared_names:  # inside nn.RNNBase.__init__, before sharing
            super()._init_flat_weights()  # type: ignore[misc]
            return
        names = self._flat_weights_names
        self._flat_weights = [None] * len(names)
        self._flat_weight_refs = [None] * len(names)

    def flatten_parameters(self) -> None:
        """No-op once shared: the weights are materialised anew at every forward."""
        if not self._shared_names:
            super().flatten_parameters()  # type: ignore[misc]

    def __setattr__(self, attr: str, value: Any) -> None:
        if attr in self._shared_names:
            # Assigning a shared tensor projects it (the parametrization's setter); skip
            # nn.RNNBase's caching of the dense value in ``_flat_weights``.
            nn.Module.__setattr__(self, attr, value)  # type: ignore[arg-type]
            return
        super().__setattr__(attr, value)

    def forward(self, input: Any, hx: Any = None) -> Any:  # noqa: A002 - nn.LSTM's signature
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=_NOT_CONTIGUOUS_WARNING)
                return super().forward(input, hx)  # type: ignore[misc]
        finally:
            if self._shared_names:
                self._flat_weights = [None] * len(self._flat_weights_names)

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
            layer._copy_dense_from(module, tuple(layer._flat_weights_names))
        layer.train(module.training)
        return layer

    def to_dense(self) -> nn.RNNBase:
        """A plain ``nn.LSTM`` / ``nn.GRU`` with the materialised weights (same outputs)."""
        module: nn.RNNBase = self  # type: ignore[assignment]
        names = module._flat_weights_names
        first = module.parametrizations[names[0]].original
        dense = self._dense_cls(  # type: ignore[call-arg]
            module.input_size, module.hidden_size, num_layers=module.num_layers,
            bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
            bidirectional=module.bidirectional, device=first.device, dtype=first.dtype)
        with torch.no_grad():
            for name in names:
                getattr(dense, name).copy_(getattr(module, name))
        dense.train(module.training)
        return dense

    def extra_repr(self) -> str:
        base = nn.RNNBase.extra_repr(self)  # type: ignore[arg-type]
        options = base.split(", ")[2:]  # drop input_size, hidden_size: the Reps give them
        return ", ".join([f"{self.rep_in} -> {self.rep_hidden}", *options])


def _parse_name(name: str) -> tuple[str, int]:
    """``"weight_ih_l2_reverse"`` -> ``("weight_ih", 2)``."""
    stem = name[: -len("_reverse")] if name.endswith("_reverse") else name
    kind, _, layer = stem.rpartition("_l")
    return kind, int(layer)


class ChiralLSTM(_ChiralRNN, nn.LSTM):
    """``nn.LSTM`` whose weights are shared so that the whole recurrence is mirror-equivariant.

    ``f(T_in x, S h0, S c0) = (T_out y, S h_n, S c_n)`` with ``S = rep_hidden`` acting on the last
    axis of the states and ``T_out`` = ``S`` (``S + S`` when bidirectional) on the output features.
    The gates ``i, f, o`` transform with ``S.unsigned()``, the cell candidate ``g`` with ``S``.
    ``proj_size`` is not supported.

    Args:
        rep_in: how the mirror acts on the input features (``input_size = len(rep_in)``).
        rep_hidden: how it acts on the hidden and cell states (``hidden_size = len(rep_hidden)``).
        num_layers, bias, batch_first, dropout, bidirectional, device, dtype: as for ``nn.LSTM``.
    """

    _dense_cls = nn.LSTM
    _gate_kinds = "uusu"

    def __init__(self, rep_in: Rep, rep_hidden: Rep, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        self._init_chiral(rep_in, rep_hidden, num_layers, bias, batch_first, dropout,
                          bidirectional, device, dtype)


class ChiralGRU(_ChiralRNN, nn.GRU):
    """``nn.GRU`` whose weights are shared so that the whole recurrence is mirror-equivariant.

    ``f(T_in x, S h0) = (T_out y, S h_n)``, ``T_out`` as for :class:`ChiralLSTM`. The reset and
    update gates ``r, z`` transform with ``S.unsigned()``, the new state ``n`` with ``S``.

    Args:
        rep_in: how the mirror acts on the input features (``input_size = len(rep_in)``).
        rep_hidden: how it acts on the hidden state (``hidden_size = len(rep_hidden)``).
        num_layers, bias, batch_first, dropout, bidirectional, device, dtype: as for ``nn.GRU``.
    """

    _dense_cls = nn.GRU
    _gate_kinds = "uus"

    def __init__(self, rep_in: Rep, rep_hidden: Rep, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        self._init_chiral(rep_in, rep_hidden, num_layers, bias, batch_first, dropout,
                          bidirectional, device, dtype)

"""The contract every chiral layer keeps, and weights stored as eigenbasis blocks.

A chiral layer stores each equivariant tensor by its coordinates in the mirror's eigenbasis
(:mod:`symmetrize.eigenbasis`): a weight ``W`` (``rep_out x rep_in``, maybe with kernel taps) as
its two diagonal blocks ``<name>_plus`` (``n+_out x n+_in``) and ``<name>_minus``
(``n-_out x n-_in``), a bias as its ``+`` half ``<name>_plus`` (by orbit values, see
:func:`~symmetrize.eigenbasis.project_vector`). These are the layer's parameters
(their count is the dimension of the equivariant maps) and its state-dict keys. The dense tensor
reads as ``layer.<name>`` (computed from the blocks, differentiable); assigning a dense tensor
projects it; a plain checkpoint's dense ``<name>`` entries are projected when loaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from symmetrize.eigenbasis import (
    blocks_to_dense,
    eigenbasis,
    project_blocks,
    project_vector,
    vector_to_dense,
    vector_to_plus,
)
from symmetrize.rep import Rep
from symmetrize.weight_sharing import WeightSharing, weight_sharing

__all__ = ["BlockSpec", "ChiralModule", "SymmetricTensor", "building_from", "norm2",
           "share_tensor"]

_SOURCE: ContextVar[nn.Module | None] = ContextVar("symmetrize_dense_source", default=None)


@contextmanager
def building_from(source: nn.Module) -> Iterator[None]:
    """Build a chiral layer as a copy of the plain layer ``source``: inside the block, chiral
    layers skip their random initialisation (``from_dense`` assigns the projected weights)."""
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def building() -> bool:
    """Whether a layer is being built by ``from_dense`` (its random init is skipped)."""
    return _SOURCE.get() is not None


@dataclass(frozen=True)
class BlockSpec:
    """One dense tensor stored as eigenbasis blocks.

    ``rep_in`` is ``None`` for a bias (a vector in ``rep_out``'s ``+`` half); ``taps`` the
    trailing kernel shape of a weight; ``bound`` the plain layer's uniform init bound.
    """

    rep_in: Rep | None
    rep_out: Rep
    taps: tuple[int, ...] = ()
    bound: float = 0.0

    @property
    def dense_shape(self) -> tuple[int, ...]:
        if self.rep_in is None:
            return (self.rep_out.size,)
        return (self.rep_out.size, self.rep_in.size, *self.taps)

    def block_shapes(self) -> dict[str, tuple[int, ...]]:
        out_b = eigenbasis(self.rep_out)
        if self.rep_in is None:
            return {"plus": (out_b.n_plus,)}
        in_b = eigenbasis(self.rep_in)
        return {"plus": (out_b.n_plus, in_b.n_plus, *self.taps),
                "minus": (out_b.n_minus, in_b.n_minus, *self.taps)}

    def to_dense(self, blocks: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.rep_in is None:
            return vector_to_dense(blocks["plus"], self.rep_out)
        return blocks_to_dense(blocks["plus"], blocks["minus"], self.rep_in, self.rep_out)

    def project(self, dense: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(dense.shape) != self.dense_shape:
            raise ValueError(f"a tensor of shape {tuple(dense.shape)} cannot be assigned to a "
                             f"chiral tensor of shape {self.dense_shape}")
        dtype = dense.dtype
        if dtype in (torch.float32, torch.float16, torch.bfloat16):
            dense = dense.double()  # project exactly, round once
        if self.rep_in is None:
            return {"plus": project_vector(dense, self.rep_out).to(dtype)}
        plus, minus = project_blocks(dense, self.rep_in, self.rep_out)
        return {"plus": plus.to(dtype), "minus": minus.to(dtype)}

    def sample(self, blocks: dict[str, torch.Tensor]) -> None:
        """Fill ``blocks`` in place with the plain layer's random init made equivariant by copying:
        a dense ``U(-bound, bound)`` draw keeps each orbit's first entry (its mirror partner
        copies it, with the sign), so every entry keeps the plain marginal; rows that lose
        entries to forced zeros are scaled by ``sqrt(in / nonzero)`` to keep their variance."""
        with torch.no_grad():
            ref = blocks["plus"]
            if self.rep_in is None:  # orbit values: each entry is a dense entry
                ref.uniform_(-self.bound, self.bound)
                return
            rep_in, rep_out = self.rep_in, self.rep_out
            dense = torch.empty(self.dense_shape, dtype=torch.float64).uniform_(-self.bound,
                                                                                self.bound)
            mirrored = rep_in.apply(rep_out.apply(dense, 0), 1)
            n_in = rep_in.size
            flat = torch.arange(rep_out.size * n_in).view(rep_out.size, n_in)
            partner = torch.tensor(rep_out.perm.tolist())[:, None] * n_in + torch.tensor(
                rep_in.perm.tolist())[None, :]
            orbit_sign = torch.tensor(rep_out.sign.tolist())[:, None] * torch.tensor(
                rep_in.sign.tolist())[None, :]
            keep = flat <= partner
            zero = (flat == partner) & (orbit_sign < 0)
            extra = (1,) * len(self.taps)
            value = torch.where(keep.view(*keep.shape, *extra), dense, mirrored)
            value = value.masked_fill(zero.view(*zero.shape, *extra), 0.0)
            nonzero = (~zero).sum(1).clamp(min=1).double()
            value = value * (n_in / nonzero).sqrt().view(-1, 1, *extra)
            projected = self.project(value)
            for half, block in blocks.items():
                block.copy_(projected[half])


class ChiralModule:
    """Base of every chiral layer: its contract and its block-stored tensors.

    The contract (issue 17): ``rep_in`` / ``rep_out`` (the input and output Reps of the
    channel axis), ``from_dense`` (classmethod: a chiral copy of a plain layer, weights
    projected), ``to_dense()`` (the plain layer with the same outputs), and :meth:`self_check`.
    Subclasses register their tensors with :meth:`_register_blocks`.
    """

    _block_specs: dict[str, BlockSpec]

    # ----------------------------------------------------------------- registration
    def _register_blocks(self, name: str, spec: BlockSpec, device: Any = None,
                         dtype: torch.dtype | None = None) -> None:
        module: nn.Module = self  # type: ignore[assignment]
        if "_block_specs" not in self.__dict__:
            self.__dict__["_block_specs"] = {}
            module.register_load_state_dict_pre_hook(_project_dense_entries)
        self._block_specs[name] = spec
        for half, shape in spec.block_shapes().items():
            module.register_parameter(f"{name}_{half}", nn.Parameter(
                torch.empty(shape, device=device, dtype=dtype)))

    def _blocks(self, name: str) -> dict[str, torch.Tensor]:
        module: nn.Module = self  # type: ignore[assignment]
        halves = ("plus",) if self._block_specs[name].rep_in is None else ("plus", "minus")
        return {h: getattr(module, f"{name}_{h}") for h in halves}

    def plus_bias(self, name: str = "bias") -> torch.Tensor | None:
        """The orthonormal ``+`` coordinates of bias ``name`` (``None`` without bias)."""
        specs = self.__dict__["_block_specs"]
        if name not in specs:
            return None
        return vector_to_plus(getattr(self, f"{name}_plus"), specs[name].rep_out)

    def projected_norm2(self, name: str) -> float:
        """``|P(t)|^2`` of tensor ``name`` from its blocks (orthonormal coordinates), without
        building the dense tensor: with ``|t|^2`` of a plain tensor it gives the projection
        error ``|t - P(t)|^2 = |t|^2 - |P(t)|^2``."""
        if self._block_specs[name].rep_in is None:
            plus = self.plus_bias(name)
            return norm2(plus) if plus is not None else 0.0
        return sum(norm2(b) for b in self._blocks(name).values())

    def shared_sharing(self, name: str) -> WeightSharing:
        """The entry-wise :class:`~symmetrize.rep.WeightSharing` of tensor ``name`` (the same
        space of equivariant tensors as its blocks; for inspection and teaching)."""
        spec = self._block_specs[name]
        return weight_sharing(spec.rep_in or Rep.trivial(1), spec.rep_out)

    def dense_tensor(self, name: str) -> torch.Tensor:
        """The dense tensor ``name`` computed from its blocks (differentiable).

        Computed in float64 and rounded once, so that mirror twins get the same value to the
        last bit (in float32 the two basis-change sums round differently): the dense tensor is
        exactly equivariant, and the layer and its export are as equivariant as the plain kernel
        allows."""
        blocks = self._blocks(name)
        dtype = blocks["plus"].dtype
        if dtype == torch.float64 or not dtype.is_floating_point:
            return self._block_specs[name].to_dense(blocks)
        wide = {half: block.double() for half, block in blocks.items()}
        return self._block_specs[name].to_dense(wide).to(dtype)

    def __getattr__(self, name: str) -> Any:
        specs = self.__dict__.get("_block_specs")
        if specs is not None and name in specs:
            return self.dense_tensor(name)
        return super().__getattr__(name)  # type: ignore[misc]

    def __setattr__(self, name: str, value: Any) -> None:
        specs = self.__dict__.get("_block_specs")
        if specs is not None and name in specs:
            self.assign_dense(name, value)
            return
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        specs = self.__dict__.get("_block_specs")
        if specs is not None and name in specs:
            raise AttributeError(f"'{name}' of {type(self).__name__} is computed from its "
                                 f"blocks {name}_plus / {name}_minus and cannot be deleted")
        super().__delattr__(name)  # type: ignore[misc]

    def assign_dense(self, name: str, value: torch.Tensor) -> None:
        """Set the blocks of ``name`` to those of the closest equivariant tensor to ``value``."""
        if value is None:
            raise ValueError(f"{type(self).__name__}.{name} cannot be set to None")
        blocks = self._blocks(name)
        ref = blocks["plus"]
        projected = self._block_specs[name].project(
            value.detach().to(device=ref.device, dtype=ref.dtype))
        with torch.no_grad():
            for half, block in blocks.items():
                block.copy_(projected[half])

    # ----------------------------------------------------------------- init and counts
    def _sample_blocks(self) -> None:
        """Random init at the plain layer's scale (skipped inside ``from_dense``)."""
        if building():
            return
        for name, spec in self._block_specs.items():
            spec.sample(self._blocks(name))

    def reset_parameters(self) -> None:
        """Re-initialise like the plain layer (same output scale)."""
        if "_block_specs" not in self.__dict__:  # inside the plain class's __init__
            return
        self._sample_blocks()

    def free_parameters(self) -> int:
        """Number of trainable scalars (the blocks)."""
        module: nn.Module = self  # type: ignore[assignment]
        return sum(p.numel() for p in module.parameters())

    def dense_parameters(self) -> int:
        """Number of scalars the plain layer of the same shape has."""
        module: nn.Module = self  # type: ignore[assignment]
        stored = {f"{n}_{h}" for n, s in self._block_specs.items() for h in s.block_shapes()}
        total = sum(p.numel() for n, p in module.named_parameters() if n not in stored)
        for spec in self._block_specs.values():
            total += math.prod(spec.dense_shape)
        return total

    # ----------------------------------------------------------------- self-check
    def _check_io(self, batch: int, generator: torch.Generator,
                  dtype: torch.dtype) -> tuple[Any, Any, Any]:
        """``(x, T_in x, apply T_out to an output)`` for :meth:`self_check`; per layer."""
        raise NotImplementedError

    def self_check(self, dtype: torch.dtype = torch.float64, batch: int = 3,
                   seed: int = 0) -> float:
        """Run the layer on a random input ``x`` and on ``T_in x`` and return the relative
        equivariance error ``|f(T_in x) - T_out f(x)| / |f(x)|`` (in ``dtype``, eval mode).
        The layer is left as it was (mode, dtype)."""
        module: nn.Module = self  # type: ignore[assignment]
        generator = torch.Generator().manual_seed(seed)
        was_training = module.training
        params = list(module.parameters()) + list(module.buffers())
        original = params[0].dtype if params else torch.get_default_dtype()
        device = params[0].device if params else torch.device("cpu")
        try:
            module.to(dtype).eval()
            x, x_mirror, mirror_out = self._check_io(batch, generator, dtype)
            with torch.no_grad():
                y = module(*_on(x, device))
                y_mirror = module(*_on(x_mirror, device))
            errors, norms = [], []
            for a, b in zip(_leaves(mirror_out(y)), _leaves(y_mirror), strict=True):
                errors.append(float((a - b).abs().max()) if a.numel() else 0.0)
                norms.append(float(a.abs().max()) if a.numel() else 0.0)
            scale = max(norms) if norms and max(norms) > 0 else 1.0
            return max(errors, default=0.0) / scale
        finally:
            module.to(original).train(was_training)


def _on(args: tuple[Any, ...], device: torch.device) -> tuple[Any, ...]:
    return tuple(_to(a, device) for a in args)


def _to(a: Any, device: torch.device) -> Any:
    if isinstance(a, torch.Tensor):
        return a.to(device)
    if isinstance(a, tuple):
        return tuple(_to(b, device) for b in a)
    return a


def _leaves(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _leaves(v)]
    return []


def _project_dense_entries(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                           *_: Any) -> None:
    """Load-state-dict pre-hook: a plain checkpoint's dense ``<name>`` becomes the blocks."""
    specs: dict[str, BlockSpec] = module.__dict__.get("_block_specs", {})
    for name, spec in specs.items():
        dense_key = prefix + name
        halves = spec.block_shapes()
        block_keys = [f"{prefix}{name}_{h}" for h in halves]
        if dense_key not in state_dict or any(k in state_dict for k in block_keys):
            continue
        dense = state_dict.pop(dense_key)
        if not isinstance(dense, torch.Tensor) or tuple(dense.shape) != spec.dense_shape:
            shape = tuple(dense.shape) if isinstance(dense, torch.Tensor) else type(dense)
            raise RuntimeError(f"size mismatch for {dense_key}: checkpoint has {shape}, the "
                               f"chiral layer {type(module).__name__} expects {spec.dense_shape}")
        ref = module._parameters[f"{name}_plus"]
        projected = spec.project(dense.detach().to(ref.dtype))  # type: ignore[union-attr]
        for half, key in zip(halves, block_keys, strict=True):
            state_dict[key] = projected[half]


# --------------------------------------------------------------------- free-standing tensors
class SymmetricTensor(nn.Module):
    """Parametrization of a learned tensor that must equal its mirror image (a per-joint bias or
    embedding, an ST-GCN edge importance): ``T t = t`` for the flat Rep ``rep`` of its elements.

    Stored as its ``+`` eigen-coordinates (one per orbit; entries the mirror negates in place are
    zero).
    """

    def __init__(self, rep: Rep, shape: tuple[int, ...], dtype: torch.dtype | None = None,
                 device: torch.device | str | None = None) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.rep = rep

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        return vector_to_dense(theta, self.rep).view(self.shape)

    def right_inverse(self, dense: torch.Tensor) -> torch.Tensor:
        """The coordinates of the closest symmetric tensor (orbit averages)."""
        return project_vector(dense.reshape(-1), self.rep)


def share_tensor(module: nn.Module, name: str, rep: Rep) -> None:
    """Make ``module.<name>`` (a parameter) mirror-symmetric under ``rep``, projecting its value."""
    tensor = getattr(module, name)
    if rep.size != tensor.numel():
        raise ValueError(f"a Rep of size {rep.size} cannot act on '{name}' of shape "
                         f"{tuple(tensor.shape)}")
    parametrize.register_parametrization(
        module, name, SymmetricTensor(rep, tuple(tensor.shape), tensor.dtype, tensor.device),
        unsafe=True)


def norm2(t: torch.Tensor) -> float:
    """``|t|^2`` in float64: squares and sum in float64 (more exact, about 3x faster and less
    memory than summing a float32 ``t * t`` into float64)."""
    return float(torch.linalg.vector_norm(t.detach(), dtype=torch.float64)) ** 2

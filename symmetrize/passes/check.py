"""Is a model mirror-equivariant? ``check`` compares ``f(T x)`` with ``T f(x)`` on random inputs,
in train and eval mode, in float64 and in the model's dtype, and names the first node where the
symmetry breaks when it fails. ``equivariance_error`` is the one-number float64 check the
conversion runs."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from symmetrize.passes.check_state import (
    cuda_devices,
    default_dtype,
    device_of,
    dtype_of,
    no_tf32,
    restored,
    to_dtype,
)
from symmetrize.passes.output_errors import output_error, worst
from symmetrize.spec import Spec

__all__ = ["TOLERANCES", "CheckCase", "CheckResult", "check", "equivariance_error"]

#: default relative tolerance per dtype: ``max |f(T x) - T f(x)| / max |f(x)|``
TOLERANCES: dict[torch.dtype, float] = {torch.float64: 1e-10, torch.float32: 1e-5,
                                        torch.float16: 1e-2, torch.bfloat16: 5e-2}

_DROPOUT = frozenset({F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
                      F.feature_alpha_dropout, torch.dropout})


class _NoDropout(TorchFunctionMode):
    """Dropout (module or functional, and attention dropout) is off: its masks are not
    mirror-tied."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if func in _DROPOUT:
            return args[0] if args else (kwargs or {})["input"]
        if func is F.scaled_dot_product_attention:  # attention dropout
            named = dict(zip(("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"),
                             args[3:]))
            kwargs, args = {**named, **(kwargs or {}), "dropout_p": 0.0}, args[:3]
        return func(*args, **(kwargs or {}))


@dataclass
class CheckCase:
    """One mode and dtype of a :func:`check`: the worst errors over its random inputs."""

    mode: str
    dtype: str
    max_abs: float
    max_rel: float
    tolerance: float

    @property
    def passed(self) -> bool:
        """Relative error within the tolerance (a NaN error fails)."""
        return self.max_rel <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "dtype": self.dtype, "max_abs": self.max_abs,
                "max_rel": self.max_rel, "tolerance": self.tolerance, "passed": self.passed}


@dataclass
class CheckResult:
    """What :func:`check` measured.

    Attributes:
        cases: one :class:`CheckCase` per (mode, dtype).
        n_inputs: random inputs per case.
        device: where the model ran.
        first_broken: when a float64 case fails, the first node whose output stops being
            symmetric (a :class:`~symmetrize.passes.localize.BrokenNode`), else ``None``.
        notes: how the check ran (dropout switched off in train mode, why nothing was
            localised, ...).
    """

    cases: list[CheckCase] = field(default_factory=list)
    n_inputs: int = 0
    device: str = "cpu"
    first_broken: Any = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every case within its tolerance."""
        return bool(self.cases) and all(case.passed for case in self.cases)

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.cases), default=float("nan"))

    def case(self, mode: str, dtype: str | torch.dtype) -> CheckCase:
        """The case of ``mode`` (``"eval"``/``"train"``) and ``dtype``."""
        name = _dtype_name(dtype) if isinstance(dtype, torch.dtype) else dtype
        for c in self.cases:
            if c.mode == mode and c.dtype == name:
                return c
        raise KeyError(f"no {mode}/{name} case; cases: "
                       + ", ".join(f"{c.mode}/{c.dtype}" for c in self.cases))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able values (``first_broken`` a dict or ``None``)."""
        return {"passed": self.passed, "n_inputs": self.n_inputs, "device": self.device,
                "cases": [c.to_dict() for c in self.cases],
                "first_broken": None if self.first_broken is None
                else self.first_broken.to_dict(), "notes": list(self.notes)}

    def __str__(self) -> str:
        header = ("mode", "dtype", "max abs error", "max rel error", "tolerance", "")
        cells = [header] + [(c.mode, c.dtype, f"{c.max_abs:.2e}", f"{c.max_rel:.2e}",
                             f"{c.tolerance:.0e}", "ok" if c.passed else "FAILED")
                            for c in self.cases]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        lines = [f"equivariance check on {self.device}, {self.n_inputs} random inputs per case: "
                 + ("passed" if self.passed else "FAILED")]
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                  for row in cells]
        if self.first_broken is not None:
            lines.append(f"first broken: {self.first_broken}")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def check(model: nn.Module, spec: Spec | None = None, example_inputs: Sequence[Any] | torch.Tensor | None = None,
          *, n_inputs: int = 3, modes: Sequence[str] = ("eval", "train"),
          dtypes: Sequence[torch.dtype] | None = None,
          tolerances: dict[torch.dtype, float] | None = None, localize: bool = True,
          seed: int = 0) -> CheckResult:
    """Compare ``f(T x)`` with ``T f(x)`` (``f(x)`` for invariant outputs) on random inputs.

    Works on any model, converted or not, on its own device. The model's state is left as it
    was: parameters, buffers (BatchNorm running statistics), dtype, every module's train flag
    and the random number generators are restored.

    Args:
        model: the network.
        spec: how the mirror acts on its inputs and outputs; ``None``: the Spec a converted
            model was converted with.
        example_inputs: forward arguments giving the shapes (float tensors are replaced by
            random ones; other arguments are passed as they are). ``None``: the shapes a
            converted model was converted with.
        n_inputs: random inputs per case.
        modes: ``"eval"`` and/or ``"train"``. In train mode dropout is switched off (its masks
            are not tied between a joint and its twin) and BatchNorm uses batch statistics.
        dtypes: default float64 and the model's own dtype.
        tolerances: relative tolerance per dtype, overriding :data:`TOLERANCES`.
        localize: when a float64 case fails, run the traced graph on ``x`` and ``T x`` side by
            side and name the first node whose output is no longer symmetric.
        seed: seed of the random inputs (the global generators are not touched).

    Raises:
        ValueError: no example inputs for a model that was not converted, an unknown mode.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(modes, str) or not modes:
        raise ValueError(f"modes must be a non-empty list of 'eval' and/or 'train', got {modes!r}")
    for mode in modes:
        if mode not in ("eval", "train"):
            raise ValueError(f"unknown mode {mode!r}; modes are 'eval' and 'train'")
    if isinstance(n_inputs, bool) or not isinstance(n_inputs, int) or n_inputs < 1:
        raise ValueError(f"n_inputs must be an integer >= 1, got {n_inputs!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    spec = _spec(model, spec)
    templates = _templates(model, example_inputs)
    device = device_of(model)
    own = dtype_of(model)
    wanted = list(dict.fromkeys(dtypes if dtypes is not None else (torch.float64, own)))
    for dtype in wanted:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtypes must be floating torch dtypes such as torch.float64, got "
                             f"{dtype!r}")
    tol = {**TOLERANCES, **_tolerances(tolerances)}
    generator = torch.Generator().manual_seed(seed)
    draws = [_random_inputs(templates, generator) for _ in range(n_inputs)]
    result = CheckResult(n_inputs=n_inputs, device=str(device))
    if device.type == "cuda":
        result.notes.append("TF32 switched off during the check (it rounds x and T x apart)")
    if "train" in modes:
        result.notes.append("train mode: dropout switched off (its masks are not mirror-tied)")
    with no_tf32():
        _run_cases(model, spec, draws, wanted, modes, tol, device, result)
        failed = next((c.mode for c in result.cases if not c.passed and c.dtype == "float64"),
                      None)
        if localize and failed is not None:
            with restored(model):
                _localize(model, spec, draws, failed, device, result)
        elif localize and not result.passed:
            result.notes.append("float64 passes, so the failure is rounding in the lower "
                                "precision, not a broken symmetry: nothing to localise")
    return result


def _run_cases(model: nn.Module, spec: Spec, draws: list[tuple[Any, ...]],
               dtypes: Sequence[torch.dtype], modes: Sequence[str],
               tol: dict[torch.dtype, float], device: torch.device, result: CheckResult) -> None:
    for dtype in dtypes:
        for mode in modes:
            abs_err, rel_err = 0.0, 0.0
            with restored(model):  # each case starts from the model's own state
                to_dtype(model, dtype)
                for draw in draws:
                    a, r = _error(model, spec, _cast(draw, dtype, device), mode == "train")
                    abs_err, rel_err = worst(abs_err, a), worst(rel_err, r)
            result.cases.append(CheckCase(mode, _dtype_name(dtype), abs_err, rel_err,
                                          tol.get(dtype, 1e-5)))


def _localize(model: nn.Module, spec: Spec, draws: list[tuple[Any, ...]], mode: str,
              device: torch.device, result: CheckResult) -> None:
    from symmetrize.passes.localize import first_broken_node
    from symmetrize.passes.trace import TraceError

    to_dtype(model, torch.float64)
    model.train(mode == "train")
    inputs = [_cast(draw, torch.float64, device) for draw in draws]
    leaves = _leaf_types(model)
    try:
        with _NoDropout():
            result.first_broken = first_broken_node(model, spec, inputs, leaves)
    except TraceError as error:
        result.notes.append(f"could not localise the failure: the model does not trace "
                            f"({str(error).splitlines()[0]})")
        return
    if result.first_broken is None:
        result.notes.append(f"every node is symmetric when run node by node in {mode} mode: "
                            "the failure comes from state the graph does not show (random "
                            "numbers, running statistics)")


def equivariance_error(model: nn.Module, spec: Spec, inputs: tuple[Any, ...],
                       train: bool = False) -> float:
    """Max ``|f(T x) - T f(x)|`` over the outputs, in float64, in eval mode (or train mode).

    The model is switched to float64 (and the mode) in place, then restored, as in
    :func:`check`. A deep copy of a large model would cost more than the two forward passes.
    """
    with restored(model):
        to_dtype(model, torch.float64)
        xs = _cast(inputs, torch.float64, None)
        return _error(model, spec, xs, train)[0]


# ----------------------------------------------------------------------------- internals
def _error(model: nn.Module, spec: Spec, xs: tuple[Any, ...], train: bool) -> tuple[float, float]:
    """(max abs, max rel) of ``f(T x) - T f(x)`` over every output leaf, dropout off in train
    mode. Both runs start from the same random state, so random ops other than dropout
    (stochastic depth, noise) draw the same numbers for ``x`` and ``T x``; tensors the model
    makes in ``forward`` follow the inputs' float64 through the default dtype."""
    mirrored = tuple(spec.mirror_input(i, x) if isinstance(x, torch.Tensor)
                     and not spec.is_invariant_input(i) else x for i, x in enumerate(xs))
    model.train(train)
    devices = cuda_devices(model)
    wide = any(isinstance(x, torch.Tensor) and x.dtype == torch.float64 for x in xs)
    with torch.no_grad(), (_NoDropout() if train else contextlib.nullcontext()), \
            (default_dtype(torch.float64) if wide else contextlib.nullcontext()):
        with torch.random.fork_rng(devices=devices):
            out = model(*xs)
        with torch.random.fork_rng(devices=devices):
            out_m = model(*mirrored)
    free = getattr(getattr(model, "symmetrize_report", None), "free_outputs", None)
    abs_err, scale = output_error(spec, out, out_m, free)
    return abs_err, abs_err / scale if scale > 0 else abs_err


def _tolerances(given: Any) -> dict[torch.dtype, float]:
    """Tolerances by dtype; keys may be dtypes or their names (``"float32"``, ``"fp32"``)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise TypeError(f"tolerances must be a dict of dtype -> relative tolerance, got "
                        f"{type(given).__name__}")
    aliases = {"fp64": torch.float64, "fp32": torch.float32, "fp16": torch.float16,
               "bf16": torch.bfloat16, "double": torch.float64, "float": torch.float32,
               "half": torch.float16}
    out = {}
    for key, value in given.items():
        dtype = key if isinstance(key, torch.dtype) else aliases.get(str(key).lower()) or \
            getattr(torch, str(key).removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"tolerances: {key!r} is not a floating dtype (use torch.float32 or "
                             "'float32')")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < 0:
            raise ValueError(f"tolerances[{key!r}] must be a finite number >= 0, got {value!r}")
        out[dtype] = float(value)
    return out


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _spec(model: nn.Module, spec: Spec | None) -> Spec:
    if spec is not None:
        if not isinstance(spec, Spec):
            raise TypeError(f"spec must be a symmetrize.Spec, got {type(spec).__name__}")
        return spec
    recorded = getattr(getattr(model, "symmetrize_report", None), "spec", None)
    if recorded is None:
        raise ValueError(f"check({type(model).__name__}) needs a spec: only a model converted "
                         "by symmetrize() remembers its Spec")
    return recorded


def _templates(model: nn.Module, example_inputs: Sequence[Any] | torch.Tensor | None
               ) -> tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if example_inputs is not None:
        return tuple(example_inputs)
    report = getattr(model, "symmetrize_report", None)
    recorded = getattr(report, "inputs", None)
    if not recorded:
        raise ValueError(f"check({type(model).__name__}, spec) needs example_inputs (the "
                         "forward arguments, any values of the right shapes): only a model "
                         "converted by symmetrize() remembers its input shapes")
    return tuple(torch.empty(item["shape"], dtype=getattr(torch, item["dtype"]))
                 if "shape" in item else item["value"] for item in recorded)


def _random_inputs(templates: tuple[Any, ...], generator: torch.Generator) -> tuple[Any, ...]:
    return tuple(torch.randn(t.shape, generator=generator, dtype=torch.float64)
                 if isinstance(t, torch.Tensor) and t.is_floating_point() else t
                 for t in templates)


def _cast(xs: tuple[Any, ...], dtype: torch.dtype, device: torch.device | None
          ) -> tuple[Any, ...]:
    return tuple(x.to(device=device if device is not None else x.device, dtype=dtype)
                 if isinstance(x, torch.Tensor) and x.is_floating_point() else
                 (x.to(device) if isinstance(x, torch.Tensor) and device is not None else x)
                 for x in xs)


def _leaf_types(model: nn.Module) -> tuple[type, ...]:
    """Module types traced as single nodes: those a converted model trusts as equivariant, and
    those with a user-registered rule (their insides need not be symmetric node by node)."""
    from symmetrize.rules import rule_leaf_types

    report = getattr(model, "symmetrize_report", None)
    paths = (getattr(report, "options", None) or {}).get("assume_equivariant", ())
    modules = dict(model.named_modules())
    return tuple({type(modules[p]) for p in paths if p in modules} | rule_leaf_types(model))

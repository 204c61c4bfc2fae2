"""What :func:`~symmetrize.train.fit` trains on: the model and datasets checked before any work,
the batch order of every epoch, and batches stacked from dataset items."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

__all__ = ["check_callables", "check_dataset", "check_model", "collate", "order"]

_ITEM = "a tuple (input, ..., target) of tensors or arrays"


def check_model(model: Any) -> None:
    """A :class:`torch.nn.Module` with trainable parameters holding real values."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    named = list(model.named_parameters())
    if not any(p.requires_grad for _, p in named):
        what = "no parameters" if not named else f"{len(named)} parameters, all frozen"
        raise ValueError(f"{type(model).__name__} has {what}: there is nothing to train. Fix: "
                         "pass the model with its trainable layers (requires_grad=True)")
    meta = [name for name, t in [*named, *model.named_buffers()] if t.is_meta]
    if meta:
        raise ValueError(f"{type(model).__name__} has {len(meta)} tensors on the meta device "
                         f"(shapes without values), e.g. {meta[0]!r}. Fix: materialise the model "
                         "first (model.to_empty(device='cpu'), then load its weights)")


def check_callables(**functions: Any) -> None:
    """Each named argument ``None`` or callable."""
    for name, function in functions.items():
        if function is not None and not callable(function):
            raise TypeError(f"{name} must be a function or None, got "
                            f"{type(function).__name__} {function!r}")


def check_dataset(data: Any, name: str, arity: int | None = None) -> tuple[int, int]:
    """``(length, items' arity)`` of a map-style dataset whose first and last items are
    ``(input, ..., target)`` tuples of tensors (``arity`` elements when given)."""
    if isinstance(data, (str, bytes)) or not hasattr(data, "__getitem__"):
        raise TypeError(f"the {name} set must be a map-style Dataset (len() and [i]) whose "
                        f"items are {_ITEM}, got {type(data).__name__}")
    try:
        n = len(data)
    except TypeError:
        raise TypeError(f"the {name} set must have a length (a map-style Dataset), got "
                        f"{type(data).__name__}") from None
    if n == 0:
        raise ValueError(f"the {name} set is empty: check the split (subjects, actions, files)")
    first = _item(data, 0, name)
    if arity is not None and len(first) != arity:
        raise ValueError(f"{name} item 0 has {len(first)} elements but the training items have "
                         f"{arity}: both sets need the same (input, ..., target) structure")
    if n > 1:
        last = _item(data, n - 1, name)
        shapes = [tuple(torch.as_tensor(x).shape) for x in first]
        if [tuple(torch.as_tensor(x).shape) for x in last] != shapes:
            raise ValueError(f"{name} items 0 and {n - 1} differ in shape ("
                             f"{_shapes(first)} vs {_shapes(last)}): every item must have the "
                             "same shapes so that they stack into batches")
    return n, len(first)


def _item(data: Any, index: int, name: str) -> tuple[Any, ...]:
    try:
        item = data[index]
    except Exception as err:
        raise ValueError(f"reading {name} item {index} failed: {type(err).__name__}: "
                         f"{err}") from err
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise ValueError(f"each {name} item must be {_ITEM}, but item {index} is a "
                         f"{type(item).__name__}" + (f" of {len(item)} element"
                                                     if isinstance(item, (tuple, list)) else ""))
    for k, element in enumerate(item):
        if isinstance(element, torch.Tensor):
            continue
        if isinstance(element, (np.ndarray, np.generic, int, float)) \
                and np.asarray(element).dtype.kind in "biuf":
            continue
        raise ValueError(f"{name} item {index}, element {k}: a {type(element).__name__}, not a "
                         f"tensor or a numeric array (each item must be {_ITEM})")
    return tuple(item)


def _shapes(item: tuple[Any, ...]) -> str:
    return ", ".join(str(tuple(torch.as_tensor(x).shape)) for x in item)


def order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's sample order: a function of the seed and the epoch only."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def collate(data: Dataset, indices: torch.Tensor, device: torch.device) -> list[torch.Tensor]:
    """The items at ``indices`` stacked column by column, on ``device``."""
    items = [data[int(i)] for i in indices]
    first = items[0]
    if not isinstance(first, (tuple, list)) or len(first) < 2:
        raise ValueError(f"each dataset item must be {_ITEM}, got {type(first).__name__}")
    columns = []
    for k in range(len(first)):
        try:
            column = [torch.as_tensor(item[k]) for item in items]
            stacked = torch.stack(column)
        except (RuntimeError, TypeError, ValueError, IndexError) as err:
            shapes = sorted({tuple(torch.as_tensor(item[k]).shape) for item in items
                             if isinstance(item, (tuple, list)) and len(item) > k}, key=str)
            raise ValueError(f"items {[int(i) for i in indices[:4]]}... do not stack: element "
                             f"{k} has shapes {shapes[:4]} ({type(err).__name__}). Fix: give "
                             "every item the same structure and shapes") from None
        columns.append(stacked.to(device, non_blocking=True))
    return columns

"""What the tracer treats as metadata rather than data, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FACTORIES", "OWN_ATTRS", "SCALARS", "STATIC_ATTRS", "STATIC_FUNCTIONS",
           "STATIC_METHODS", "Specialisation", "TraceError", "VALUE_METHODS"]

STATIC_ATTRS = frozenset({
    "shape", "ndim", "dtype", "device", "is_cuda", "is_sparse", "is_quantized", "is_meta",
    "layout", "requires_grad", "is_leaf",
})
#: tensor methods whose result describes metadata, not data
STATIC_METHODS = frozenset({
    "size", "dim", "ndimension", "numel", "nelement", "stride", "is_contiguous",
    "is_floating_point", "is_complex", "get_device", "element_size", "storage_offset",
})
STATIC_FUNCTIONS = frozenset({torch.numel, torch.is_floating_point, torch.is_complex})
#: methods that move tensor data into Python
VALUE_METHODS = frozenset({"item", "tolist", "numpy", "__array__", "data_ptr"})
#: attributes of the proxy objects themselves (never proxied, even when not set yet)
OWN_ATTRS = frozenset({"node", "_node", "tracer", "root", "attr"})
SCALARS = (bool, int, float, str, type(None))
#: factories that torch's argument parser rejects with proxies among varargs sizes
#: (``torch.zeros(x.shape[0], 4)``): recorded as call_function nodes instead
FACTORIES = (torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn,
              torch.randint, torch.tensor, torch.as_tensor)


class TraceError(ValueError):
    """Tracing failed: the message names the model, the source line, the operation and a fix."""

    def __init__(self, model: str, source: str | None, operation: str, fix: str) -> None:
        self.model, self.source, self.operation, self.fix = model, source, operation, fix
        where = f" at {source}" if source else ""
        super().__init__(f"cannot trace {model}{where}: {operation}. Fix: {fix}")


@dataclass(frozen=True)
class Specialisation:
    """A concrete value the traced graph relies on (a guard that is not checked at run time).

    Attributes:
        node_name: the node whose concrete value was used (a size-only node that ends up unused is
            removed from the final graph; the name then refers to the trace).
        kind: how it was used: ``"bool"``, ``"int"``, ``"float"``, ``"index"``, ``"iter"``,
            ``"len"`` or ``"dim"``.
        value: the concrete value used (for ``"iter"``: the number of items).
        source_line: ``"file:line"`` of the user code that used it.
        expr: a readable expression for the value, e.g. ``"x.shape[1]"``.
    """

    node_name: str
    kind: str
    value: Any
    source_line: str | None
    expr: str = ""

    def __str__(self) -> str:
        where = self.source_line
        return f"{self.expr or self.node_name} -> {self.value!r} ({self.kind}) at {where}"

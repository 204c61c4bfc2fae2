"""Proxies that know their concrete value: size-derived values may enter Python code."""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import fx
from torch.fx.graph import magic_methods
from torch.fx.proxy import Attribute

from symmetrize.passes.tracing.stand_ins import stand_in_attribute
from symmetrize.passes.tracing.vocabulary import OWN_ATTRS, STATIC_ATTRS, STATIC_METHODS

if TYPE_CHECKING:
    from symmetrize.passes.tracing.tracer import ShadowTracer

__all__ = ["ShadowAttribute", "ShadowProxy", "expression"]

def _format_arg(arg: Any) -> str:
    """Readable form of a node argument (for :attr:`Specialisation.expr`)."""
    if isinstance(arg, fx.Node):
        return expression(arg)
    if isinstance(arg, slice):
        parts = ["" if p is None else _format_arg(p) for p in (arg.start, arg.stop, arg.step)]
        return ":".join(parts[:2] if arg.step is None else parts)
    if isinstance(arg, tuple):
        return ", ".join(_format_arg(a) for a in arg)
    return repr(arg)


def expression(node: fx.Node, depth: int = 0) -> str:
    """Readable expression for a size computation, e.g. ``"(x.shape[-1] == 3)"``."""
    if depth > 6:
        return node.name
    if node.op == "placeholder":
        return str(node.target).lstrip("*")
    args = node.args
    if node.op == "call_function":
        if node.target is getattr and len(args) == 2 and isinstance(args[0], fx.Node):
            return f"{expression(args[0], depth + 1)}.{args[1]}"
        if node.target is operator.getitem and isinstance(args[0], fx.Node):
            return f"{expression(args[0], depth + 1)}[{_format_arg(args[1])}]"
        name = getattr(node.target, "__name__", "")
        if getattr(node.target, "__module__", "") == "_operator" and name in magic_methods \
                and name not in ("getitem",):
            text = magic_methods[name].format(*(_format_arg(a) for a in args))
            return f"({text})" if len(args) > 1 else text
    if node.op == "call_method" and node.target in STATIC_METHODS and isinstance(args[0], fx.Node):
        rest = ", ".join(_format_arg(a) for a in args[1:])
        return f"{expression(args[0], depth + 1)}.{node.target}({rest})"
    return node.name


class ShadowProxy(fx.Proxy):
    """An fx proxy that knows its concrete value; size-derived values may enter Python code."""

    tracer: ShadowTracer

    # --- concrete value and flags -------------------------------------------------------------
    @property
    def concrete(self) -> Any:
        """The concrete value computed on the example inputs."""
        return self.node.meta["example_value"]

    @property
    def size_derived(self) -> bool:
        """Whether the value depends only on tensor sizes / metadata (never on tensor data)."""
        return bool(self.node.meta.get("size_derived", False))

    def _expr(self) -> str:
        return expression(self.node)

    def _node_name(self) -> str:
        return self.node.name

    def _specialise(self, kind: str, value: Any, expr: str | None = None) -> None:
        self.tracer.record(self._node_name(), kind, value, expr or self._expr())

    def _scalar(self, kind: str, convert: Callable[[Any], Any], op: str) -> Any:
        value = self.concrete
        if self.size_derived:
            result = convert(value)
            self._specialise(kind, result)
            return result
        raise self.tracer.data_dependent(self, op)

    # --- Python protocol hooks ------------------------------------------------------------------
    def __len__(self) -> int:
        value = self.concrete
        if isinstance(value, (torch.Tensor, torch.Size)) or self.size_derived:
            n = len(value)
            self._specialise("len", n, f"len({self._expr()})")
            return n
        if isinstance(value, (tuple, list, dict)):
            return len(value)
        raise self.tracer.data_dependent(self, "len()")

    def __bool__(self) -> bool:
        value = self.concrete
        if not self.size_derived and isinstance(value, (tuple, list, dict)):
            return bool(value)  # the structure of a Python container, e.g. a module's outputs
        return self._scalar("bool", bool, "bool() (an `if`, `while`, `assert`, `and`/`or`)")

    def __int__(self) -> int:
        return self._scalar("int", int, "int()")

    def __float__(self) -> float:
        return self._scalar("float", float, "float()")

    def __index__(self) -> int:
        return self._scalar("index", operator.index, "use as a Python int (range(), indexing)")

    def __iter__(self) -> Iterator[fx.Proxy]:
        value = self.concrete
        if isinstance(value, torch.Tensor) and value.dim() == 0:
            raise TypeError("iteration over a 0-d tensor")
        if isinstance(value, (torch.Tensor, torch.Size)) or self.size_derived:
            n = len(value)
            self._specialise("iter", n, f"len({self._expr()})")
        elif isinstance(value, (tuple, list)):
            n = len(value)
            if self.node.op in ("call_function", "call_method") \
                    and self.node.target is not operator.getitem:
                # e.g. x.unbind(1) or x.split(...): the number of pieces can be a size
                self._specialise("iter", n, f"len({self._expr()})")
        else:
            raise self.tracer.data_dependent(self, f"iteration over {type(value).__name__}")
        return (self[i] for i in range(n))  # type: ignore[index]

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise self.tracer.value_escape(self, "NumPy conversion (np.asarray / np.array)")

    def __getattr__(self, name: str) -> Any:
        if (name.startswith("__") and name.endswith("__")) or name in OWN_ATTRS:
            raise AttributeError(name)  # protocol probes (numpy, copy) and our own fields
        value = self.concrete
        if isinstance(value, torch.Tensor):
            if name == "ndim":
                self._specialise("dim", value.ndim, f"{self._expr()}.ndim")
                return value.ndim
            if name in ("dim", "ndimension"):
                def dim() -> int:
                    self._specialise("dim", value.dim(), f"{self._expr()}.dim()")
                    return value.dim()
                return dim
        return ShadowAttribute(self, name)


class ShadowAttribute(Attribute, ShadowProxy):
    """``proxy.attr``: a method call, or (lazily, only if used in the graph) a getattr node."""

    root: ShadowProxy

    @property
    def concrete(self) -> Any:
        if self._node is not None:
            return self._node.meta["example_value"]
        return stand_in_attribute(self.root.concrete, self.attr, self.tracer.device)

    @property
    def size_derived(self) -> bool:
        if self._node is not None:
            return bool(self._node.meta.get("size_derived", False))
        return self.attr in STATIC_ATTRS or self.root.size_derived

    def _expr(self) -> str:
        return f"{self.root._expr()}.{self.attr}"

    def _node_name(self) -> str:
        return self._node.name if self._node is not None else self.root._node_name()

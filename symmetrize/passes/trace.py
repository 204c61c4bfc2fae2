"""Trace real pose-network code into a ``torch.fx`` graph by *shadow execution*.

Plain :func:`torch.fx.symbolic_trace` rejects code that pose-network authors write all the time:
``assert len(x.shape) == 4``, ``for t in range(x.shape[1])``, ``if x.shape[-1] == 3:`` and
Python flags such as ``forward(self, x, teacher_forcing=False)``. :func:`trace` runs the model on
example inputs *while* tracing it: every proxy carries the concrete value of its node, so

* ``len(proxy)``, ``x.dim()`` and ``x.ndim`` return concrete ints and record nothing in the graph;
* ``x.shape`` / ``x.size()`` stay symbolic, so ``x.view(x.shape[0], -1)`` keeps the batch size (and
  every size not used in Python control flow) free in the graph;
* ``bool`` / ``int`` / ``float`` / ``__index__`` / iteration on *size-derived* values use the
  concrete value and record a :class:`Specialisation` (a guard the graph silently relies on);
* the same on values derived from tensor *data* (``if x.sum() > 0``) is a :class:`TraceError`, as
  are ``.item()``, ``.tolist()`` and NumPy conversion.

A value is *size-derived* when it comes from ``shape`` / ``size()`` / ``dim()`` / ``numel()`` /
``dtype`` / ``device`` (and similar metadata), or is a non-tensor result of an operation whose
proxy inputs are all size-derived (``x.shape[1] - 2``, ``x.shape[-1] == 3``). The flag is stored
in ``node.meta["size_derived"]``; the concrete value in ``node.meta["example_value"]`` and the
user's source location in ``node.meta["source"]`` (``"file:line"``), and the path of the module
whose ``forward`` made it in ``node.meta["module"]``.

Forward parameters that the example inputs do not cover and whose default is a ``bool`` / ``int``
/ ``float`` / ``str`` / ``None`` are traced as concrete arguments with their default (Python flags
like ``teacher_forcing=False``); :func:`trace`'s ``concrete_args`` overrides them. A concrete
argument stays in the traced ``forward``'s signature with the traced value as its default, guarded
by a ``torch._assert`` (passing another value fails loudly instead of computing the wrong thing).

The graph is specialised to the model's train/eval mode at trace time wherever Python code reads
``self.training`` (leaf modules such as ``nn.Dropout`` keep following their own mode).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import linecache
import operator
import os
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _assert_is_none as _fx_assert_is_none
from torch.fx import _symbolic_trace as _fx_symbolic_trace
from torch.fx._symbolic_trace import _maybe_revert_all_patches
from torch.fx.graph import magic_methods
from torch.fx.proxy import Attribute

__all__ = ["Specialisation", "TraceError", "TraceResult", "trace"]

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_STDLIB_DIR = sysconfig.get_paths()["stdlib"] + os.sep
_THIS_FILE = os.path.abspath(__file__)

#: tensor attributes that describe metadata, not data
_STATIC_ATTRS = frozenset({
    "shape", "ndim", "dtype", "device", "is_cuda", "is_sparse", "is_quantized", "is_meta",
    "layout", "requires_grad", "is_leaf",
})
#: tensor methods whose result describes metadata, not data
_STATIC_METHODS = frozenset({
    "size", "dim", "ndimension", "numel", "nelement", "stride", "is_contiguous",
    "is_floating_point", "is_complex", "get_device", "element_size", "storage_offset",
})
_STATIC_FUNCTIONS = frozenset({torch.numel, torch.is_floating_point, torch.is_complex})
#: methods that move tensor data into Python
_VALUE_METHODS = frozenset({"item", "tolist", "numpy", "__array__", "data_ptr"})
#: attributes of the proxy objects themselves (never proxied, even when not set yet)
_OWN_ATTRS = frozenset({"node", "_node", "tracer", "root", "attr"})
_SCALARS = (bool, int, float, str, type(None))
#: factories that torch's argument parser rejects with proxies among varargs sizes
#: (``torch.zeros(x.shape[0], 4)``): recorded as call_function nodes instead
_FACTORIES = (torch.zeros, torch.ones, torch.empty, torch.full, torch.rand, torch.randn,
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


@dataclass
class TraceResult:
    """What :func:`trace` returns."""

    graph_module: fx.GraphModule
    example_outputs: Any
    specialisations: list[Specialisation] = field(default_factory=list)
    #: the concrete (non-graph) forward arguments used: given ones and auto-detected defaults
    concrete_args: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        graph = self.graph_module.graph
        ops: dict[str, int] = {}
        for node in graph.nodes:
            ops[node.op] = ops.get(node.op, 0) + 1
        inputs = [n.target for n in graph.nodes if n.op == "placeholder"]
        counts = ", ".join(f"{k}={v}" for k, v in ops.items())
        lines = [f"TraceResult({type(self.graph_module).__name__}: inputs {inputs}, {counts};",
                 f"  outputs {_describe(self.example_outputs)};"]
        if self.concrete_args:
            lines.append(f"  concrete_args {self.concrete_args};")
        lines.append(f"  {len(self.specialisations)} specialisation(s)"
                     + (":" if self.specialisations else ")"))
        lines += [f"    {s}" for s in self.specialisations]
        if self.specialisations:
            lines[-1] += ")"
        return "\n".join(lines)


def _describe(value: Any) -> str:
    """Short description of a (nested) value: tensors by shape."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(_describe(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _is_user_file(filename: str) -> bool:
    """Whether ``filename`` is user code (not torch, the standard library or this module)."""
    if filename.startswith("<frozen"):
        return False
    path = os.path.abspath(filename)
    return not (path.startswith(_TORCH_DIR) or path.startswith(_STDLIB_DIR) or path == _THIS_FILE)


def _user_frame() -> tuple[str, str] | None:
    """``("file:line", code)`` of the innermost user frame on the current stack."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if _is_user_file(filename):
            code = linecache.getline(filename, frame.f_lineno).strip()
            return f"{filename}:{frame.f_lineno}", code
        frame = frame.f_back
    return None


def _user_stack() -> list[traceback.FrameSummary]:
    """User frames (outermost first) between ``Tracer.trace`` and the current call."""
    frames: list[traceback.FrameSummary] = []
    frame = sys._getframe(1)
    suffix = os.path.join("fx", "_symbolic_trace.py")
    while frame is not None:
        code = frame.f_code
        if code.co_name == "trace" and code.co_filename.endswith(suffix):
            frames.reverse()
            return frames
        if _is_user_file(code.co_filename):
            frames.append(traceback.FrameSummary(code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return []


def _exception_frame(exc: BaseException) -> tuple[str, str] | None:
    """``("file:line", code)`` of the innermost user frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if _is_user_file(filename):
            code = linecache.getline(filename, tb.tb_lineno).strip()
            found = (f"{filename}:{tb.tb_lineno}", code)
        tb = tb.tb_next
    return found


def _detach(value: Any) -> Any:
    """``value`` with tensors detached (tuples/lists/dicts mapped, other values as they are)."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if type(value) in (tuple, list):
        return type(value)(_detach(v) for v in value)
    if type(value) is dict:
        return {k: _detach(v) for k, v in value.items()}
    return value


def _concrete(arg: Any) -> Any:
    """``arg`` with every proxy replaced by its concrete value."""
    if isinstance(arg, ShadowProxy):
        return arg.concrete
    if isinstance(arg, fx.Proxy):
        return arg.node.meta["example_value"]
    if isinstance(arg, tuple):
        values = [_concrete(a) for a in arg]
        return type(arg)(*values) if hasattr(arg, "_fields") else type(arg)(values)
    if isinstance(arg, list):
        return [_concrete(a) for a in arg]
    if isinstance(arg, dict):
        return {k: _concrete(v) for k, v in arg.items()}
    if isinstance(arg, slice):
        return slice(_concrete(arg.start), _concrete(arg.stop), _concrete(arg.step))
    return arg


def _proxies(arg: Any) -> Iterator[fx.Proxy]:
    """Every proxy inside a (nested) argument."""
    if isinstance(arg, fx.Proxy):
        yield arg
    elif isinstance(arg, (tuple, list)):
        for a in arg:
            yield from _proxies(a)
    elif isinstance(arg, dict):
        for a in arg.values():
            yield from _proxies(a)
    elif isinstance(arg, slice):
        yield from _proxies((arg.start, arg.stop, arg.step))


def _format_arg(arg: Any) -> str:
    """Readable form of a node argument (for :attr:`Specialisation.expr`)."""
    if isinstance(arg, fx.Node):
        return _expr(arg)
    if isinstance(arg, slice):
        parts = ["" if p is None else _format_arg(p) for p in (arg.start, arg.stop, arg.step)]
        return ":".join(parts[:2] if arg.step is None else parts)
    if isinstance(arg, tuple):
        return ", ".join(_format_arg(a) for a in arg)
    return repr(arg)


def _expr(node: fx.Node, depth: int = 0) -> str:
    """Readable expression for a size computation, e.g. ``"(x.shape[-1] == 3)"``."""
    if depth > 6:
        return node.name
    if node.op == "placeholder":
        return str(node.target).lstrip("*")
    args = node.args
    if node.op == "call_function":
        if node.target is getattr and len(args) == 2 and isinstance(args[0], fx.Node):
            return f"{_expr(args[0], depth + 1)}.{args[1]}"
        if node.target is operator.getitem and isinstance(args[0], fx.Node):
            return f"{_expr(args[0], depth + 1)}[{_format_arg(args[1])}]"
        name = getattr(node.target, "__name__", "")
        if getattr(node.target, "__module__", "") == "_operator" and name in magic_methods \
                and name not in ("getitem",):
            text = magic_methods[name].format(*(_format_arg(a) for a in args))
            return f"({text})" if len(args) > 1 else text
    if node.op == "call_method" and node.target in _STATIC_METHODS and isinstance(args[0], fx.Node):
        rest = ", ".join(_format_arg(a) for a in args[1:])
        return f"{_expr(args[0], depth + 1)}.{node.target}({rest})"
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
        return _expr(self.node)

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
        if (name.startswith("__") and name.endswith("__")) or name in _OWN_ATTRS:
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
        return getattr(self.root.concrete, self.attr)

    @property
    def size_derived(self) -> bool:
        if self._node is not None:
            return bool(self._node.meta.get("size_derived", False))
        return self.attr in _STATIC_ATTRS or self.root.size_derived

    def _expr(self) -> str:
        return f"{self.root._expr()}.{self.attr}"

    def _node_name(self) -> str:
        return self._node.name if self._node is not None else self.root._node_name()


class ShadowTracer(fx.Tracer):
    """An ``fx.Tracer`` that executes each node on concrete values as it records it."""

    def __init__(self, root_name: str, inputs: dict[str, Any], concrete: dict[str, Any],
                 leaf_modules: Sequence[type]) -> None:
        super().__init__(autowrap_functions=_FACTORIES)
        self._autowrap_search.append(torch)  # patch ``torch.zeros`` etc. as attributes of torch
        # fx's own record_stack_traces symbolises with CapturedTraceback, which imports
        # torch._dynamo / torch._inductor on first use (seconds): walk the frames ourselves
        self.record_stack_traces = False
        self.root_name = root_name
        self.inputs = inputs
        self.concrete_values = concrete
        self.leaf_types = tuple(leaf_modules)
        self.specialisations: list[Specialisation] = []
        self._seen: set[tuple[str, Any, str, str | None]] = set()
        #: (qualified name, class) of the non-leaf modules being traced, innermost last
        self.call_stack: list[tuple[str, type]] = []
        from symmetrize.nn.shared import ChiralModule
        self._chiral = ChiralModule

    # --- leaves ---------------------------------------------------------------------------------
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(m, self.leaf_types) or isinstance(m, self._chiral):
            return True
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            return False
        return super().is_leaf_module(m, module_qualified_name)

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        if self.is_leaf_module(m, self.path_of_module(m)):
            return super().call_module(m, forward, args, kwargs)
        self.call_stack.append((self.path_of_module(m), type(m)))
        try:
            return super().call_module(m, forward, args, kwargs)
        except TraceError:
            raise
        except Exception as exc:
            raise self.wrap(exc) from exc
        finally:
            self.call_stack.pop()

    # --- proxies and nodes ----------------------------------------------------------------------
    def proxy(self, node: fx.Node) -> fx.Proxy:
        return ShadowProxy(node, self)

    def create_proxy(self, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                     name: str | None = None, type_expr: Any | None = None,
                     proxy_factory_fn: Callable[[fx.Node], fx.Proxy] | None = None) -> fx.Proxy:
        value: Any = None
        if kind == "placeholder":
            target, args, value = self._placeholder(target, args)
        elif kind != "get_attr":
            value = self._execute(kind, target, args, kwargs)
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = proxy.node
        if kind != "get_attr":
            node.meta["example_value"] = _detach(value)
        node.meta["size_derived"] = self._size_derived(kind, target, args, kwargs, value)
        return proxy

    def create_node(self, kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                    name: str | None = None, type_expr: Any | None = None) -> fx.Node:
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        if kind == "get_attr":  # also the tensor constants fx creates inside create_arg
            value: Any = self.root
            with _maybe_revert_all_patches():  # nn.Module.__getattr__ is patched while tracing
                for atom in str(target).split("."):
                    value = getattr(value, atom)
            node.meta["example_value"] = _detach(value)
            node.meta["size_derived"] = False
        frames = _user_stack()
        if frames:
            node.stack_trace = "".join(traceback.format_list(frames)).rstrip()
        node.meta["source"] = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None
        # the innermost (non-leaf) module whose forward made this node; "" for the root
        node.meta["module"] = self.call_stack[-1][0] if self.call_stack else ""
        return node

    def _placeholder(self, target: str, args: tuple[Any, ...]) -> tuple[str, tuple[Any, ...], Any]:
        """(target, default args, concrete value) of a placeholder."""
        name = target.lstrip("*")
        if name in self.inputs:
            return target, args, self.inputs[name]
        base, _, count = name.rpartition("_")
        if count == "1" and base in self.concrete_values:
            value = self.concrete_values[base]
            if isinstance(value, _SCALARS):  # keep the user's name; default = traced value
                return base, (value,), value
            return target, args, value
        if name in self.concrete_values:
            return target, args, self.concrete_values[name]
        if target.startswith("*"):  # *args / **kwargs the example inputs leave empty
            return target, args, {} if target.startswith("**") else ()
        raise TraceError(self.root_name, None, f"no example input for forward argument {name!r}",
                         f"pass it in example_inputs or concrete_args={{{name!r}: ...}}")

    def _execute(self, kind: str, target: Any, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> Any:
        """Run one node on the concrete values of its arguments."""
        if kind == "call_method" and target in _VALUE_METHODS:
            raise self.value_escape(args[0], f".{target}()")
        cargs, ckwargs = _concrete(args), _concrete(kwargs)
        try:
            with _maybe_revert_all_patches(), _is_fx_tracing_context(False), torch.no_grad():
                if kind == "call_function":
                    return target(*cargs, **ckwargs)
                if kind == "call_method":
                    return getattr(cargs[0], target)(*cargs[1:], **ckwargs)
                if kind == "call_module":
                    module = self.root.get_submodule(target)
                    if getattr(module, "inplace", False) is True:  # keep earlier example values
                        cargs = tuple(a.clone() if isinstance(a, torch.Tensor) else a
                                      for a in cargs)
                    return module(*cargs, **ckwargs)
        except TraceError:
            raise
        except Exception as exc:
            what = target if isinstance(target, str) else getattr(target, "__name__", target)
            raise self.wrap(exc, f"running {kind} {what!s} on the example inputs failed "
                                 f"({type(exc).__name__}: {exc})") from exc
        raise AssertionError(f"unexpected node kind {kind}")

    @staticmethod
    def _size_derived(kind: str, target: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                      value: Any) -> bool:
        if kind == "call_function" and target is getattr and len(args) == 2 \
                and args[1] in _STATIC_ATTRS:
            return True
        if (kind == "call_method" and target in _STATIC_METHODS) or \
                (kind == "call_function" and target in _STATIC_FUNCTIONS):
            return True
        if kind not in ("call_function", "call_method") or isinstance(value, torch.Tensor):
            return False
        proxies = list(_proxies((args, kwargs)))
        return bool(proxies) and all(isinstance(p, ShadowProxy) and p.size_derived for p in proxies)

    # --- specialisations and errors -------------------------------------------------------------
    def record(self, node_name: str, kind: str, value: Any, expr: str) -> None:
        """Record a specialisation at the current user source line."""
        where = _user_frame()
        source = where[0] if where else None
        key = (kind, value, expr, source)
        if key not in self._seen:
            self._seen.add(key)
            self.specialisations.append(Specialisation(node_name, kind, value, source, expr))

    def _leaf_fix(self) -> str | None:
        if not self.call_stack:
            return None
        path, cls = self.call_stack[-1]
        return (f"mark the submodule as a leaf with leaf_modules=[{cls.__name__}] (`{path}`; it "
                "will then be converted by local symmetrisation or kept)")

    def _flag_placeholder(self, proxy: fx.Proxy) -> tuple[str, Any] | None:
        """A non-tensor forward argument this proxy's value comes from, if any."""
        todo, seen = [proxy.node], set()
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            if node.op == "placeholder":
                value = node.meta.get("example_value")
                if not isinstance(value, torch.Tensor):
                    return str(node.target).lstrip("*"), value
            todo.extend(node.all_input_nodes)
        return None

    def data_dependent(self, proxy: fx.Proxy, op: str) -> TraceError:
        """The error for Python control flow on a value that depends on tensor data."""
        where = _user_frame()
        source, code = where if where else (None, "")
        flag = self._flag_placeholder(proxy)
        if flag is not None:
            name, value = flag
            what = (f"{op} on forward argument {name!r} (a Python {type(value).__name__} passed in "
                    "example_inputs is traced as a graph input)")
            fix = (f"put {value!r} after every tensor in example_inputs (trailing Python values "
                   f"are fixed at trace time), or pass concrete_args={{{name!r}: {value!r}}} to "
                   "trace()")
        else:
            expr = proxy._expr() if isinstance(proxy, ShadowProxy) else proxy.node.name
            what = (f"data-dependent control flow: {op} on `{expr}`, a value computed from tensor "
                    "data (not only sizes)")
            leaf = self._leaf_fix()
            fix = (f"{leaf}, or " if leaf else "") + (
                "move the data-dependent branch out of forward (or express it with torch.where)")
        if code:
            what += f" in `{code}`"
        return TraceError(self.root_name, source, what, fix)

    def value_escape(self, proxy: Any, op: str) -> TraceError:
        """The error for moving tensor data into Python (``.item()``, ``.tolist()``, NumPy)."""
        where = _user_frame()
        source, code = where if where else (None, "")
        what = f"data-dependent value: {op} moves tensor data into Python"
        if code:
            what += f" in `{code}`"
        leaf = self._leaf_fix()
        fix = (f"{leaf}, or " if leaf else "") + (
            "keep the value a tensor (torch ops instead of Python numbers), or move the "
            "data-dependent code out of forward")
        return TraceError(self.root_name, source, what, fix)

    def wrap(self, exc: BaseException, operation: str | None = None) -> TraceError:
        """A :class:`TraceError` for any other failure during tracing."""
        where = _exception_frame(exc) or _user_frame()
        source, code = where if where else (None, "")
        what = operation or f"{type(exc).__name__}: {exc}"
        if code:
            what += f" in `{code}`"
        leaf = self._leaf_fix()
        fix = (f"{leaf}, or " if leaf else "") + (
            "check that the model runs eagerly on example_inputs and move untraceable Python "
            "code out of forward")
        return TraceError(self.root_name, source, what, fix)


#: einops functions recorded as single ``call_function`` nodes (einops rejects proxies)
_EINOPS_FUNCTIONS = ("rearrange", "repeat", "reduce", "einsum", "pack", "unpack")


def _einops_functions() -> dict[int, Callable[..., Any]]:
    """``id -> function`` of einops' tensor functions, empty when einops is not installed."""
    try:
        import einops
    except ImportError:
        return {}
    found = (getattr(einops, name, None) for name in _EINOPS_FUNCTIONS)
    return {id(f): f for f in found if callable(f)}


def _recorded(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function``, recorded as one graph node when called on a proxy during tracing."""
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        proxy = next((p for a in (*args, *kwargs.values()) for p in _proxies(a)), None)
        if proxy is None:
            return function(*args, **kwargs)
        return proxy.tracer.create_proxy("call_function", function, args, kwargs)
    return call


@contextlib.contextmanager
def _einops_recorded(model: nn.Module) -> Iterator[None]:
    """Make einops' ``rearrange`` / ``repeat`` / ... traceable while tracing ``model``.

    einops dispatches on the tensor type and rejects fx proxies. Every reference to one of its
    functions in the globals of the model's forward code (``from einops import rearrange``) and
    in the ``einops`` module itself (``einops.rearrange(...)``) is swapped for a wrapper that
    records a single node whose target is the original function; the graph then calls einops
    on real tensors.
    """
    functions = _einops_functions()
    if not functions:
        yield
        return
    import einops
    namespaces = [vars(einops)]
    for module in model.modules():
        code = getattr(type(module).forward, "__globals__", None)
        if code is not None and all(code is not n for n in namespaces):
            namespaces.append(code)
    saved: list[tuple[dict[str, Any], str, Any]] = []
    try:
        for namespace in namespaces:
            for name, value in list(namespace.items()):
                if id(value) in functions and value is functions[id(value)]:
                    saved.append((namespace, name, value))
                    namespace[name] = _recorded(value)
        yield
    finally:
        for namespace, name, value in reversed(saved):
            namespace[name] = value


def split_flags(forward: Callable[..., Any], example: tuple[Any, ...]
                ) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Split example forward arguments into the leading tensors and the Python values after
    them (flags such as ``return_rep=True``), which become concrete arguments by name."""
    lead = next((i for i, x in enumerate(example) if not isinstance(x, torch.Tensor)),
                len(example))
    if any(not isinstance(x, _SCALARS) for x in example[lead:]):
        return example, {}
    try:
        names = list(inspect.signature(forward).bind_partial(*example).arguments)
    except TypeError:
        return example, {}
    return example[:lead], dict(zip(names[lead:], example[lead:], strict=True))


@contextlib.contextmanager
def _is_fx_tracing_context(value: bool) -> Iterator[None]:
    """Set fx's "tracing now" flag for a block (run example values eagerly inside a trace).

    torch >= 2.12 has this as ``_is_fx_tracing_context``; older releases keep a module flag."""
    own = getattr(_fx_symbolic_trace, "_is_fx_tracing_context", None)
    if own is not None:
        with own(value):
            yield
        return
    previous = _fx_symbolic_trace._is_fx_tracing_flag
    _fx_symbolic_trace._is_fx_tracing_flag = value
    try:
        yield
    finally:
        _fx_symbolic_trace._is_fx_tracing_flag = previous


def _auto_concrete(forward: Callable[..., Any], bound: dict[str, Any],
                   concrete_args: dict[str, Any]) -> dict[str, Any]:
    """``concrete_args`` plus every uncovered forward parameter with a scalar default."""
    concrete = dict(concrete_args)
    for name, param in inspect.signature(forward).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in bound \
                or name in concrete or param.default is param.empty:
            continue
        if isinstance(param.default, _SCALARS):
            concrete[name] = param.default
    return concrete


def _snapshot(model: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of every buffer (BatchNorm running stats, num_batches_tracked, ...)."""
    return [(b, b.detach().clone()) for b in model.buffers()]


def _assert_none(value: Any, message: str) -> Any:
    """Guard of a concrete ``None`` argument (replaces fx's ``_assert_is_none``).

    fx's version is registered with ``fx.wrap``; re-tracing a graph that calls it with plain
    ``symbolic_trace`` emits ``wrap("torch.fx._symbolic_trace._assert_is_none")`` into the new
    code, which breaks every later fx trace in the process (KeyError). This one records itself.
    """
    if isinstance(value, fx.Proxy):
        return value.tracer.create_proxy("call_function", _assert_none, (value, message), {})
    if value is not None:
        raise AssertionError(message)
    return None


def _remove_dead_code(graph: fx.Graph) -> None:
    """Drop unused size computations and unused ``getitem`` / ``getattr`` (leftovers of asserts,
    Python branches and tuple unpacking); calls with possible side effects are kept."""
    for node in reversed(list(graph.nodes)):
        if node.op in ("call_function", "call_method") and not node.users and (
                node.meta.get("size_derived") or node.target in (operator.getitem, getattr)):
            graph.erase_node(node)


def trace(model: nn.Module, example_inputs: tuple[Any, ...] | torch.Tensor,
          concrete_args: dict[str, Any] | None = None,
          leaf_modules: Sequence[type] = ()) -> TraceResult:
    """Trace ``model`` into an ``fx.GraphModule`` by shadow execution on ``example_inputs``.

    Args:
        model: the network, traced in its current train/eval mode; its buffers (BatchNorm running
            statistics), its attributes and the global RNG state are restored afterwards.
        example_inputs: positional forward arguments (a single tensor is accepted too).
        concrete_args: forward arguments fixed at trace time (Python flags). Parameters not
            covered by ``example_inputs`` whose default is a bool/int/float/str/None are added
            automatically with their default.
        leaf_modules: module classes kept as single ``call_module`` nodes, in addition to every
            ``torch.nn`` module except containers and every ``ChiralModule``.

    Returns:
        A :class:`TraceResult`; its graph module's class is named ``<ModelClass>Traced``.

    Raises:
        TraceError: data-dependent control flow, ``.item()`` / ``.tolist()`` / NumPy conversion,
            or any other failure, with the source line and a suggested fix.
    """
    if not isinstance(example_inputs, tuple):
        example_inputs = (example_inputs,) if isinstance(example_inputs, torch.Tensor) \
            else tuple(example_inputs)
    root_name = type(model).__name__
    forward = model.forward
    try:
        bound = inspect.signature(forward).bind_partial(*example_inputs).arguments
    except TypeError as exc:
        raise TraceError(root_name, None, f"example_inputs do not match forward: {exc}",
                         "pass one example value per positional forward argument") from exc
    given = dict(concrete_args or {})
    concrete = _auto_concrete(forward, bound, given)
    inputs = {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
              for k, v in bound.items() if k not in concrete}
    tracer = ShadowTracer(root_name, inputs, concrete, leaf_modules)

    tensors = [t for t in (*inputs.values(), *model.parameters(), *model.buffers())
               if isinstance(t, torch.Tensor)]
    cuda = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    state = _snapshot(model)
    attributes = set(vars(model))
    with torch.random.fork_rng(devices=cuda):
        try:
            with _einops_recorded(model):
                graph = tracer.trace(model, concrete_args=concrete or None)
        except TraceError:
            raise
        except Exception as exc:
            raise tracer.wrap(exc) from exc
        finally:
            with torch.no_grad():
                for buffer, saved in state:
                    buffer.copy_(saved)

    output = next(n for n in reversed(list(graph.nodes)) if n.op == "output")
    example_outputs = fx.node.map_arg(output.args[0], lambda n: n.meta["example_value"])
    _remove_dead_code(graph)
    for node in graph.nodes:
        node.meta.pop("is_wrapped", None)  # else fx emits ``wrap("torch.zeros")`` into the code
        if node.target is _fx_assert_is_none:
            node.target = _assert_none
    graph_module = fx.GraphModule(tracer.root, graph, class_name=f"{root_name}Traced")
    for name in set(vars(model)) - attributes:  # fx parks tensor constants on the root module
        delattr(model, name)
    return TraceResult(graph_module, example_outputs, tracer.specialisations, concrete)

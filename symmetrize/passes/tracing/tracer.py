"""The tracer: an ``fx.Tracer`` that runs each node on concrete values (or shape-only stand-ins)
as it records it."""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _maybe_revert_all_patches

from symmetrize.passes.tracing.flags import is_fx_tracing_context
from symmetrize.passes.tracing.frames import exception_frame, user_frame, user_stack
from symmetrize.passes.tracing.proxy import ShadowProxy
from symmetrize.passes.tracing.stand_ins import (
    has_stand_in,
    run_on_stand_ins,
    stand_in,
    stand_in_attribute,
)
from symmetrize.passes.tracing.values import concrete, detach, proxies
from symmetrize.passes.tracing.vocabulary import (
    FACTORIES,
    SCALARS,
    STATIC_ATTRS,
    STATIC_FUNCTIONS,
    STATIC_METHODS,
    VALUE_METHODS,
    Specialisation,
    TraceError,
)

__all__ = ["ShadowTracer"]

class ShadowTracer(fx.Tracer):
    """An ``fx.Tracer`` that executes each node on concrete values as it records it."""

    def __init__(self, root_name: str, inputs: dict[str, Any], concrete: dict[str, Any],
                 leaf_modules: Sequence[type]) -> None:
        super().__init__(autowrap_functions=FACTORIES)
        self._autowrap_search.append(torch)  # patch ``torch.zeros`` etc. as attributes of torch
        # fx's own record_stack_traces symbolises with CapturedTraceback, which imports
        # torch._dynamo / torch._inductor on first use (seconds): walk the frames ourselves
        self.record_stack_traces = False
        #: buffers become ``get_attr`` nodes like parameters, so ``self.h0.expand(batch, -1)``
        #: traces (a plain tensor attribute cannot take a proxy size)
        self.proxy_buffer_attributes = True
        self.root_name = root_name
        self.inputs = inputs
        #: where the real inputs live (stand-ins answer ``x.device`` with it)
        self.device = next((v.device for v in inputs.values() if isinstance(v, torch.Tensor)),
                           torch.device("cpu"))
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
            node.meta["example_value"] = detach(value)
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
            node.meta["example_value"] = detach(value)
            node.meta["size_derived"] = False
        frames = user_stack()
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
            return target, args, stand_in(self.inputs[name])
        base, _, count = name.rpartition("_")
        if count == "1" and base in self.concrete_values:
            value = self.concrete_values[base]
            if isinstance(value, SCALARS):  # keep the user's name; default = traced value
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
        if kind == "call_method" and target in VALUE_METHODS:
            raise self.value_escape(args[0], f".{target}()")
        cargs, ckwargs = concrete(args), concrete(kwargs)
        if kind == "call_function" and target is getattr and len(cargs) == 2 and \
                isinstance(cargs[1], str):
            return stand_in_attribute(cargs[0], cargs[1], self.device)
        # fx's patches (nn.Module.__call__ / __getattr__, wrapped functions) only matter to a
        # module run: reverting them costs more than most ops, so only modules pay for it
        unpatched = _maybe_revert_all_patches() if kind == "call_module" else \
            contextlib.nullcontext()
        try:
            if has_stand_in((cargs, ckwargs)):  # computed from the inputs: shapes only
                with unpatched, is_fx_tracing_context(False):
                    return run_on_stand_ins(kind, target, cargs, ckwargs, self.root, self.device)
            with unpatched, is_fx_tracing_context(False), torch.no_grad():
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
                and args[1] in STATIC_ATTRS:
            return True
        if (kind == "call_method" and target in STATIC_METHODS) or \
                (kind == "call_function" and target in STATIC_FUNCTIONS):
            return True
        if kind not in ("call_function", "call_method") or isinstance(value, torch.Tensor):
            return False
        found = list(proxies((args, kwargs)))
        return bool(found) and all(isinstance(p, ShadowProxy) and p.size_derived for p in found)

    # --- specialisations and errors -------------------------------------------------------------
    def record(self, node_name: str, kind: str, value: Any, expr: str) -> None:
        """Record a specialisation at the current user source line."""
        where = user_frame()
        source = where[0] if where else None
        key = (kind, value, expr, source)
        if key not in self._seen:
            self._seen.add(key)
            self.specialisations.append(Specialisation(node_name, kind, value, source, expr))

    def _leaf_fix(self, advice: str) -> str:
        """``advice``, after the offer to make the current submodule a leaf (when inside one)."""
        if not self.call_stack:
            return advice
        path, cls = self.call_stack[-1]
        return (f"mark the submodule as a leaf with leaf_modules=[{cls.__name__}] (`{path}`; it "
                f"will then be converted by local symmetrisation or kept), or {advice}")

    def _error(self, where: tuple[Any, str] | None, what: str, fix: str) -> TraceError:
        """The :class:`TraceError` at user frame ``where`` (``(source, code)`` or ``None``)."""
        source, code = where if where else (None, "")
        if code:
            what += f" in `{code}`"
        return TraceError(self.root_name, source, what, fix)

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
            fix = self._leaf_fix(
                "move the data-dependent branch out of forward (or express it with torch.where)")
        return self._error(user_frame(), what, fix)

    def value_escape(self, proxy: Any, op: str) -> TraceError:
        """The error for moving tensor data into Python (``.item()``, ``.tolist()``, NumPy)."""
        return self._error(user_frame(), f"data-dependent value: {op} moves tensor data into "
                           "Python", self._leaf_fix(
                               "keep the value a tensor (torch ops instead of Python numbers), or "
                               "move the data-dependent code out of forward"))

    def wrap(self, exc: BaseException, operation: str | None = None) -> TraceError:
        """A :class:`TraceError` for any other failure during tracing."""
        return self._error(exception_frame(exc) or user_frame(),
                           operation or f"{type(exc).__name__}: {exc}", self._leaf_fix(
                               "check that the model runs eagerly on example_inputs and move "
                               "untraceable Python code out of forward"))


#: einops functions recorded as single ``call_function`` nodes (einops rejects proxies)

"""The registry of per-op conversion rules.

A rule receives the pass's :class:`~symmetrize.rules.context.Context` and the fx node and
returns the node's :class:`~symmetrize.action.Action` (a tuple of them for a tuple output, ``None``
for a value the mirror does not touch). Module rules also record a *site*: the module's input and
output Reps and how to build its chiral twin. A call no rule claims goes to the *fallback* rule
(data movement by default), registered like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from torch import fx, nn

if TYPE_CHECKING:
    from symmetrize.rules.context import Context

__all__ = ["fallback_rule", "find_function_rule", "find_module_rule", "register_fallback_rule",
           "register_function_rule", "unregister_module_rule",
           "register_module_rule", "register_module_rule_by_name", "registered_module_names",
           "registered_module_types", "rule_leaf_types"]

ModuleRule = Callable[["Context", fx.Node, nn.Module, str], Any]
FunctionRule = Callable[["Context", fx.Node], Any]

_MODULE_RULES: dict[type, ModuleRule] = {}
_FUNCTION_RULES: dict[Any, FunctionRule] = {}
#: rules for classes of optional packages, keyed by ``"module.QualifiedName"``
_NAMED_MODULE_RULES: dict[str, ModuleRule] = {}


def register_module_rule(*types: type) -> Callable[[ModuleRule], ModuleRule]:
    """Decorator: ``rule(context, node, module, path)`` handles modules of these types
    (and their subclasses, unless a subclass has its own rule)."""
    def decorate(rule: ModuleRule) -> ModuleRule:
        for cls in types:
            _MODULE_RULES[cls] = rule
        return rule
    return decorate


def unregister_module_rule(*types: type) -> None:
    """Remove the rules registered for these module types (built-in ones included)."""
    for cls in types:
        _MODULE_RULES.pop(cls, None)


def register_module_rule_by_name(*names: str) -> Callable[[ModuleRule], ModuleRule]:
    """Decorator: like :func:`register_module_rule`, for classes named ``"package.module.Class"``
    (where they are defined), so that the package need not be imported to register the rule.
    A name without a dot (``"DropPath"``) matches a class of that name in any module."""
    def decorate(rule: ModuleRule) -> ModuleRule:
        for name in names:
            _NAMED_MODULE_RULES[name] = rule
        return rule
    return decorate


def class_name(cls: type) -> str:
    """``"package.module.Class"`` of a class, as :func:`register_module_rule_by_name` keys it."""
    return f"{cls.__module__}.{cls.__qualname__}"


def registered_module_names() -> frozenset[str]:
    """The class names with a rule registered by name."""
    return frozenset(_NAMED_MODULE_RULES)


def register_function_rule(*targets: Any) -> Callable[[FunctionRule], FunctionRule]:
    """Decorator: ``rule(context, node)`` handles ``call_function`` nodes of these callables
    and ``call_method`` nodes of these method names."""
    def decorate(rule: FunctionRule) -> FunctionRule:
        for target in targets:
            _FUNCTION_RULES[target] = rule
        return rule
    return decorate


def find_module_rule(module: nn.Module) -> ModuleRule | None:
    """The rule of the most specific registered class ``module`` is an instance of."""
    for cls in type(module).__mro__:
        rule = _MODULE_RULES.get(cls) or _NAMED_MODULE_RULES.get(class_name(cls)) or \
            _NAMED_MODULE_RULES.get(cls.__name__)
        if rule is not None:
            return rule
    return None


def registered_module_types() -> tuple[type, ...]:
    """Every module type with a rule (the tracer keeps their calls as single nodes)."""
    return tuple(_MODULE_RULES)


def rule_leaf_types(model: nn.Module) -> set[type]:
    """Module types in ``model`` that have a rule but that fx would trace through: rules
    registered outside torch and symmetrize, and rules registered by class name. Torch's own
    modules are single nodes anyway; a user subclass of one, with its own ``forward``, is
    traced through."""
    named = registered_module_names()
    found = {t for t in _MODULE_RULES if not t.__module__.startswith(("torch.", "symmetrize."))}
    for module in model.modules():
        if any(class_name(c) in named or c.__name__ in named for c in type(module).__mro__):
            found.add(type(module))
    return found


def find_function_rule(target: Any) -> FunctionRule | None:
    try:
        return _FUNCTION_RULES.get(target)
    except TypeError:  # an unhashable target
        return None


_FALLBACK: list[FunctionRule] = []


def register_fallback_rule(rule: FunctionRule) -> FunctionRule:
    """Decorator: the rule for calls that no other rule claims (the last one registered)."""
    _FALLBACK.append(rule)
    return rule


def fallback_rule() -> FunctionRule | None:
    """The rule for calls that no other rule claims."""
    return _FALLBACK[-1] if _FALLBACK else None

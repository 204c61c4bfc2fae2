"""Per-op conversion rules, one file per op family, and their registry.

- :mod:`~symmetrize.rules.registry` registering rules (``register_module_rule``, ...)
- :mod:`~symmetrize.rules.context` what rules share: the pass context, sites, errors
- :mod:`~symmetrize.rules.hidden_policy` the hidden-Rep policy
- :mod:`~symmetrize.rules.constants` learned tensors and buffers that must be mirror-symmetric
- :mod:`~symmetrize.rules.layers` Linear, Conv1d/2d, BatchNorm1d/2d, LSTM/GRU and their cells
- :mod:`~symmetrize.rules.pointwise` activations (modules and functions), Dropout, Identity
- :mod:`~symmetrize.rules.arithmetic` add/sub/mul/div, learned offsets and scales
- :mod:`~symmetrize.rules.reduction` mean/sum and pooling
- :mod:`~symmetrize.rules.einsum` einsum and matmul (graph convolutions, attention scores)
- :mod:`~symmetrize.rules.normalization` LayerNorm / RMSNorm (modules and functions)
- :mod:`~symmetrize.rules.attention` scaled dot-product attention
- :mod:`~symmetrize.rules.optional` modules of optional packages (timm ``DropPath``, einops
  layers), registered by class name so that neither package is imported
- :mod:`~symmetrize.rules.movement` data movement: the fallback for every other call

Register a rule for your own module type with :func:`register_module_rule`; a rule for a module
path instead (one instance) is what ``symmetrize(..., average=[path])`` gives.
"""

from symmetrize.rules import (  # noqa: F401  (the built-in rules register themselves)
    arithmetic,
    attention,
    einsum,
    layers,
    movement,
    normalization,
    optional,
    pointwise,
    reduction,
)
from symmetrize.rules.context import Context, ConversionError, Decision, Site
from symmetrize.rules.registry import (
    fallback_rule,
    find_function_rule,
    find_module_rule,
    register_fallback_rule,
    register_function_rule,
    register_module_rule,
    register_module_rule_by_name,
    registered_module_names,
    registered_module_types,
    rule_leaf_types,
    unregister_module_rule,
)

__all__ = ["ConversionError", "Context", "Decision", "Site", "fallback_rule", "find_function_rule",
           "find_module_rule", "register_fallback_rule", "register_function_rule",
           "register_module_rule", "register_module_rule_by_name", "registered_module_names",
           "registered_module_types", "rule_leaf_types", "unregister_module_rule"]

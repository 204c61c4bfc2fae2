"""Export a model that contains chiral layers to plain PyTorch modules.

The exported model has the same outputs, plain ``weight`` / ``bias`` tensors (no
parametrizations), a plain state dict, and pickles with ``torch.save(model)``. It no longer
enforces the symmetry when trained further: export for deployment, not for fine-tuning.
"""

from __future__ import annotations

import copy

from torch import nn
from torch.nn.utils import parametrize

from symmetrize.nn.shared import ChiralModule, SymmetricTensor
from symmetrize.nn.switched import install_switch, uninstall_switch

__all__ = ["export_plain"]


def export_plain(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every chiral layer in ``model`` by its plain twin (``layer.to_dense()``).

    Args:
        model: any module; chiral layers may sit anywhere in it, or be the model itself.
        inplace: modify ``model`` itself instead of a deep copy of it.

    Returns:
        The model with plain layers (the same object when ``inplace``, unless ``model`` itself is
        a chiral layer, which cannot replace itself: then its plain twin is returned).
    """
    target = model if inplace else copy.deepcopy(model)
    if isinstance(target, ChiralModule):
        return _plain_twin(target)
    _plain_tensors(target)
    if not getattr(target, "_symmetrize_switched", None):
        uninstall_switch(target)  # only gathered shared weights once: nothing left to gather
    for name, child in list(target.named_children()):
        if isinstance(child, ChiralModule):
            setattr(target, name, _plain_twin(child))
        else:
            export_plain(child, inplace=True)
    return target


def _plain_tensors(module: nn.Module) -> None:
    """Mirror-shared learned tensors (edge importance, per-joint biases) back to plain ones."""
    if not parametrize.is_parametrized(module):
        return
    switched = uninstall_switch(module)  # (the parametrized class sits below the switching one)
    for name, plist in list(module.parametrizations.items()):
        if len(plist) == 1 and isinstance(plist[0], SymmetricTensor):
            # a deep copy shares its parametrized class with the original, and removing a
            # parametrization deletes the property from the class: give this module its own
            cls = type(module)
            module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    if switched:
        install_switch(module, module._symmetrize_switched)


def _plain_twin(layer: ChiralModule) -> nn.Module:
    dense = layer.to_dense()  # type: ignore[attr-defined]
    dense.train(layer.training)  # type: ignore[attr-defined]
    return dense

"""Whether a tracer or compiler records the current call.

Kernels chosen for eager speed (the slice kernels of :mod:`symmetrize.nn.fastbasis`, the sigmoid
tanh of :mod:`symmetrize.nn.fast_tanh`) give way to standard ops there, so the recorded graph
holds ops every backend knows.
"""

from __future__ import annotations

import torch

__all__ = ["under_tracer"]


def under_tracer() -> bool:
    """True inside ``torch.jit.trace`` / ``torch.jit.script``, ``torch.compile``,
    ``torch.export`` and ONNX export."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    for name in ("is_compiling", "is_exporting"):
        check = getattr(torch.compiler, name, None)
        if check is not None and check():
            return True
    onnx = getattr(torch, "onnx", None)
    return onnx is not None and onnx.is_in_onnx_export()

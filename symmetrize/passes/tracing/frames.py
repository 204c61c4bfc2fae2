"""Where user code is: the source line an error or a node comes from (never torch, the standard
library or the tracer itself)."""

from __future__ import annotations

import linecache
import os
import sys
import sysconfig
import traceback

import torch

__all__ = ["exception_frame", "is_user_file", "user_frame", "user_stack"]

_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_STDLIB_DIR = sysconfig.get_paths()["stdlib"] + os.sep
#: the tracing machinery itself (never the "user's line"): this package and passes/trace.py
_TRACER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_TRACE_FILE = os.path.join(os.path.dirname(_TRACER_DIR.rstrip(os.sep)), "trace.py")


def is_user_file(filename: str) -> bool:
    """Whether ``filename`` is user code (not torch, the standard library or this module)."""
    if filename.startswith("<frozen"):
        return False
    path = os.path.abspath(filename)
    return not (path.startswith(_TORCH_DIR) or path.startswith(_STDLIB_DIR) or
                path.startswith(_TRACER_DIR) or path == _TRACE_FILE)


def user_frame() -> tuple[str, str] | None:
    """``("file:line", code)`` of the innermost user frame on the current stack."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if is_user_file(filename):
            code = linecache.getline(filename, frame.f_lineno).strip()
            return f"{filename}:{frame.f_lineno}", code
        frame = frame.f_back
    return None


def user_stack() -> list[traceback.FrameSummary]:
    """User frames (outermost first) between ``Tracer.trace`` and the current call."""
    frames: list[traceback.FrameSummary] = []
    frame = sys._getframe(1)
    suffix = os.path.join("fx", "_symbolic_trace.py")
    while frame is not None:
        code = frame.f_code
        if code.co_name == "trace" and code.co_filename.endswith(suffix):
            frames.reverse()
            return frames
        if is_user_file(code.co_filename):
            frames.append(traceback.FrameSummary(code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back
    return []


def exception_frame(exc: BaseException) -> tuple[str, str] | None:
    """``("file:line", code)`` of the innermost user frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if is_user_file(filename):
            code = linecache.getline(filename, tb.tb_lineno).strip()
            found = (f"{filename}:{tb.tb_lineno}", code)
        tb = tb.tb_next
    return found

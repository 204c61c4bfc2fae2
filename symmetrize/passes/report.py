"""The conversion report: one row per traced node, with what :func:`~symmetrize.symmetrize` did
there; totals; warnings; the measured equivariance error.

Rendering lives in :mod:`symmetrize.passes.render_text` (text table, Markdown),
:mod:`symmetrize.passes.render_json` (JSON) and :mod:`symmetrize.passes.render_graph` (networkx,
Graphviz DOT, a drawn picture); this module holds the facts and :mod:`symmetrize.passes.rep_text`
the compact text of an action.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from symmetrize.rep import Rep

__all__ = ["ConversionReport", "ReportRow"]


@dataclass
class ReportRow:
    """One node of the traced graph (or one learned tensor) and what the conversion did there.

    Attributes:
        name: the fx node's name (unique in the report).
        op: ``placeholder``, ``get_attr``, ``call_module``, ``call_function``, ``call_method``
            or ``output``.
        target: the module type (``Conv1d``), function (``relu``, ``add``), method (``view``),
            attribute path (``A``) or argument name the node runs.
        module: the module path: the called module for ``call_module``, the owner of the
            attribute for ``get_attr``, else the module whose ``forward`` made the node (``""``
            for the model itself).
        source: ``file:line`` of the user code that made the node, when known.
        inputs: names of the nodes this one reads (the graph's edges).
        rep_in: compact Rep of the tensor inputs, e.g. ``17j x 2c: 6 pairs, x-`` (inputs with
            different Reps joined by ``"; "``); ``invariant`` when the mirror leaves it
            alone, ``-`` for no tensor.
        rep_out: compact Rep of the output, same form.
        action: what the conversion did, one of ``replaced``, ``switched``, ``shared``,
            ``kept``, ``assumed``, ``averaged``, ``invariance layer`` or ``""`` (the Rep was
            propagated through, nothing to change).
        detail: the specifics, e.g. ``replaced by ChiralConv1d`` or ``activation ReLU -> Tanh``.
        params_before: parameters of the module before (``call_module`` rows of modules with
            parameters, and shared tensors; ``None`` elsewhere and on repeated calls of one
            module).
        params_after: the same after conversion.
        projection_error: ``|W - P(W)| / |W|`` over the module's weights: how far the
            pretrained weights were from equivariant (``None`` where nothing was projected).
    """

    name: str
    op: str
    target: str
    module: str = ""
    source: str | None = None
    inputs: tuple[str, ...] = ()
    rep_in: str = "-"
    rep_out: str = "-"
    action: str = ""
    detail: str = ""
    params_before: int | None = None
    params_after: int | None = None
    projection_error: float | None = None

    @property
    def what(self) -> str:
        """What a user names to find this row: the module path of a module call, the attribute
        path of a tensor, the source line of a function call."""
        if self.op in ("call_module", "get_attr"):
            return self.module if self.op == "call_module" else self.target
        return self.source or self.name

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-able values (the keys are the attribute names)."""
        return {"name": self.name, "op": self.op, "target": self.target, "module": self.module,
                "source": self.source, "inputs": list(self.inputs), "rep_in": self.rep_in,
                "rep_out": self.rep_out, "action": self.action, "detail": self.detail,
                "params_before": self.params_before, "params_after": self.params_after,
                "projection_error": self.projection_error}


@dataclass
class ConversionReport:
    """What :func:`~symmetrize.symmetrize` did to a model, node by node.

    Attributes:
        model: the model's class name.
        rows: one :class:`ReportRow` per traced node, in graph order.
        parameters_before: trainable parameters of the original model.
        parameters_after: trainable parameters of the converted model.
        equivariance_error: the float64 ``max |f(T x) - T f(x)|`` measured after conversion
            (``nan`` with ``check=False``).
        notes: facts worth knowing (decisions fixed by constraints, coupled layers).
        warnings: things that may surprise: dropout masks not tied at train time, widths that
            did not divide the skeleton, modules kept non-equivariant.
        spec: the :class:`~symmetrize.Spec` the model was converted with.
        options: the conversion options, as passed to :func:`~symmetrize.symmetrize`.
        inputs: the example inputs' shapes and dtypes (``{"shape": [...], "dtype": "float32"}``)
            or, for a non-tensor argument, ``{"value": ...}``.
        free_outputs: for each ``"free"`` output of the Spec (by index), the Reps the
            conversion gave its acting axes (``{axis: Rep}``), which the check mirrors it with.
    """

    model: str = ""
    rows: list[ReportRow] = field(default_factory=list)
    parameters_before: int = 0
    parameters_after: int = 0
    equivariance_error: float = float("nan")
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    spec: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    free_outputs: dict[int, dict[int, Rep]] = field(default_factory=dict)

    @property
    def parameter_ratio(self) -> float:
        """Trainable parameters after / before."""
        return self.parameters_after / max(self.parameters_before, 1)

    @property
    def replaced(self) -> list[str]:
        """Paths of the modules replaced by chiral twins, the invariance layer included."""
        return self._with_action("replaced", "invariance layer")

    @property
    def switched(self) -> list[str]:
        """Switched activations: module paths and source lines of functional calls."""
        return self._with_action("switched")

    @property
    def shared(self) -> list[str]:
        """Attribute paths of the learned tensors made mirror-shared."""
        return self._with_action("shared")

    def _with_action(self, *actions: str) -> list[str]:
        return list(dict.fromkeys(row.what for row in self.rows if row.action in actions))

    def actions(self, prefix: str) -> list[str]:
        """The :attr:`ReportRow.what` of every row whose action or detail starts with
        ``prefix``, each once, in graph order."""
        found = [row.what for row in self.rows
                 if row.action.startswith(prefix) or row.detail.startswith(prefix)]
        return list(dict.fromkeys(found))

    def row(self, what: str) -> ReportRow:
        """The first row whose node name or :attr:`ReportRow.what` is ``what``.

        Raises:
            KeyError: no row matches (the message lists a few names).
        """
        for row in self.rows:
            if what in (row.name, row.what):
                return row
        keys = [r.name for r in self.rows] + [r.module for r in self.rows if r.module]
        close = difflib.get_close_matches(what, keys, n=3)
        hint = (f"did you mean {', '.join(map(repr, close))}?" if close else
                f"rows include {', '.join(r.name for r in self.rows[:8])}, ...")
        raise KeyError(f"no report row {what!r} (a node name or module path); {hint}")

    def totals(self) -> dict[str, Any]:
        """The summary figures: parameters, replaced modules, switched activations, error."""
        return {"parameters_before": self.parameters_before,
                "parameters_after": self.parameters_after,
                "parameter_ratio": self.parameter_ratio,
                "replaced_modules": len(self.replaced),
                "switched_activations": len(self.switched),
                "shared_tensors": len(self.shared),
                "equivariance_error": self.equivariance_error}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able values, in the schema of docs/report.md
        (``"schema": "symmetrize.report"``, ``"version"``:
        :data:`~symmetrize.passes.render_json.SCHEMA_VERSION`)."""
        from symmetrize.passes.render_json import report_dict
        return report_dict(self)

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text."""
        from symmetrize.passes.render_json import report_json
        return report_json(self, indent)

    def to_markdown(self) -> str:
        """The report as a Markdown table plus totals, notes and warnings."""
        from symmetrize.passes.render_text import report_markdown
        return report_markdown(self)

    def to_graph(self) -> Any:
        """The graph as a ``networkx.DiGraph``: one node per row (its fields as attributes),
        one edge per input."""
        from symmetrize.passes.render_graph import report_graph
        return report_graph(self)

    def write_graph(self, path: str) -> None:
        """Write the graph with its Reps: ``.dot`` as Graphviz DOT text, ``.svg``/``.png``/
        ``.pdf`` drawn with matplotlib (``pip install "symmetrize[graph]"``)."""
        from symmetrize.passes.render_graph import write_graph
        write_graph(self, path)

    def __str__(self) -> str:
        from symmetrize.passes.render_text import report_text
        return report_text(self)

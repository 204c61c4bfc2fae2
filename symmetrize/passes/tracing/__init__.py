"""The shadow-execution tracer behind :func:`symmetrize.passes.trace.trace`, by concept:
what it treats as metadata and its errors (:mod:`.vocabulary`), user source lines
(:mod:`.frames`), concrete values behind proxies (:mod:`.values`), the proxies (:mod:`.proxy`),
the tracer (:mod:`.tracer`), shape-only stand-ins (:mod:`.stand_ins`), einops calls
(:mod:`.einops_calls`) and Python flags among the forward arguments (:mod:`.flags`)."""

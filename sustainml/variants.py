"""How a measured greener variant of a candidate is named on the bus: ``MODEL+VARIANT``.

The hardware node measures some variants for real (int8 dynamic quantisation on the CPU) next to the
candidate itself. Their measurements, footprints and options carry the model name ``distilbert+int8-dynamic``
so that every node keeps joining by name; the orchestrator and the carbon tracker look the base
candidate and its variant up here.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import msg

__all__ = ["SEPARATOR", "variant_model_name", "split_model_name", "find_candidate"]

SEPARATOR = "+"


def variant_model_name(model: str, variant: str) -> str:
    """``variant_model_name("distilbert", "int8-dynamic")`` is ``"distilbert+int8-dynamic"``."""
    return f"{model}{SEPARATOR}{variant}"


def split_model_name(name: str) -> tuple[str, str]:
    """``("distilbert", "int8-dynamic")`` for ``"distilbert+int8-dynamic"``; ``(name, "")`` for a plain model."""
    base, _, variant = name.partition(SEPARATOR)
    return base, variant


def find_candidate(
    candidates: Iterable[msg.ModelCandidate], name: str
) -> tuple[msg.ModelCandidate | None, msg.GreenerVariant | None]:
    """The candidate a (possibly variant) model name refers to, and the variant, if any and known."""
    base, variant = split_model_name(name)
    candidate = next((c for c in candidates if c.name == base), None)
    if candidate is None or not variant:
        return candidate, None
    return candidate, next((v for v in candidate.variants if v.name == variant), None)

"""The few cyclonedds-python calls whose shape differs between binding releases, in one place.

The project runs on the PyPI wheel (cyclonedds 11.0.1). A secured bus needs Cyclone's DDS Security
plugins, which that wheel is built without; the binding built against Debian's Cyclone C library
(which ships them) is an older release. ``bus.py`` goes through these functions for every call that
differs, so the rest of the code does not know which binding it runs on.
"""

from typing import Any

__all__ = ["matched_count"]


def matched_count(entity: Any) -> int:
    """How many remote endpoints a reader (writers) or writer (readers) has matched."""
    if hasattr(entity, "get_matched_publications"):
        return len(entity.get_matched_publications())
    return len(entity.get_matched_subscriptions())

"""The few cyclonedds-python calls whose shape differs between binding releases, in one place.

The project runs on the PyPI wheel (cyclonedds 11.0.1). A secured bus needs Cyclone's DDS Security
plugins, which that wheel is built without; the binding built against Debian's Cyclone C library
(which ships them) is an older release. ``bus.py`` goes through these functions for every call that
differs, so the rest of the code does not know which binding it runs on.
"""

from typing import Any

__all__ = ["matched_count", "writer_participant"]


def matched_count(entity: Any) -> int:
    """How many remote endpoints a reader (writers) or writer (readers) has matched."""
    if hasattr(entity, "get_matched_publications"):
        return len(entity.get_matched_publications())
    return len(entity.get_matched_subscriptions())


def writer_participant(reader: Any, publication_handle: int) -> str:
    """The GUID of the participant owning the writer of a received sample (its
    ``sample_info.publication_handle``), as text; "" when the binding cannot tell."""
    try:
        endpoint = reader.get_matched_publication_data(publication_handle)
    except Exception:  # noqa: BLE001 - an older binding lacks the call, or the writer just left
        return ""
    return str(endpoint.participant_key) if endpoint is not None else ""

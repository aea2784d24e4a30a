"""The few cyclonedds-python calls whose shape differs between binding releases, in one place.

The project runs on the PyPI wheel (cyclonedds 11.0.1). A secured bus needs Cyclone's DDS Security
plugins, which that wheel is built without; the binding built against Debian's Cyclone C library
(which ships them) is an older release (0.10.2). ``bus.py`` and the generated ``msg.py`` go through
this module for everything that differs, so the rest of the code does not know which binding it runs on.
"""

from typing import Any

from cyclonedds.idl import types

__all__ = ["matched_count", "octet", "has_security", "key_sample"]

#: The element type of ``sequence<octet>``: ``types.byte`` where the binding has it (11.x), else
#: ``types.uint8`` (0.10.x). One byte each on the wire: the CDR is the same.
octet: Any = getattr(types, "byte", types.uint8)


def matched_count(entity: Any) -> int:
    """How many remote endpoints a reader (writers) or writer (readers) has matched."""
    if hasattr(entity, "get_matched_publications"):
        return len(entity.get_matched_publications())
    if hasattr(entity, "get_matched_subscriptions"):
        return len(entity.get_matched_subscriptions())
    return _matched_count_c(entity)


def _matched_count_c(entity: Any) -> int:
    """0.10.x has no matched-endpoint calls: ask the C library for the entity's matched status."""
    import ctypes

    from cyclonedds.pub import DataWriter

    class _MatchedStatus(ctypes.Structure):
        # dds_publication_matched_status_t and dds_subscription_matched_status_t share this layout.
        _fields_ = [("total_count", ctypes.c_uint32), ("total_count_change", ctypes.c_int32),
                    ("current_count", ctypes.c_uint32), ("current_count_change", ctypes.c_int32),
                    ("last_handle", ctypes.c_uint64)]

    lib = _ddsc()
    call = lib.dds_get_publication_matched_status if isinstance(entity, DataWriter) \
        else lib.dds_get_subscription_matched_status
    status = _MatchedStatus()
    rc = call(ctypes.c_int32(entity._ref), ctypes.byref(status))
    if rc != 0:
        raise RuntimeError(f"dds matched status of entity {entity._ref}: return code {rc}")
    return int(status.current_count)


_lib: Any = None


def _ddsc() -> Any:
    """The Cyclone C library the binding itself loaded."""
    global _lib
    if _lib is None:
        from cyclonedds.internal import load_cyclonedds
        _lib = load_cyclonedds()
    return _lib


def has_security() -> bool:
    """Whether the Cyclone C library under this binding was built with DDS Security (the PyPI wheel
    was not; Debian's libddsc is, with its plugins in separate libraries)."""
    try:
        lib = _ddsc()
    except Exception:  # noqa: BLE001 - no library at all: certainly no security
        return False
    return hasattr(lib, "DDS_Security_BinaryProperty_alloc")


def writer_participant(reader: Any, publication_handle: int) -> str:
    """The GUID of the participant owning the writer of a received sample (its
    ``sample_info.publication_handle``), as text; "" when the binding cannot tell."""
    if not hasattr(reader, "get_matched_publication_data"):
        return _writer_participant_c(reader, publication_handle)
    try:
        endpoint = reader.get_matched_publication_data(publication_handle)
    except Exception:  # noqa: BLE001 - the writer just left
        return ""
    return str(endpoint.participant_key) if endpoint is not None else ""


def _writer_participant_c(reader: Any, publication_handle: int) -> str:
    """0.10.x has no matched-publication call: ask the C library (dds_get_matched_publication_data),
    and give the participant's GUID as 11.x does (``str`` of a ``uuid.UUID``)."""
    import ctypes
    import uuid

    class _Endpoint(ctypes.Structure):   # dds_builtintopic_endpoint_t
        _fields_ = [("key", ctypes.c_ubyte * 16), ("participant_key", ctypes.c_ubyte * 16),
                    ("participant_instance_handle", ctypes.c_uint64), ("topic_name", ctypes.c_char_p),
                    ("type_name", ctypes.c_char_p), ("qos", ctypes.c_void_p)]

    lib = _ddsc()
    lib.dds_get_matched_publication_data.restype = ctypes.POINTER(_Endpoint)
    lib.dds_get_matched_publication_data.argtypes = [ctypes.c_int32, ctypes.c_uint64]
    lib.dds_builtintopic_free_endpoint.argtypes = [ctypes.POINTER(_Endpoint)]
    endpoint = lib.dds_get_matched_publication_data(reader._ref, publication_handle)
    if not endpoint:
        return ""
    try:
        return str(uuid.UUID(bytes=bytes(endpoint.contents.participant_key)))
    finally:
        lib.dds_builtintopic_free_endpoint(endpoint)


def key_sample(sample: Any, data_type: type) -> Any:
    """The key of a "no writers"/"disposed" notification, as an instance of ``data_type`` with only
    its key fields set. 11.x decodes it (``key_sample``); 0.10.x gives the key's CDR (``key``)."""
    if hasattr(sample, "key_sample"):
        return sample.key_sample
    return _key_decoder(data_type)(sample.key)


_key_decoders: dict[type, Any] = {}


def _key_decoder(data_type: type) -> Any:
    """0.10.x: a decoder of ``data_type``'s key CDR. That CDR holds the key fields in member order,
    big-endian whatever its header says, so it is read as a struct of the key fields alone."""
    if data_type not in _key_decoders:
        import dataclasses

        from cyclonedds.idl import make_idl_struct
        from cyclonedds.idl.annotations import final

        keys = [f.name for f in dataclasses.fields(data_type)
                if data_type.__idl_field_annotations__.get(f.name, {}).get("key")]  # type: ignore[attr-defined]
        hints = {f.name: f.type for f in dataclasses.fields(data_type)}
        holder = make_idl_struct(f"{data_type.__name__}Key", f"{data_type.__idl_typename__}Key",  # type: ignore[attr-defined]
                                 {name: hints[name] for name in keys})
        final(holder)

        def decode(cdr: bytes) -> Any:
            fields = holder.deserialize(b"\x00\x00\x00\x00" + cdr[4:])
            return data_type(**{name: getattr(fields, name) for name in keys})

        _key_decoders[data_type] = decode
    return _key_decoders[data_type]

"""Reader for the subset of IDL 4 that ``idl/sustainml.idl`` uses, and the Python generator.

Why by hand: cyclonedds 11.0.1's ``idlc -l py`` segfaulted on our file, and no maintained pure-Python
IDL parser exists on PyPI. The subset is small (one module; integer constants; enums; @final structs; @key members; primitive,
string, sequence and nested struct types), so a strict reader that rejects everything else is short
and safe. It refuses @appendable and @mutable: the IDL's header says why every type is @final.
``python sustainml/_idl.py`` regenerates ``sustainml/msg.py`` (as a script, so that it runs even
while msg.py is out of date); ``tests/test_idl.py`` fails when the two differ.

Legacy mode (``parse(text, legacy=True)``, ``--legacy-v1``) reads the version-1 IDL kept in
``idl/history/`` (@appendable structs) into ``sustainml/_msg_v1.py``, whose types are named
``sustainml_v1::...``: only to read what version-1 code stored (``sustainml.msg_upgrade``), never to
talk on the bus.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

IDL_PATH = Path(__file__).resolve().parent.parent / "idl" / "sustainml.idl"
MSG_PATH = Path(__file__).resolve().parent / "msg.py"
V1_IDL_PATH = IDL_PATH.parent / "history" / "sustainml_v1.idl"
V1_MSG_PATH = Path(__file__).resolve().parent / "_msg_v1.py"
V1_MODULE = "sustainml_v1"

# IDL primitive -> (Python annotation, default expression)
PRIMITIVES: dict[str, tuple[str, str]] = {
    "string": ("str", '""'),
    "boolean": ("bool", "False"),
    "double": ("float", "0.0"),
    "uint32": ("types.uint32", "0"),
    "uint64": ("types.uint64", "0"),
    "int32": ("types.int32", "0"),
    "int64": ("types.int64", "0"),
}

OCTETS = "sequence<octet>"
"""The one use of octet we support: a byte string (e.g. a serialised ONNX model)."""


class IdlSyntaxError(ValueError):
    """Raised when the IDL file uses a construct outside the supported subset."""


@dataclass(frozen=True)
class Member:
    name: str
    idl_type: str        # "double", "sequence<string>", "TaskId"
    is_key: bool = False


@dataclass
class Struct:
    name: str
    extensibility: str   # "final" or "appendable"
    members: list[Member] = field(default_factory=list)


@dataclass
class Enum:
    name: str
    literals: list[str] = field(default_factory=list)


@dataclass
class IdlModule:
    name: str
    constants: dict[str, int] = field(default_factory=dict)
    enums: dict[str, Enum] = field(default_factory=dict)
    structs: dict[str, Struct] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


_TOKEN = re.compile(r"@\w+|\w+|<|>|[{};,=]")


def parse(text: str, *, legacy: bool = False) -> IdlModule:
    """Parse the IDL text into enums and structs, in declaration order.

    ``legacy`` also accepts @appendable structs, as the version-1 IDL in ``idl/history/`` has them."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    tokens = _TOKEN.findall(text)
    pos = 0

    def peek() -> str:
        if pos >= len(tokens):
            raise IdlSyntaxError("unexpected end of file: a '}' or ';' is missing")
        return tokens[pos]

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise IdlSyntaxError(f"unexpected end of file, expected {expected!r}")
        tok = tokens[pos]
        pos += 1
        if expected is not None and tok != expected:
            raise IdlSyntaxError(f"expected {expected!r}, found {tok!r} (token {pos})")
        return tok

    take("module")
    module = IdlModule(take())
    take("{")
    while peek() != "}":
        annotations = []
        while peek().startswith("@"):
            annotations.append(take()[1:])
        kind = take()
        if kind == "const":
            if take() not in ("uint32", "int32"):
                raise IdlSyntaxError("only integer constants (const uint32 NAME = N;) are supported")
            name = take()
            take("=")
            value = take()
            if not value.isdigit():
                raise IdlSyntaxError(f"const {name}: {value!r} is not a non-negative integer")
            take(";")
            module.constants[name] = int(value)
        elif kind == "enum":
            enum = Enum(take())
            take("{")
            while True:
                enum.literals.append(take())
                if take() == "}":
                    break
            take(";")
            module.enums[enum.name] = enum
            module.order.append(enum.name)
        elif kind == "struct":
            ext = [a for a in annotations if a in ("final", "appendable", "mutable")]
            if legacy and ext == ["appendable"]:
                pass
            elif ext != ["final"]:
                raise IdlSyntaxError(f"struct after {annotations}: every struct is @final (the IDL's header "
                                     "says why: Fast DDS 2.x reads XCDR1 only)")
            struct = Struct(take(), ext[0])
            take("{")
            while peek() != "}":
                is_key = False
                while peek().startswith("@"):
                    ann = take()
                    if ann != "@key":
                        raise IdlSyntaxError(f"member annotation {ann} is not supported")
                    is_key = True
                idl_type = take()
                if idl_type == "sequence":
                    take("<")
                    idl_type = f"sequence<{take()}>"
                    take(">")
                struct.members.append(Member(take(), idl_type, is_key))
                take(";")
            take("}")
            take(";")
            module.structs[struct.name] = struct
            module.order.append(struct.name)
        else:
            raise IdlSyntaxError(f"unsupported declaration {kind!r}")
    take("}")
    take(";")
    for struct in module.structs.values():
        for member in struct.members:
            if member.idl_type == OCTETS:
                continue
            element = member.idl_type.removeprefix("sequence<").removesuffix(">")
            if element not in PRIMITIVES and element not in module.enums and element not in module.structs:
                raise IdlSyntaxError(f"{struct.name}.{member.name}: unknown type {element!r}")
    return module


def _sequence(element: str) -> str:
    """The annotation of a sequence member: ``list[T]`` for a type checker, the cyclonedds type as metadata.

    ``types.sequence[T]`` evaluates to ``Annotated[Sequence[T], types.sequence(T)]``, which a type checker
    cannot read (``sequence`` is a plain class with a ``__class_getitem__``). cyclonedds uses only the
    ``Annotated`` metadata (the ``types.sequence`` instance), so this spelling gives the same XTypes type
    and the same CDR bytes. ``list``, not ``Sequence``: readers get lists."""
    return f"Annotated[list[{element}], types.sequence({element})]"


def _annotation(idl_type: str, module: IdlModule) -> tuple[str, str]:
    """Python annotation and default-value expression for one IDL member type."""
    if idl_type == OCTETS:
        # Not Python's bytes: cyclonedds-python 11 builds no XTypes type object for it, and a topic needs
        # one. Readers get a list of ints (bytes(x) turns it back); writers may pass bytes, hence the
        # Sequence[int] annotation. ``octet`` comes from _dds_compat: the binding built for DDS Security
        # (0.10.2) has no types.byte; the CDR bytes are the same either way.
        return "Annotated[Sequence[int], types.sequence(octet)]", "field(default_factory=list)"
    if idl_type.startswith("sequence<"):
        inner, _ = _annotation(idl_type[len("sequence<"):-1], module)
        return _sequence(inner), "field(default_factory=list)"
    if idl_type in PRIMITIVES:
        return PRIMITIVES[idl_type]
    if idl_type in module.enums:
        first = module.enums[idl_type].literals[0]
        return idl_type, f"{idl_type}.{first}"
    if idl_type in module.structs:
        return idl_type, f"field(default_factory={idl_type})"
    raise IdlSyntaxError(f"unknown type {idl_type!r}")


def generate(module: IdlModule, *, docstring: tuple[str, ...] | None = None) -> str:
    """Python source of the message dataclasses, one per IDL type, in IDL order.

    ``docstring``: the generated module's docstring lines, by default those of ``sustainml/msg.py``."""
    if docstring is None:
        docstring = (
            "Message types of the SustainML pipeline. GENERATED from idl/sustainml.idl: do not edit.",
            "",
            "Regenerate with ``python -m sustainml._idl``; tests/test_idl.py fails when this file and the IDL",
            "differ. Field comments and units are in the IDL.",
        )
    annotations = sorted({"final", "key", *(s.extensibility for s in module.structs.values())})
    uses_octets = any(m.idl_type == OCTETS for s in module.structs.values() for m in s.members)
    out = [
        f'"""{docstring[0]}',
        *docstring[1:],
        '"""',
        "",
        "from collections.abc import Sequence",
        "from dataclasses import dataclass, field",
        "from typing import Annotated",
        "",
        "from cyclonedds.idl import IdlEnum, IdlStruct, types",
        f"from cyclonedds.idl.annotations import {', '.join(annotations)}",
        *(["", "from sustainml._dds_compat import octet"] if uses_octets else []),
        "",
        f"__all__ = {sorted([*module.constants, *module.order])!r}",
    ]
    for name, value in module.constants.items():
        out += ["", f"{name} = {value}"]
    for name in module.order:
        out += ["", ""]
        if name in module.enums:
            out.append(f'class {name}(IdlEnum, typename="{module.name}::{name}"):')
            out += [f"    {lit} = {i}" for i, lit in enumerate(module.enums[name].literals)]
            continue
        struct = module.structs[name]
        out += ["@dataclass", f"@{struct.extensibility}",
                f'class {name}(IdlStruct, typename="{module.name}::{name}"):']
        for m in struct.members:
            ann, default = _annotation(m.idl_type, module)
            out.append(f"    {m.name}: {ann} = {default}")
            if m.is_key:
                out.append(f'    key("{m.name}")')
    return "\n".join(out) + "\n"


def generate_v1() -> str:
    """Python source of ``sustainml/_msg_v1.py``: the version-1 types, named ``sustainml_v1::...``."""
    module = parse(V1_IDL_PATH.read_text(), legacy=True)
    module.name = V1_MODULE
    return generate(module, docstring=(
        "Message types of interface version 1. GENERATED from idl/history/sustainml_v1.idl: do not edit.",
        "",
        "Only to read what version-1 code stored (sustainml.msg_upgrade); never published. Regenerate with",
        "``python -m sustainml._idl --legacy-v1``; tests/test_msg_upgrade.py fails when this file and the IDL differ.",
    ))


def main() -> None:
    if sys.argv[1:] == ["--legacy-v1"]:
        V1_MSG_PATH.write_text(generate_v1())
        print(f"wrote {V1_MSG_PATH}", file=sys.stderr)
        return
    module = parse(IDL_PATH.read_text())
    MSG_PATH.write_text(generate(module))
    print(f"wrote {MSG_PATH} ({len(module.order)} types)", file=sys.stderr)


if __name__ == "__main__":
    main()

"""The README's configuration reference, rendered from the pydantic models.

``python -m syncd.app.configdoc`` prints the tables; ``--write README.md`` replaces them in
place between the BEGIN/END markers. tests/test_config_reference.py fails when the README and
the schema differ, so a key cannot be documented wrongly or left out: edit the model's
``Field(description=...)``, then regenerate.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import itertools
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time
from enum import Enum
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from syncd import sources
from syncd.config import Config, SourceConfig
from syncd.secrets import SecretRef

BEGIN = (
    "<!-- BEGIN config reference: generated from the schema by "
    "`python -m syncd.app.configdoc --write README.md`; edit the models, not this -->"
)
END = "<!-- END config reference -->"
UNDESCRIBED = "*(not yet described in the schema)*"

# The memory backend is the test fake, not something to deploy.
SOURCE_KINDS = tuple(k for k in sources.BACKENDS if k != "memory")


@dataclass(frozen=True)
class Section:
    title: str
    model: type[BaseModel]
    path: str = ""
    """Dotted TOML path of the table ("" at the top), for the keys of nested tables."""


def _unwrap(annotation: Any) -> list[Any]:
    """The members of an Optional/Union annotation (NoneType left out), or the annotation."""
    if get_origin(annotation) in (Union, UnionType):
        return [a for a in get_args(annotation) if a is not NoneType]
    return [annotation]


def _submodel(annotation: Any) -> tuple[type[BaseModel], bool] | None:
    """(model, is_array) when a field holds a nested table or an array of tables."""
    for a in _unwrap(annotation):
        is_array = get_origin(a) in (list, tuple)
        inner = get_args(a)[0] if is_array else a
        if inspect.isclass(inner) and issubclass(inner, BaseModel) and inner is not SecretRef:
            return inner, is_array
    return None


def _attribute_docstrings(cls: type[BaseModel]) -> dict[str, str]:
    """``field: T = ...`` followed by a string literal, over the class and its bases."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not (inspect.isclass(klass) and issubclass(klass, BaseModel)) or klass is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, nxt in itertools.pairwise(body):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                out[stmt.target.id] = " ".join(nxt.value.value.split())
    return out


def _value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, time):
        return v.strftime("%H:%M")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, Enum):
        return str(v.value)
    if isinstance(v, list | tuple):
        return ", ".join(_value(x) for x in v) if v else "none"
    return str(v) if v != "" else '""'


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list | tuple) and not value and _submodel(field.annotation):
        return "none"
    return f"`{_value(value)}`"


def _extras(field: FieldInfo) -> str:
    """What the schema enforces, said from the schema: choices, ranges, secrets."""
    notes: list[str] = []
    for a in _unwrap(field.annotation):
        if get_origin(a) is Literal:
            notes.append("One of " + ", ".join(f"`{x}`" for x in get_args(a)) + ".")
        if a is SecretRef:
            notes.append("A secret reference.")
    bounds: dict[str, Any] = {}
    kinds = {
        "ge": annotated_types.Ge,
        "gt": annotated_types.Gt,
        "le": annotated_types.Le,
        "lt": annotated_types.Lt,
        "min_length": annotated_types.MinLen,
    }
    for m in field.metadata:
        for name, kind in kinds.items():
            if isinstance(m, kind):
                bounds[name] = getattr(m, name)
    low = (
        f"at least {_value(bounds['ge'])}"
        if "ge" in bounds
        else f"more than {_value(bounds['gt'])}"
        if "gt" in bounds
        else None
    )
    high = (
        f"at most {_value(bounds['le'])}"
        if "le" in bounds
        else f"less than {_value(bounds['lt'])}"
        if "lt" in bounds
        else None
    )
    if low or high:
        notes.append(" and ".join(x for x in (low, high) if x).capitalize() + ".")
    if bounds.get("min_length"):
        n = bounds["min_length"]
        if str in _unwrap(field.annotation):
            notes.append("Not empty." if n == 1 else f"At least {n} characters.")
        else:
            notes.append(f"At least {n}.")
    return " ".join(notes)


def description(model: type[BaseModel], name: str) -> str | None:
    """The key's description: its Field's, else the attribute docstring under it."""
    field = model.model_fields[name]
    return field.description or _attribute_docstrings(model).get(name)


def _escape(text: str) -> str:
    """Table-safe, and no <word> taken for an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _prose(doc: str) -> str:
    """A docstring as one markdown paragraph (reST ``code`` becomes `code`)."""
    return _escape(" ".join(doc.split()).replace("``", "`"))


def _table(section: Section) -> list[str]:
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for name, field in section.model.model_fields.items():
        sub = _submodel(field.annotation)
        key = f"`{name}`"
        if sub is not None:
            full = f"{section.path}.{name}" if section.path else name
            key = f"`[[{full}]]`" if sub[1] else f"`[{full}]`"
        desc = description(section.model, name)
        meaning = " ".join(x for x in (_escape(desc) if desc else UNDESCRIBED, _extras(field)) if x)
        rows.append(f"| {key} | {_default(field)} | {meaning} |")
    return rows


def sections() -> Iterator[Section]:
    """Every table of the config, in the README's order."""
    yield Section("Top level", Config)

    def walk(model: type[BaseModel], path: str) -> Iterator[Section]:
        for name, field in model.model_fields.items():
            sub = _submodel(field.annotation)
            if sub is None:
                continue
            child, is_array = sub
            here = f"{path}.{name}" if path else name
            title = f"`[[{here}]]`" if is_array else f"`[{here}]`"
            if child is SourceConfig:
                yield Section(title, child, here)
                for kind in SOURCE_KINDS:
                    options = sources.load(kind).Options
                    yield Section(f'{title} with `kind = "{kind}"`', options, here)
                continue
            yield Section(title, child, here)
            yield from walk(child, here)

    yield from walk(Config, "")


def render() -> str:
    out = [BEGIN]
    for s in sections():
        out += ["", f"#### {s.title}", ""]
        doc = s.model.__dict__.get("__doc__")  # its own, not one inherited from pydantic
        if doc and s.model is not Config:
            out += [_prose(doc), ""]
        out += _table(s)
    out += ["", END]
    return "\n".join(out) + "\n"


def missing_descriptions() -> list[str]:
    """``Model.key`` for every key without a Field description (docstrings don't count)."""
    seen: set[type[BaseModel]] = set()
    out: list[str] = []
    for s in sections():
        if s.model in seen:
            continue
        seen.add(s.model)
        out += [
            f"{s.model.__name__}.{name}"
            for name, field in s.model.model_fields.items()
            if not field.description
        ]
    return out


def splice(readme: str, generated: str) -> str:
    """``readme`` with the text between the markers replaced by ``generated``."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError("the README has no config reference markers")
    return readme[:start] + generated + readme[end + len(END) + 1 :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncd.app.configdoc", description=__doc__)
    parser.add_argument("--write", metavar="README", type=Path, help="update this file in place")
    parser.add_argument(
        "--missing", action="store_true", help="list keys without a Field description"
    )
    args = parser.parse_args(argv)
    if args.missing:
        print("\n".join(missing_descriptions()))
    elif args.write:
        text = args.write.read_text(encoding="utf-8")
        args.write.write_text(splice(text, render()), encoding="utf-8")
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command-line options derived from a frozen config dataclass's fields, so a new setting is written once.

Every field becomes an option named after it (`rerank_depth` -> `--rerank-depth`) whose type, choices
and default come from the field: `int`, `float`, `str` and `Path` values; `Literal[...]` choices;
`X | None` (the word `none` gives None); `bool` as `--flag / --no-flag`; `tuple[X, ...]` as a repeated
option; `dict[str, X]` as a repeated `KEY=VALUE`. A field without a default is a required option. The
help is the field's line in the class docstring's `Attributes:` (or `Args:`) section, Google style. An
`Option` per field changes only what the field cannot say: another flag, a help text, or
keeping the field off the command line. `config_from_args` builds the config back from the parsed
arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from reranker.renamed import add_old_flags

NONE_WORDS = frozenset({"none", "null"})
_SECTION = re.compile(r"^(\s*)(Attributes|Args|Arguments):\s*$")
_ENTRY = re.compile(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$")


@dataclass(frozen=True)
class Option:
    """How one config field appears on the command line, where its name and type are not enough."""

    flag: str | None = None  # default: "--" + the field name with dashes
    help: str = ""
    hidden: bool = False  # the command sets this field itself
    metavar: str | None = None


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_type: type,
    options: Mapping[str, Option] | None = None,
) -> None:
    """Add one option per field of the dataclass `config_type` (see the module docstring)."""
    options = options or {}
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    stale = sorted(set(options) - set(fields))
    if stale:
        raise TypeError(f"options name fields {config_type.__name__} does not have: {', '.join(stale)}")
    hints = typing.get_type_hints(config_type)
    docs = field_docs(config_type)
    for name, field in fields.items():
        option = options.get(name, Option())
        if option.hidden:
            continue
        if not option.help and name in docs:
            option = dataclasses.replace(option, help=docs[name])
        flag = option.flag or "--" + name.replace("_", "-")
        kwargs = _argument(config_type, field, hints[name], option)
        parser.add_argument(flag, dest=name, **kwargs)
        if "type" in kwargs:
            add_old_flags(parser, name, flag, kwargs["type"])


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description from the docstring's `Attributes:` (or `Args:`) section, one line each: the class's
    own, and for fields it inherits, its bases' (a field is described once, in the class that declares it)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        own = klass.__dict__.get("__doc__")
        if own:
            docs.update(_section_docs(inspect.cleandoc(own)))
    return docs


def _section_docs(docstring: str) -> dict[str, str]:
    docs: dict[str, list[str]] = {}
    section_indent: int | None = None
    entry_indent: int | None = None
    current: list[str] | None = None
    for line in docstring.splitlines():
        header = _SECTION.match(line)
        if header:
            section_indent, entry_indent, current = len(header.group(1)), None, None
            continue
        if section_indent is None or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= section_indent:  # the section ended
            section_indent, current = None, None
            continue
        entry_indent = indent if entry_indent is None else entry_indent
        entry = _ENTRY.match(line.strip()) if indent == entry_indent else None
        if entry:
            current = docs.setdefault(entry.group(1), [])
            current.append(entry.group(2))
        elif current is not None:
            current.append(line.strip())
    return {name: " ".join(" ".join(parts).split()) for name, parts in docs.items()}


def config_from_args(config_type: type, args: argparse.Namespace, **extra: Any) -> Any:
    """The config from parsed arguments (fields left off the command line keep their defaults); `extra` wins."""
    hints = typing.get_type_hints(config_type)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config_type):
        if field.name in extra or not hasattr(args, field.name):
            continue
        value = getattr(args, field.name)
        base, _ = _unwrap_optional(hints[field.name])
        origin = get_origin(base)
        if origin in (tuple, dict, Mapping) and value is None:
            continue  # not given: the field's own default
        if origin is tuple:
            value = tuple(value)
        elif origin in (dict, Mapping):
            value = dict(value)
        values[field.name] = value
    return config_type(**values, **extra)


def _argument(config_type: type, field: dataclasses.Field, hint: Any, option: Option) -> dict[str, Any]:
    required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
    default = None
    if field.default is not dataclasses.MISSING:
        default = field.default
    elif field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    base, optional = _unwrap_optional(hint)
    origin = get_origin(base)
    kwargs: dict[str, Any] = {}
    shown = default
    if base is bool:
        kwargs.update(action=argparse.BooleanOptionalAction, default=default)
    elif origin is tuple:
        items = get_args(base)
        if len(items) != 2 or items[1] is not Ellipsis:
            raise _unsupported(config_type, field, hint)
        kwargs.update(action="append", type=_parser(config_type, field, items[0], optional=False), default=None)
        shown = ", ".join(map(str, default)) if default else None
    elif origin in (dict, Mapping):
        key, value = get_args(base)
        if key is not str:
            raise _unsupported(config_type, field, hint)
        kwargs.update(action="append", type=_pair(_parser(config_type, field, value, optional=False)), default=None)
        kwargs.setdefault("metavar", "KEY=VALUE")
        shown = ", ".join(f"{k}={v}" for k, v in default.items()) if default else None
    else:
        convert = _parser(config_type, field, base, optional=optional)
        kwargs.update(type=convert, default=default)
        if get_origin(base) is Literal:
            kwargs["choices"] = [*get_args(base), *([None] if optional else [])]
            kwargs["metavar"] = "{" + ",".join(map(str, get_args(base))) + (",none" if optional else "") + "}"
    if option.metavar:
        kwargs["metavar"] = option.metavar
    if required:
        kwargs["required"] = True
        kwargs.pop("default", None)
    kwargs["help"] = _help(option.help, None if required else shown, repeated=origin in (tuple, dict, Mapping))
    return kwargs


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(X, True) for `X | None` or `Optional[X]`, else (hint, False)."""
    if get_origin(hint) in (typing.Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        if len(members) == 1 and len(get_args(hint)) == 2:
            return members[0], True
    return hint, False


def _parser(config_type: type, field: dataclasses.Field, kind: Any, *, optional: bool) -> Callable[[str], Any]:
    if get_origin(kind) is Literal:
        values = get_args(kind)
        convert: Callable[[str], Any] = type(values[0])
    elif kind in (int, float, str, Path):
        convert = kind
    else:
        raise _unsupported(config_type, field, kind)

    def parse(text: str) -> Any:
        if optional and text.strip().lower() in NONE_WORDS:
            return None
        return convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")  # argparse names the type in its error messages
    return parse


def _pair(convert: Callable[[str], Any]) -> Callable[[str], tuple[str, Any]]:
    def parse(text: str) -> tuple[str, Any]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
        return key.strip(), convert(value.strip())

    return parse


def _help(text: str, default: Any, *, repeated: bool) -> str:
    notes = ["repeat for several"] if repeated else []
    if default is not None and "(default" not in text:
        notes.append(f"default: {'none' if default == () else default}")
    return (text + (f" ({'; '.join(notes)})" if notes else "")).strip().replace("%", "%%")


def _unsupported(config_type: type, field: dataclasses.Field, hint: Any) -> TypeError:
    return TypeError(
        f"{config_type.__name__}.{field.name}: a {hint} has no command-line form; give the field a supported type "
        "(see reranker.commands.arguments) or Option(hidden=True)"
    )

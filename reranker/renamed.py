"""Old spellings of renamed settings, accepted for one release with a DeprecationWarning.

One concept has one name from code to page: `blend` (was `interpolation`), `rerank_depth` (was `--depth`,
`@depth`) and `latency_budget_ms` (was `--budget-ms`). The old names still work until the next release:
as `PipelineConfig` keywords and attributes, `Pipeline.search` overrides, `@name=value` settings of a
configuration, and command-line flags; each use warns with the new name.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# Old keyword -> new field name.
RENAMED_FIELDS: Mapping[str, str] = {"interpolation": "blend"}
# Old command-line flag -> new flag.
RENAMED_FLAGS: Mapping[str, str] = {
    "--depth": "--rerank-depth",
    "--budget-ms": "--latency-budget-ms",
    "--interpolation": "--blend",
}
# Old `@name=value` setting of a configuration -> field name.
RENAMED_SETTINGS: Mapping[str, str] = {"depth": "rerank_depth", "interpolation": "blend"}


def deprecated(old: str, new: str, *, stacklevel: int = 3) -> None:
    warnings.warn(f"{old} is now {new}; the old name goes in the next release", DeprecationWarning, stacklevel=stacklevel)


def new_names(values: Mapping[str, Any], renamed: Mapping[str, str] = RENAMED_FIELDS) -> dict[str, Any]:
    """`values` with old keys under their new names (warning once per old key); an old key wins over the new one,
    as `dataclasses.replace(config, interpolation=x)` passes the config's own `blend` next to it."""
    out = dict(values)
    for old, new in renamed.items():
        if old in out:
            deprecated(repr(old), repr(new), stacklevel=4)
            out[new] = out.pop(old)
    return out


def accept_old_field_names(cls: type[T]) -> type[T]:
    """Let a dataclass take `RENAMED_FIELDS`' old keywords (constructor, `dataclasses.replace`) and read them as
    attributes, each with a DeprecationWarning."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **new_names(kwargs))

    cls.__init__ = __init__  # type: ignore[misc]
    for old, new in RENAMED_FIELDS.items():
        if new in getattr(cls, "__dataclass_fields__", {}):
            setattr(cls, old, property(functools.partial(_read_old, old=old, new=new), doc=f"Deprecated: {new}."))
    return cls


def _read_old(self: Any, *, old: str, new: str) -> Any:
    deprecated(f"{type(self).__name__}.{old}", f"{type(self).__name__}.{new}")
    return getattr(self, new)


class OldFlag(argparse.Action):
    """An old command-line flag: stores its value under the new option's name and says the new flag on stderr."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string=None):
        new = RENAMED_FLAGS.get(option_string or "", "?")
        print(f"note: {option_string} is now {new}; the old flag goes in the next release", file=sys.stderr)
        deprecated(str(option_string), new)
        setattr(namespace, self.dest, values)


def add_old_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, dest: str, new_flag: str, convert: Any) -> None:
    """The old flags of `new_flag`, hidden from --help, writing `dest` through `convert`."""
    for old, new in RENAMED_FLAGS.items():
        if new == new_flag:
            parser.add_argument(old, dest=dest, type=convert, action=OldFlag, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

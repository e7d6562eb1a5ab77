"""Typed settings, declared once per operation.

Each operation's settings are a pydantic model (``ExportOptions``, ``QuantizeOptions``,
``BenchOptions``, ``PruneOptions``, ...): every field has its name, type, default, range and
help text. Everything else is derived from that one declaration:

- the click flags: ``--`` + the field name with dashes, or the ``flag`` a field declares
  (:func:`click_options`);
- the recipe keys: the field name, which is the flag in snake_case;
- the settings recorded in manifests and stage records (:meth:`Options.recorded`);
- the JSON Schema (``edgedeploy schema recipe``).

A field may declare its own ``flag`` (``eval_data`` is ``--data`` in every command). edgedeploy
is unreleased: a renamed setting has one name, the new one, with no alias.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import click
from pydantic import BaseModel, ConfigDict, ValidationError

from edgedeploy.core.errors import BadInput


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _declared_flag(field) -> str | None:
    extra = field.json_schema_extra
    return extra.get("flag") if isinstance(extra, dict) else None


def field_flag(cls, field: str) -> str:
    """The flag of one field: ``--`` + its name, or the ``flag`` its declaration names (``eval_data``
    is ``--data`` everywhere)."""
    declared = cls.model_fields.get(field)
    return flag_name((declared is not None and _declared_flag(declared)) or field)


def split_names(values: list[str], known, what: str) -> list[str]:
    """A list flag given comma-separated or repeated: the names in order, each one of ``known``."""
    names = [n.strip() for item in values for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown[0]!r}; known: {', '.join(sorted(known))}")
    return names


class Options(BaseModel):
    """Base of every settings model: unknown keys are errors, NaN and infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def recorded(self) -> dict:
        """The settings as recorded in manifests and stage records (JSON types, every field)."""
        return self.model_dump(mode="json")

    @classmethod
    def input_keys(cls) -> set[str]:
        return set(cls.model_fields)


def did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def describe_error(err: dict, model: type[BaseModel] | None = None) -> str:
    """One readable phrase for one pydantic error."""
    t, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if t == "extra_forbidden":
        known = model.input_keys() if model is not None and hasattr(model, "input_keys") else set()
        return "unknown key" + did_you_mean(err["loc"][-1], known)
    if t == "missing":
        return "missing required key"
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[t]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}, got {value!r}"
    if t == "literal_error":
        return f"must be one of {ctx.get('expected', '')}, got {value!r}"
    if t == "finite_number" or (isinstance(value, float) and not math.isfinite(value)):
        return f"must be a finite number, got {value!r}"
    expected = {
        "int": "int",
        "float": "float",
        "bool": "bool",
        "string": "str",
        "list": "a list",
        "dict": "a mapping",
        "model": "a mapping",
        "model_attributes": "a mapping",
        "path": "a path",
    }
    kind = t.rsplit("_", 1)[0] if t.endswith(("_type", "_parsing")) else None
    if kind in expected:
        return f"expected {expected[kind]}, got {type(value).__name__} {value!r}"
    if t == "string_too_short":
        return "must not be empty"
    msg = err["msg"]
    return msg[len("Value error, ") :] if msg.startswith("Value error, ") else msg


# ---- click flags derived from the declaration -------------------------------------------


def _unwrap(annotation):
    """(base type, optional?) for ``X | None``."""
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return annotation, True
    return annotation, False


def _click_param(name: str, field, cls) -> list[click.Option]:
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    base, optional = _unwrap(field.annotation)
    flag = field_flag(cls, name)
    help_text = field.description or ""
    kw: dict[str, Any] = {"help": help_text}
    default = None if field.is_required() else field.default
    origin = get_origin(base)
    if base is bool:
        off = extra.get("off_flag")
        if optional or off:
            decl = f"{flag}/{off or '--no-' + flag[2:]}"
            kw.update(default=None)
        else:
            decl = flag
            kw.update(is_flag=True, default=False)
        params = [click.Option([decl, name], **kw)]
    else:
        if origin is Literal:
            values = get_args(base)
            if all(isinstance(v, str) for v in values):
                kw["type"] = click.Choice(values)
            else:
                kw["type"] = type(values[0])
                kw["help"] = (help_text + f" One of {', '.join(map(str, values))}.").strip()
        elif origin in (list, tuple):
            kw["multiple"] = True
            kw["type"] = str
            default = None
            inner = get_args(base)
            if inner and get_origin(inner[0]) is Literal:  # the choices in --help; pydantic still checks each value
                kw["metavar"] = "[" + "|".join(map(str, get_args(inner[0]))) + "]"
        elif base in (int, float, str):
            kw["type"] = base
        elif base is Path:
            kw["type"] = click.Path(path_type=Path)
        if default is not None and not kw.get("multiple"):
            kw.update(default=default, show_default=True)
        if field.is_required():
            kw["required"] = True
        params = [click.Option([flag, name], **kw)]
    return params


def click_params(cls: type[Options], exclude: tuple[str, ...] = ()) -> list[click.Parameter]:
    """One click option per field of ``cls`` (but ``exclude``), in declaration order."""
    return [p for name, field in cls.model_fields.items() if name not in exclude for p in _click_param(name, field, cls)]


def click_options(cls: type[Options], exclude: tuple[str, ...] = ()):
    """A decorator adding one click option per field of ``cls`` (but ``exclude``)."""

    def deco(f):
        f.__click_params__ = getattr(f, "__click_params__", []) + list(reversed(click_params(cls, exclude)))
        return f

    return deco


class LateOptionsCommand(click.Command):
    """A command some of whose options are made when it is used, not when it is imported:
    ``late_params()`` is called each time click reads the options (parsing, --help, the CLI
    reference), so a quantization method registered at run time has its flags."""

    def __init__(self, *args, late_params, **kwargs):
        self._late = late_params
        super().__init__(*args, **kwargs)

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        return [*self._late(), *super().get_params(ctx)]


def from_cli(cls: type[Options], kwargs: dict):
    """Build ``cls`` from click's keyword arguments (removing the ones it uses); every invalid
    value is reported at once (exit 2)."""
    data = {}
    for name in cls.input_keys():
        if name in kwargs:
            v = kwargs.pop(name)
            if isinstance(v, tuple):
                v = list(v) if v else None
            if v is not None:
                data[name] = v
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise BadInput("; ".join(f"{_loc_flag(cls, e['loc'])}: {describe_error(e, cls)}" for e in exc.errors())) from None


def _loc_flag(cls, loc) -> str:
    if not loc:
        return "options"
    return field_flag(cls, loc[0]) if loc[0] in cls.model_fields else flag_name(str(loc[0]))


def coerce(cls: type[Options], data: dict, where: str = "options"):
    """Validate a plain dict (a library call's keyword arguments) into ``cls``, exit 2 on errors."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise BadInput("; ".join(f"{where}: {'.'.join(map(str, e['loc']))}: {describe_error(e, cls)}" for e in exc.errors())) from None

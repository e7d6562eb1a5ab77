"""``QuantizeOptions``: every setting of ``edgedeploy quantize``, declared once. The flags,
the recipe variant keys, the manifest's recorded options and the JSON Schema come from here.

The settings every method shares are fields. A method's own settings (``--block-size``,
``--format``, ...) are declared by the method (``quantize/methods/``): they are given flat, like
the fields, and validated by the chosen method's ``Config`` into ``settings``. A setting of
another method is an error naming the methods it belongs to."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import click
from pydantic import ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema

from edgedeploy.core.options import Options, click_params
from edgedeploy.quantize import methods
from edgedeploy.quantize.methods.registry import settings_fields


def _schema(schema: dict, cls) -> None:
    """The JSON Schema's method choices and method settings, read from the registry when the
    schema is generated (a method registered later is in it)."""
    props = schema.setdefault("properties", {})
    props.pop("settings", None)
    props["method"] = {"type": "string", "enum": [*cls.method_names()], "description": " | ".join(cls.method_names())}
    for key, (field, owners) in settings_fields().items():
        if key in props:
            continue
        owner = methods.get(owners[0]).Config
        prop = owner.model_json_schema()["properties"][key]
        prop = {k: v for k, v in prop.items() if k not in ("title", "default", "description")}
        props[key] = {"anyOf": [prop, {"type": "null"}], "default": None, "description": _help(field, owners)}


def _help(field, owners: list[str]) -> str:
    default = field.get_default(call_default_factory=True)
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    said = [", ".join(owners)]
    if default not in (None, [], ()):
        said.append(f"default {default}" + (" or the profile's" if extra.get("profile") else ""))
    return f"{field.description} [{'; '.join(said)}]"


class QuantizeOptions(Options):
    model_config = ConfigDict(json_schema_extra=_schema)
    EXTRA_METHODS: ClassVar[tuple[str, ...]] = ()  # names a subclass accepts besides the registry's (a recipe's float and tune)

    method: str = Field(description="The quantization method, one of those registered:")
    profile: str | None = Field(None, description="Device profile whose quantization preset chooses the defaults ('auto': the closest to this host).")
    calib_data: Path | None = Field(None, description="Calibration data: TSV/CSV/JSONL text or .npz of inputs.")
    calib_samples: int = Field(128, ge=1, description="Calibration samples.")
    smooth_quant_min_ratio: float = Field(
        6.0,
        ge=0,
        description=(
            "SmoothQuant: leave a tensor alone when its largest channel is under this x its median channel "
            "(its Mul costs time and buys little; 0 smooths every tensor)."
        ),
    )
    smooth_quant: float | None = Field(
        None,
        ge=0,
        lt=1,
        description=(
            "Dynamic/static INT8: SmoothQuant with this alpha (0.5-0.7 typical) moves activation outliers into per-channel "
            "weight scales first (needs --calib-data; pair it with per-channel weights). Static uses 0.7 unless told (with "
            "per-channel weights and real calibration data); 0 turns it off."
        ),
    )
    random_calibration: bool = Field(False, description="Calibrate on random inputs (recorded as a warning in the manifest).")
    text_column: str = Field("text", min_length=1, description="Text column of TSV/CSV/JSONL data.")
    label_column: str = Field("label", min_length=1, description="Label column for --max-accuracy-drop.")
    eval_data: Path | None = Field(None, description="Real samples for fidelity (default: the calibration data).", json_schema_extra={"flag": "data"})
    eval_samples: int = Field(
        64, ge=1, description="Samples for fidelity; a search (accuracy budget, int4 ranking) selects on as many rows and reports on the next ones."
    )
    exclude: list[str] = Field(default_factory=list, description="Keep in float: node name, op type, glob or PyTorch module name. Repeatable.")
    min_mean_cosine: float | None = Field(
        None, ge=-1, le=1, description="Accuracy-aware: keep the most sensitive nodes in float until the mean cosine >= this."
    )
    min_worst_cosine: float | None = Field(None, ge=-1, le=1, description="Accuracy-aware: also require the worst sample's cosine >= this.")
    max_accuracy_drop: float | None = Field(
        None, ge=0, le=1, description="Accuracy-aware: max task-accuracy drop (a fraction) vs the parent on labeled --data."
    )

    settings: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict, description="The method's own settings as given (validated).")

    @classmethod
    def method_names(cls) -> tuple[str, ...]:
        return (*methods.names(), *cls.EXTRA_METHODS)

    @classmethod
    def input_keys(cls) -> set[str]:
        return (set(cls.model_fields) - {"settings"}) | set(settings_fields())

    @model_validator(mode="wrap")
    @classmethod
    def _method_settings(cls, data, handler):
        """Move the method's settings out of the flat keys and validate them by the method's
        Config; the errors of both validations are reported together, each at its key."""
        if not isinstance(data, dict):
            return handler(data)
        data, errors = dict(data), []
        given = dict(data.pop("settings", None) or {})
        for key in settings_fields():
            if key in data and key not in cls.model_fields:
                value = data.pop(key)
                if value not in (None, [], ()):
                    given[key] = value
        method = data.get("method")
        if isinstance(method, str) and method not in cls.method_names():
            expected = ", ".join(repr(n) for n in cls.method_names())
            errors.append({"type": "literal_error", "loc": ("method",), "input": method, "ctx": {"expected": expected}})
        elif isinstance(method, str):
            data["settings"], errors = _validated(method, given)
        try:
            result = handler(data)
        except ValidationError as exc:
            errors = [_detail(e) for e in exc.errors()] + errors
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return result

    def setting(self, key: str):
        """A method setting as given (None when not given: the profile or the default decides)."""
        return self.settings.get(key)

    def overrides(self) -> dict:
        """The settings given, which override a profile preset and the method's defaults."""
        return dict(self.settings)

    def recorded(self) -> dict:
        """Every shared field and every setting given, flat, as in a recipe."""
        return self.model_dump(mode="json", exclude={"settings"}) | {k: list(v) if isinstance(v, tuple) else v for k, v in self.settings.items()}

    def accuracy_aware(self) -> bool:
        return any(v is not None for v in (self.min_mean_cosine, self.min_worst_cosine, self.max_accuracy_drop))

    def uses_calibration(self) -> bool:
        """Calibration text feeds static calibration, int4's sensitivity ranking and accuracy-aware searches."""
        m = self.method in methods.names() and methods.get(self.method)
        return bool(m and m.calibration != "none") or self.accuracy_aware() or bool(self.smooth_quant)


def _validated(method: str, given: dict) -> tuple[dict, list]:
    """(the settings validated by ``method``'s Config, errors): a setting the method does not
    have (a recipe's float or tune variant has none) names the methods that have it."""
    owners = settings_fields()
    config = methods.get(method).Config if method in methods.names() else None
    fields = config.model_fields if config is not None else {}
    errors = [_foreign(k, v, owners[k][1], method) for k, v in given.items() if k not in fields]
    mine = {k: v for k, v in given.items() if k in fields}
    if not mine:
        return {}, errors
    try:
        valid = config.model_validate(mine)
    except ValidationError as exc:
        return {}, errors + [_detail(e) for e in exc.errors()]
    return {k: getattr(valid, k) for k in mine}, errors


def _foreign(key: str, value, owners: list[str], method: str) -> dict:
    error = ValueError(f"applies to --method {' or '.join(owners)}, not {method}")
    return {"type": "value_error", "loc": (key,), "input": value, "ctx": {"error": error}}


def _detail(e: dict) -> dict:
    """A pydantic error as an ``InitErrorDetails`` to raise again."""
    return {"type": e["type"], "loc": e["loc"], "input": e["input"], **({"ctx": e["ctx"]} if "ctx" in e else {})}


def _method_help() -> str:
    return QuantizeOptions.model_fields["method"].description + " " + "; ".join(f"{m.name}: {m.summary}" for m in methods.all_methods()) + "."


def method_click_params() -> list[click.Parameter]:
    """``--method`` and one flag per method setting, from the registry as it is now."""
    fields: dict[str, Any] = {
        "method": (str, Field(description=_method_help())),
    }
    for key, (field, owners) in settings_fields().items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        fields[key] = (field.annotation | None, Field(None, description=_help(field, owners), json_schema_extra=extra))
    model = create_model("QuantizeFlags", __base__=Options, **fields)
    params = click_params(model)
    params[0].type = click.Choice(methods.names())
    return params

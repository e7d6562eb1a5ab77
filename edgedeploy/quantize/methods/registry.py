"""The quantization methods, each a ``QuantMethod`` registered by name.

A method is one class in one module: its settings (a typed ``Config``, whose fields become its
``quantize`` flags and recipe keys), the graph kinds it quantizes, its ``tune`` search space and
one ``run``. Everything that lists or dispatches methods reads this registry: the ``--method``
choices, the recipe schema, profile validation, ``tune``'s space and ``quantize`` itself. An
unknown name is refused by ``get``; there is no fallback method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from edgedeploy.core.errors import BadInput

# graph kinds: one ONNX graph (encoders, vision, decoders with past) or an encoder-decoder's three
SINGLE, ENCODER_DECODER = "single", "encoder-decoder"


class MethodConfig(BaseModel):
    """A method's settings with their defaults. A field may name the profile key that sets it
    (``json_schema_extra={"profile": "int4_block_size"}``) and the flag that turns it off
    (``"off_flag": "--per-tensor"``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass
class RunContext:
    """What a run gets besides its settings: the nodes kept in float, the only nodes to quantize
    (a sensitivity probe), a factory of fresh calibration readers and the calibration cache."""

    excluded: list[str] = field(default_factory=list)
    only: list[str] | None = None
    calibration: Callable[[], Any] | None = None
    cache: Path | None = None

    def reader(self):
        if self.calibration is None:
            raise BadInput("this method calibrates on data: give --calib-data FILE")
        return self.calibration()


class QuantMethod:
    """Base of every method. Subclasses set the class attributes and implement ``run``."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line, for --help
    Config: ClassVar[type[MethodConfig]]
    graphs: ClassVar[frozenset[str]] = frozenset({SINGLE})
    # calibration data: "required" to run at all, "optional" where it improves the result (int4's
    # sensitivity ranking and GPTQ), "none"
    calibration: ClassVar[str] = "none"
    presets: ClassVar[dict[str, dict]] = {}  # named bundles of settings, between the profile and the flags
    preset_setting: ClassVar[str | None] = None  # the setting that names a preset

    smoothing: ClassVar[bool] = False  # takes --smooth-quant (an INT8 pre-pass)
    # SmoothQuant's alpha when --smooth-quant is not given, the calibration data is real and the
    # weights are per-channel (smoothed per-tensor weights lose fidelity); None: off by default
    default_smooth_quant: ClassVar[float | None] = None

    def calibration_needed(self, settings: dict) -> str | None:
        """Why these settings need --calib-data (the error when it is missing), or None."""
        if self.calibration == "required":
            return f"{self.name} quantization needs --calib-data FILE (TSV/CSV/JSONL text or .npz); random calibration only with --random-calibration"
        return None

    def check(self, settings: dict) -> None:
        """Refuse (``BadInput``) a combination of resolved settings the method cannot run."""

    def for_family(self, family: str | None, settings: dict, chosen_by: dict) -> None:
        """Adjust the resolved settings for a model family (``source.family``), recording who chose."""

    def run(self, src: Path, dst: Path, settings: dict, ctx: RunContext) -> dict:
        """Quantize the pre-processed float model ``src`` into ``dst``; the settings it used."""
        raise NotImplementedError

    def tune_bases(self, rules: dict, have_calib: bool, have_fused: bool) -> tuple[list[dict], list[str]]:
        """``tune``'s first candidates for this method: ([(parent, settings)], why some were skipped).
        A method with no search space is not tunable."""
        return [], []

    def tune_neighbours(self, settings: dict, rules: dict) -> list[dict]:
        """One-setting changes of a base's settings worth measuring."""
        return []

    def tunable(self) -> bool:
        return type(self).tune_bases is not QuantMethod.tune_bases


_REGISTRY: dict[str, QuantMethod] = {}


def register(cls: type[QuantMethod]) -> type[QuantMethod]:
    """Class decorator: add a method under its ``name`` (a second method of that name is an error)."""
    if not isinstance(getattr(cls, "name", None), str) or not cls.name.isidentifier():
        raise TypeError(f"{cls.__name__}: a method needs a name made of letters, digits and '_'")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise TypeError(f"quantization method {cls.name!r} is already registered")
    if not (isinstance(cls.__dict__.get("Config"), type) and issubclass(cls.Config, MethodConfig)):
        raise TypeError(f"{cls.__name__}: Config must be a MethodConfig subclass")
    if cls.preset_setting is not None and cls.preset_setting not in cls.Config.model_fields:
        raise TypeError(f"{cls.__name__}: preset_setting {cls.preset_setting!r} is not one of its settings")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> QuantMethod:
    if name not in _REGISTRY:
        raise BadInput(f"unknown quantization method {name!r}; known: {', '.join(names())}")
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def all_methods() -> list[QuantMethod]:
    return list(_REGISTRY.values())


def settings_fields() -> dict[str, tuple[Any, list[str]]]:
    """Every method setting: name -> (its field, declared by the first method that has it; the
    methods that have it). Methods sharing a setting name share its type."""
    out: dict[str, tuple[Any, list[str]]] = {}
    for m in _REGISTRY.values():
        for key, f in m.Config.model_fields.items():
            if key in out:
                out[key][1].append(m.name)
            else:
                out[key] = (f, [m.name])
    return out

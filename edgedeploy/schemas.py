"""JSON Schemas derived from the typed declarations (``edgedeploy schema recipe|manifest|profile``)."""

from __future__ import annotations

from edgedeploy.core.manifest import Manifest
from edgedeploy.device.profiles import json_schema as profile_schema
from edgedeploy.release.spec import RecipeSpec


def schema(what: str) -> dict:
    if what == "profile":
        out = profile_schema()
        out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        out["title"] = "edgedeploy device profile"
        return out
    model = {"recipe": RecipeSpec, "manifest": Manifest}[what]
    out = model.model_json_schema(by_alias=True)
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = {"recipe": "edgedeploy release recipe", "manifest": "edgedeploy artifact manifest (edgedeploy.json)"}[what]
    return out

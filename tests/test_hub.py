"""Hub ids through the Hugging Face cache, offline: a cache laid out as huggingface_hub writes
it (refs/main -> snapshots/<commit>), in its own HF_HOME (so each call is a subprocess)."""

from __future__ import annotations

import json

import pytest
from conftest import cli, one_line_error
from hf_configs import build

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("hf-home")
    repo = home / "hub" / "models--testorg--tiny-bert"
    build("bert", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return home


def hub_cli(hf_home, *args, check):
    return cli(*args, env={"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}, check=check)


def test_a_cached_hub_id_exports_offline(hf_home, tmp_path):
    out = tmp_path / "a"
    hub_cli(hf_home, "export", "testorg/tiny-bert", "-o", out, check=0)
    src = json.loads((out / "edgedeploy.json").read_text())["source"]
    assert src["name"] == "testorg/tiny-bert" and src["path"].endswith(f"snapshots/{COMMIT}") and "revision main" in src["description"]
    hub_cli(hf_home, "export", "testorg/tiny-bert", "--revision", COMMIT, "-o", tmp_path / "b", check=0)


@pytest.mark.parametrize("args", [("testorg/not-cached",), ("testorg/tiny-bert", "--revision", "v9-missing")])
def test_an_uncached_hub_id_is_exit_3_with_the_fetch_command(hf_home, tmp_path, args):
    line = one_line_error(hub_cli(hf_home, "export", *args, "-o", tmp_path / "x", check=3))
    assert "not in the Hugging Face cache" in line and "hf download" in line
    assert not (tmp_path / "x").exists()


def test_a_recipe_with_an_uncached_hub_source_stops_before_running(hf_home, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("source: testorg/not-cached\nvariants: {a: {method: dynamic}}\ntargets: [{name: local}]\n")
    line = one_line_error(hub_cli(hf_home, "run", recipe, "--run-dir", tmp_path / "run", check=3))
    assert "hf download testorg/not-cached" in line and not (tmp_path / "run").exists()

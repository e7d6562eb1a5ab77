"""Device profiles: all six load and validate; broken ones fail naming file and field."""

import json

import pytest
from conftest import cli, one_line_error

from edgedeploy.core.errors import BadInput
from edgedeploy.device import profiles

SIX = ("x86-64-avx2", "x86-64-avx512-vnni", "rpi4", "rpi5", "jetson-orin-nano", "jetson-nano")


@pytest.mark.parametrize("name", sorted(profiles.available()))
def test_every_bundled_profile_validates(name):
    p = profiles.load(name)
    assert p["name"] == name
    assert p["peaks"]["source"] and p["peaks"]["fp32_gflops"] > 0 and p["peaks"]["memory_bandwidth_gbs"] > 0


def test_the_six_targets_exist():
    assert set(SIX) <= set(profiles.available())
    assert profiles.load("rpi4")["target"]["cpu"] == "Cortex-A72" and "asimddp" not in profiles.load("rpi4")["target"]["isa"]
    assert "asimddp" in profiles.load("rpi5")["target"]["isa"]
    orin = profiles.load("jetson-orin-nano")
    assert orin["run"]["providers"][:2] == ["TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert orin["quantization"]["format"] == "QDQ" and orin["quantization"]["symmetric_activations"] and orin["quantization"]["fp16"]
    assert profiles.load("x86-64-avx2")["quantization"]["reduce_range"] is True
    assert profiles.load("x86-64-avx512-vnni")["quantization"]["reduce_range"] is False


def _broken(tmp_path, mutate):
    doc = json.loads(json.dumps(profiles.load("rpi4")))
    doc.pop("_path")
    mutate(doc)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "mutate,field",
    [
        (lambda d: d["run"].pop("providers"), "run.providers"),
        (lambda d: d["target"].__setitem__("cores", "four"), "target.cores"),
        (lambda d: d["run"].__setitem__("providers", ["WarpDriveExecutionProvider"]), "run.providers"),
        (lambda d: d["quantization"].__setitem__("format", "QQQ"), "quantization.format"),
        (lambda d: d["peaks"].__setitem__("int8_gops", True), "peaks.int8_gops"),
    ],
)
def test_broken_profiles_name_file_and_field(tmp_path, mutate, field):
    path = _broken(tmp_path, mutate)
    with pytest.raises(BadInput) as exc:
        profiles.load(str(path))
    assert str(path) in str(exc.value) and field in str(exc.value)


def test_user_profile_directory(tmp_path):
    doc = json.loads(json.dumps(profiles.load("rpi5")))
    doc.pop("_path")
    doc["name"] = "my-board"
    (tmp_path / "my-board.json").write_text(json.dumps(doc))
    proc = cli("profiles", "show", "my-board", "--json", env={"EDGEDEPLOY_PROFILES": str(tmp_path)}, check=0)
    assert json.loads(proc.stdout)["name"] == "my-board"
    listed = cli("profiles", "list", env={"EDGEDEPLOY_PROFILES": str(tmp_path)}, check=0).stdout
    assert "my-board" in listed and all(n in listed for n in SIX)


def test_unknown_profile_lists_available():
    proc = cli("profiles", "show", "pi-zero", check=2)
    line = one_line_error(proc)
    assert "unknown profile" in line and "rpi4" in line


def test_doctor_names_closest_profile():
    from edgedeploy.device.doctor import closest_profile, diagnose

    d = diagnose()
    assert d["closest_profile"] in profiles.available()
    assert closest_profile("aarch64", {"asimd"}, False) == "rpi4"
    assert closest_profile("aarch64", {"asimd", "asimddp"}, False) == "rpi5"
    assert closest_profile("aarch64", {"asimd", "asimddp"}, True) == "jetson-orin-nano"
    assert closest_profile("x86_64", {"avx2", "avx512_vnni"}, False) == "x86-64-avx512-vnni"
    assert closest_profile("x86_64", {"avx2"}, False) == "x86-64-avx2"
    out = cli("doctor", check=0).stdout
    assert f"closest profile: {d['closest_profile']}" in out


def test_jetson_provider_options_reach_the_session_arguments():
    """No Jetson GPU exists here, so this checks what the session is given, not what TensorRT does."""
    from edgedeploy.runtimes.session import provider_options

    run = profiles.load("jetson-orin-nano")["run"]
    opts = provider_options(run, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert opts[0]["trt_fp16_enable"] == "true" and opts[0]["trt_engine_cache_path"] == ".edgedeploy/trt-cache"
    assert opts[1] == {"device_id": "0"} and opts[2] == {}


def test_provider_options_must_name_requested_providers(tmp_path):
    doc = profiles.load("rpi4")
    doc.pop("_path")
    doc["run"]["provider_options"] = {"CUDAExecutionProvider": {"device_id": 0}}
    p = tmp_path / "p.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(BadInput, match=r"run\.provider_options"):
        profiles.load(str(p))


@pytest.mark.parametrize(
    "text, l4t, jetpack",
    [
        (
            "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: Tue Aug  1 19:57:35 UTC 2023\n",
            "35.4.1",
            "JetPack 5.x",
        ),
        ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n", "36.4.3", "JetPack 6.x"),
        ("# R32 (release), REVISION: 7.4, GCID: 33514132, BOARD: t210ref, EABI: aarch64\n", "32.7.4", "JetPack 4.x"),
    ],
)
def test_doctor_reads_the_l4t_release_of_a_jetson(tmp_path, text, l4t, jetpack):
    """No Jetson here: the release file is written as Jetsons write it (emulated)."""
    from edgedeploy.device.doctor import diagnose
    from edgedeploy.runtimes import facts, jetson

    release = tmp_path / "nv_tegra_release"
    release.write_text(text)
    here = facts.collect()
    d = diagnose({**here, "jetson": jetson.read_release(release)})
    assert d["is_jetson"] and d["jetson"]["l4t"] == l4t and d["jetson"]["jetpack"] == jetpack
    assert any("onnxruntime-gpu" in w and "--ort-wheel" in w for w in d["warnings"])  # this onnxruntime has no CUDA
    assert jetson.read_release(tmp_path / "absent") is None and not diagnose({**here, "jetson": None})["is_jetson"]


ORIN_NANO_JP62 = """< PARAM TYPE=FILE NAME=CPU_ONLINE >
< POWER_MODEL ID=0 NAME=15W >
CPU_ONLINE CORE_0 1
< POWER_MODEL ID=1 NAME=25W >
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
< POWER_MODEL ID=3 NAME=7W >
< PM_CONFIG DEFAULT=2 >
"""


@pytest.mark.parametrize(
    "conf,mode,says",
    [
        (ORIN_NANO_JP62, "25W", "not MAXN_SUPER: clocks are capped (sudo nvpmodel -m 2;"),
        (ORIN_NANO_JP62, "MAXN_SUPER", None),
        ("< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=1 NAME=7W >\n", "15W", None),  # an Orin Nano on JetPack 5: 15W is its top
        ("< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=1 NAME=7W >\n", "7W", "not 15W: clocks are capped (sudo nvpmodel -m 0;"),
        ("< POWER_MODEL ID=0 NAME=MAXN >\n< POWER_MODEL ID=1 NAME=5W >\n", "5W", "not MAXN"),
        ("", "10W", "if the board has a faster mode"),
    ],
)
def test_doctor_knows_the_orin_power_modes(tmp_path, conf, mode, says):
    """No Jetson here: nvpmodel.conf is written as JetPack 5 and 6.2 ship it for the Orin Nano."""
    from edgedeploy.runtimes import jetson

    path = tmp_path / "nvpmodel.conf"
    path.write_text(conf)
    got = jetson.power_mode_warning(mode, jetson.power_modes(path))
    assert got is None if says is None else says in got

"""Device state with every measurement: temperatures, clocks, a Pi's throttle flags, read from a
fake sysfs root and a fake ``vcgencmd`` (locally, and on the loopback device over SSH); a timing
the device cannot vouch for is THROTTLED and exits 4."""

import json
import os
import sys
import threading
from pathlib import Path

import pytest
from conftest import cli, one_line_error
from sshd import Server, ensure_sshd

from edgedeploy.export import export
from edgedeploy.runtimes import device_state


def fake_device(root: Path, *, throttled: str = "0x0", temp_c: float = 45.0, max_khz: int = 1_800_000) -> dict:
    """A fake /sys (one thermal zone, two CPUs) and a fake vcgencmd under ``root``; the
    environment that points the harness at them."""
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text(f"{int(temp_c * 1000)}\n")
    for cpu in ("cpu0", "cpu1"):
        f = root / f"sys/devices/system/cpu/{cpu}/cpufreq"
        f.mkdir(parents=True, exist_ok=True)
        for name, v in (("scaling_cur_freq", max_khz), ("scaling_min_freq", 600_000), ("scaling_max_freq", max_khz), ("cpuinfo_max_freq", 1_800_000)):
            (f / name).write_text(f"{v}\n")
    bin_ = root / "bin"
    bin_.mkdir(exist_ok=True)
    tool = bin_ / "vcgencmd"
    tool.write_text(f'#!/bin/sh\n[ "$1" = get_throttled ] && echo "throttled={throttled}"\n')
    tool.chmod(0o755)
    return {device_state.ROOT_ENV: str(root), "PATH": f"{bin_}{os.pathsep}{os.environ['PATH']}"}


def test_the_state_is_read_from_sysfs_and_vcgencmd(tmp_path, monkeypatch):
    for k, v in fake_device(tmp_path, throttled="0x50005", temp_c=81.5).items():
        monkeypatch.setenv(k, v)
    s = device_state.read()
    assert s["temperature_c"] == {"thermal_zone0:cpu-thermal": 81.5} and s["throttled"] == 0x50005
    assert s["cpufreq_khz"]["cpu1"] == {"cur": 1_800_000, "min": 600_000, "max": 1_800_000, "hw_max": 1_800_000}


@pytest.mark.parametrize(
    "before,after,says",
    [
        ({"throttled": 0x50005}, {"throttled": 0x50005}, "under-voltage, throttled before (vcgencmd get_throttled=0x50005)"),
        ({"throttled": 0x0}, {"throttled": 0x40000}, "throttling happened during the run (get_throttled 0x0 -> 0x40000)"),
        ({}, {"cpufreq_khz": {"cpu0": {"max": 1_200_000, "hw_max": 1_800_000}}}, "cpu0 capped at 1200 MHz of 1800 MHz"),
    ],
)
def test_throttled_and_capped_states_are_named(before, after, says):
    assert says in device_state.problems(before, after)


def test_a_cool_device_and_old_history_are_no_problem():
    # 0x50000: under-voltage and throttling happened once since boot, not now and not during the run
    assert device_state.problems({"throttled": 0x50000}, {"throttled": 0x50000, "cpufreq_khz": {"cpu0": {"max": 1, "hw_max": 1}}}) == []
    assert device_state.problems({}, {}) == []  # a host without sysfs clocks or vcgencmd (this CI machine)


def test_cooldown_waits_for_the_hottest_zone(tmp_path, monkeypatch):
    for k, v in fake_device(tmp_path, temp_c=85.0).items():
        monkeypatch.setenv(k, v)
    zone = tmp_path / "sys/class/thermal/thermal_zone0/temp"
    threading.Timer(1.2, lambda: zone.write_text("52000\n")).start()
    got = device_state.cool_down(60.0, poll_s=0.1, max_wait_s=20)
    assert got["reached"] and got["temperature_c"] == 52.0 and 1.0 <= got["waited_s"] < 20


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return export(None, tmp_path_factory.mktemp("a") / "mlp", factory="factories:tiny_mlp", input=("x:float32:batch,64",))


def test_bench_on_a_throttled_local_device_exits_4_after_the_table(mlp, tmp_path):
    env = fake_device(tmp_path / "dev", throttled="0x50005")
    out = tmp_path / "r.json"
    proc = cli("bench", mlp.path, "--shape", "batch=1", "--iterations", "20", "-o", out, env=env, check=4)
    assert "THROTTLED" in proc.stdout and "THROTTLED: mlp" in one_line_error(proc) and "under-voltage" in one_line_error(proc)
    state = json.loads(out.read_text())["results"][0]["device_state"]
    assert state["before"]["throttled"] == 0x50005 and state["after"]["temperature_c"] == {"thermal_zone0:cpu-thermal": 45.0}


needs_sshd = pytest.mark.skipif(
    ensure_sshd() is not None and not (os.environ.get("CI") or os.environ.get("EDGEDEPLOY_REQUIRE_SSHD")), reason=ensure_sshd() or ""
)


@needs_sshd
def test_a_throttled_device_over_ssh_exits_4_and_a_cool_one_passes(mlp, tmp_path):
    """The loopback device's Python is a wrapper that shows the harness a fake sysfs and vcgencmd."""
    server = Server(tmp_path / "sshd")
    try:
        for name, flags in (("hot", "0x50005"), ("cool", "0x0")):
            env = fake_device(tmp_path / name, throttled=flags)
            python = tmp_path / f"{name}-python"
            python.write_text(f'#!/bin/sh\nexport {" ".join(f"{k}={v}" for k, v in env.items())}\nexec {sys.executable} "$@"\n')
            python.chmod(0o755)
            args = ["bench", mlp.path, "--host", "testpi", "--ssh-config", server.config, "--profile", "rpi4", "--remote-python", python]
            args += ["--shape", "batch=1", "--iterations", "20", "--warmup", "1", "--no-device-cache"]
            if name == "hot":
                line = one_line_error(cli(*args, check=4))
                assert line.startswith("edgedeploy: error: THROTTLED: mlp") and "get_throttled=0x50005" in line
            else:
                proc = cli(*args, "--json", check=0)
                assert json.loads(proc.stdout)["results"][0]["device_state"]["throttled"] == []
        assert server.leftovers() == []
    finally:
        server.stop()


@needs_sshd
def test_doctor_host_judges_the_device_with_the_same_checks(tmp_path):
    """The runtime's doctor runs on the loopback device (a wrapper Python shows it a throttling
    fake sysfs): its facts come back and the host names the closest profile and the problems."""
    from edgedeploy.device.doctor import diagnose

    server = Server(tmp_path / "sshd")
    try:
        env = fake_device(tmp_path / "dev", throttled="0x50005", temp_c=82.0)
        python = tmp_path / "device-python"
        python.write_text(f'#!/bin/sh\nexport {" ".join(f"{k}={v}" for k, v in env.items())}\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
        proc = cli("doctor", "--host", "testpi", "--ssh-config", server.config, "--remote-python", python, "--json", check=0)
        d = json.loads(proc.stdout)["testpi"]["ok"]
        assert d["closest_profile"] == diagnose()["closest_profile"] and d["host"]["onnxruntime"]
        assert any("throttling now: under-voltage" in w for w in d["warnings"]) and any("82 °C" in w for w in d["warnings"])
        text = cli("doctor", "--host", "testpi", "--ssh-config", server.config, "--remote-python", python, check=0).stdout
        assert text.startswith("== testpi\nhost: ") and "closest profile:" in text
        assert server.leftovers() == []
    finally:
        server.stop()


@pytest.mark.parametrize(
    "raw,says",
    [
        (b"\x00\xff not json", "not JSON"),
        (b"", "not JSON"),
        (b'{"host": "pi"}', "expected fields"),
        (b'{"host": {"cores": "many"}}', "expected fields"),
        (b'{"host": {}, "cpu_flags": "avx2"}', "expected fields"),
        (b"[1, 2]", "expected fields"),
    ],
)
def test_a_hostile_doctor_report_is_bad_input(raw, says):
    """The device's doctor JSON is untrusted: exit 2 naming the device, no traceback."""
    from edgedeploy.core.errors import BadInput
    from edgedeploy.device.remote_doctor import parse

    with pytest.raises(BadInput, match=says) as exc:
        parse(raw, "pi")
    assert exc.value.exit_code == 2 and str(exc.value).startswith("pi: ")


def test_a_hostile_device_state_in_results_is_bad_input():
    from edgedeploy.core.errors import BadInput
    from edgedeploy.device.results import parse

    result = {"name": "m", "latency_ms": {"p50": 1.0, "mean": 1.0, "cv": 0.01}, "stable": True, "samples": 5}
    doc = {"scenario": "single-stream", "environment": {}, "results": [{**result, "device_state": {"throttled": "all of it"}}]}
    with pytest.raises(BadInput, match=r"device_state\.throttled"):
        parse(json.dumps(doc).encode(), "pi", ["m"])
    doc["results"][0]["device_state"]["throttled"] = ["x"] * 65
    with pytest.raises(BadInput, match=r"device_state\.throttled"):
        parse(json.dumps(doc).encode(), "pi", ["m"])


def test_a_forged_sysfs_and_nvpmodel_conf_are_read_safely(tmp_path, monkeypatch):
    """A garbage temperature is left out, a huge file is read 64 bytes deep, and a
    nvpmodel.conf that is not one gives no modes."""
    from edgedeploy.runtimes import jetson

    env = fake_device(tmp_path)
    (tmp_path / "sys/class/thermal/thermal_zone0/temp").write_text("hot\n")
    (tmp_path / "sys/devices/system/cpu/cpu0/cpufreq/scaling_max_freq").write_text("9" * 10_000_000)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = device_state.read()
    assert s["temperature_c"] == {} and s["cpufreq_khz"]["cpu1"]["max"] == 1_800_000
    assert len(str(s["cpufreq_khz"]["cpu0"]["max"])) == 64  # the first 64 bytes, never the 10 MB
    conf = tmp_path / "nvpmodel.conf"
    conf.write_bytes(b"\x00\xff< POWER_MODEL ID=x NAME=>" * 1000)
    assert jetson.power_modes(conf) == {} and jetson.power_modes(tmp_path / "absent") == {}

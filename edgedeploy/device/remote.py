"""Benchmarks on a remote device over SSH: bundle -> staged upload verified by sha256 on
the remote -> environment check -> harness run with a deadline -> results -> cleanup of
the remote work directory on every exit path (unless keep_remote)."""

from __future__ import annotations

import json
import logging
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgedeploy.core.artifact import sha256_file
from edgedeploy.core.atomic import write_bytes_atomic
from edgedeploy.core.errors import BadInput, EnvironmentFailure
from edgedeploy.device import model_cache, results, ssh
from edgedeploy.device.options import DEFAULT_TIMEOUT_S
from edgedeploy.device.runtime_bundle import build_zipapp
from edgedeploy.runtimes.job import output_file_names
from edgedeploy.runtimes.names import unique_file_names

log = logging.getLogger("edgedeploy")
PYZ = "edgedeploy-runtime.pyz"
MAX_OUTPUTS_BYTES = 1 << 30  # one inference's inputs and outputs per model, as .npz

# The one probe of a device's Python: version, arch, libc and its version, numpy/onnxruntime, free disk, and the
# packages of a venv when one is named (argv[1]). Standard library only: it runs before anything is installed.
PROBE = """import json, os, platform, sys, tempfile
r = {"python": platform.python_version(), "python_tag": "%d.%d" % sys.version_info[:2], "arch": platform.machine(),
     "libc": platform.libc_ver()[0], "libc_version": platform.libc_ver()[1], "executable": sys.executable, "missing": [], "installed": {}}
for m in ("numpy", "onnxruntime"):
    try:
        r[m] = __import__(m).__version__
    except Exception:
        r["missing"].append(m)
st = os.statvfs(tempfile.gettempdir())
r["free_disk_mb"] = st.f_bavail * st.f_frsize / 1e6
py = os.path.join(sys.argv[1], "bin", "python") if len(sys.argv) > 1 else ""
if py and os.path.exists(py):
    import subprocess
    out = subprocess.run([py, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"], capture_output=True, text=True)
    if out.returncode == 0:
        r["installed"] = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(out.stdout)}
print(json.dumps(r))"""
MKTEMP = "import tempfile; print(tempfile.mkdtemp(prefix='edgedeploy-'))"
VERIFY = """import hashlib, json, os, sys
root, want, bad = sys.argv[1], json.load(sys.stdin), []
for rel, digest in sorted(want.items()):
    h = hashlib.sha256()
    try:
        with open(os.path.join(root, rel), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        bad.append(rel)
        continue
    if h.hexdigest() != digest:
        bad.append(rel)
print(json.dumps(bad))
sys.exit(1 if bad else 0)"""
# The trap removes the whole work dir if the connection drops mid-upload (sshd sends HUP).
UPLOAD = 'trap \'rm -rf "$1"; exit 98\' HUP TERM PIPE; mkdir -p "$1/.staging" && tar -xf - -C "$1/.staging" || { rm -rf "$1"; exit 97; }'
RUN = 'cd "$1" && exec "$2" ' + PYZ + ' run job.json -o results.json --deadline "$3" --pid-file pid'
KILL = 'test -f "$1/pid" && kill -9 "$(cat "$1/pid")" 2>/dev/null; true'


def _graph_paths(model: dict, art, where: str) -> None:
    """A seq2seq model's graphs, where the device finds them (beside its model file)."""
    if "graphs" in model:
        model["graphs"] = {role: f"{where}/{name}" for role, name in art.graph_files.items()}


def build_bundle(dest: Path, arts, job: dict, inputs_npz: Path | None, cache: dict | None = None) -> dict[str, str]:
    """Model files, the runtime zipapp, the inputs and a job file, with a sha256 of each. Each
    model gets its own directory, distinct whatever the models are called. With ``cache``
    ({"root", "have", "keys"}: see ``model_cache``), models point into the device's cache and
    only those it lacks travel, under ``cache/<key>``."""
    job = json.loads(json.dumps(job))
    for i, (model, art, sub) in enumerate(zip(job["models"], arts, unique_file_names(m["name"] for m in job["models"]))):
        if cache is not None:
            k = cache["keys"][i]
            model["path"] = f"{cache['root']}/{k}/{art.manifest.model_file}"
            model["engine_cache_root"] = f"{posixpath.dirname(cache['root'])}/trt-engines"  # TensorRT engines outlive the run
            _graph_paths(model, art, f"{cache['root']}/{k}")
            if k in cache["have"] or (dest / "cache" / k).exists():
                continue
            sub = Path("cache") / k
            for name in art.model_files():
                (dest / sub / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(art.path / name, dest / sub / name, follow_symlinks=False)
            continue
        sub = Path("models") / sub
        (dest / sub).mkdir(parents=True, exist_ok=True)
        for name in art.model_files():
            (dest / sub / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(art.path / name, dest / sub / name, follow_symlinks=False)
        model["path"] = (sub / art.manifest.model_file).as_posix()
        _graph_paths(model, art, sub.as_posix())
    if job.get("save_outputs"):
        job["save_outputs"] = "outputs"
    if inputs_npz:
        shutil.copy2(inputs_npz, dest / "inputs.npz")
        job["inputs_npz"] = "inputs.npz"
    build_zipapp(dest / PYZ)
    (dest / "job.json").write_text(json.dumps(job, indent=2))
    return {f.relative_to(dest).as_posix(): sha256_file(f) for f in sorted(dest.rglob("*")) if f.is_file()}


class _Throttle:
    """File-like writer that caps the upload rate (for slow field links)."""

    def __init__(self, raw, kbps: float | None):
        self.raw, self.rate, self.sent, self.t0 = raw, (kbps * 1000 if kbps else None), 0, time.monotonic()

    def write(self, data):
        self.raw.write(data)
        self.sent += len(data)
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - self.t0)
            if ahead > 0:
                time.sleep(ahead)
        return len(data)

    def flush(self):
        self.raw.flush()


def probe(target: ssh.Host, python: str, venv: str | None = None) -> dict:
    """What the device's ``python`` has (see ``PROBE``); exit 3 when there is no such Python."""
    proc = ssh.run(target, [python, "-c", PROBE, *([venv] if venv else [])], check=False)
    if proc.returncode == 127:
        raise EnvironmentFailure(
            f"{target.label}: no {python} on the remote; install Python 3 there (e.g. apt install python3 python3-venv) or pass --remote-python PATH"
        )
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{target.label}: {python} failed the environment probe: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


def check_remote(target: ssh.Host, python: str, need_bytes: int = 0) -> dict:
    info = probe(target, python)
    if info["missing"]:
        raise EnvironmentFailure(
            f"{target.label}: remote {python} lacks {', '.join(info['missing'])}; fix with: "
            f"edgedeploy provision --host {target.label} (offline), then pass --remote-venv"
        )
    if need_bytes and info["free_disk_mb"] * 1e6 < 2 * need_bytes:
        raise EnvironmentFailure(
            f"{target.label}: only {info['free_disk_mb']:.0f} MB free in the remote temp dir; need {2 * need_bytes / 1e6:.0f} MB"
        )
    return info


def upload(target: ssh.Host, local: Path, workdir: str, bwlimit_kbps: float | None = None) -> None:
    """Stream ``local`` as a tar into ``workdir/.staging``; retried on connection failures."""
    attempts = 1 + target.retries
    for attempt in range(1, attempts + 1):
        cmd = target.base() + [ssh.remote_command(["sh", "-c", UPLOAD, "sh", workdir])]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            with tarfile.open(fileobj=_Throttle(proc.stdin, bwlimit_kbps), mode="w|") as tar:
                tar.add(str(local), arcname=".")
            proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        err = proc.stderr.read().decode(errors="replace")
        rc = proc.wait()
        if rc == 0:
            return
        if rc == ssh.SSH_FAILURE and attempt < attempts and not ssh._permanent(err):
            log.warning("%s: connection lost during upload; retrying (%d/%d)", target.label, attempt, attempts - 1)
            time.sleep(target.backoff_s * 2 ** (attempt - 1))
            ssh.run(target, ["mkdir", "-p", "--", workdir], check=False)  # the remote trap removed it with the partial upload
            continue
        if rc == ssh.SSH_FAILURE:
            raise ssh.explain(target, err)
        raise EnvironmentFailure(f"{target.label}: upload failed (exit {rc}): {err.strip()[-200:]}")


@contextmanager
def uploaded(target: ssh.Host, python: str, local: Path, sums: dict) -> Iterator[str]:
    """``local`` uploaded into a temporary folder on the device and checked there against
    ``sums``; yields the folder's path on the device and removes the folder afterwards."""
    workdir = ssh.run(target, [python, "-c", MKTEMP]).stdout.decode().strip()
    try:
        upload(target, local, workdir)
        verify(target, python, f"{workdir}/.staging", sums)
        yield f"{workdir}/.staging"
    finally:
        ssh.run(target, ["rm", "-rf", "--", workdir], check=False)


def verify(target: ssh.Host, python: str, staging: str, sums: dict) -> None:
    proc = ssh.run(target, [python, "-c", VERIFY, staging], input=json.dumps(sums).encode(), check=False)
    if proc.returncode == 1:
        bad = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        raise BadInput(f"{target.label}: checksum mismatch after upload: {', '.join(bad)}; the copy on the remote is corrupt, nothing was run")
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{target.label}: checksum verification failed to run: {proc.stderr.decode(errors='replace').strip()[-200:]}")


def run_harness(target: ssh.Host, python: str, bundle: str, timeout_s: float, progress=None) -> None:
    cmd = target.base() + [ssh.remote_command(["sh", "-c", RUN, "sh", bundle, python, str(int(timeout_s))])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def pump():
        for line in proc.stderr:
            lines.append(line)
            if progress and line.startswith("progress "):
                _, name, frac = line.split()
                done, total = frac.split("/")
                progress(name, int(done), int(total))

    import threading

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc = proc.wait(timeout=timeout_s + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        ssh.run(target, ["sh", "-c", KILL, "sh", bundle], check=False, timeout=30)
        raise EnvironmentFailure(f"{target.label}: the remote benchmark passed its {timeout_s:.0f} s deadline; it was killed") from None
    reader.join(timeout=5)
    tail = "".join(ln for ln in lines if not ln.startswith("progress ")).strip()[-300:]
    if rc == 124:
        raise EnvironmentFailure(f"{target.label}: the remote benchmark passed its {timeout_s:.0f} s deadline and was stopped (raise --timeout)")
    if rc == ssh.SSH_FAILURE:
        raise ssh.explain(target, "".join(lines))
    if rc == 2:
        raise BadInput(f"{target.label}: the remote harness rejected the job: {tail}")
    if rc != 0:
        raise EnvironmentFailure(f"{target.label}: the remote harness failed with exit {rc}: {tail}")


def _fetch_outputs(target: ssh.Host, bundle: str, names: list[str], into: Path) -> None:
    """The models' saved outputs, each bounded, under the host's names (never the device's)."""
    for name in output_file_names(names):
        data = ssh.run(target, ["head", "-c", str(MAX_OUTPUTS_BYTES + 1), "--", f"{bundle}/outputs/{name}"]).stdout
        if len(data) > MAX_OUTPUTS_BYTES:
            raise BadInput(f"{target.label}: outputs/{name} is over {MAX_OUTPUTS_BYTES:,} bytes; refusing it")
        write_bytes_atomic(into / name, data)


def _device_cache(target: ssh.Host, python: str, arts) -> dict:
    """{"root", "have", "keys"}: which of ``arts`` the device's model cache holds intact (hashed there)."""
    check_remote(target, python)
    files = [model_cache.model_files(a) for a in arts]
    keys = [model_cache.key(f) for f in files]
    root, have = model_cache.check(target, python, dict(zip(keys, files)))
    missing = len(set(keys) - set(have))
    log.info("%s: device cache %s: %d model(s) cached and re-hashed there, %d to upload", target.label, root, len(set(keys)) - missing, missing)
    return {"root": root, "have": have, "keys": keys}


def bench_remote(
    target: ssh.Host,
    arts,
    job: dict,
    *,
    inputs_npz=None,
    python: str = "python3",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    keep_remote: bool = False,
    bwlimit_kbps: float | None = None,
    progress=None,
    save_outputs=None,
    cache_models: bool = True,
) -> dict:
    with tempfile.TemporaryDirectory(prefix="edgedeploy-bundle-") as tmp:
        local = Path(tmp)
        cache = _device_cache(target, python, arts) if cache_models else None
        sums = build_bundle(local, arts, job, Path(inputs_npz) if inputs_npz else None, cache)
        size = sum(f.stat().st_size for f in local.rglob("*") if f.is_file())
        info = check_remote(target, python, size)
        workdir = ssh.run(target, [python, "-c", MKTEMP]).stdout.decode().strip()
        try:
            log.info("%s: uploading %.1f MB to %s", target.label, size / 1e6, workdir)
            upload(target, local, workdir, bwlimit_kbps)
            staging, bundle = f"{workdir}/.staging", f"{workdir}/bundle"
            verify(target, python, staging, sums)
            # idempotent: a retried command whose first try moved it before the connection dropped finds the bundle there
            ssh.run(target, ["sh", "-c", 'test -d "$2" || mv -- "$1" "$2"', "sh", staging, bundle])
            if cache is not None:
                model_cache.install(target, python, bundle, sorted({k for k in cache["keys"] if k not in cache["have"]}))
            run_harness(target, python, bundle, timeout_s, progress)
            names = [m["name"] for m in job["models"]]
            raw = ssh.run(target, ["head", "-c", str(results.MAX_RESULTS_BYTES + 1), "--", f"{bundle}/results.json"]).stdout
            doc = results.parse(raw, f"{target.label}", names)
            if save_outputs:
                _fetch_outputs(target, bundle, names, Path(save_outputs))
        finally:
            if keep_remote:
                log.info("%s: kept the remote work directory %s", target.label, workdir)
            else:
                try:
                    ssh.run(target, ["rm", "-rf", "--", workdir], check=False, timeout=60)
                except EnvironmentFailure as exc:
                    log.warning("could not remove %s on %s: %s", workdir, target.label, exc)
    doc["remote"] = {"host": target.label, "workdir": workdir, "kept": keep_remote, "check": info}
    if cache is not None:
        doc["remote"]["model_cache"] = {
            "root": cache["root"],
            "reused": sum(k in cache["have"] for k in cache["keys"]),
            "uploaded": len(set(cache["keys"]) - cache["have"]),
        }
    doc["measured"] = f"measured on {target.label}"
    return doc

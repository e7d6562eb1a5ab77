"""A content-addressed model cache on the device, so a search that measures the same candidates
in several rounds uploads each model once.

A model's key is the sha256 over its files' names and sha256s; its files live in
``$XDG_CACHE_HOME/edgedeploy/models/<key>/`` (``~/.cache/...`` by default) on the device. Nothing the device holds is trusted:
before each run every cached file is hashed again there, and a key whose files are missing or
changed is removed and uploaded anew. ``edgedeploy cleanup --host`` removes the cache.
"""

from __future__ import annotations

import hashlib
import json

from edgedeploy.core.artifact import sha256_file
from edgedeploy.core.errors import EnvironmentFailure
from edgedeploy.device import ssh

ROOT = "edgedeploy/models"  # under the device's $XDG_CACHE_HOME or ~/.cache
_ROOT = 'root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), sys.argv[1])\n'
# stdin: {key: {relative path: sha256}}; prints {"root": absolute root, "have": [keys intact]}; removes broken keys
CHECK = (
    """import hashlib, json, os, shutil, sys
"""
    + _ROOT
    + """want, have = json.load(sys.stdin), []
for key, files in sorted(want.items()):
    d = os.path.join(root, key)
    if not os.path.isdir(d) or os.path.islink(d):
        continue
    good = True
    for rel, digest in files.items():
        p = os.path.join(d, rel)
        h = hashlib.sha256()
        try:
            if os.path.islink(p):
                raise OSError("link")
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            good = False
            break
        if h.hexdigest() != digest:
            good = False
            break
    if good:
        have.append(key)
    else:
        shutil.rmtree(d, ignore_errors=True)
print(json.dumps({"root": root, "have": have}))"""
)
# argv: root, staging dir, keys: moves staging/cache/<key> into root/<key> (a key already there is kept)
INSTALL = (
    """import os, shutil, sys
"""
    + _ROOT
    + """staging = sys.argv[2]
os.makedirs(root, exist_ok=True)
for key in sys.argv[3:]:
    src, dst = os.path.join(staging, "cache", key), os.path.join(root, key)
    if os.path.isdir(dst):
        shutil.rmtree(src, ignore_errors=True)
        continue
    tmp = dst + ".partial-%d" % os.getpid()
    shutil.move(src, tmp)
    os.rename(tmp, dst)"""
)
# prints {"root": root, "models": n, "bytes": total} and removes the cache
CLEAN = (
    """import json, os, shutil, sys
"""
    + _ROOT
    + """n = total = 0
if os.path.isdir(root) and not os.path.islink(root):
    for key in os.listdir(root):
        n += 1
        for d, _, files in os.walk(os.path.join(root, key)):
            total += sum(os.path.getsize(os.path.join(d, f)) for f in files if not os.path.islink(os.path.join(d, f)))
    shutil.rmtree(root)
engines = os.path.join(os.path.dirname(root), "trt-engines")  # TensorRT engines built for those models
if os.path.isdir(engines) and not os.path.islink(engines):
    for d, _, files in os.walk(engines):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files if not os.path.islink(os.path.join(d, f)))
    shutil.rmtree(engines)
print(json.dumps({"root": root, "models": n, "bytes": total}))"""
)


def model_files(art) -> dict[str, str]:
    return {name: sha256_file(art.path / name) for name in art.model_files()}


def key(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()


def _last_json(target: ssh.Host, proc, what: str) -> dict:
    try:
        doc = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        raise EnvironmentFailure(f"{target.label}: the model cache {what} answered garbage: {proc.stdout[-200:]!r}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("root"), str):
        raise EnvironmentFailure(f"{target.label}: the model cache {what} answered garbage")
    return doc


def check(target: ssh.Host, python: str, wanted: dict[str, dict[str, str]]) -> tuple[str, set[str]]:
    """(the cache's absolute root on the device, the keys already there intact)."""
    proc = ssh.run(target, [python, "-c", CHECK, ROOT], input=json.dumps(wanted).encode(), check=False, timeout=600)
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{target.label}: the model cache check failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    doc = _last_json(target, proc, "check")
    have = doc.get("have")
    if not isinstance(have, list):
        raise EnvironmentFailure(f"{target.label}: the model cache check answered garbage")
    return doc["root"], {k for k in have if k in wanted}  # only keys we asked about


def install(target: ssh.Host, python: str, staging: str, keys: list[str]) -> None:
    if keys:
        ssh.run(target, [python, "-c", INSTALL, ROOT, staging, *keys], timeout=600)


def clean(target: ssh.Host, python: str) -> dict:
    proc = ssh.run(target, [python, "-c", CLEAN, ROOT], check=False, timeout=600)
    if proc.returncode != 0:
        raise EnvironmentFailure(f"{target.label}: removing the model cache failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    doc = _last_json(target, proc, "cleanup")
    return {"root": doc["root"], "models": int(doc.get("models") or 0), "bytes": int(doc.get("bytes") or 0)}

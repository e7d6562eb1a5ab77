#!/usr/bin/env bash
# End to end on an emulated ARM64 target (the Raspberry Pi stand-in): a Debian bookworm
# arm64 root filesystem under qemu-user (binfmt_misc), an sshd inside it on a loopback
# port, then `edgedeploy provision` (offline wheels built on this host) and
# `edgedeploy bench --profile rpi4` against it, and finally a numerical comparison of the
# ARM64 outputs of the float and INT8 artifacts with the x86 outputs.
# Timings under emulation mean nothing and are labelled EMULATED. Needs root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ED="$ROOT/.venv/bin/edgedeploy"
PY="$ROOT/.venv/bin/python"
CACHE=${EDGEDEPLOY_ARM64_CACHE:-/var/cache/edgedeploy}
ROOTFS="$CACHE/arm64-bookworm"
DATA=${DATA:-$ROOT/../shared/datasets/sst2}
WORK=$(mktemp -d /tmp/edgedeploy-e2e-arm64.XXXXXX)
SSHD_PID=""

log() { echo "e2e-arm64: $*" >&2; }
[ "$(id -u)" = 0 ] || { log "needs root (debootstrap, chroot, binfmt_misc)"; exit 3; }

cleanup() {
  [ -n "$SSHD_PID" ] && kill "$SSHD_PID" 2>/dev/null || true
  for m in sys proc; do mountpoint -q "$ROOTFS/$m" && umount -l "$ROOTFS/$m" || true; done
}
trap cleanup EXIT

missing=""
for bin in debootstrap qemu-aarch64-static update-binfmts ssh ssh-keygen; do command -v "$bin" >/dev/null || missing=1; done
if [ -n "$missing" ]; then
  log "installing debootstrap qemu-user-static binfmt-support openssh-client"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap qemu-user-static binfmt-support openssh-client >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || { log "qemu-aarch64 is not registered with binfmt_misc"; exit 3; }

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
  log "building the arm64 root filesystem in $ROOTFS (a few minutes, cached for next time)"
  mkdir -p "$CACHE"; rm -rf "$ROOTFS.tmp"
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,openssh-server,procps bookworm "$ROOTFS.tmp" http://deb.debian.org/debian >/dev/null
  mv "$ROOTFS.tmp" "$ROOTFS"
fi
log "rootfs: $(chroot "$ROOTFS" uname -m), $(chroot "$ROOTFS" python3 --version)"
# /proc only: with the host's /sys mounted, onnxruntime 1.32's cpuinfo reads x86 topology and the
# aarch64 import segfaults under qemu-user (seen here); without it ORT only warns that cpuinfo failed.
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N "" -f "$WORK/key"
mkdir -p "$ROOTFS/root/.ssh" "$ROOTFS/run/sshd"
cp "$WORK/key.pub" "$ROOTFS/root/.ssh/authorized_keys"
chroot "$ROOTFS" ssh-keygen -A >/dev/null
cat > "$ROOTFS/etc/ssh/sshd_config_edgedeploy" <<CFG
Port $PORT
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
AuthorizedKeysFile /root/.ssh/authorized_keys
CFG
chroot "$ROOTFS" /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config_edgedeploy 2>"$WORK/sshd.log" &
SSHD_PID=$!
cat > "$WORK/ssh_config" <<CFG
Host pi-emulated
  HostName 127.0.0.1
  Port $PORT
  User root
  IdentityFile $WORK/key
  IdentitiesOnly yes
  UserKnownHostsFile $WORK/known_hosts
CFG
for _ in $(seq 100); do "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" 2>/dev/null && break; sleep 0.2; done

ARTS="$WORK/artifacts"
"$ED" export minilm-l6 -o "$ARTS/minilm-l6"
"$ED" quantize "$ARTS/minilm-l6" -o "$ARTS/minilm-l6-int8-rpi4" --method dynamic --profile rpi4 --data "$DATA/dev.tsv"
chroot "$ROOTFS" rm -rf /root/edgedeploy-venv  # provision from scratch every run; the rootfs itself stays cached

SSHOPT=(--host pi-emulated --ssh-config "$WORK/ssh_config")
log "provision (offline wheels for the target's platform, built here)"
"$ED" provision "${SSHOPT[@]}" --accept-new-host-key --remote-venv /root/edgedeploy-venv
log "provision again: must install nothing"
"$ED" provision "${SSHOPT[@]}" --remote-venv /root/edgedeploy-venv | tee "$WORK/provision2.txt"
grep -q "nothing installed" "$WORK/provision2.txt"

log "bench on the emulated ARM64 device (profile rpi4)"
"$ED" bench "$ARTS/minilm-l6" "$ARTS/minilm-l6-int8-rpi4" "${SSHOPT[@]}" --profile rpi4 --remote-venv /root/edgedeploy-venv \
  --shape batch=1,sequence=128 --iterations 5 --warmup 1 --timeout 1800 --save-outputs "$WORK/arm64" \
  --note "EMULATED: qemu-user aarch64 on an x86_64 host; these timings mean nothing" -o "$WORK/arm64.json"
log "same inputs on this x86 host"
"$ED" -q bench "$ARTS/minilm-l6" "$ARTS/minilm-l6-int8-rpi4" --shape batch=1,sequence=128 --iterations 5 --save-outputs "$WORK/x86" -o "$WORK/x86.json" >/dev/null

"$PY" - "$WORK" <<'PYCODE'
# Float must match to float noise. INT8 kernels differ between aarch64 and x86 (rounding and
# accumulation order in MatMulInteger/DynamicQuantizeLinear), so INT8 must instead be as
# faithful to the float model on ARM64 as on x86, and agree closely with the x86 INT8 output.
import sys
from pathlib import Path
import numpy as np
work = Path(sys.argv[1])
def load(side, name):
    d = np.load(work / side / f"{name}.npz")
    return d, d["output:last_hidden_state"].reshape(-1, d["output:last_hidden_state"].shape[-1]).astype(np.float64)
def cos(u, v):
    return (u * v).sum(1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
(fa_raw, fa), (fx_raw, fx) = load("arm64", "minilm-l6"), load("x86", "minilm-l6")
(qa_raw, qa), (qx_raw, qx) = load("arm64", "minilm-l6-int8-rpi4"), load("x86", "minilm-l6-int8-rpi4")
for raw_a, raw_x in ((fa_raw, fx_raw), (qa_raw, qx_raw)):
    for k in raw_a.files:
        if k.startswith("input:"):
            assert np.array_equal(raw_a[k], raw_x[k]), f"inputs differ ({k})"
checks = []
d = float(np.abs(fa - fx).max())
checks.append((d <= 1e-3, f"float: arm64 vs x86 max abs diff {d:.3g} (<= 1e-3), min token cosine {cos(fa, fx).min():.6f}"))
agree, fid_a, fid_x = cos(qa, qx).mean(), cos(qa, fx).mean(), cos(qx, fx).mean()
checks.append((agree >= 0.99, f"INT8: arm64 vs x86 mean token cosine {agree:.4f} (>= 0.99), max abs diff {np.abs(qa - qx).max():.3g}"))
checks.append((abs(fid_a - fid_x) <= 0.005, f"INT8 fidelity to float: arm64 {fid_a:.4f} vs x86 {fid_x:.4f} mean token cosine (within 0.005)"))
for ok, text in checks:
    print(("PASS " if ok else "FAIL ") + text)
sys.exit(0 if all(ok for ok, _ in checks) else 1)
PYCODE
log "done; results in $WORK (arm64.json is labelled EMULATED)"

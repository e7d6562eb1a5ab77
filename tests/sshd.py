"""A real OpenSSH sshd on 127.0.0.1 for the tests: generated host and user keys, its own
config, a private remote temp dir (so leftovers can be checked), started per session."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


class Server:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.host_key = keygen(root / "host_key")
        self.user_key = keygen(root / "user_key")
        self.wrong_key = keygen(root / "wrong_key")
        (root / "authorized_keys").write_text((root / "user_key.pub").read_text())
        self.remote_tmp = root / "remote-tmp"
        self.remote_tmp.mkdir()
        self.device_cache = root / "device-cache"  # where the device keeps its model cache
        self.port = free_port()
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {(root / 'host_key.pub').read_text()}")
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\nPidFile {root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nMaxStartups 100\n"
            f"MaxSessions 100\nLogLevel ERROR\nSetEnv TMPDIR={self.remote_tmp} XDG_CACHE_HOME={self.device_cache}\n"
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(root / "sshd_config")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    break
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.proc.stderr.read().decode()}")
            time.sleep(0.1)
        self.config = self.client_config("testpi")

    def client_config(self, alias: str, *, key: Path | None = None, known_hosts: Path | None = None, port: int | None = None) -> Path:
        path = self.root / f"ssh_config_{alias}"
        path.write_text(
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port or self.port}\n  User {self.user}\n  IdentityFile {key or self.user_key}\n"
            f"  IdentitiesOnly yes\n  UserKnownHostsFile {known_hosts or self.known_hosts}\n  GlobalKnownHostsFile /dev/null\n"
        )
        return path

    def session_pids(self) -> list[int]:
        """sshd processes serving connections (children of the listener)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def leftovers(self) -> list[str]:
        """Our remote work dirs (onnxruntime itself may drop a .ses file in TMPDIR)."""
        return sorted(p.name for p in self.remote_tmp.iterdir() if p.name.startswith("edgedeploy-"))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def ensure_sshd() -> str | None:
    """Return why sshd cannot run here, or None."""
    if not os.path.exists(SSHD):
        return "sshd not installed: make test installs openssh-server with apt"
    if not shutil.which("ssh"):
        return "ssh client not installed"
    return None

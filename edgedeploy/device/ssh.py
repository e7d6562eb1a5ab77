"""SSH transport over the system OpenSSH client, so ~/.ssh/config, agents, ProxyJump and
known_hosts behave as users expect.

Host keys are verified (StrictHostKeyChecking=yes) unless the user opts into
trust-on-first-use; batch mode never prompts. Remote commands are argument lists joined
with shlex.quote. Only connection failures (ssh's own exit 255) are retried, with backoff.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import time
from dataclasses import dataclass, field

from edgedeploy.core.errors import BadInput, EnvironmentFailure

log = logging.getLogger("edgedeploy")
SSH_FAILURE = 255


@dataclass
class Host:
    """``user@host[:port]`` or a Host alias from the ssh config."""

    host: str
    user: str | None = None
    port: int | None = None
    config: str | None = None
    accept_new_host_key: bool = False
    connect_timeout: float = 10.0
    retries: int = 2
    backoff_s: float = 1.0
    options: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, spec, where: str = "--host", **kw) -> Host:
        """Checked before anything connects: a bad spec is bad input (exit 2), never retried."""
        if not isinstance(spec, str):
            raise BadInput(f"{where}: expected a host string, got {type(spec).__name__}")
        if any(ord(c) < 32 or ord(c) == 127 or c.isspace() for c in spec):
            raise BadInput(f"{where} {spec!r}: a host may not contain whitespace or control characters")
        m = re.fullmatch(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\s\[\]]+)(?::(?P<port>\d{1,5}))?", spec)
        if not m:
            raise BadInput(f"{where} {spec!r}: expected user@host[:port] or a Host name from ~/.ssh/config")
        host = m.group("host").strip("[]")
        if host.startswith("-") or (m.group("user") or "").startswith("-"):
            raise BadInput(f"{where} {spec!r}: a host or user name cannot start with '-'")
        port = int(m.group("port")) if m.group("port") else None
        if port is not None and not 1 <= port <= 65535:
            raise BadInput(f"{where} {spec!r}: port {port} is out of range 1-65535")
        return cls(host=host, user=m.group("user"), port=port, **kw)

    @property
    def label(self) -> str:
        return f"{self.user + '@' if self.user else ''}{self.host}{':' + str(self.port) if self.port else ''}"

    def base(self) -> list[str]:
        cmd = [
            "ssh",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={int(self.connect_timeout)}",
            "-o",
            f"StrictHostKeyChecking={'accept-new' if self.accept_new_host_key else 'yes'}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
        ]
        if self.config:
            cmd += ["-F", self.config]
        if self.port:
            cmd += ["-p", str(self.port)]
        if self.user:
            cmd += ["-l", self.user]
        for opt in self.options:
            cmd += ["-o", opt]
        return cmd + ["--", self.host]


def remote_command(argv: list[str]) -> str:
    """One shell string for the remote side, every argument quoted."""
    return " ".join(shlex.quote(str(a)) for a in argv)


def explain(target: Host, stderr: str) -> EnvironmentFailure:
    err = stderr.strip()
    last = err.splitlines()[-1] if err else "no output"
    if "Host key verification failed" in err or "No ED25519 host key is known" in err or "host key for" in err.lower():
        port = f" -p {target.port}" if target.port else ""
        return EnvironmentFailure(
            f"{target.label}: unknown or changed host key, refused; verify the key and add it with "
            f"'ssh-keyscan{port} {target.host} >> ~/.ssh/known_hosts', or pass --accept-new-host-key to trust it on first use"
        )
    if "Permission denied" in err:
        return EnvironmentFailure(f"{target.label}: authentication failed ({last}); check the user and key (ssh -v {target.host})")
    if "Connection refused" in err or "timed out" in err or "No route to host" in err or "Could not resolve" in err:
        return EnvironmentFailure(f"{target.label}: unreachable ({last})")
    return EnvironmentFailure(f"{target.label}: ssh failed ({last})")


def run(
    target: Host, argv: list[str], *, input: bytes | None = None, timeout: float = 120.0, check: bool = True, retry: bool = True
) -> subprocess.CompletedProcess:
    """Run ``argv`` on the target. Exit 255 (ssh's own failure) is retried with backoff;
    any other non-zero exit is the remote command's and is returned or raised as-is."""
    attempts = 1 + (target.retries if retry else 0)
    for attempt in range(1, attempts + 1):
        try:
            proc = subprocess.run(target.base() + [remote_command(argv)], input=input, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise EnvironmentFailure(f"{target.label}: remote command timed out after {timeout:.0f} s: {argv[0]}") from None
        if proc.returncode != SSH_FAILURE:
            break
        stderr = proc.stderr.decode(errors="replace")
        if attempt < attempts and not _permanent(stderr):
            delay = target.backoff_s * 2 ** (attempt - 1)
            log.warning("%s: connection failed (%s); retrying in %.0f s", target.label, stderr.strip().splitlines()[-1:] or "", delay)
            time.sleep(delay)
            continue
        raise explain(target, stderr)
    if check and proc.returncode != 0:
        raise EnvironmentFailure(
            f"{target.label}: remote command {argv[0]} failed with exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[-300:]}"
        )
    return proc


def _permanent(stderr: str) -> bool:
    """Failures a retry cannot fix: host key and authentication problems."""
    return any(s in stderr for s in ("Host key verification failed", "Permission denied", "host key for", "Could not resolve"))

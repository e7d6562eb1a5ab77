"""How to reach a device over SSH: the settings every remote command shares."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from edgedeploy.core.options import Options

DEFAULT_TIMEOUT_S = 1800.0  # a remote run's deadline unless --timeout says otherwise


class RemoteOptions(Options):
    """How to reach a device over SSH."""

    ssh_config: Path | None = Field(None, description="ssh config file (ssh -F).")
    accept_new_host_key: bool = Field(False, description="Trust an unknown host key on first use (never a changed one).")
    remote_python: str = Field("python3", min_length=1, description="Python on the device.")
    remote_venv: str | None = Field(None, description="Use the venv made by 'edgedeploy provision' (its bin/python).")
    timeout: float = Field(DEFAULT_TIMEOUT_S, gt=0, description="Deadline for the remote run, seconds.")
    connect_timeout: float = Field(10.0, gt=0, description="SSH connect timeout, seconds.")
    keep_remote: bool = Field(False, description="Leave the remote work directory in place.")
    bwlimit: float | None = Field(None, gt=0, description="Cap the upload rate, kB/s (slow field links).")
    device_cache: bool = Field(
        True,
        description="Keep models in the device's content-addressed cache between runs, hashed again there before each (--no-device-cache: upload them with every run; 'edgedeploy cleanup --host' removes the cache).",
        json_schema_extra={"off_flag": "--no-device-cache"},
    )

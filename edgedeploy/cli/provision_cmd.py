from pathlib import Path

import click

from edgedeploy.cli.common import emit_json, json_option
from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.device.fleet import entries, run_all
from edgedeploy.device.provision import provision
from edgedeploy.device.ssh import Host


@click.command("provision")
@click.option("--host", "hosts", multiple=True, required=True, help="user@host[:port] or a ~/.ssh/config Host. Repeatable.")
@click.option("--remote-venv", default=".edgedeploy/venv", show_default=True, help="venv on the device (relative to the remote home).")
@click.option("--remote-python", default="python3", show_default=True, help="Python on the device that creates the venv.")
@click.option("--package", "packages", multiple=True, help="Override what to install (default: this host's numpy and onnxruntime versions).")
@click.option(
    "--ort-wheel",
    type=click.Path(path_type=Path),
    help="Install this onnxruntime wheel instead of PyPI's (NVIDIA's onnxruntime-gpu for a Jetson's JetPack; PyPI has none).",
)
@click.option("--extra-index-url", help="Another package index for the device's wheels (e.g. a Jetson AI Lab index).")
@click.option("--ssh-config", type=click.Path(path_type=Path), help="ssh config file (ssh -F).")
@click.option("--accept-new-host-key", is_flag=True, help="Trust an unknown host key on first use (never a changed one).")
@json_option
def command(hosts, remote_venv, remote_python, packages, ort_wheel, extra_index_url, ssh_config, accept_new_host_key, as_json):
    """Make devices ready to benchmark without internet on them: wheels for the device's
    platform are downloaded here, copied over and installed offline into a venv."""

    def one(entry):
        t = Host.parse(entry["host"], config=str(ssh_config) if ssh_config else None, accept_new_host_key=accept_new_host_key)
        return provision(t, remote_venv, remote_python, list(packages) or None, ort_wheel, extra_index_url)

    results = run_all(entries(hosts, None), one)
    if as_json:
        emit_json(results)
    for host, res in results.items():
        if not as_json and "ok" in res:
            r = res["ok"]
            what = f"installed {len(r['installed'])} wheel(s)" if r["installed"] else "already provisioned, nothing installed"
            versions = ", ".join(f"{k} {r['resolved'][k]}" for k in ("numpy", "onnxruntime", "onnxruntime-gpu") if k in r["resolved"])
            click.echo(f"{host}: {what} into {r['venv']} (Python {r['remote']['python']}, {r['remote']['arch']}: {versions})")
        elif not as_json:
            click.echo(f"{host}: FAILED: {res['error']}")
    failed = [h for h, r in results.items() if "error" in r]
    if failed:
        code = results[failed[0]]["exit_code"] if len(failed) == 1 else 3
        raise EdgeDeployError(f"provisioning failed on {', '.join(failed)}" if len(results) > 1 else results[failed[0]]["error"], exit_code=code)

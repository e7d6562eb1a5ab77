"""Inventories without a connection: Ansible INI and YAML (precedence, --limit) and edgedeploy's
own list. The fleet runs against the loopback sshd are in test_ssh.py."""

import pytest

from edgedeploy.core.errors import BadInput
from edgedeploy.device.fleet import entries

INI = """# devices
[pis]
pi1 ansible_host=10.0.0.5 ansible_port=2222 profile=rpi5
pi2 ansible_user=pi ansible_ssh_private_key_file=~/.ssh/pi

[pis:vars]
profile=rpi4
remote_venv=.edgedeploy/venv

[lab:children]
pis

[lab:vars]
profile=x86-64-avx2
ansible_user=lab

[all:vars]
ansible_python_interpreter=/usr/bin/python3
"""


def test_ini_precedence_host_then_child_group_then_parent_then_all(tmp_path):
    inv = tmp_path / "hosts.ini"
    inv.write_text(INI)
    got = {e["name"]: e for e in entries((), inv)}
    assert got["pi1"]["host"] == "lab@10.0.0.5:2222" and got["pi1"]["profile"] == "rpi5"  # host var wins
    assert got["pi2"]["host"] == "pi@pi2" and got["pi2"]["profile"] == "rpi4"  # the child group over its parent
    assert got["pi2"]["identity_file"].endswith("/.ssh/pi") and not got["pi2"]["identity_file"].startswith("~")
    assert all(e["remote_python"] == "/usr/bin/python3" and e["remote_venv"] == ".edgedeploy/venv" for e in got.values())
    assert [e["name"] for e in entries((), inv, "pi2")] == ["pi2"]
    assert [e["name"] for e in entries((), inv, "lab")] == ["pi1", "pi2"]


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[pis\npi1\n", r"expected \[group\]"),
        ("[pis:weird]\npi1\n", "unknown section kind"),
        ("[pis:vars]\nnovalue\n", "key=value"),
        ("[pis]\npi1 ansible_port\n", "not key=value"),
        ("[pis]\npi1 ansible_port=99999\n", "out of range"),
        ("[a:children]\nb\n[b:children]\na\n", "no hosts"),
        ("[pis]\npi1 'unclosed\n", "No closing quotation"),
    ],
)
def test_bad_ini_inventories(tmp_path, text, needle):
    inv = tmp_path / "hosts.ini"
    inv.write_text(text)
    with pytest.raises(BadInput, match=needle):
        entries((), inv)


def test_limit_needs_an_ansible_inventory(tmp_path):
    own = tmp_path / "hosts.yaml"
    own.write_text("hosts:\n  - pi@a\n")
    with pytest.raises(BadInput, match="applies to Ansible inventories"):
        entries((), own, "pis")
    with pytest.raises(BadInput, match="give one"):
        entries(("pi@a",), None, "pis")


def test_a_missing_inventory_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="no such inventory file"):
        entries((), tmp_path / "nope.ini")

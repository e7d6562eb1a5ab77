"""Ansible inventories, INI or YAML, as fleets: groups and children, ``ansible_host``,
``ansible_user``, ``ansible_port``, ``ansible_ssh_private_key_file`` and
``ansible_python_interpreter``, and host or group vars ``profile`` and ``remote_venv``.
Host vars win over group vars, a child group's over its parent's, any group's over ``all``.
``select`` applies ``--limit-hosts`` (host or group names, ``,`` or ``:`` separated, globs allowed)."""

from __future__ import annotations

import fnmatch
import shlex
from pathlib import Path

from edgedeploy.core.bounded import read_bounded
from edgedeploy.core.errors import BadInput
from edgedeploy.core.yaml_io import compose_text

MAX_BYTES = 1 << 20
KEYS = {"profile": "profile", "remote_venv": "remote_venv", "remote_python": "remote_python", "ansible_python_interpreter": "remote_python"}


class Inventory:
    def __init__(self, where: str):
        self.where = where
        self.hosts: dict[str, dict] = {}  # name -> its own vars
        self.groups: dict[str, dict] = {"all": {"hosts": [], "children": [], "vars": {}}}

    def group(self, name: str) -> dict:
        return self.groups.setdefault(name, {"hosts": [], "children": [], "vars": {}})

    def add_host(self, group: str, name: str, hostvars: dict) -> None:
        if not isinstance(name, str) or not name:
            raise BadInput(f"{self.where}: a host name must be a string, got {name!r}")
        self.hosts.setdefault(name, {}).update(hostvars)
        if name not in self.group(group)["hosts"]:
            self.group(group)["hosts"].append(name)

    def parents(self, name: str, seen=None) -> list[str]:
        """Groups holding ``name`` (a host or group), nearest first, then their parents."""
        seen = set() if seen is None else seen
        direct = [g for g, d in self.groups.items() if (name in d["hosts"] or name in d["children"]) and g not in seen]
        seen.update(direct)
        out = list(direct)
        for g in direct:
            out += self.parents(g, seen)
        return out

    def members(self, group: str, seen=None) -> list[str]:
        seen = set() if seen is None else seen
        if group in seen:
            return []
        seen.add(group)
        d = self.groups[group]
        out = list(d["hosts"])
        for child in d["children"]:
            if child not in self.groups:
                raise BadInput(f"{self.where}: group {group!r} names unknown child group {child!r}")
            out += self.members(child, seen)
        return out

    def merged_vars(self, host: str) -> dict:
        merged: dict = dict(self.groups["all"]["vars"])
        for g in reversed([g for g in self.parents(host) if g != "all"]):
            merged.update(self.groups[g]["vars"])
        merged.update(self.hosts[host])
        return merged

    def entries(self, limit: str | None = None) -> list[dict]:
        names = select(self, limit) if limit else list(self.hosts)
        if not names:
            raise BadInput(f"{self.where}: no hosts" + (f" match --limit-hosts {limit!r}" if limit else ""))
        return [self.entry(n) for n in names]

    def entry(self, name: str) -> dict:
        v = self.merged_vars(name)
        addr = str(v.get("ansible_host") or name)
        user = v.get("ansible_user")
        port = v.get("ansible_port")
        spec = f"{str(user) + '@' if user else ''}{'[' + addr + ']' if addr.count(':') > 1 else addr}{':' + str(port) if port else ''}"
        out = {"host": spec, "name": name}
        for key, field in KEYS.items():
            if v.get(key) is not None:
                out.setdefault(field, str(v[key]))
        if v.get("ansible_ssh_private_key_file"):
            out["identity_file"] = str(Path(str(v["ansible_ssh_private_key_file"])).expanduser())
        return out


def select(inv: Inventory, limit: str) -> list[str]:
    """Hosts matching ``--limit-hosts``: host or group names (globs), separated by ',' or ':'."""
    chosen: list[str] = []
    for pattern in (p.strip() for p in limit.replace(":", ",").split(",")):
        if not pattern:
            continue
        hits = [h for h in inv.hosts if fnmatch.fnmatchcase(h, pattern)]
        for g in inv.groups:
            if fnmatch.fnmatchcase(g, pattern):
                hits += inv.members(g)
        if not hits:
            raise BadInput(f"--limit-hosts {pattern!r}: no host or group of that name in {inv.where}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def looks_like_ini(text: str) -> bool:
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        return s.startswith("[") or (":" not in s.split("=")[0] and not s.startswith("-") and s != "---")
    return False


def parse_ini(text: str, where: str) -> Inventory:
    inv = Inventory(where)
    section, kind = "ungrouped", "hosts"
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("["):
            if not s.endswith("]") or len(s) < 3:
                raise BadInput(f"{where}:{n}: expected [group], [group:vars] or [group:children]")
            section, _, kind = s[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "vars", "children"):
                raise BadInput(f"{where}:{n}: unknown section kind {kind!r}; use :vars or :children")
            inv.group(section)
            continue
        try:
            parts = shlex.split(s, comments=True)
        except ValueError as exc:
            raise BadInput(f"{where}:{n}: {exc}") from None
        if kind == "children":
            inv.group(section)["children"].append(parts[0])
            inv.group(parts[0])
        elif kind == "vars":
            key, eq, value = s.partition("=")
            if not eq:
                raise BadInput(f"{where}:{n}: expected key=value in [{section}:vars]")
            inv.group(section)["vars"][key.strip()] = value.strip().strip("'\"")
        else:
            hostvars = {}
            for p in parts[1:]:
                key, eq, value = p.partition("=")
                if not eq:
                    raise BadInput(f"{where}:{n}: host variable {p!r} is not key=value")
                hostvars[key] = value
            inv.add_host(section, parts[0], hostvars)
    return inv


def parse_yaml(doc: dict, where: str) -> Inventory:
    inv = Inventory(where)

    def walk(name, body, path):
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise BadInput(f"{where}: {path}: expected a mapping with hosts, vars or children")
        inv.group(name)
        for key in set(body) - {"hosts", "vars", "children"}:
            raise BadInput(f"{where}: {path}.{key}: unknown key; a group has hosts, vars and children")
        hosts = body.get("hosts") or {}
        if not isinstance(hosts, dict):
            raise BadInput(f"{where}: {path}.hosts: expected a mapping of host names")
        for h, hv in hosts.items():
            if hv is not None and not isinstance(hv, dict):
                raise BadInput(f"{where}: {path}.hosts.{h}: expected a mapping of host variables")
            inv.add_host(name, h, dict(hv or {}))
        gv = body.get("vars") or {}
        if not isinstance(gv, dict):
            raise BadInput(f"{where}: {path}.vars: expected a mapping")
        inv.group(name)["vars"].update(gv)
        children = body.get("children") or {}
        if not isinstance(children, dict):
            raise BadInput(f"{where}: {path}.children: expected a mapping of groups")
        for child, cb in children.items():
            inv.group(name)["children"].append(str(child))
            walk(str(child), cb, f"{path}.children.{child}")

    for name, body in doc.items():
        walk(str(name), body, str(name))
    return inv


def is_ansible_yaml(doc) -> bool:
    return isinstance(doc, dict) and "hosts" not in doc and bool(doc) and all(isinstance(v, dict) or v is None for v in doc.values())


def read(path: Path, limit: str | None = None) -> list[dict] | None:
    """The devices of an Ansible inventory at ``path``; None when it is edgedeploy's own format."""
    if not Path(path).is_file():
        raise BadInput(f"{path}: no such inventory file")
    raw = read_bounded(path, MAX_BYTES, "inventory")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a text file (an inventory is UTF-8 YAML or INI)") from None
    if looks_like_ini(text):
        return parse_ini(text, str(path)).entries(limit)
    doc, _ = compose_text(text, str(path))
    if is_ansible_yaml(doc):
        return parse_yaml(doc, str(path)).entries(limit)
    return None

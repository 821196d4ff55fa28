"""Hosts from an Ansible inventory, without Ansible installed.

Three forms: the JSON of ``ansible-inventory --list``, an INI file and a YAML file. Groups
become roles (``[inventory] roles`` renames them, ``groups`` keeps only some); host vars
``ansible_host``, ``ansible_port``, ``ansible_user`` and ``ansible_connection=local`` become
the host's address, port, user and transport; ``portal_ops_<key>`` sets any other host key
(``portal_ops_deploy_path``, ``portal_ops_health_url``...). Group vars apply to a group's
hosts, children's over parents', host vars over both, as in Ansible.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMPLICIT = ("all", "ungrouped")


class InventoryError(ValueError):
    """An inventory that cannot be read; the message says where."""


@dataclass
class Group:
    hosts: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)
    children: list[str] = field(default_factory=list)


@dataclass
class Inventory:
    groups: dict[str, Group] = field(default_factory=dict)
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # hosts in the order first seen

    def group(self, name: str) -> Group:
        return self.groups.setdefault(name, Group())

    def add_host(self, group: str, host: str, hostvars: dict[str, Any] | None = None) -> None:
        if host not in self.order:
            self.order.append(host)
        members = self.group(group).hosts
        if host not in members:
            members.append(host)
        if hostvars:
            self.hostvars.setdefault(host, {}).update(hostvars)

    def ancestry(self, host: str) -> list[str]:
        """The groups ``host`` belongs to, parents before children (the order vars apply)."""
        parents: dict[str, set[str]] = {}
        for name, group in self.groups.items():
            for child in group.children:
                parents.setdefault(child, set()).add(name)
        direct = [g for g, group in self.groups.items() if host in group.hosts]
        depth: dict[str, int] = {}

        def walk(name: str, seen: frozenset[str]) -> int:
            if name in seen:
                raise InventoryError(f"group {name!r} is its own ancestor")
            if name not in depth:
                depth[name] = 1 + max(
                    (walk(p, seen | {name}) for p in parents.get(name, ())), default=0
                )
            return depth[name]

        for name in direct:
            walk(name, frozenset())
        return sorted(depth, key=lambda g: (depth[g], g))


def read_inventory(path: Path) -> Inventory:
    """Parse ``path``: JSON (``ansible-inventory --list``), YAML or INI, by content."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InventoryError(f"{path} is not UTF-8 text") from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return parse_json(text, path)
    if path.suffix in (".yml", ".yaml") or re.match(r"^(?:---|[A-Za-z0-9_.-]+:\s*$)", stripped):
        return parse_yaml(text, path)
    return parse_ini(text, path)


def parse_json(text: str, path: Path | str = "<json>") -> Inventory:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: expected a JSON object of groups")
    inv = Inventory()
    meta = data.get("_meta", {}).get("hostvars", {}) if isinstance(data.get("_meta"), dict) else {}
    for name, body in data.items():
        if name == "_meta":
            continue
        if isinstance(body, list):  # the short form of dynamic inventory scripts
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise InventoryError(f"{path}: group {name!r} must be an object or a list")
        group = inv.group(name)
        for host in body.get("hosts") or []:
            inv.add_host(name, str(host))
        group.vars.update(body.get("vars") or {})
        group.children.extend(str(c) for c in body.get("children") or [])
    for host, hostvars in meta.items():
        if isinstance(hostvars, dict):
            inv.hostvars.setdefault(host, {}).update(hostvars)
    return inv


def parse_yaml(text: str, path: Path | str = "<yaml>") -> Inventory:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InventoryError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InventoryError(f"{path}: expected a mapping of groups (all: ...)")
    inv = Inventory()

    def walk(name: str, body: Any) -> None:
        body = body or {}
        if not isinstance(body, dict):
            raise InventoryError(f"{path}: group {name!r} must be a mapping")
        group = inv.group(name)
        for pattern, hostvars in (body.get("hosts") or {}).items():
            for host in expand(str(pattern)):
                inv.add_host(name, host, hostvars if isinstance(hostvars, dict) else None)
        group.vars.update(body.get("vars") or {})
        for child, child_body in (body.get("children") or {}).items():
            if child not in group.children:
                group.children.append(str(child))
            walk(str(child), child_body)

    for name, body in data.items():
        walk(str(name), body)
    return inv


_SECTION = re.compile(r"^\[([^\]:]+)(?::(vars|children))?\]$")


def parse_ini(text: str, path: Path | str = "<ini>") -> Inventory:
    inv = Inventory()
    section, kind = "ungrouped", "hosts"
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = _SECTION.match(line)
        if header:
            section, kind = header.group(1).strip(), header.group(2) or "hosts"
            inv.group(section)
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise InventoryError(f"{path}:{number}: {exc}") from None
        if not words:
            continue
        if kind == "children":
            inv.group(section).children.append(words[0])
        elif kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise InventoryError(f"{path}:{number}: expected key=value in [{section}:vars]")
            inv.group(section).vars[key.strip()] = _scalar(value.strip())
        else:
            hostvars = {}
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    raise InventoryError(f"{path}:{number}: expected key=value, got {word!r}")
                hostvars[key] = _scalar(value)
            for host in expand(words[0]):
                inv.add_host(section, host, hostvars)
    return inv


def _scalar(value: str) -> Any:
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


_RANGE = re.compile(r"\[([0-9]+|[a-z]):([0-9]+|[a-z])\]")


def expand(pattern: str) -> list[str]:
    """Ansible host ranges: ``web[01:03]`` -> web01, web02, web03; ``db-[a:c]`` too."""
    match = _RANGE.search(pattern)
    if not match:
        return [pattern]
    start, end = match.groups()
    head, tail = pattern[: match.start()], pattern[match.end() :]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(i).zfill(width) for i in range(int(start), int(end) + 1)]
    elif start.isalpha() and end.isalpha():
        values = [chr(c) for c in range(ord(start), ord(end) + 1)]
    else:
        raise InventoryError(f"bad host range in {pattern!r}")
    return [h for v in values for h in expand(head + v + tail)]


_HOST_KEYS = {
    "ansible_host": "address",
    "ansible_ssh_host": "address",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
}


def host_entries(
    inv: Inventory, *, groups: list[str] | None = None, roles: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """``[[hosts]]`` tables for the inventory's hosts (those in ``groups``, if given)."""
    rename = roles or {}
    for wanted in groups or []:
        if wanted not in inv.groups:
            known = ", ".join(sorted(g for g in inv.groups if g not in IMPLICIT)) or "none"
            raise InventoryError(f"no group {wanted!r} in the inventory (groups: {known})")
    entries = []
    for host in inv.order:
        ancestry = inv.ancestry(host)
        if groups and not set(groups) & set(ancestry):
            continue
        merged: dict[str, Any] = {}
        for name in ["all", *(g for g in ancestry if g != "all")]:
            merged.update(inv.groups.get(name, Group()).vars)
        merged.update(inv.hostvars.get(host, {}))
        entry: dict[str, Any] = {"name": host, "address": host}
        for key, value in merged.items():
            if key in _HOST_KEYS:
                entry[_HOST_KEYS[key]] = value
            elif key == "ansible_connection" and value == "local":
                entry["transport"] = "local"
            elif key.startswith("portal_ops_"):
                entry[key.removeprefix("portal_ops_")] = value
        if "port" in entry:
            try:
                entry["port"] = int(entry["port"])
            except (TypeError, ValueError):
                pass  # the config's validation names it
        found = [rename.get(g, g) for g in ancestry if g not in IMPLICIT]
        if "roles" not in entry and found:
            entry["roles"] = list(dict.fromkeys(found))
        entries.append(entry)
    return entries

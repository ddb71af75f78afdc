"""Compose files as the checks in tests/docker see them: parsed, interpolated and merged.

Validation proper is done by real parsers (the Compose Specification's JSON schema, and
`docker compose` / `docker-compose` when installed). This module only builds the merged
view the contract checks read, with the rules Compose applies: `${VAR:-default}`
interpolation, later files overriding earlier ones key by key, `environment` merged by
name, `ports` / `volumes` / `secrets` appended, `!reset` replacing a value outright.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]

# The stacks a user runs, as the file lists given to `docker compose -f`.
STACKS: dict[str, tuple[str, ...]] = {
    "base": ("docker-compose.yml",),
    "dev": ("docker-compose.yml", "docker-compose.dev.yml"),
    "prod": ("docker-compose.yml", "docker-compose.prod.yml"),
    "test": ("docker-compose.test.yml",),
}
COMPOSE_FILES = sorted({name for files in STACKS.values() for name in files})

# Sequences Compose appends when an override file sets them; everything else is replaced.
_APPENDED = {"ports", "volumes", "secrets", "tmpfs", "security_opt", "cap_drop", "expose"}


class Reset(list):
    """A `!reset` value: replaces what earlier files set instead of merging with it."""


class _Loader(yaml.SafeLoader):
    pass


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    value = loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else None
    return Reset(value or [])


_Loader.add_constructor("!reset", _reset)
_Loader.add_constructor("!override", lambda loader, node: Reset(loader.construct_sequence(node)))


def load_file(name: str) -> dict[str, Any]:
    with open(ROOT / name) as handle:
        document = yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader plus two tags
    assert isinstance(document, dict), f"{name} is not a mapping"
    return document


_VARIABLE = re.compile(r"\$(?:\$|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: Any, environ: Mapping[str, str]) -> Any:
    """Compose's variable substitution over a parsed document."""
    if isinstance(value, dict):
        return {key: interpolate(item, environ) for key, item in value.items()}
    if isinstance(value, list):
        return type(value)(interpolate(item, environ) for item in value)
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        expression = match.group("braced") or match.group("plain")
        name, operator, argument = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?(.*)", expression).groups()  # type: ignore[union-attr]
        current = environ.get(name)
        if operator in (":-", "-"):
            missing = current is None or (operator == ":-" and current == "")
            return argument if missing else current  # type: ignore[return-value]
        if operator in (":?", "?") and (current is None or (operator == ":?" and current == "")):
            raise ValueError(f"required variable {name} is missing: {argument}")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def _merge(base: Any, override: Any, key: str | None = None) -> Any:
    if isinstance(override, Reset):
        return list(override)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if key in _APPENDED and isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    if key == "networks" and isinstance(base, list) and isinstance(override, list):
        return sorted(set(base) | set(override))
    return copy.deepcopy(override)


@functools.cache
def stack(name: str, environ_items: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    """The merged, interpolated configuration of one stack (no variables set by default)."""
    environ = dict(environ_items)
    merged: dict[str, Any] = {}
    for file_name in STACKS[name]:
        merged = _merge(merged, interpolate(load_file(file_name), environ))
    for service in merged.get("services", {}).values():
        service["environment"] = environment(service)
    return merged


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment`, in either of its two Compose spellings, as a dict."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def published_ports(service: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(host part, container port) for each short-syntax port mapping of a service."""
    ports = []
    for spec in service.get("ports") or []:
        host, _, container = str(spec).rpartition(":")
        ports.append((host, int(container.split("/")[0])))
    return ports


def load_json(relative: str) -> Any:
    return json.loads((ROOT / relative).read_text())

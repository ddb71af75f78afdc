"""API keys: the API_KEYS entry format, and `python -m api.keys new NAME SCOPES` to make one.

An entry is `NAME:SCOPES:SHA256`: a name (what logs, metrics and rate limits call the
caller), scopes joined by `+` (`traces`, `usage`, or `*` for all), and the hex SHA-256 of
the key. Only the digest is configured, so a leaked .env or process listing does not leak
a usable key. A plain hash (no salt, no slow KDF) is enough because keys are 256-bit random
strings made by `new`, not passwords a person chose.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import secrets
from dataclasses import dataclass

from common.settings import SettingsError

SCOPES = ("traces", "usage")
KEY_PREFIX = "obs_"
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class KeyEntry:
    name: str
    scopes: frozenset[str]
    digest: bytes


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_scopes(text: str, source: str) -> frozenset[str]:
    scopes: set[str] = set()
    for scope in filter(None, re.split(r"[+ ]", text)):
        if scope == "*":
            scopes.update(SCOPES)
        elif scope in SCOPES:
            scopes.add(scope)
        else:
            raise SettingsError(f"{source}: unknown scope {scope!r} (known: {', '.join(SCOPES)}, *)")
    return frozenset(scopes)


def parse_key_entries(entries: tuple[str, ...]) -> tuple[KeyEntry, ...]:
    parsed: list[KeyEntry] = []
    for number, entry in enumerate(entries, 1):
        parts = entry.split(":")
        if len(parts) != 3:
            raise SettingsError(f"API_KEYS entry {number} must be NAME:SCOPES:SHA256, got {len(parts)} part(s)")
        name, scopes, hexdigest = parts
        if not _NAME.match(name):
            raise SettingsError(f"API_KEYS entry {number}: name must be 1-64 of A-Z a-z 0-9 _ . @ -, got {name!r}")
        if not _DIGEST.match(hexdigest.lower()):
            raise SettingsError(f"API_KEYS entry {number} ({name}): the key must be given as 64 hex characters of its SHA-256")
        parsed.append(KeyEntry(name, parse_scopes(scopes, f"API_KEYS entry {number} ({name})"), bytes.fromhex(hexdigest)))
    names = [e.name for e in parsed]
    if len(set(names)) != len(names):
        raise SettingsError("API_KEYS: two entries share a name; names identify callers in rate limits and logs")
    return tuple(parsed)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def entry_for(name: str, scopes: str, key: str) -> str:
    return f"{name}:{scopes}:{digest(key).hex()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m api.keys", description="Make an API key and its API_KEYS entry")
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="print a new random key and the API_KEYS entry that accepts it")
    new.add_argument("name")
    new.add_argument("scopes", help="traces, usage or * joined by +")
    args = parser.parse_args(argv)
    try:
        parse_key_entries((entry_for(args.name, args.scopes, "x"),))
    except SettingsError as exc:
        parser.error(str(exc))
    key = new_key()
    print(f"key (give it to the caller; it is not stored): {key}")
    print(f"API_KEYS entry: {entry_for(args.name, args.scopes, key)}")


if __name__ == "__main__":
    main()

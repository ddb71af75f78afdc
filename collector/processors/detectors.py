"""PII and secret detectors: one combined pattern, plus checks a regex cannot express.

Every detector is a named alternative of ONE compiled pattern, so a value is scanned once
whatever the number of detectors (the engine is chosen in bench/processors: see
docs/COLLECTOR_PROCESSING.md). Patterns avoid look-around so that RE2-class engines can
run them too; what look-around would have done (Luhn, IP octet context, SSN ranges) is
done by a check that runs only on the rare candidate match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Check = Callable[[str, int, int], bool]


@dataclass(frozen=True)
class Detector:
    name: str  # also the label in [REDACTED:NAME] and in /metrics, lowercase
    pattern: str
    check: Check | None = None


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card_prefix_ok(digits: str) -> bool:
    # Issuer ranges of the card networks (Visa 4, Mastercard 51-55 and 2221-2720, Amex 34/37,
    # Discover/UnionPay/Maestro 6, Diners/JCB 30/36/38/39/35): a 19-digit nanosecond timestamp
    # (17…) or a millisecond one (1…) passes Luhn one time in ten but never starts like a card.
    first = digits[0]
    if first in "456":
        return True
    if first == "3":
        return digits[1] in "045678"
    if first == "2":
        return 2221 <= int(digits[:4]) <= 2720
    return False


def card_number_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and _card_prefix_ok(digits) and luhn_ok(digits)


def _card_check(text: str, start: int, end: int) -> bool:
    raw = text[start:end]
    digits = raw.replace(" ", "").replace("-", "")
    if not card_number_ok(digits):
        return False
    separators = {c for c in raw if not c.isdigit()}
    return len(separators) <= 1  # "4111 1111-1111 1111" mixes separators: not a card as written


def _inside_dotted_number(text: str, start: int, end: int) -> bool:
    # "1.2.3.4.5" or "v10.0.0.1.2": the match is part of a longer dotted run (a version, an OID).
    before = text[start - 2:start] if start >= 2 else ""
    after = text[end:end + 2]
    return (len(before) == 2 and before[1] == "." and before[0].isdigit()) or (
        len(after) == 2 and after[0] == "." and after[1].isdigit()
    )


def _ipv4_check(text: str, start: int, end: int) -> bool:
    return not _inside_dotted_number(text, start, end)


def _ipv6_check(text: str, start: int, end: int) -> bool:
    candidate = text[start:end]
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    # "::", "a::b" and C++/Rust paths like "dead::beef" parse as addresses but carry no host:
    # demand at least three groups of hex digits.
    groups = [g for g in candidate.split(":") if g]
    return len(groups) >= 3


def _ssn_check(text: str, start: int, end: int) -> bool:
    digits = text[start:end].replace("-", "").replace(" ", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _phone_check(text: str, start: int, end: int) -> bool:
    digits = sum(c.isdigit() for c in text[start:end])
    return 8 <= digits <= 15  # E.164: at most 15 digits; fewer than 8 is a code, not a number


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = "|".join(
    (
        rf"(?:{_H}:){{7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        rf"(?:{_H}:){{1,6}}:{_H}",
        rf"(?:{_H}:){{1,5}}(?::{_H}){{1,2}}",
        rf"(?:{_H}:){{1,4}}(?::{_H}){{1,3}}",
        rf"(?:{_H}:){{1,3}}(?::{_H}){{1,4}}",
        rf"(?:{_H}:){{1,2}}(?::{_H}){{1,5}}",
        rf"{_H}:(?::{_H}){{1,6}}",
        rf":(?::{_H}){{1,7}}",
    )
)

# Order matters where alternatives overlap: secrets before the generic number shapes.
BUILTIN: tuple[Detector, ...] = (
    Detector(
        "secret",
        "|".join(
            (
                r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|[\s\S]*)",
                r"\bsk-(?:proj-|ant-[a-z]+[0-9]*-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
                r"\b[Bb]earer +[A-Za-z0-9._~+/-]{16,}=*",
                r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
                r"\bgh[pousr]_[A-Za-z0-9]{36,}",
                r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
                r"\bAIza[0-9A-Za-z_-]{35}",
            )
        ),
    ),
    Detector("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    Detector("card", r"\b[0-9](?:[ -]?[0-9]){12,18}\b", _card_check),
    Detector("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", _ssn_check),
    Detector(
        "phone",
        r"\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{1,4}){1,4}\b"
        r"|(?:\([0-9]{3}\) ?|\b[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}\b",
        _phone_check,
    ),
    Detector("ipv6", rf"(?:{_IPV6})", _ipv6_check),
    Detector("ipv4", rf"\b(?:{_OCTET}\.){{3}}{_OCTET}\b", _ipv4_check),
)

BUILTIN_NAMES = tuple(d.name for d in BUILTIN)
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def select(names: Iterable[str], custom: dict[str, str]) -> list[Detector]:
    """The enabled built-in detectors plus the user's own (name → regex), validated."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in BUILTIN_NAMES]
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(BUILTIN_NAMES)}")
    detectors = [d for d in BUILTIN if d.name in wanted]
    for name, pattern in custom.items():
        if not _NAME.match(name) or name in BUILTIN_NAMES:
            raise ValueError(f"custom pattern name {name!r} must be lowercase letters, digits, _ and not a built-in name")
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"custom pattern {name!r} is not a valid regular expression: {exc}") from None
        if compiled.match(""):
            raise ValueError(f"custom pattern {name!r} matches the empty string")
        detectors.append(Detector(name, pattern))
    return detectors


def combined_pattern(detectors: Iterable[Detector]) -> str:
    """One alternation with a named group per detector; Match.lastgroup names the winner."""
    return "|".join(f"(?P<{d.name}>{d.pattern})" for d in detectors)

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

# A check gets the candidate match (text, start, end) and answers the part to redact, or None.
Span = tuple[int, int]
Check = Callable[[str, int, int], "Span | None"]


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


def _card_ok_as_written(raw: str) -> bool:
    digits = raw.replace(" ", "").replace("-", "")
    if len(digits) == len(raw):
        return unseparated_card_ok(digits)
    # "4111 1111-1111 1111" mixes separators: not a card number as anyone writes one.
    return card_number_ok(digits) and len({c for c in raw if c in " -"}) == 1


def unseparated_card_ok(digits: str) -> bool:
    """A bare digit string (or an integer) as a card: 15 (Amex) or 16 digits only.

    Snowflake and order ids of 17-19 digits are common in spans and pass Luhn one time in
    ten; bare 13- or 19-digit card numbers are rare. Written with separators, any length
    from 13 to 19 counts.
    """
    return len(digits) in (15, 16) and card_number_ok(digits)


def card_span(text: str, start: int, end: int) -> Span | None:
    """Where in a run of digits a card number is, if any.

    The pattern takes the longest run ("qty 2 4111 1111 1111 1111" from the 2), so when the
    whole run is not a card, the pieces between separators are tried; a window never starts
    or ends inside an unbroken digit string, where any 16 digits pass Luhn one time in ten
    (a 19-digit timestamp would). This only runs on candidate runs, rare in ordinary text.
    """
    if _card_ok_as_written(text[start:end]):
        return start, end
    starts = [i for i in range(start, end) if text[i].isdigit() and (i == start or text[i - 1] in " -")]
    ends = [i + 1 for i in range(start, end) if text[i].isdigit() and (i + 1 == end or text[i + 1] in " -")]
    for first in starts:
        for last in reversed(ends):
            if last - first >= 13 and _card_ok_as_written(text[first:last]):
                return first, last
    return None


def _inside_dotted_number(text: str, start: int, end: int) -> bool:
    # "1.2.3.4.5" or "v10.0.0.1.2": the match is part of a longer dotted run (a version, an OID).
    before = text[start - 2:start] if start >= 2 else ""
    after = text[end:end + 2]
    return (len(before) == 2 and before[1] == "." and before[0].isdigit()) or (
        len(after) == 2 and after[0] == "." and after[1].isdigit()
    )


def _ipv4_check(text: str, start: int, end: int) -> Span | None:
    if _inside_dotted_number(text, start, end):
        return None
    # "1.2.3.4" with four one-digit parts is far more often a version than a host, and the
    # addresses of that shape (8.8.8.8, 1.1.1.1) are public resolvers, not personal data.
    if end - start == 7:
        return None
    return start, end


def _ipv6_ok(candidate: str) -> bool:
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    # "::", "a::b" and C++/Rust paths like "dead::beef" parse as addresses but carry no host:
    # demand at least three groups.
    return len([g for g in candidate.replace(".", ":").split(":") if g]) >= 3


def _ipv6_check(text: str, start: int, end: int) -> Span | None:
    # The loose candidate can take in what is glued to the address ("host:2001:db8::1",
    # "A:::1", "[ip]:"): try it from each colon on, with and without a trailing colon.
    starts = [start] + [i + 1 for i in range(start, end - 1) if text[i] == ":"]
    for first in starts:
        for last in (end, end - 1):
            candidate = text[first:last]
            if len(candidate) > 2 and _ipv6_ok(candidate):
                return first, last
    return None


def _ssn_check(text: str, start: int, end: int) -> Span | None:
    digits = text[start:end].replace("-", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    valid = area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"
    return (start, end) if valid else None


def _phone_check(text: str, start: int, end: int) -> Span | None:
    digits = sum(c.isdigit() for c in text[start:end])
    return (start, end) if 8 <= digits <= 15 else None  # E.164: at most 15 digits; fewer is a code


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# A loose candidate (2-8 colons, one more than an address so that a colon glued in front fits between hex groups, maybe a dotted quad at the end) that
# ipaddress then validates: a precise IPv6 grammar in one regex is long, and leftmost-first
# alternation would stop at "fe80::" before the rest of the address.
_IPV6 = rf"(?:[0-9A-Fa-f]{{0,4}}:){{2,8}}(?:{_OCTET}(?:\.{_OCTET}){{3}}\b|[0-9A-Fa-f]{{1,4}}\b)?"

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
    Detector("card", r"\b[0-9](?:[ -]?[0-9]){12,18}\b", card_span),
    Detector("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", _ssn_check),
    Detector(
        "phone",
        r"\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{1,4}){1,4}\b"
        r"|(?:\([0-9]{3}\) ?|\b[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}\b",
        _phone_check,
    ),
    Detector("ipv6", _IPV6, _ipv6_check),
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

"""PII and secret detectors: one combined RE2 pattern, checks a regex cannot express, and a
byte-level trigger that clears clean spans without looking at their fields.

Every detector is a named alternative of ONE pattern, so a text is scanned once whatever the
number of detectors. Patterns avoid look-around so that RE2 runs them in time linear in the
text; what look-around would have done (Luhn, mod-97, IP ranges, a context word) is done by a
check that runs only on a candidate match, on the UTF-8 bytes of the text. A pattern may
repeat without bound only after the point where its match is certain (the rest of a token
once its prefix matched): a part that can still fail is bounded, or RE2's leftmost-first
search would run every failing attempt to the end of the text and a text dense with
candidates would cost time quadratic in its length. Checks see candidates of bounded
length, so each costs a small constant.

Each detector also has a `trigger`: a looser pattern over raw bytes (Latin-1) that matches
wherever the detector could, in any text of a span's protobuf encoding (the detector pattern
without its word boundaries, which the length and tag bytes between fields can break). The
redaction stage runs the union of the triggers over a whole request's bytes once; spans
where it finds nothing are left untouched without being read field by field.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import string
import sys
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# A check gets the candidate match (UTF-8 bytes, start, end) and answers the part to redact, or None.
Span = tuple[int, int]
Check = Callable[[bytes, int, int], "Span | None"]
DIGITS = b"0123456789"


@dataclass(frozen=True)
class Detector:
    name: str  # also the label in [REDACTED:NAME] and in /metrics, lowercase
    pattern: str  # RE2 syntax, UTF-8
    check: Check | None = None
    trigger: bytes | None = None  # RE2 over Latin-1 bytes; None: the pattern without \b (ASCII patterns only)


# --- cards -----------------------------------------------------------------------------


def luhn_ok(digits: str | bytes) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits.encode() if isinstance(digits, str) else digits)):
        digit = char - 48
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def _card_prefix_ok(digits: bytes) -> bool:
    # Issuer ranges and lengths of the card networks: Visa 4 (13, 16, 19 digits), Mastercard
    # 51-55 and 2221-2720 (16), Amex 34/37 (15), Diners 30/36/38/39 (14-19), JCB 35 (16-19),
    # Discover/UnionPay/Maestro 6 and other 5 (16-19). A 19-digit nanosecond timestamp (17…) or
    # a millisecond one (1…) passes Luhn one time in ten but never starts like a card.
    first, length = digits[0], len(digits)
    if first == 52:  # "4"
        return length in (13, 16, 19)
    if first == 53:  # "5"
        return length == 16 if digits[1] in b"12345" else 16 <= length <= 19
    if first == 54:  # "6"
        return 16 <= length <= 19
    if first == 51:  # "3"
        second = digits[1]
        if second in b"47":
            return length == 15
        if second in b"0689":
            return 14 <= length <= 19
        return second == 53 and 16 <= length <= 19
    if first == 50:  # "2"
        return length == 16 and 2221 <= int(digits[:4]) <= 2720
    return False


def card_number_ok(digits: str | bytes) -> bool:
    raw = digits.encode() if isinstance(digits, str) else digits
    return 13 <= len(raw) <= 19 and _card_prefix_ok(raw) and luhn_ok(raw)


def unseparated_card_ok(digits: str | bytes) -> bool:
    """A bare digit string (or an integer) as a card: 15 (Amex) or 16 digits only.

    Snowflake and order ids of 17-19 digits are common in spans and pass Luhn one time in
    ten; bare 13- or 19-digit card numbers are rare. Written in groups, any length from 13
    to 19 counts.
    """
    return len(digits) in (15, 16) and card_number_ok(digits)


# How card numbers are grouped when written with dots (a dotted run is otherwise a version).
_DOTTED_GROUPS = ((4, 4, 4, 4), (4, 6, 5), (4, 4, 4, 4, 3), (4, 4, 4, 3), (4, 4, 4, 1))
_SEPARATORS = re.compile(rb"[ .-]")


def card_span(data: bytes, start: int, end: int) -> Span | None:
    """Where in a run of digit groups a card number is, if any.

    The pattern takes groups of 3-6 digits (the last may be shorter: 13 digits as 4-4-4-1)
    joined by one space, dash or dot; the card is the
    longest window of whole groups with one kind of separator whose digits pass. A window
    never starts or ends inside a group, where any 16 digits pass Luhn one time in ten.
    At most six groups: this costs a few dozen small checks at worst.
    """
    raw = data[start:end]
    if raw.isdigit():
        return (start, end) if unseparated_card_ok(raw) else None
    groups = _SEPARATORS.split(raw)
    seps = [raw[m.start():m.start() + 1] for m in _SEPARATORS.finditer(raw)]
    offsets = [0]
    for group in groups[:-1]:
        offsets.append(offsets[-1] + len(group) + 1)
    count = len(groups)
    for size in range(count, 2, -1):  # longest window first
        for first in range(0, count - size + 1):
            last = first + size
            kinds = set(seps[first:last - 1])
            if len(kinds) != 1:
                continue
            window = groups[first:last]
            if kinds == {b"."} and tuple(len(g) for g in window) not in _DOTTED_GROUPS:
                continue
            digits = b"".join(window)
            if card_number_ok(digits):
                s = start + offsets[first]
                return s, s + len(digits) + size - 1
    return None


# --- addresses -------------------------------------------------------------------------

# Loopback, RFC 1918 and link-local addresses (and IPv6's unique-local and link-local)
# name machines inside a network, not people: kept when REDACTION_KEEP_PRIVATE_IPS is on.
PRIVATE_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "0.0.0.0/32",
    "::1/128", "fc00::/7", "fe80::/10", "::/128",
))


def is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in PRIVATE_NETWORKS if network.version == address.version)


def _private_ipv4(text: bytes) -> bool:
    """is_private_address for a dotted quad, without ipaddress (the common case, made cheap)."""
    first, second, _rest = text.split(b".", 2)
    a, b = int(first), int(second)
    return a in (10, 127) or (a == 172 and 16 <= b <= 31) or (a == 192 and b == 168) or (a == 169 and b == 254) or text == b"0.0.0.0"


def _inside_dotted_number(data: bytes, start: int, end: int) -> bool:
    # "1.2.3.4.5" or "v10.0.0.1.2": the match is part of a longer dotted run (a version, an OID).
    before = data[start - 2:start] if start >= 2 else b""
    after = data[end:end + 2]
    return (len(before) == 2 and before[1:] == b"." and before[0] in DIGITS) or (
        len(after) == 2 and after[:1] == b"." and after[1] in DIGITS
    )


def ipv4_check(keep_private: bool) -> Check:
    def check(data: bytes, start: int, end: int) -> Span | None:
        if _inside_dotted_number(data, start, end):
            return None
        # "1.2.3.4" with four one-digit parts is far more often a version than a host, and the
        # addresses of that shape (8.8.8.8, 1.1.1.1) are public resolvers, not personal data.
        if end - start == 7:
            return None
        if keep_private and _private_ipv4(data[start:end]):
            return None
        return start, end
    return check


def ipv6_check(keep_private: bool) -> Check:
    def check(data: bytes, start: int, end: int) -> Span | None:
        text = data[start:end].decode()
        # "a::b" and Rust paths like "dead::beef" parse as addresses but carry no host:
        # demand at least three groups.
        if len([g for g in text.replace(".", ":").split(":") if g]) < 3:
            return None
        try:
            address = ipaddress.IPv6Address(text)
        except ValueError:
            return None
        if keep_private and is_private_address(address):
            return None
        return start, end
    return check


# --- numbers with a check --------------------------------------------------------------


def _ssn_check(data: bytes, start: int, end: int) -> Span | None:
    digits = data[start:end].replace(b"-", b"")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    valid = area not in (b"000", b"666") and area[:1] != b"9" and group != b"00" and serial != b"0000"
    return (start, end) if valid else None


_DATE = re.compile(rb"(?:19|20)[0-9]{2}[-./ ][0-9]{1,2}[-./ ][0-9]{1,2}")


def _phone_check(data: bytes, start: int, end: int) -> Span | None:
    # A context match ("call me at 4155550187") starts at the word: redact from the number on.
    first = start
    while first < end and data[first] not in b"+(0123456789":
        first += 1
    number = data[first:end]
    digits = sum(c in DIGITS for c in number)
    if not 8 <= digits <= 15:  # E.164: at most 15 digits; fewer is an extension or a code
        return None
    if first != start and _DATE.match(number):  # "call 2024-05-06 10:30": a date after a context word
        return None
    return first, end


# IBAN lengths by country (ISO 13616 registry): a candidate must have its country's length.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20,
    "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25,
    "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}


def iban_ok(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban_check(data: bytes, start: int, end: int) -> Span | None:
    raw = data[start:end].decode()
    length = IBAN_LENGTHS.get(raw[:2])
    if length is None:
        return None
    # The pattern may take a following group: cut at the country's length.
    taken, stop = 0, 0
    for stop, char in enumerate(raw, 1):
        if char != " ":
            taken += 1
            if taken == length:
                break
    if taken != length:
        return None
    return (start, start + stop) if iban_ok(raw[:stop].replace(" ", "")) else None


def _credentials_check(data: bytes, start: int, end: int) -> Span | None:
    raw = data[start:end]
    if raw[:5].lower() != b"basic":
        at = raw.find(b"://")  # scheme://user:password@ : the user-info goes, scheme and host stay
        return start + at + 3, end - 1
    token = raw[5:].lstrip(b" ")
    try:
        decoded = base64.b64decode(token + b"=" * (-len(token) % 4), validate=True).decode()
    except (binascii.Error, ValueError):
        return None
    # "Basic" before any base64-looking word is common prose; a credential decodes to user:password.
    if ":" not in decoded or not decoded.isprintable():
        return None
    return end - len(token), end


# --- the patterns ----------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
# Full (8 groups, or 6 and a dotted quad) and "::"-compressed forms; ipaddress then validates.
# No candidate without "::" or seven colons, so clock times, MAC addresses and "a:b:c:d" are
# never candidates.
_IPV6 = (
    rf"\b(?:(?:{_H}:){{7}}{_H}\b|(?:{_H}:){{6}}{_V4}\b|(?:{_H}:){{1,7}}:(?:{_H}:){{0,5}}(?:{_V4}|{_H})\b|(?:{_H}:){{2,7}}:)"
    rf"|\B::(?:{_H}:){{0,5}}(?:{_V4}|{_H})\b"
)
# A word that says a number is a phone number; bare digit runs count only after one.
_PHONE_CONTEXT = (
    r"\b(?i:phone|telephone|tel|mobile|cell|fax|sms|whatsapp|(?:call|text|reach|contact|ring)(?:ed|ing)? (?:me|us|him|her))"
    r"(?:[ \t]{0,3}(?i:number|no\.?|nr\.?|#))?[ \t]{0,3}(?:(?i:is|at|on)|[:=-])?[ \t:]{0,3}(?:(?i:at|on)[ \t]{1,3})?"
)
_CONTEXT_PHONE = rf"{_PHONE_CONTEXT}\+?[0-9](?:[ .-]?[0-9]){{6,14}}\b"
# Any character outside ASCII counts as a letter (IDN addresses: jörg@müller.de): a small
# automaton where \p{L} would make the bounded repetitions below a very large one; at worst a
# neighbouring non-ASCII character is masked with the address.
# Groups of 3-6 digits, one kind of separator (a run mixing them is not a card as written).
_GROUPED_CARD = "|".join(rf"[0-9]{{3,6}}(?:{sep}[0-9]{{3,6}}){{1,4}}{sep}[0-9]{{1,6}}" for sep in (" ", "-", r"\."))
_LETTER = r"A-Za-z0-9\x{80}-\x{10FFFF}"


def _compat_trigger() -> bytes:
    """Bytes of the characters that NFKC maps to what a number or an address is made of
    (full-width digits and ＠, mathematical digits, circled digits, small forms, ...): spans
    holding one are redacted on their normalized text, so the trigger must see them.

    Only characters of three or four UTF-8 bytes: the two-byte ones (superscripts ¹²³,
    fractions, Ǉ) turn up in random span ids every few hundred spans and spell no card or
    address in practice; where a span is scanned anyway, they are normalized too.
    """
    wanted = set(string.digits + "@.+-:/%")
    by_prefix: dict[bytes, list[int]] = defaultdict(list)
    for code in range(0x800, sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        normal = unicodedata.normalize("NFKC", char)
        if normal != char and (any(c in wanted for c in normal) or 0xFF01 <= code <= 0xFF5E):
            encoded = char.encode()
            by_prefix[encoded[:-1]].append(encoded[-1])
    parts = []
    for prefix, lasts in sorted(by_prefix.items()):
        ranges, run = [], [lasts[0], lasts[0]]
        for byte in lasts[1:]:
            if byte == run[1] + 1:
                run[1] = byte
            else:
                ranges.append(run)
                run = [byte, byte]
        ranges.append(run)
        klass = "".join(f"\\x{a:02x}" if a == b else f"\\x{a:02x}-\\x{b:02x}" for a, b in ranges)
        parts.append("".join(f"\\x{b:02x}" for b in prefix) + f"[{klass}]")
    return "|".join(parts).encode()


COMPAT_TRIGGER = _compat_trigger()


def builtin(keep_private_ips: bool = True) -> tuple[Detector, ...]:
    """The built-in detectors, in the order the alternation tries them where they overlap:
    secrets and credentials before the generic number shapes."""
    return (
        Detector(
            "secret",
            "|".join((
                r"-----BEGIN [A-Z ]{0,40}PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]{0,40}PRIVATE KEY-----|[\s\S]*)",
                r"\bsk-(?:proj-|ant-[a-z]{1,10}[0-9]{0,4}-|svcacct-|admin-)?[A-Za-z0-9_-]{20}[A-Za-z0-9_-]*",
                r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",
                r"\b[Bb]earer {1,4}[A-Za-z0-9._~+/-]{16}[A-Za-z0-9._~+/-]*=*",
                r"\beyJ[A-Za-z0-9_-]{8,400}\.eyJ[A-Za-z0-9_-]{8}[A-Za-z0-9_.-]*",
                r"\bgh[pousr]_[A-Za-z0-9]{36}[A-Za-z0-9]*",
                r"\bxox[abposr]-[A-Za-z0-9-]{10}[A-Za-z0-9-]*",
                r"\bAIza[0-9A-Za-z_-]{35}",
            )),
            trigger=rb"-----BEGIN|sk-|AKIA|ASIA|ABIA|ACCA|[Bb]earer +|eyJ|gh[pousr]_|xox[abposr]-|AIza",
        ),
        Detector(
            "credentials",
            r"\b[Bb]asic {1,4}[A-Za-z0-9+/]{8}[A-Za-z0-9+/]*={0,2}|\b[A-Za-z][A-Za-z0-9+.-]{0,15}://[^\s/?#@:]{1,128}:[^\s/?#@]{1,256}@",
            _credentials_check,
            trigger=rb"[Bb]asic +[A-Za-z0-9+/]{8}|://[^/?#@]+@",
        ),
        Detector(
            "email",
            rf"[{_LETTER}._%+-]{{1,64}}(?:@|%40)[{_LETTER}-]{{1,63}}(?:\.[{_LETTER}-]{{1,63}}){{0,6}}\.[A-Za-z\x{{80}}-\x{{10FFFF}}]{{2,24}}",
            # An @ and a dot in the domain after it: a bare @ is in one span id in ten.
            trigger=rb"(?:@|%40)[A-Za-z0-9\x80-\xff-]+\.",
        ),
        Detector("iban", r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b", _iban_check,
                 trigger=rb"[A-Z][A-Z][0-9][0-9] ?[A-Z0-9][A-Z0-9][A-Z0-9][A-Z0-9] ?[A-Z0-9]"),
        Detector("card", rf"\b(?:[0-9]{{13,19}}|{_GROUPED_CARD})\b", card_span,
                 # A bare run must touch a byte that is not a hex digit on one side: a card
                 # number has a word boundary on both, a run inside a hex id has neither.
                 trigger=rb"(?:^|[^0-9A-Fa-f])[0-9]{13}|[0-9]{13}(?:[^0-9A-Fa-f]|$)|[0-9]{3}[ .-][0-9]{3,6}[ .-][0-9]{1}"),
        Detector("ssn", r"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b", _ssn_check),
        Detector(
            "phone",
            r"\+[0-9]{1,3}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{1,4}){1,4}\b"
            r"|(?:\([0-9]{3}\) ?|\b[0-9]{3}[.-])[0-9]{3}[.-][0-9]{4}\b|" + _CONTEXT_PHONE,
            _phone_check,
        ),
        Detector("ipv6", _IPV6, ipv6_check(keep_private_ips)),
        Detector("ipv4", rf"\b{_V4}\b", ipv4_check(keep_private_ips), trigger=rb"[0-9]\.[0-9]+\.[0-9]+\.[0-9]"),
    )


BUILTIN_NAMES = tuple(d.name for d in builtin())
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")


def select(names: Iterable[str], custom: dict[str, str], keep_private_ips: bool = True) -> list[Detector]:
    """The enabled built-in detectors plus the user's own (name → regex), validated."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in BUILTIN_NAMES]
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(BUILTIN_NAMES)}")
    detectors = [d for d in builtin(keep_private_ips) if d.name in wanted]
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
    """One alternation with a named group per detector; the group that matched names the winner."""
    return "|".join(f"(?P<{d.name}>{d.pattern})" for d in detectors)


def trigger_of(detector: Detector) -> bytes:
    """The detector's byte trigger: its own, or its ASCII pattern without word boundaries
    (which only ever removes a condition, so the trigger matches wherever the pattern does)."""
    if detector.trigger is not None:
        return detector.trigger
    return re.sub(r"\\[bB]", "", detector.pattern).encode()

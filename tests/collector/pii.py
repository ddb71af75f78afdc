"""Hypothesis strategies: PII of every kind a detector covers, and ordinary text that is not PII."""

from __future__ import annotations

import uuid

from hypothesis import strategies as st

from collector.processors.detectors import luhn_ok

LOWER = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LOWER + LOWER.upper() + "0123456789"


def _luhn_complete(body: str) -> str:
    for check in "0123456789":
        if luhn_ok(body + check):
            return body + check
    raise AssertionError("unreachable")


@st.composite
def card_digits(draw: st.DrawFn, lengths: tuple[int, ...] = (16,)) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "2720", "34", "37", "6011", "65", "35", "36", "62"]))
    length = 15 if prefix in ("34", "37") else draw(st.sampled_from(lengths))
    if prefix[0] == "2" or prefix in ("51", "55"):
        length = 16  # Mastercard numbers have 16 digits
    elif prefix[0] != "4" and length == 13:
        length = 16  # only Visa has 13
    body = prefix + "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1)))
    return _luhn_complete(body)


@st.composite
def card_text(draw: st.DrawFn) -> str:
    digits = draw(card_digits((16, 16, 13, 19)))
    separator = draw(st.sampled_from(["", " ", "-"]))
    if not separator and len(digits) in (15, 16):
        return digits  # bare: as the detector documents, only 15 or 16 digits count without separators
    separator = separator or " "
    return separator.join(digits[i:i + 4] for i in range(0, len(digits), 4))


emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}",
    st.text(ALNUM + "._+", min_size=1, max_size=20).filter(lambda s: s[0] not in "._+" and s[-1] not in "._+"),
    st.text(LOWER + "0123456789-", min_size=1, max_size=15).filter(lambda s: s[0] != "-" and s[-1] != "-"),
    st.sampled_from(["com", "org", "io", "co.uk", "de", "info"]),
)
ssns = st.builds(
    lambda a, g, s: f"{a:03d}-{g:02d}-{s:04d}",
    st.integers(1, 899).filter(lambda a: a != 666), st.integers(1, 99), st.integers(1, 9999),
)
us_phones = st.builds(
    lambda a, b, c, style: style.format(a, b, c),
    st.integers(200, 999), st.integers(200, 999), st.integers(0, 9999).map(lambda n: f"{n:04d}"),
    st.sampled_from(["({}) {}-{}", "{}-{}-{}", "{}.{}.{}", "+1 {} {} {}", "+1-{}-{}-{}"]),
)
intl_phones = st.builds(
    lambda cc, rest: f"+{cc} {rest}",
    st.sampled_from(["44", "33", "49", "81", "91", "61", "353"]),
    st.sampled_from(["20 7946 0958", "1 23 45 67 89", "30 901820", "3-1234-5678", "98765 43210", "2 9374 4000", "1 234 5678"]),
)
# Four one-digit parts ("1.2.3.4") are left alone as versions, as the detector documents.
ipv4s = st.builds(lambda *o: ".".join(map(str, o)), *[st.integers(0, 255)] * 4).filter(lambda ip: len(ip) > 7)
ipv6s = st.ip_addresses(v=6).filter(lambda ip: not ip.is_unspecified and not ip.is_loopback and ip.ipv4_mapped is None).map(
    lambda ip: ip.exploded if ip.packed[0] % 2 else str(ip)
).filter(lambda text: len([g for g in text.split(":") if g]) >= 3)
secrets = st.one_of(
    st.text(ALNUM, min_size=32, max_size=48).map(lambda s: f"sk-proj-{s}"),
    st.text(ALNUM, min_size=40, max_size=48).map(lambda s: f"sk-ant-api03-{s}"),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16).map(lambda s: f"AKIA{s}"),
    st.text(ALNUM, min_size=20, max_size=40).map(lambda s: f"Bearer {s}"),
    st.tuples(*[st.text(ALNUM + "_-", min_size=10, max_size=30)] * 3).map(lambda p: f"eyJ{p[0]}.eyJ{p[1]}.{p[2]}"),
    st.text(ALNUM + "+/\n", min_size=20, max_size=200).map(lambda b: f"-----BEGIN PRIVATE KEY-----\n{b}\n-----END PRIVATE KEY-----"),
    st.text(ALNUM, min_size=36, max_size=36).map(lambda s: f"ghp_{s}"),
)
PII = {
    "email": emails, "card": card_text(), "ssn": ssns, "phone": st.one_of(us_phones, intl_phones),
    "ipv4": ipv4s, "ipv6": ipv6s, "secret": secrets,
}
any_pii = st.one_of(*[s.map(lambda v, kind=kind: (kind, v)) for kind, s in PII.items()])

# Text around planted PII: words and the punctuation prompts and JSON put next to values.
SEPARATORS = " \n\t,;:()[]{}\"'<>!?"
words = st.text(LOWER + LOWER.upper() + " ", max_size=40)
before = st.tuples(words, st.sampled_from(SEPARATORS)).map("".join)
after = st.tuples(st.sampled_from(SEPARATORS), words).map("".join)

# Ordinary values that must come through untouched.
hexes = st.binary(min_size=16, max_size=16).map(bytes.hex)
ordinary = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    st.datetimes().map(lambda d: d.strftime("%d/%m/%Y %H:%M")),
    st.integers(1_500_000_000, 1_900_000_000).map(str),  # epoch seconds
    st.integers(1_500_000_000_000, 1_900_000_000_000).map(str),  # epoch ms
    st.integers(1_500_000_000_000_000_000, 1_900_000_000_000_000_000).map(str),  # epoch ns
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex),
    hexes, st.binary(min_size=8, max_size=8).map(bytes.hex),
    st.tuples(st.integers(0, 40), st.integers(0, 99), st.integers(0, 999)).map(lambda v: "v%d.%d.%d" % v),
    st.tuples(st.integers(0, 40), st.integers(0, 99), st.integers(0, 999), st.sampled_from(["-rc.1", "-beta", "+build.5", ""])).map(lambda v: "%d.%d.%d%s" % v),
    st.integers(0, 2_000_000).map(lambda n: f"{n} tokens"),
    st.integers(0, 600_000).map(lambda n: f"took {n}ms"),
    st.floats(0, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.sampled_from(["gpt-4o-2024-08-06", "claude-sonnet-4-5-20250929", "gemini-2.5-flash", "text-embedding-3-small"]),
    st.text(LOWER + " .,", min_size=10, max_size=200),
)
ordinary_numbers = st.one_of(
    st.integers(0, 2_000_000),  # token counts, sizes
    st.integers(1_500_000_000_000, 1_900_000_000_000),  # epoch ms
    st.integers(1_500_000_000_000_000_000, 1_900_000_000_000_000_000),  # epoch ns
)


def uuid_text(seed: int) -> str:
    return str(uuid.UUID(int=seed))

"""Coupon codes: unguessable, easy to read aloud and type, with typos caught before lookup.

A code is 14 random characters and one check character from a 30-letter alphabet that
leaves out the look-alikes 0/O, 1/I/L and U (next to V): 30^14 ≈ 2^68.7, so at a million
live coupons a guess hits one with odds below 1 in 10^14. The characters come from
`secrets` (the operating system's CSPRNG), never from `random`.

The check character is Luhn mod 30 (the Luhn algorithm generalised to the alphabet):
doubling is a permutation of 0–29 because 30 is even, so it catches every single wrong
character, and every swap of two neighbouring characters but one (2 and Z, the first and
last letters). A typo is refused as `CouponCodeInvalid` saying what is wrong, without
touching the database — so a mistyped code never counts as a failed guess and never
reveals anything about stored codes.

Codes are shown in three groups of five (`K7QM4-XH2RT-9PZC8`); input may use any case,
spaces, dashes or dots between groups, and full-width characters (what a Chinese input
method types: `ＫＱ７…`, `－`), which NFKC folds to their ASCII forms.
"""

from __future__ import annotations

import math
import secrets
import unicodedata

from jifen.rewards.errors import CouponCodeInvalid

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_CHARS = 14
LENGTH = RANDOM_CHARS + 1
GROUP = 5
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}
_N = len(ALPHABET)
SEPARATORS = frozenset(" \t-_.\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u30fc\u00b7")
"""Ignored anywhere in the input: spaces, hyphens and dashes of every kind, dots."""
LOOK_ALIKES = {"0": "0/O", "O": "0/O", "1": "1/I/L", "I": "1/I/L", "L": "1/I/L"}
"""Characters codes never contain because they look like each other (neither is used)."""
READ_AS = {"U": "V"}
"""Characters codes never contain because they look like one that is used."""
MAX_INPUT = 64
"""Longer input is not a code (and is not worth scanning character by character)."""


def random_bits() -> float:
    """The randomness of a code, in bits (≥ 64 is the requirement)."""
    return RANDOM_CHARS * math.log2(_N)


def _luhn_sum(payload: str, *, double_first: bool) -> int:
    """Luhn mod N over `payload` read from the right; the rightmost character is doubled
    when `double_first` (computing a check character) and not (verifying a code)."""
    total = 0
    double = double_first
    for ch in reversed(payload):
        value = _INDEX[ch] * (2 if double else 1)
        total += value // _N + value % _N
        double = not double
    return total


def check_character(payload: str) -> str:
    return ALPHABET[(_N - _luhn_sum(payload, double_first=True) % _N) % _N]


def is_valid(code: str) -> bool:
    """Is `code` (normalised: upper case, no separators) a well-formed code?"""
    return (
        len(code) == LENGTH
        and all(ch in _INDEX for ch in code)
        and _luhn_sum(code, double_first=False) % _N == 0
    )


def new_code() -> str:
    """A fresh random code, normalised (no separators)."""
    payload = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return payload + check_character(payload)


def normalise(text: str) -> str:
    """The code in `text` as stored (upper case, no separators), or `CouponCodeInvalid`
    saying what is wrong with it (`reason`: look-alike, read-as, character, length or
    check)."""
    shown = text.strip()[:40]
    if len(text) > MAX_INPUT:
        raise CouponCodeInvalid(code=shown, reason="length", length=LENGTH, given=len(text))
    folded = unicodedata.normalize("NFKC", text).upper()
    code = "".join(ch for ch in folded if ch not in SEPARATORS)
    for ch in code:
        if ch in _INDEX:
            continue
        if ch in READ_AS:
            raise CouponCodeInvalid(code=shown, reason="read-as", char=ch, instead=READ_AS[ch])
        if ch in LOOK_ALIKES:
            raise CouponCodeInvalid(code=shown, reason="look-alike", char=ch, group=LOOK_ALIKES[ch])
        raise CouponCodeInvalid(code=shown, reason="character", char=ch)
    if len(code) != LENGTH:
        raise CouponCodeInvalid(code=shown, reason="length", length=LENGTH, given=len(code))
    if _luhn_sum(code, double_first=False) % _N != 0:
        raise CouponCodeInvalid(code=shown, reason="check")
    return code


def display(code: str) -> str:
    """`K7QM4XH2RT9PZC8` → `K7QM4-XH2RT-9PZC8`."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))

"""Coupon codes: unguessable, easy to read aloud and type, with typos caught before lookup.

A code is 14 random characters and one check character from a 30-letter alphabet that
leaves out the look-alikes 0/O, 1/I/L and U/V's U: 30^14 ≈ 2^68.7, so at a million live
coupons a guess hits one with odds below 1 in 10^14. The check character is Luhn mod 30
(the Luhn algorithm generalised to the alphabet): it catches every single wrong
character and every swap of two neighbouring characters but one (2 and Z, the first
and last letters), so typos are refused as `CouponCodeInvalid` without touching the
database.

Codes are shown in three groups of five (`K7QM4-XH2RT-9PZC8`); input may use any case,
spaces or dashes.
"""

from __future__ import annotations

import secrets

from jifen.rewards.errors import CouponCodeInvalid

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
RANDOM_CHARS = 14
LENGTH = RANDOM_CHARS + 1
_INDEX = {ch: i for i, ch in enumerate(ALPHABET)}
_N = len(ALPHABET)
_LOOK_ALIKES = {"0": "0/O", "O": "0/O", "1": "1/I/L", "I": "1/I/L", "L": "1/I/L", "U": "U"}


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


def new_code() -> str:
    """A fresh random code, normalised (no separators)."""
    payload = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return payload + check_character(payload)


def normalise(text: str) -> str:
    """The code in `text` as stored (upper case, no separators), or `CouponCodeInvalid`
    saying what is wrong with it."""
    code = "".join(ch for ch in text.upper() if ch not in " -\t")
    shown = text.strip()[:40]
    for ch in code:
        if ch not in _INDEX:
            if ch in _LOOK_ALIKES:
                reason = (
                    f"codes never contain {ch!r} (no {_LOOK_ALIKES[ch]}, they look alike); "
                    "it is probably another letter or digit"
                )
            else:
                reason = f"{ch!r} is not a character codes use"
            raise CouponCodeInvalid(code=shown, reason=reason)
    if len(code) != LENGTH:
        raise CouponCodeInvalid(
            code=shown, reason=f"a code has {LENGTH} characters, this has {len(code)}"
        )
    if _luhn_sum(code, double_first=False) % _N != 0:
        raise CouponCodeInvalid(code=shown, reason="a character is wrong or two are swapped")
    return code


def display(code: str) -> str:
    """`K7QM4XH2RT9PZC8` → `K7QM4-XH2RT-9PZC8`."""
    return "-".join(code[i : i + 5] for i in range(0, len(code), 5))

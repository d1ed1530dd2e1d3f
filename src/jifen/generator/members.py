"""Members: when each enrolled and how much each buys (`MemberPool`, what orders need), and
their profiles as table rows (`member_tables`).

Members are numbered in enrolment order (M00000001 enrolled first). Enrolments grow
exponentially from the programme's launch to the last day; each member's purchase rate
is log-normal (a few buy a lot, most a little) and some never buy. Phones, emails and
card numbers are unique by construction: each comes from the member's number through a
bijection (an affine map modulo a power of ten), not from a draw that might repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from jifen.generator.calendar import DAY, HOUR, Timeline
from jifen.generator.shape import (
    CITIES,
    EMAIL_DOMAINS,
    GIVEN_FEMALE,
    GIVEN_MALE,
    MOBILE_PREFIXES,
    SURNAMES,
    Shape,
)
from jifen.generator.text import id_width, numbered

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

MEMBER_COLUMNS = (
    "external_id",
    "phone",
    "email",
    "card_number",
    "name",
    "birthday",
    "gender",
    "city",
    "language",
    "enrolment_channel",
    "enrolled_at",
)
MAX_MEMBERS = 100_000_000
"""Phones are unique through their last 8 digits: at most 10**8 members."""
_YEAR_DAYS = 365.2425


@dataclass(frozen=True)
class Channels:
    """The programme's channels: codes and kinds (store, pos, web, app, mini_program)."""

    codes: tuple[str, ...]
    kinds: tuple[str, ...]

    def weights(self, shape: Shape) -> Floats:
        found = np.array([shape.channel_weights.get(k, 10.0) for k in self.kinds], np.float64)
        normalised: Floats = found / found.sum()
        return normalised

    def online(self) -> npt.NDArray[np.bool_]:
        return np.array([k not in ("store", "pos") for k in self.kinds])


@dataclass(frozen=True)
class MemberPool:
    """Parallel arrays in member order (= enrolment order)."""

    enrolled: Ints
    """UTC seconds, ascending."""
    cumulative: Floats
    """Running sum of the members' purchase rates: members 0..k-1 have cumulative[k-1]."""
    channel: Ints
    home_store: Ints
    ids: pa.Array

    def __len__(self) -> int:
        return len(self.enrolled)


def hours_of_day(rng: np.random.Generator, profile: tuple[float, ...], count: int) -> Ints:
    """Seconds of the day: an hour drawn from `profile`, then uniform within it."""
    weights = np.array(profile, dtype=np.float64)
    hours = rng.choice(24, count, p=weights / weights.sum())
    found: Ints = hours * HOUR + rng.integers(0, HOUR, count)
    return found


def build_pool(
    count: int,
    timeline: Timeline,
    channels: Channels,
    stores: int,
    shape: Shape,
    rng: np.random.Generator,
) -> MemberPool:
    """`count` members enrolled over the timeline's days (its first day is the launch)."""
    years = timeline.days / _YEAR_DAYS
    g = shape.enrolment_growth_rate
    u = rng.random(count)
    at_year = np.log1p(u * np.expm1(g * years)) / g if g else u * years
    day = np.minimum((at_year * _YEAR_DAYS).astype(np.int64), timeline.days - 1)
    channel = rng.choice(len(channels.codes), count, p=channels.weights(shape))
    online = channels.online()[channel]
    second = np.where(
        online,
        hours_of_day(rng, shape.online_hours, count),
        hours_of_day(rng, shape.store_hours, count),
    )
    enrolled = timeline.utc(day, second)
    order = np.argsort(enrolled, kind="stable")
    rate = rng.lognormal(0.0, shape.activity_sigma, count)
    rate[rng.random(count) < shape.never_buy_share] = 0.0
    home = rng.integers(0, stores, count) if stores else np.full(count, -1, np.int64)
    return MemberPool(
        enrolled=enrolled[order],
        cumulative=np.cumsum(rate),
        channel=channel[order],
        home_store=home,
        ids=numbered("M", np.arange(1, count + 1), id_width(count)),
    )


def _choice(rng: np.random.Generator, weights: list[float], count: int) -> Ints:
    p = np.array(weights, dtype=np.float64)
    found: Ints = rng.choice(len(p), count, p=p / p.sum())
    return found


def _strings(values: list[str]) -> pa.Array:
    return pa.array(values, pa.string())


def _affine(index: Ints, multiplier: int, shift: int, modulus: int) -> Ints:
    """(index × multiplier + shift) mod modulus: a bijection of 0 … modulus-1 when the
    multiplier is coprime to the modulus (here a power of ten: odd, not a multiple of 5).
    The product is taken in two halves so that int64 never overflows (modulus ≤ 10**12,
    index < 10**8)."""
    high, low = divmod(multiplier, 10**6)
    product = ((index * high) % modulus * 10**6 + index * low) % modulus
    found: Ints = (product + shift) % modulus
    return found


def member_tables(
    pool: MemberPool,
    timeline: Timeline,
    channels: Channels,
    shape: Shape,
    rng: np.random.Generator,
    chunk: int,
) -> Iterator[pa.Table]:
    """The members' rows, `chunk` at a time, in member order."""
    for first in range(0, len(pool), chunk):
        index = np.arange(first, min(first + chunk, len(pool)), dtype=np.int64)
        yield _members(index, pool, timeline, channels, shape, rng)


def _members(
    index: Ints,
    pool: MemberPool,
    timeline: Timeline,
    channels: Channels,
    shape: Shape,
    rng: np.random.Generator,
) -> pa.Table:
    n = len(index)
    # gender and name
    draw = rng.random(n)
    female = draw < shape.female_share
    unknown = rng.random(n) < shape.gender_unknown_share
    gender = pc.if_else(pa.array(unknown), "", pc.if_else(pa.array(female), "female", "male"))
    surname = _choice(rng, [s[2] for s in SURNAMES], n)
    pool_f = rng.integers(0, len(GIVEN_FEMALE), (n, 2))
    pool_m = rng.integers(0, len(GIVEN_MALE), (n, 2))
    given = [*GIVEN_FEMALE, *GIVEN_MALE]
    offset = np.where(female, 0, len(GIVEN_FEMALE))
    first_char = np.where(female, pool_f[:, 0], pool_m[:, 0]) + offset
    second_char = np.where(female, pool_f[:, 1], pool_m[:, 1]) + offset
    two = rng.random(n) < 0.7  # most given names have two characters
    given_zh = _strings([g[0] for g in given])
    given_py = _strings([g[1] for g in given])
    second_zh = pc.if_else(pa.array(two), given_zh.take(pa.array(second_char)), "")
    second_py = pc.if_else(pa.array(two), given_py.take(pa.array(second_char)), "")
    name = pc.binary_join_element_wise(
        _strings([s[0] for s in SURNAMES]).take(pa.array(surname)),
        given_zh.take(pa.array(first_char)),
        second_zh,
        "",
    )
    # identifiers, unique through the member's number
    number = index + 1
    prefix = _strings(list(MOBILE_PREFIXES)).take(
        pa.array(rng.integers(0, len(MOBILE_PREFIXES), n))
    )
    phone = pc.binary_join_element_wise(
        prefix, numbered("", _affine(index, 61_803_397, 27_182_818, 10**8), 8), ""
    )
    card = numbered("8860", _affine(index, 618_033_988_751, 314_159_265_358, 10**12), 12)
    domain = _choice(rng, [d[1] for d in EMAIL_DOMAINS], n)
    qq = domain == 0
    local = pc.if_else(
        pa.array(qq),
        pc.cast(pa.array(100_000 + _affine(index, 141_421_357, 577_215_664, 10**9)), pa.string()),
        pc.binary_join_element_wise(
            _strings([s[1] for s in SURNAMES]).take(pa.array(surname)),
            given_py.take(pa.array(first_char)),
            second_py,
            pc.cast(pa.array(number), pa.string()),
            "",
        ),
    )
    email = pc.binary_join_element_wise(
        local, _strings([d[0] for d in EMAIL_DOMAINS]).take(pa.array(domain)), "@"
    )
    email = pc.if_else(pa.array(rng.random(n) < shape.email_share), email, "")
    # birthday: 18–80 at enrolment, most in their thirties
    enrolled = pool.enrolled[index]
    enrol_day = (enrolled + timeline.offsets(enrolled)) // DAY
    age_days = (rng.triangular(18.0, shape.age_mode, 80.0, n) * _YEAR_DAYS).astype(np.int64)
    birthday = pc.cast(pa.array((enrol_day - age_days).astype(np.int32), pa.date32()), pa.string())
    birthday = pc.if_else(pa.array(rng.random(n) < shape.birthday_share), birthday, "")
    city = _strings([c[0] for c in CITIES]).take(pa.array(_choice(rng, [c[1] for c in CITIES], n)))
    english = rng.random(n) < shape.english_share
    language = pc.if_else(pa.array(english), "en", "zh-CN")
    columns = {
        "external_id": pool.ids.slice(int(index[0]), n),
        "phone": phone,
        "email": email,
        "card_number": card,
        "name": name,
        "birthday": birthday,
        "gender": gender,
        "city": city,
        "language": language,
        "enrolment_channel": _strings(list(channels.codes)).take(pa.array(pool.channel[index])),
        "enrolled_at": timeline.iso(enrolled),
    }
    return pa.table(columns)

"""Purchases sent in groups (jifen.api.grouped) give exactly the database state and the
answers that sending the same requests one by one gives, on both stores: balances, lots,
purchases with their lines, breakdowns, facts and growth, tiers and their history,
near-upgrade notices, cap and budget counters, events (a multiset per member and type: a
group writes its outbox table by table), idempotency records and every HTTP answer.

Two programmes of the retail chain example (tests/imports/twins.py, with a first-purchase
bonus added, and with and without an app bonus under a daily cap and a monthly budget)
take the same requests: one one at a time, the other in groups made for certain by
holding each group's leader (tests/api/grouping.py)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.grouping import Request, answered_early, hold, lone, one_by_one, together
from api.harness import Api, Tenant
from earning.shop import item, local, order
from factories import make_key
from imports.twins import programme_text, sample, state
from jifen.access.models import ApiKey
from jifen.access.service import Scope
from jifen.db.idempotency import IdempotencyRecord
from jifen.db.outbox import OutboxEvent
from jifen.earning.models import Purchase, PurchaseLine
from jifen.members.models import Member
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.programs.models import Program
from jifen.programs.service import book_for, get_program
from jifen.tiers.models import BenefitIssue

FIRST_RULE = """
  - id: first-order
    name: 首单送 50 积分
    when: {first_purchase: true}
    effect: {bonus: 50}
"""

CAPPED = [False, True]
CAPPED_IDS = ["retail-chain", "with-cap-and-budget"]


@pytest.fixture
def restore_groups(api: Api) -> Iterator[None]:
    app = api.client.app
    before = app.state.groups  # type: ignore[attr-defined]
    yield
    app.state.groups = before  # type: ignore[attr-defined]


def _programme(api: Api, *, capped: bool) -> Tenant:
    """The retail chain example (with the app bonus under a cap and a budget when
    `capped`) and a first-purchase bonus, as a programme of its own."""
    code = f"retail-{uuid.uuid4().hex[:10]}"
    marker = "  # 满额送积分"
    text = programme_text(capped=capped, code=code)
    text = text.replace(marker, FIRST_RULE.strip("\n") + "\n\n" + marker, 1)
    file = load_program_file(text, f"{code}.yaml")
    now = api.clock.now()
    program_id = api.db.write(lambda s: apply(s, file, now=now, actor="test").program_id)
    book = api.db.write(lambda s: book_for(s, get_program(s, program_id)))
    t = Tenant(api, book, make_key(api.db, book, api.clock, Scope.ADMIN))
    t.all_keys()
    return t


Chunk = list[Request]
"""A group's requests: the leader (a group of one), then those sent together."""


def _sizes(chunk: Chunk) -> list[int]:
    """The groups `together` makes of a chunk: the leader alone, then everything queued
    behind it."""
    behind = len([r for r in chunk[1:] if not answered_early(r)])
    return [1, behind] if behind else [1]


def _in_groups(
    api: Api, t: Tenant, chunks: list[Chunk], statuses: list[int]
) -> list[httpx.Response]:
    """Send each chunk as a group; assert that the groups themselves answered every
    request that one-by-one recording answered with a new purchase (`statuses`: 201, not
    a replay), the leader's group of one included."""
    answers: list[httpx.Response] = []
    for chunk in chunks:
        groups = hold(api, len([r for r in chunk[1:] if not answered_early(r)]))
        mine = statuses[len(answers) : len(answers) + len(chunk)]
        answers.extend(together(t, chunk))
        assert groups.sizes == _sizes(chunk)
        new = [s == 201 for r, s in zip(chunk[1:], mine[1:], strict=True) if not answered_early(r)]
        assert groups.booked == [int(mine[0] == 201), sum(new)][: len(groups.sizes)]
    return answers


def _alone_in_groups_of_one(
    t: Tenant, requests: list[Request], statuses: list[int]
) -> list[httpx.Response]:
    """Send the requests one after the other with group commit on; assert that each that
    joined the queue (it names a member) was a group of one, and that the group booked
    exactly those one-by-one recording answered with a new purchase."""
    answers, groups = lone(t, requests)
    queued = [s for r, s in zip(requests, statuses, strict=True) if not answered_early(r)]
    assert groups.sizes == [1] * len(queued)
    assert groups.booked == [int(s == 201) for s in queued]
    return answers


def _compare(
    api: Api,
    chunks: list[Chunk],
    *,
    capped: bool,
    members: list[dict[str, Any]],
    alone: bool = False,
) -> dict[str, Any]:
    """Send `chunks` one by one to one programme and in groups to another (with `alone`:
    one after the other, each a group of one), with the same `members` enrolled in each;
    assert that everything is the same, and return what the one-by-one programme holds."""
    requests = [r for chunk in chunks for r in chunk]
    plain = _programme(api, capped=capped)
    grouped = _programme(api, capped=capped)
    for t in (plain, grouped):
        for person in members:
            t.member(**person)

    expected_answers = one_by_one(plain, requests)
    statuses = [
        0 if r.headers.get("Idempotent-Replayed") == "true" else r.status_code
        for r in expected_answers
    ]
    if alone:
        got_answers = _alone_in_groups_of_one(grouped, requests, statuses)
    else:
        got_answers = _in_groups(api, grouped, chunks, statuses)

    expected, got = _state(api, plain), _state(api, grouped)
    assert [_answer(r, got["names"]) for r in got_answers] == [
        _answer(r, expected["names"]) for r in expected_answers
    ]
    for part in expected.keys() - {"names"}:
        assert got[part] == expected[part], (part, _diff(got[part], expected[part]))
    return expected


def _answer(response: httpx.Response, names: dict[str, Any]) -> tuple[Any, ...]:
    """An answer with the programme's own ids named (purchases by order id, members by
    external id)."""
    return (
        response.status_code,
        response.headers.get("Idempotent-Replayed"),
        _named(response.json(), names),
    )


def _named(body: Any, names: dict[str, Any]) -> Any:
    """`body` (a purchase, a problem, an event's payload) with row ids replaced by stable
    names: purchases by their order id, members by their external id, actors by their
    key's name, other ids (ledger transactions, lots, lines) dropped."""
    if isinstance(body, list):
        return [_named(x, names) for x in body]
    if isinstance(body, str):
        return names["actors"].get(body, body)
    if not isinstance(body, dict):
        return body
    found: dict[str, Any] = {}
    for key, value in body.items():
        if key == "member_id" and isinstance(value, int):
            found[key] = names["members"][value]
        elif key in {"id", "purchase_id"} and isinstance(value, int):
            found[key] = names["purchases"].get(value, "(not a purchase)")
        elif key.endswith(("_id", "_ids")) and value is not None:
            found[key] = "(an id)"
        elif key in {"instance", "trace_id"}:
            continue
        else:
            found[key] = _named(value, names)
    return found


def _state(api: Api, t: Tenant) -> dict[str, Any]:
    """Everything `twins.state` compares, and lines, purchase rows in full, near-upgrade
    notices, events with their payloads and idempotency records."""
    program_id = t.book.program_id
    found = state(api.db, program_id)

    def read(s: Any) -> dict[str, Any]:
        members = dict(
            s.execute(
                select(Member.id, Member.external_id).where(Member.program_id == program_id)
            ).all()
        )
        purchases = dict(
            s.execute(
                select(Purchase.id, Purchase.external_id).where(Purchase.program_id == program_id)
            ).all()
        )
        actors = {
            f"key:{key_id}": f"key:{name}"
            for key_id, name in s.execute(
                select(ApiKey.id, ApiKey.name).where(ApiKey.program_id == program_id)
            )
        }
        names = {"members": members, "purchases": purchases, "actors": actors}
        code = s.execute(select(Program.code).where(Program.id == program_id)).scalar_one()
        more = {
            p.external_id: (
                p.attributes,
                p.hold_id,
                p.paid_points,
                p.paid_points_value,
                p.capture_txn_id,
                p.created_at,
                p.claimed_at,
                actors.get(p.actor, p.actor),
            )
            for p in s.execute(select(Purchase).where(Purchase.program_id == program_id)).scalars()
        }
        lines = {
            (purchases[line.purchase_id], line.line_no): (
                line.sku,
                line.category,
                line.brand,
                line.quantity,
                line.unit_price,
                line.amount,
                line.discount,
                line.attributes,
                line.returned_quantity,
                line.returned_amount,
                line.points_value,
            )
            for line in s.execute(
                select(PurchaseLine).where(PurchaseLine.program_id == program_id)
            ).scalars()
        }
        notices = sorted(
            (members[n.member_id], n.benefit, n.period, n.tier, str(n.details), n.issued_at)
            for n in s.execute(
                select(BenefitIssue).where(BenefitIssue.program_id == program_id)
            ).scalars()
        )
        events = Counter(
            (
                members.get(e.member_id),
                e.type,
                str(_named(e.payload, names)).replace(code, "(the code)"),
                e.occurred_at,
                e.published_at,
            )
            for e in s.execute(
                select(OutboxEvent).where(OutboxEvent.program_id == program_id)
            ).scalars()
        )
        suffix = f"-{program_id}"
        keys = {
            r.key.removesuffix(suffix): (
                r.status_code,
                _named(r.response, names),
                len(r.request_hash),
                r.created_at,
            )
            for r in s.execute(
                select(IdempotencyRecord).where(IdempotencyRecord.program_id == program_id)
            ).scalars()
        }
        return {
            "names": names,
            "more": more,
            "lines": lines,
            "notices": notices,
            "outbox": events,
            "keys": keys,
        }

    more = api.db.read(read)
    names = more.pop("names")
    found.update(more)
    found["names"] = names
    return found


# -- a realistic stream ---------------------------------------------------------------------


def _chunks(requests: list[Request], sizes: list[int]) -> list[Chunk]:
    """`requests` cut into chunks of a leader and `sizes[i % len(sizes)]` requests queued
    behind it (orders without a member go with the chunk before them: they never queue)."""
    chunks: list[Chunk] = []
    current: Chunk = []
    want = 0
    for request in requests:
        if not current:
            if answered_early(request):
                if chunks:
                    chunks[-1].append(request)
                else:
                    chunks.append([request])  # no leader: sent alone
                continue
            current = [request]
            want = sizes[len(chunks) % len(sizes)]
            continue
        current.append(request)
        if len([r for r in current[1:] if not answered_early(r)]) == want:
            chunks.append(current)
            current = []
    if current:
        chunks.append(current)
    return chunks


@pytest.mark.parametrize("capped", CAPPED, ids=CAPPED_IDS)
@pytest.mark.usefixtures("restore_groups")
def test_a_stream_in_groups_of_2_5_and_20_equals_one_by_one(api: Api, capped: bool) -> None:
    """The import comparison's sample (tests/imports/twins.py: big baskets, heavy buyers,
    member day, thresholds, unclaimed orders, an order sent twice), sent in groups."""
    data = sample(api.clock.now(), members=24, orders=110, seed=17)
    requests: list[Request] = [(body, Scope.POS, f"k-{i}") for i, body in enumerate(data.orders)]
    chunks = _chunks(requests, [2, 5, 20])
    assert {2, 5, 20} <= {size for chunk in chunks for size in _sizes(chunk)}
    expected = _compare(api, chunks, capped=capped, members=data.members)

    # the sample is worth comparing
    assert any(tier != "normal" for tier, *_ in expected["tiers"].values())
    assert expected["notices"]
    breakdowns = [p[9] for p in expected["purchases"].values() if p[9]]
    assert any(item["rule"] == "tier-bonus" for b in breakdowns for item in b)
    assert any(item["rule"] == "member-day" for b in breakdowns for item in b)
    assert any(item["rule"] == "first-order" for b in breakdowns for item in b)
    if capped:
        assert any(item["capped_by"] for b in breakdowns for item in b)


@pytest.mark.parametrize("capped", CAPPED, ids=CAPPED_IDS)
@pytest.mark.usefixtures("restore_groups")
def test_a_stream_sent_one_at_a_time_in_groups_of_one_equals_one_by_one(
    api: Api, capped: bool
) -> None:
    """A lone request is a group of one: the import comparison's sample and the chosen
    orders below (tier moves, near-upgrade notices, first purchases, caps, the budget run
    out, an order sent twice, unclaimed orders), sent one after the other, give exactly
    what the one-by-one way gives."""
    data = sample(api.clock.now(), members=24, orders=60, seed=23)
    requests: list[Request] = [(body, Scope.POS, f"k-{i}") for i, body in enumerate(data.orders)]
    _compare(api, [requests], capped=capped, members=data.members, alone=True)
    expected = _compare(api, _case_chunks(), capped=capped, members=CASE_MEMBERS, alone=True)
    assert expected["tiers"]["ann"][0] == "gold"
    assert expected["notices"]


# -- chosen cases ---------------------------------------------------------------------------


def _at(day: int, hour: int = 12) -> datetime:
    return local(2026, 1, day, hour)


def _case_chunks() -> list[Chunk]:
    """Orders chosen to cross tiers, reach a near-upgrade, take a first-purchase bonus
    twice in one group, hit a member's daily cap and run the budget out mid-group."""
    n = iter(range(1000))

    def req(who: str | None, amount: str, *, day: int = 10, **fields: Any) -> Request:
        i = next(n)
        member = {"external_id": who} if who else None
        category = fields.pop("category", "grocery")
        body = order(
            f"o-{i}",
            item(f"sku-{i % 7}", amount, category=category),
            member=member,
            at=_at(day, 10 + i % 8),
            **fields,
        )
        return body, Scope.POS, f"k-{i}"

    first = [  # 5 behind the leader: ann near silver, silver, an order at silver, member day
        req("ann", "100", channel="store", store="sh-001"),  # alone: first purchase
        req("ann", "1720", day=8, channel="store", store="sh-001"),  # near silver
        req("ann", "30", channel="store", store="sh-002"),  # near still: told once
        req("ann", "250", channel="app"),  # 2,100 growth: silver
        req("ann", "300", channel="store", store="sh-001", category="fresh"),  # at silver
        req("bob", "50", channel="mini_program"),  # bob's first
    ]
    return [
        first,
        [  # 2 behind: cat's first purchase twice in one group, one unclaimed in between
            req("dan", "20", channel="store", store="bj-001"),
            req("cat", "80", channel="store", store="bj-001"),
            req(None, "60", channel="store", store="bj-001"),
            req("cat", "90", channel="store", store="bj-001"),
        ],
        [  # 5 behind: cat's daily cap hit by her second app order; ann near gold, gold
            req("bob", "40", day=12, channel="app"),
            req("cat", "35", day=12, channel="app"),
            req("cat", "45", day=12, channel="app"),  # the cap: 10 of 30
            req("ann", "5000", day=12, channel="store", store="sh-001"),  # near gold
            req("ann", "900", day=12, channel="store", store="sh-001"),  # gold
            req("ann", "100", day=12, channel="app", category="dairy"),  # at gold
        ],
        [  # 20 behind: twenty first app orders; the month's budget runs out among them
            req("dan", "20", day=13, channel="app"),
            *[req(f"p{k:02d}", str(10 + k), day=13, channel="app") for k in range(20)],
        ],
        [  # 3 behind: an order sent again (recorded: 200) and a replay of a key
            req("bob", "60", day=14, channel="store", store="sh-002"),
            (first[1][0], Scope.POS, "k-again"),  # o-1 again: 200, its first answer
            (first[2][0], Scope.POS, first[2][2]),  # o-2's key again: a replay
            req("ann", "10", day=14, channel="app"),
        ],
    ]


CASE_MEMBERS = [
    # (a birthday for every other member: the group reads it from a plain row of its own,
    # and each purchase stores it with its facts)
    {"external_id": name, "phone": f"1370000{i:04d}"}
    | ({"birthday": f"19{70 + i}-{1 + i % 12:02d}-{1 + i:02d}"} if i % 2 == 0 else {})
    for i, name in enumerate(["ann", "bob", "cat", "dan", *[f"p{k:02d}" for k in range(20)]])
]


@pytest.mark.parametrize("capped", CAPPED, ids=CAPPED_IDS)
@pytest.mark.usefixtures("restore_groups")
def test_chosen_orders_in_groups_equal_one_by_one(api: Api, capped: bool) -> None:
    chunks = _case_chunks()
    assert [_sizes(c) for c in chunks] == [[1, 5], [1, 2], [1, 5], [1, 20], [1, 3]]
    ids = [body["external_id"] for chunk in chunks for body, _, _ in chunk]
    assert ids[:10] == [f"o-{i}" for i in range(10)]
    assert ids[36:] == ["o-36", "o-37", "o-1", "o-2", "o-38"]
    expected = _compare(api, chunks, capped=capped, members=CASE_MEMBERS)

    # what the orders were chosen for did happen (one by one, and so in groups)
    purchases = expected["purchases"]

    def points(order_id: str, rule: str) -> int | None:
        for entry in purchases[order_id][9]:
            if entry["rule"] == rule:
                return int(entry["points"])
        return None

    assert expected["tiers"]["ann"][0] == "gold"
    assert [(h[1], h[2]) for h in expected["history"] if h[0] == "ann"] == [
        ("normal", "silver"),
        ("silver", "gold"),
    ]
    assert [n[1] for n in expected["notices"] if n[0] == "ann"] == [
        "near-upgrade:gold",
        "near-upgrade:silver",
    ]
    assert points("o-4", "tier-bonus") == 60  # 300 at silver: 0.2 × 300
    assert points("o-15", "tier-bonus") == 50  # 100 at gold: 0.5 × 100
    assert points("o-7", "first-order") == 50  # cat's first
    assert points("o-9", "first-order") is None  # and her second, in the same group
    assert points("o-5", "first-order") == 50  # bob's first
    if capped:
        assert points("o-11", "app-bonus") == 30
        assert points("o-12", "app-bonus") == 10  # the daily cap of 40
        budget = [v for k, v in expected["counters"].items() if k.startswith("budget:")]
        assert budget == [600]
        given = [points(f"o-{k}", "app-bonus") for k in range(17, 37)]  # p00 to p19
        assert min(p or 0 for p in given[:10]) > 0
        assert given[-1] in (None, 0)  # ran out before the group's end


def _diff(got: Any, expected: Any) -> Any:
    """The first few entries that differ, to read in a failure."""
    if isinstance(got, dict) and isinstance(expected, dict):
        keys = sorted(set(got) | set(expected), key=str)
        return str(
            [(k, got.get(k), expected.get(k)) for k in keys if got.get(k) != expected.get(k)][:3]
        )
    return None

"""Segments over HTTP: put members on a named list, take them off, list a segment's
members a page at a time and a member's segments; admin writes, any key reads."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from api.harness import Api, assert_problem
from jifen.access.service import Scope


def test_put_a_member_on_a_segment_once(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    first = t.send("PUT", f"/v1/segments/vip/members/{member}")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body == {"segment": "vip", "member_id": member, "added_at": body["added_at"]}
    api.clock.advance(minutes=5)
    again = t.send("PUT", f"/v1/segments/vip/members/{member}")
    assert again.status_code == 200
    assert again.json() == body  # already on it: nothing changed, not even added_at
    assert t.get("/v1/segments/vip/members").json() == {"items": [body], "next_cursor": None}


def test_a_members_segments(api: Api) -> None:
    t = api.tenant()
    member, other = t.member(), t.member()
    for code in ("vip", "高价值", "employees"):
        assert t.send("PUT", f"/v1/segments/{code}/members/{member}").status_code == 200
    t.send("PUT", f"/v1/segments/other/members/{other}")
    response = t.get(f"/v1/members/{member}/segments", scope=Scope.READ)
    assert response.status_code == 200
    assert [m["segment"] for m in response.json()] == ["employees", "vip", "高价值"]
    assert t.get(f"/v1/members/{t.member()}/segments").json() == []


def test_take_a_member_off(api: Api) -> None:
    t = api.tenant()
    member, other = t.member(), t.member()
    t.send("PUT", f"/v1/segments/vip/members/{member}")
    t.send("PUT", f"/v1/segments/vip/members/{other}")
    removed = t.send("DELETE", f"/v1/segments/vip/members/{member}")
    assert removed.status_code == 200
    assert removed.json()["member_id"] == member
    listed = t.get("/v1/segments/vip/members").json()["items"]
    assert [m["member_id"] for m in listed] == [other]
    with api.writes_nothing():
        gone = t.send("DELETE", f"/v1/segments/vip/members/{member}")
        assert_problem(gone, 404, "not-found")
        assert_problem(t.send("DELETE", f"/v1/segments/nope/members/{other}"), 404, "not-found")


def test_segment_members_page_by_page(api: Api) -> None:
    t = api.tenant()
    people = [t.member() for _ in range(7)]
    for person in people:
        api.clock.advance(seconds=1)
        t.send("PUT", f"/v1/segments/club/members/{person}")
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = t.get("/v1/segments/club/members", scope=Scope.POS, **params).json()
        assert len(page["items"]) <= 3
        seen += [m["member_id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == people[::-1]  # latest added first
    assert t.get("/v1/segments/nobody-here/members").json() == {"items": [], "next_cursor": None}


def test_writes_take_an_admin_key_and_reads_any(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.send("PUT", f"/v1/segments/vip/members/{member}")
    t.all_keys()
    with api.writes_nothing():
        for scope in (Scope.POS, Scope.APP, Scope.READ):
            for method in ("PUT", "DELETE"):
                response = t.send(method, f"/v1/segments/vip/members/{member}", scope=scope)
                assert_problem(response, 403, "forbidden", needed="admin")
            assert t.get("/v1/segments/vip/members", scope=scope).status_code == 200
            assert t.get(f"/v1/members/{member}/segments", scope=scope).status_code == 200


def test_bad_input_and_unknown_members_write_nothing(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    other = api.tenant()
    theirs = other.member()
    with api.writes_nothing():
        for path, status, code in [
            (f"/v1/segments/vip/members/{theirs}", 404, "not-found"),
            ("/v1/segments/vip/members/424242424242", 404, "not-found"),
            ("/v1/segments/vip/members/0", 422, "invalid-input"),
            (f"/v1/segments/{'x' * 65}/members/{member}", 422, "invalid-input"),
        ]:
            assert_problem(t.send("PUT", path), status, code)
        for code in ("%20vip", "vip%09", "v%00ip"):  # a space at an end, control characters
            response = t.send("PUT", f"/v1/segments/{code}/members/{member}")
            assert response.status_code == 422, code
            assert response.json()["type"] == "/problems/invalid-input"
        assert_problem(
            t.send("PUT", f"/v1/segments/vip/members/{member}", idem=None),
            400,
            "idempotency-key-missing",
        )
        assert_problem(t.get(f"/v1/members/{theirs}/segments"), 404, "not-found")
        assert_problem(t.get("/v1/segments/vip/members", cursor="bm9wZQ"), 422, "invalid-input")
        assert_problem(t.get("/v1/segments/vip/members", limit=0), 422, "invalid-input")


def test_segments_are_per_programme(api: Api) -> None:
    mine, theirs = api.tenant(), api.tenant()
    mine.send("PUT", f"/v1/segments/vip/members/{mine.member()}")
    theirs.send("PUT", f"/v1/segments/vip/members/{theirs.member()}")
    assert len(mine.get("/v1/segments/vip/members").json()["items"]) == 1
    assert len(theirs.get("/v1/segments/vip/members").json()["items"]) == 1


def test_an_idempotent_replay_of_a_removal(api: Api) -> None:
    t = api.tenant()
    member = t.member()
    t.send("PUT", f"/v1/segments/vip/members/{member}")
    api.clock.advance(timedelta(seconds=1))
    first = t.send("DELETE", f"/v1/segments/vip/members/{member}", idem="off-1")
    replay = t.send("DELETE", f"/v1/segments/vip/members/{member}", idem="off-1")
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()

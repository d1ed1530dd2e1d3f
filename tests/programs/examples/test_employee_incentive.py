"""The employee-incentive programme (examples/employee-incentive.yaml): no purchases;
managers reward tasks from a monthly budget of their own, colleagues thank each other up
to a monthly limit, a yearly survey, growth value for the tiers to come."""

from __future__ import annotations

import pytest

from jifen.core.clock import FrozenClock
from jifen.core.errors import InvalidInput, UnknownCode
from jifen.db.uow import Database

from .journey import Journey, Points, item

ZHAO = {"manager": "zhao.min"}
SUN = {"manager": "sun.li"}


def test_a_team_s_month(db: Database, clock: FrozenClock) -> None:
    j = Journey(db, clock, "employee-incentive")
    j.move(2026, 3, 2, 9)
    qiang = j.enrol("13900000011", name="王强", external_id="E1001")
    na = j.enrol("13900000012", name="李娜", external_id="E1002")
    chen = j.enrol("13900000013", name="陈晨", external_id="E1003")

    # 2 March: 赵敏 rewards 王强's task with 300 (she decides, up to 500)
    j.move(2026, 3, 2, 17)
    t1 = j.event(qiang, "task_completed", "T-101", points=300, attributes=ZHAO)
    assert (t1.status, t1.points, t1.growth) == ("awarded", 300, 10)
    # 3 March: a task whose points she leaves out: the rule's 50
    j.move(2026, 3, 3, 17)
    t2 = j.event(qiang, "task_completed", "T-102", attributes=ZHAO)
    assert (t2.points, t2.growth) == (50, 10)
    assert j.points(qiang) == Points(available=350, pending=0, lifetime=350, growth=20)

    # 4 March: 500 for 李娜; 600 would be more than a task may get, and is refused whole
    j.move(2026, 3, 4, 17)
    assert j.event(na, "task_completed", "T-201", points=500, attributes=ZHAO).points == 500
    with pytest.raises(InvalidInput, match="between 1 and 500"):
        j.event(na, "task_completed", "T-202", points=600, attributes=ZHAO)
    # a task must say whose budget pays
    with pytest.raises(InvalidInput, match="manager"):
        j.event(na, "task_completed", "T-202", points=100)
    assert j.points(na) == Points(available=500, pending=0, lifetime=500, growth=10)

    # 10 and 12 March: two more of 500; 赵敏 has given 300 + 50 + 500 + 500 + 500 = 1850
    j.move(2026, 3, 10, 17)
    j.event(chen, "task_completed", "T-301", points=500, attributes=ZHAO)
    j.move(2026, 3, 12, 17)
    j.event(qiang, "task_completed", "T-103", points=500, attributes=ZHAO)

    # 16 March: 400 asked, 150 left in her 2000 for March: 陈晨 gets the 150
    j.move(2026, 3, 16, 17)
    short = j.event(chen, "task_completed", "T-302", points=400, attributes=ZHAO)
    assert (short.status, short.points, short.growth) == ("budget", 150, 10)
    assert short.reason is not None
    # 17 March: her budget is spent: nothing more this month (the growth value is still
    # given: a budget bounds points only) …
    j.move(2026, 3, 17, 17)
    spent = j.event(na, "task_completed", "T-203", points=100, attributes=ZHAO)
    assert (spent.status, spent.points, spent.growth) == ("budget", 0, 10)
    # … while 孙力's own budget is untouched
    other = j.event(na, "task_completed", "T-204", points=200, attributes=SUN)
    assert (other.status, other.points) == ("awarded", 200)

    # Peer recognition: 20 each, at most 5 received in a month; the 6th gives nothing
    for n, colleague in enumerate(["E1002", "E1003", "E1004", "E1005", "E1006"], start=1):
        j.move(2026, 3, 18, 10, n)
        thanks = j.event(qiang, "peer_recognition", f"K-{n}", attributes={"from": colleague})
        assert (thanks.status, thanks.points, thanks.growth) == ("awarded", 20, 2)
    j.move(2026, 3, 18, 11)
    sixth = j.event(qiang, "peer_recognition", "K-6", attributes={"from": "E1007"})
    assert (sixth.status, sixth.points, sixth.growth) == ("limited", 0, 0)
    # sending the same recognition again returns the first result
    assert j.event(qiang, "peer_recognition", "K-6", attributes={"from": "E1007"}).repeat

    # The yearly engagement survey: once a year
    j.move(2026, 3, 20, 15)
    assert j.event(qiang, "survey_completed", "S-2026-E1001").points == 100
    assert j.event(qiang, "survey_completed", "S-2026-E1001-again").status == "limited"

    # There are no purchases in this programme: it has no sales channel
    with pytest.raises(UnknownCode):
        j.buy(qiang, "X-1", item("anything", "10.00"))

    # 王强: 300 + 50 + 500 (tasks) + 5 × 20 (thanks) + 100 (survey);
    # growth 3 × 10 + 5 × 2
    assert j.points(qiang) == Points(available=1050, pending=0, lifetime=1050, growth=40)
    # 李娜: 500 + 0 + 200; growth 10 + 10 + 10
    assert j.points(na) == Points(available=700, pending=0, lifetime=700, growth=30)
    # 陈晨: 500 + 150; growth 10 + 10
    assert j.points(chen) == Points(available=650, pending=0, lifetime=650, growth=20)

    # 1 April: a new month, a new 2000 for 赵敏
    j.move(2026, 4, 1, 17)
    april = j.event(chen, "task_completed", "T-303", points=400, attributes=ZHAO)
    assert (april.status, april.points) == ("awarded", 400)
    assert j.points(chen) == Points(available=1050, pending=0, lifetime=1050, growth=30)

    # 王强 takes a reward worth 800 from the catalogue
    j.move(2026, 4, 2, 12)
    j.spend(qiang, 800, "降噪耳机")
    assert j.points(qiang) == Points(available=250, pending=0, lifetime=1050, growth=40)

    # Points earned in 2026 can be used until the end of 2027
    j.move(2027, 12, 15, 9)
    assert j.expiring(qiang) == {j.at(2027, 12, 31).date(): 250}
    j.move(2028, 1, 1, 0, 1)
    assert j.run("expire") == 250 + 700 + 1050  # 王强, 李娜, 陈晨
    assert j.points(qiang) == Points(available=0, pending=0, lifetime=1050, growth=40)

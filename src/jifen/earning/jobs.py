"""The earning package's scheduled job: birthday points (PRODUCT.md E4, O1).

`birthday_points` does one batch: it selects, in one query, up to `limit` active members
of the programme whose birthday is today in the programme's time zone (any day of the
birthday month when the rule's window is `month`; on 28 February in a common year for
those born on 29 February) and who have no birthday event for this local year yet, locks
their points accounts (skipping any another worker holds), and gives each the rule's
points and growth value as a `birthday` event with external id
`birthday:<member>:<year>`. The job runner (`jifen.jobs.runner.run_job`) commits each
batch and calls again until a batch finds nobody.

Idempotent by construction: the unique (programme, external id) of events means a member
gets one birthday award per year however often the job runs, crashes midway or runs on
several workers at once (a clash on that key skips the member: someone else awarded it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, cast, exists, literal
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.earning.event_schemas import BIRTHDAY, EventStatus
from jifen.earning.events import award
from jifen.earning.models import BehaviourEvent
from jifen.ledger.jobs import StepResult
from jifen.ledger.models import Account
from jifen.members.models import Member
from jifen.members.service import active_members, born_on
from jifen.programs.models import Program
from jifen.programs.rulesets import current_rules
from jifen.programs.service import book_for

ACTOR = "job:birthday"
RULE_NAME = "birthday"


def birthday_external_id(member_id: int, year: int) -> str:
    return f"birthday:{member_id}:{year}"


def birthday_points(
    session: Session, program: Program, now: datetime, *, limit: int = 500
) -> StepResult:
    """Award one batch of due birthday points (see the module's docstring). Returns the
    members awarded (`accounts`), events written (`items`) and points given."""
    versioned = current_rules(session, program.id)
    rule = versioned.rules.birthday
    if rule is None:
        return StepResult()
    book = book_for(session, program)
    today = now.astimezone(book.tz).date()
    year_key = literal("birthday:", String) + cast(Member.id, String) + f":{today.year}"
    awarded = exists().where(
        BehaviourEvent.program_id == program.id, BehaviourEvent.external_id == year_key
    )
    due = list(
        session.execute(
            active_members(program.id, Member.id)
            .where(
                Member.birthday.is_not(None),
                born_on(rule.window, today),
                ~awarded,
            )
            .order_by(Account.id)
            .limit(limit)
            .with_for_update(of=Account, skip_locked=True)
        ).scalars()
    )
    result = StepResult()
    for member_id in due:
        event = BehaviourEvent(
            program_id=program.id,
            member_id=member_id,
            type=BIRTHDAY,
            external_id=birthday_external_id(member_id, today.year),
            occurred_at=now,
            status=EventStatus.AWARDED,
            points=rule.points,
            growth=rule.growth,
            rule_set_version=versioned.version,
            attributes={},
            created_at=now,
            actor=ACTOR,
        )
        try:
            with session.begin_nested():
                session.add(event)
                session.flush()
        except IntegrityError:  # another worker awarded this member a moment ago
            continue
        award(session, book, event, rule_name=RULE_NAME, now=now, actor=ACTOR)
        result.accounts += 1
        result.items += 1
        result.points += rule.points
    session.flush()
    return result

"""What a programme file changes (`plan`), and making that change (`apply`).

`plan(session, file)` compares the file with the programme of the same code and lists
every difference: settings (field: old → new), stores and channels added, changed or
deactivated, and whether the rules become a new version (which rule ids are added,
removed or changed). It writes nothing.

`apply(session, file, now=, actor=)` makes the plan true in the caller's transaction,
under the programme's row lock, and guarantees:

- all or nothing: a refusal (an existing programme's currency changed, debt forbidden
  while members owe points) raises `ProgramFileInvalid` before anything is written;
- idempotent: applying the same file again finds an empty plan and writes nothing, and
  in particular makes no new rules version;
- a store or channel missing from the file is deactivated, never deleted (purchases and
  rules history still name it); one given again becomes active again;
- a programme whose code is new is created (accounts, first rules version = the file's);
- a change of `allow_negative_balance` reaches every member account
  (`jifen.ledger.service.set_debt_policy`);
- a non-empty plan is recorded in the outbox as `program.configured`, with its actor:
  the audit trail of settings changes.

Changing the expiry policy, pending days or hold minutes affects points earned and holds
made from then on; the ledger keeps each existing lot's and hold's dates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jifen.db.outbox import emit
from jifen.ledger.models import Account, AccountKind
from jifen.ledger.service import set_debt_policy
from jifen.programs.config import RULE_KEYS, ProgramFile, reward_specs
from jifen.programs.errors import ProgramFileInvalid
from jifen.programs.models import Channel, Program, Store
from jifen.programs.rewards import RewardSpec
from jifen.programs.rulesets import canonical, digest, save_rules, version_row
from jifen.programs.schemas import ChannelSpec, ProgramCreate, ProgramSettings, StoreSpec
from jifen.programs.service import create_program
from jifen.programs.tiers import TierPolicy
from jifen.rewards.models import Reward
from jifen.rules.schemas import RuleSet
from jifen.tiers.models import MemberTier, TierGrant

STORE_FIELDS = ("name", "region", "active")
CHANNEL_FIELDS = ("name", "kind", "active")


@dataclass(frozen=True)
class Change:
    """One field's old and new value, as text fit to print."""

    field: str
    old: str
    new: str


@dataclass(frozen=True)
class ItemChange:
    """A store or channel: `added` (with its fields), `changed` or `deactivated`."""

    code: str
    action: str
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class RuleChange:
    """A rule (`section` earning_rules…, `name` its id or event type) added, removed or
    changed; a section that is one value (birthday) has no name."""

    section: str
    name: str | None
    action: str


@dataclass(frozen=True)
class RulesPlan:
    current_version: int | None
    """None: the programme is new."""
    new_version: int | None
    """None: the rules equal the current version's; no version is made."""
    changes: tuple[RuleChange, ...] = ()


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    program_id: int | None
    """None: the programme does not exist yet and will be created."""
    settings: tuple[Change, ...]
    stores: tuple[ItemChange, ...]
    channels: tuple[ItemChange, ...]
    rules: RulesPlan
    tiers: tuple[RuleChange, ...] = ()
    """Tier levels (by code) and tier settings (window, grace_days, downgrade) changed."""
    rewards: tuple[ItemChange, ...] = ()

    @property
    def creates(self) -> bool:
        return self.program_id is None

    @property
    def empty(self) -> bool:
        return not (
            self.creates
            or self.settings
            or self.stores
            or self.channels
            or self.rules.new_version is not None
            or self.tiers
            or self.rewards
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> list[str]:
        """The plan as lines for a person (the CLI prints them)."""
        if self.empty:
            return [f"programme {self.code} ({self.name}): no changes"]
        state = "new programme, will be created" if self.creates else "changes"
        lines = [f"programme {self.code} ({self.name}): {state}"]
        if self.settings:
            lines.append("  settings")
            lines += [f"    {c.field}: {c.old} → {c.new}" for c in self.settings]
        for title, items in (("stores", self.stores), ("channels", self.channels)):
            if items:
                lines.append(f"  {title}")
                lines += [f"    {_item_line(item)}" for item in items]
        rules = self.rules
        if rules.new_version is None:
            lines.append(f"  rules: unchanged (version {rules.current_version})")
        else:
            if rules.current_version is None:
                lines.append(f"  rules: version {rules.new_version} (the first)")
            else:
                lines.append(f"  rules: version {rules.current_version} → {rules.new_version}")
            lines += [f"    {line}" for line in _rule_lines(rules.changes)]
        if self.tiers:
            lines.append("  " + _rule_lines(self.tiers)[0])
        if self.rewards:
            lines.append("  rewards")
            lines += [f"    {_item_line(item)}" for item in self.rewards]
        return lines


_MARK = {"added": "+", "changed": "~", "removed": "-", "deactivated": "-"}


def _item_line(item: ItemChange) -> str:
    if item.action == "deactivated":
        return f"- {item.code}: deactivated (not in the file)"
    if item.action == "added":
        fields = ", ".join(f"{c.field} {c.new}" for c in item.changes)
        return f"+ {item.code}: {fields}"
    return f"~ {item.code}: " + ", ".join(f"{c.field} {c.old} → {c.new}" for c in item.changes)


def _rule_lines(changes: Sequence[RuleChange]) -> list[str]:
    by_section: dict[str, list[str]] = {}
    for change in changes:
        mark = _MARK[change.action]
        shown = f"{mark} {change.name}" if change.name is not None else f"{change.action}"
        by_section.setdefault(change.section, []).append(shown)
    if not by_section:
        return ["(the same rules, written differently)"]
    return [f"{section}: {', '.join(shown)}" for section, shown in by_section.items()]


@dataclass(frozen=True)
class Applied:
    program_id: int
    plan: Plan
    rules_version: int


# -- plan ------------------------------------------------------------------------------------


def plan(session: Session, file: ProgramFile) -> Plan:
    """What applying `file` would change (read only); raises `ProgramFileInvalid` for a
    change that would be refused."""
    program = session.execute(
        select(Program).where(Program.code == file.program.code)
    ).scalar_one_or_none()
    return _plan(session, file, program)


def _plan(session: Session, file: ProgramFile, program: Program | None) -> Plan:
    wanted = file.program
    if program is None:
        return Plan(
            code=wanted.code,
            name=wanted.name,
            program_id=None,
            settings=(),
            stores=_items([], file.stores, STORE_FIELDS),
            channels=_items([], file.channels, CHANNEL_FIELDS),
            rules=RulesPlan(None, 1, _rule_changes(None, file.rules)),
            tiers=_tier_changes(None, file.tiers),
            rewards=_reward_changes([], file.rewards),
        )
    settings = _settings_changes(program, wanted)
    _refuse(session, file, program, {change.field for change in settings})
    current_tiers = TierPolicy.model_validate(program.tiers) if program.tiers else None
    tier_changes = _tier_changes(current_tiers, file.tiers)
    _refuse_tier_removal(session, file, program.id, tier_changes)
    existing_rewards = reward_specs(session, program.id)
    _refuse_stock_cuts(session, file, program.id)
    current = version_row(session, program.id)
    same_rules = current.digest == digest(canonical(file.rules))
    stores = session.execute(select(Store).where(Store.program_id == program.id)).scalars()
    channels = session.execute(select(Channel).where(Channel.program_id == program.id)).scalars()
    return Plan(
        code=wanted.code,
        name=wanted.name,
        program_id=program.id,
        settings=tuple(settings),
        stores=_items(list(stores), file.stores, STORE_FIELDS),
        channels=_items(list(channels), file.channels, CHANNEL_FIELDS),
        rules=RulesPlan(
            current.version,
            None if same_rules else current.version + 1,
            ()
            if same_rules
            else _rule_changes(RuleSet.model_validate(current.document), file.rules),
        ),
        tiers=tier_changes,
        rewards=_reward_changes(existing_rewards, file.rewards),
    )


def _current_settings(program: Program) -> ProgramCreate:
    return ProgramCreate.model_validate(
        {name: getattr(program, name) for name in ProgramCreate.model_fields}
    )


def _settings_changes(program: Program, wanted: ProgramCreate) -> list[Change]:
    current = _current_settings(program)
    return [
        Change(name, _show(getattr(current, name)), _show(getattr(wanted, name)))
        for name in ProgramSettings.model_fields
        if getattr(current, name) != getattr(wanted, name)
    ]


def _refuse(session: Session, file: ProgramFile, program: Program, changed: set[str]) -> None:
    problems = []
    if "currency" in changed:
        problems.append(
            file.problem(
                ("program", "currency"),
                f"the programme's currency is {program.currency} and cannot change: its "
                "point value, rules and reports are in it (start a new programme instead)",
            )
        )
    if "allow_negative_balance" in changed and not file.program.allow_negative_balance:
        in_debt = session.execute(
            select(func.count())
            .select_from(Account)
            .where(
                Account.program_id == program.id,
                Account.kind == AccountKind.POINTS,
                Account.member_id.is_not(None),
                Account.available < 0,
            )
        ).scalar_one()
        if in_debt:
            problems.append(
                file.problem(
                    ("program", "allow_negative_balance"),
                    f"{in_debt} member(s) owe points (a negative balance): debt can be "
                    "forbidden only once they are settled",
                )
            )
    if problems:
        raise ProgramFileInvalid(problems)


def _items(
    rows: Sequence[Store | Channel],
    specs: Sequence[StoreSpec | ChannelSpec],
    fields: tuple[str, ...],
) -> tuple[ItemChange, ...]:
    existing = {row.code: row for row in rows}
    found: list[ItemChange] = []
    for spec in specs:
        row = existing.get(spec.code)
        if row is None:
            given = tuple(
                Change(f, "", _show(value))
                for f in fields
                if (value := getattr(spec, f)) is not None and (f, value) != ("active", True)
            )
            found.append(ItemChange(spec.code, "added", given))
            continue
        changes = tuple(
            Change(f, _show(getattr(row, f)), _show(getattr(spec, f)))
            for f in fields
            if _stored(getattr(row, f)) != _stored(getattr(spec, f))
        )
        if changes:
            found.append(ItemChange(spec.code, "changed", changes))
    named = {spec.code for spec in specs}
    found += [
        ItemChange(row.code, "deactivated") for row in rows if row.code not in named and row.active
    ]
    return tuple(found)


TIER_SETTINGS = ("window", "grace_days", "downgrade")


def _tier_changes(old: TierPolicy | None, new: TierPolicy | None) -> tuple[RuleChange, ...]:
    changes: list[RuleChange] = []
    if old is not None and new is not None:
        changes += [
            RuleChange("tiers", name, "changed")
            for name in TIER_SETTINGS
            if _stored(getattr(old, name)) != _stored(getattr(new, name))
        ]
    before = {level.code: _stored(level) for level in (old.levels if old else [])}
    after = {level.code: _stored(level) for level in (new.levels if new else [])}
    for code, level in after.items():
        if code not in before:
            changes.append(RuleChange("tiers", code, "added"))
        elif before[code] != level:
            changes.append(RuleChange("tiers", code, "changed"))
    changes += [RuleChange("tiers", code, "removed") for code in before if code not in after]
    kept_before = [code for code in before if code in after]
    if kept_before != [code for code in after if code in before]:
        changes.append(RuleChange("tiers", "order", "changed"))
    return tuple(changes)


def _refuse_tier_removal(
    session: Session, file: ProgramFile, program_id: int, changes: Sequence[RuleChange]
) -> None:
    """A tier that members are in, or hold a grant to, cannot be removed: they would drop
    to the base tier without an evaluation or any history."""
    removed = [c.name for c in changes if c.action == "removed" and c.name is not None]
    problems = []
    for code in removed:
        members = session.execute(
            select(func.count())
            .select_from(MemberTier)
            .where(MemberTier.program_id == program_id, MemberTier.tier == code)
        ).scalar_one()
        grants = session.execute(
            select(func.count())
            .select_from(TierGrant)
            .where(
                TierGrant.program_id == program_id,
                TierGrant.tier == code,
                TierGrant.revoked_at.is_(None),
            )
        ).scalar_one()
        if members or grants:
            problems.append(
                file.problem(
                    ("tiers",) if file.tiers is None else ("tiers", "levels"),
                    f"tier {code!r} cannot be removed: {members} member(s) are in it and "
                    f"{grants} grant(s) name it (keep it, or rename it with its code)",
                )
            )
    if problems:
        raise ProgramFileInvalid(problems)


def _reward_changes(
    existing: Sequence[RewardSpec], wanted: Sequence[RewardSpec]
) -> tuple[ItemChange, ...]:
    by_code = {spec.code: spec for spec in existing}
    found: list[ItemChange] = []
    for spec in wanted:
        old = by_code.get(spec.code)
        if old is None:
            shown = ("kind", "points", "stock")
            given = tuple(Change(f, "", _show(getattr(spec, f))) for f in shown)
            found.append(ItemChange(spec.code, "added", given))
            continue
        # compared as values: an instant in +08:00 equals it in UTC, 10 equals 10.00
        before, after = old.model_dump(), spec.model_dump()
        changes = tuple(
            Change(name, _show(getattr(old, name)), _show(getattr(spec, name)))
            for name in RewardSpec.model_fields
            if before[name] != after[name]
        )
        if changes:
            found.append(ItemChange(spec.code, "changed", changes))
    named = {spec.code for spec in wanted}
    found += [
        ItemChange(spec.code, "deactivated")
        for spec in existing
        if spec.code not in named and spec.active
    ]
    return tuple(found)


def _refuse_stock_cuts(session: Session, file: ProgramFile, program_id: int) -> None:
    """A reward's `stock` is what may ever be redeemed: it cannot fall below what members
    hold already."""
    redeemed = dict(
        session.execute(
            select(Reward.code, Reward.redeemed).where(Reward.program_id == program_id)
        ).all()
    )
    problems = []
    for index, spec in enumerate(file.rewards):
        taken = redeemed.get(spec.code, 0)
        if spec.stock is not None and spec.stock < taken:
            problems.append(
                file.problem(
                    ("rewards", index, "stock"),
                    f"{taken} of reward {spec.code!r} are already redeemed: stock (what may "
                    f"ever be redeemed) cannot be {spec.stock}",
                )
            )
    if problems:
        raise ProgramFileInvalid(problems)


def _rule_changes(old: RuleSet | None, new: RuleSet) -> tuple[RuleChange, ...]:
    changes: list[RuleChange] = []
    for section in RULE_KEYS:
        before, after = _named(getattr(old, section, None)), _named(getattr(new, section))
        for name, value in after.items():
            if name not in before:
                changes.append(RuleChange(section, name, "added"))
            elif before[name] != value:
                changes.append(RuleChange(section, name, "changed"))
        changes += [RuleChange(section, name, "removed") for name in before if name not in after]
    return tuple(changes)


def _named(value: Any) -> dict[str | None, Any]:
    """A section's rules by id (or event type) in their stored form; one value as {None: …}."""
    if value is None:
        return {}
    if isinstance(value, list):
        found: dict[str | None, Any] = {}
        for index, rule in enumerate(value):
            name = getattr(rule, "id", None) or getattr(rule, "type", None) or f"#{index + 1}"
            found[str(name)] = _stored(rule)
        return found
    return {None: _stored(value)}


def _stored(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, Enum):
        return value.value
    return value


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, Enum):
        return str(value.value)
    describe = getattr(value, "describe", None)
    if callable(describe):  # an expiry policy
        return str(describe("en"))
    return str(value)


# -- apply -----------------------------------------------------------------------------------


def apply(session: Session, file: ProgramFile, *, now: datetime, actor: str) -> Applied:
    """Make the programme what `file` says, in the caller's transaction (see the module)."""
    program = session.execute(
        select(Program).where(Program.code == file.program.code).with_for_update()
    ).scalar_one_or_none()
    planned = _plan(session, file, program)
    if program is None:
        program = create_program(
            session, file.program, now=now, rules=file.rules, actor=actor, default_channels=False
        )
        version = 1
        program.tiers = _stored(file.tiers) if file.tiers is not None else None
    else:
        for change in planned.settings:
            value = getattr(file.program, change.field)
            setattr(program, change.field, _stored(value))
        if any(change.field == "allow_negative_balance" for change in planned.settings):
            set_debt_policy(session, program.id, file.program.allow_negative_balance)
        version, _ = save_rules(session, program.id, file.rules, now=now, actor=actor)
        if planned.tiers:
            program.tiers = _stored(file.tiers) if file.tiers is not None else None
    _sync(session, Store, program.id, file.stores, STORE_FIELDS)
    _sync(session, Channel, program.id, file.channels, CHANNEL_FIELDS)
    _sync_rewards(session, program, file.rewards, planned.rewards, now=now)
    if not planned.empty:
        payload = {"actor": actor, "plan": planned.as_dict()}
        emit(session, program_id=program.id, type="program.configured", at=now, payload=payload)
    session.flush()
    return Applied(program_id=program.id, plan=planned, rules_version=version)


def _sync_rewards(
    session: Session,
    program: Program,
    specs: Sequence[RewardSpec],
    changes: Sequence[ItemChange],
    *,
    now: datetime,
) -> None:
    from jifen.rewards.catalog import put_reward  # the catalog's rows belong to jifen.rewards

    touched = {change.code: change.action for change in changes}
    for spec in specs:
        if spec.code in touched:
            put_reward(session, program, spec, now=now)
    for spec in reward_specs(session, program.id):
        if touched.get(spec.code) == "deactivated":
            put_reward(session, program, spec.model_copy(update={"active": False}), now=now)


Outlet = TypeVar("Outlet", Store, Channel)


def _sync(
    session: Session,
    model: type[Outlet],
    program_id: int,
    specs: Sequence[StoreSpec | ChannelSpec],
    fields: tuple[str, ...],
) -> None:
    rows = {
        row.code: row
        for row in session.execute(select(model).where(model.program_id == program_id)).scalars()
    }
    for spec in specs:
        values = {f: _stored(getattr(spec, f)) for f in fields}
        row = rows.get(spec.code)
        if row is None:
            session.add(model(program_id=program_id, code=spec.code, **values))
            continue
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
    named = {spec.code for spec in specs}
    for code, row in rows.items():
        if code not in named and row.active:
            row.active = False

"""A programme as one YAML file (PRODUCT.md O2): its schema, loading it, exporting it.

The file is the whole programme: its settings (`program:`), stores, channels and rules
(the `jifen.rules.schemas.RuleSet` keys, `earning_rules` … `birthday`, at the top level).
A key left out takes its default, exactly as in `ProgramCreate` and `RuleSet`: no stores,
the five default channels, no earning rules, 1 growth value per currency unit. Unknown
keys are errors, at every level, so a typo never silently drops a rule.

`load_program_file(text, source)` returns a `ProgramFile` or raises `ProgramFileInvalid`
listing every mistake with its line and field path
(`programme.yaml:14: earning_rules[2].effect: give exactly one of …`). `export` writes a
programme back as such a file; applying an export changes nothing. What applying a file
does is `jifen.programs.apply`.

Besides the rules, the file holds the programme's tiers (`tiers:`, a
`jifen.programs.tiers.TierPolicy`) and its rewards catalog (`rewards:`, a list of
`jifen.programs.rewards.RewardSpec`). Names must agree across sections: a rule's `tier`
condition, a reward's `tiers` and `prices`, and a tier's birthday gift and periodic
rewards must name tiers and rewards the file defines.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from datetime import time
from decimal import Decimal
from typing import Any

import yaml
from pydantic import BaseModel, Field, PrivateAttr, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.programs.errors import FileProblem, ProgramFileInvalid
from jifen.programs.models import Program
from jifen.programs.rewards import RewardSpec
from jifen.programs.rulesets import current_rules, references
from jifen.programs.schemas import ChannelKind, ChannelSpec, ProgramCreate, StoreSpec
from jifen.programs.service import DEFAULT_CHANNELS, list_channels, list_stores
from jifen.programs.tiers import TierPolicy
from jifen.programs.yamlfile import Path, SourceMap, problems_from, read_yaml, render_path
from jifen.rules.schemas import RuleSet

RULE_KEYS: tuple[str, ...] = tuple(RuleSet.model_fields)
"""The top-level keys that are the programme's rules (one `RuleSet`)."""


def default_channels() -> list[ChannelSpec]:
    return [
        ChannelSpec(code=code, name=zh, kind=ChannelKind(code))
        for code, (zh, _) in DEFAULT_CHANNELS.items()
    ]


class ProgramFile(RuleSet):
    """The programme file: settings, stores, channels, and the rules at the top level."""

    program: ProgramCreate
    stores: list[StoreSpec] = []
    channels: list[ChannelSpec] = Field(default_factory=default_channels)
    tiers: TierPolicy | None = None
    rewards: list[RewardSpec] = []

    _where: SourceMap | None = PrivateAttr(None)

    @property
    def rules(self) -> RuleSet:
        return RuleSet(**{name: getattr(self, name) for name in RULE_KEYS})

    def problem(self, path: Path, message: str) -> FileProblem:
        """A mistake at `path`, at its line when the file was read from text."""
        if self._where is None:
            return FileProblem("<programme>", None, render_path(path), message)
        return self._where.problem(path, message)


# -- loading ---------------------------------------------------------------------------------

_UNIQUE: tuple[tuple[str, str, str], ...] = (
    ("stores", "code", "store code"),
    ("channels", "code", "channel code"),
    ("earning_rules", "id", "rule id"),
    ("growth_rules", "id", "rule id"),
    ("event_rules", "type", "event type"),
    ("rewards", "code", "reward code"),
)
"""Lists whose items are named, and by what: a name given twice is a mistake."""


def load_program_file(text: str, source: str = "<programme>") -> ProgramFile:
    """Read and check a programme file; every mistake found is raised at once."""
    data, where, problems = read_yaml(text, source)
    if problems:
        raise ProgramFileInvalid(problems)
    if not isinstance(data, dict):
        raise ProgramFileInvalid(
            [where.problem((), "the file must be a mapping: program:, stores:, channels:, …")]
        )
    problems = list(_duplicates(data, where))
    try:
        loaded = ProgramFile.model_validate(data)
    except ValidationError as exc:
        problems += _placed(problems_from(exc, data, where, ProgramFile), problems, where)
        raise ProgramFileInvalid(_ordered(problems)) from None
    loaded._where = where
    problems += _undefined_references(loaded)
    if problems:
        raise ProgramFileInvalid(_ordered(problems))
    return loaded


def _placed(
    found: list[FileProblem], duplicates: list[FileProblem], where: SourceMap
) -> list[FileProblem]:
    """A check of the whole RuleSet (`earning_rules: rule id 'x' appears twice`) put on its
    list's line; dropped where our own check already named the very item."""
    named = {p.path.split("[")[0] for p in duplicates}
    placed = []
    for problem in found:
        section, colon, rest = problem.message.partition(": ")
        if problem.path or not colon or section not in RULE_KEYS:
            placed.append(problem)
        elif section not in named:
            placed.append(where.problem((section,), rest))
    return placed


def _ordered(problems: list[FileProblem]) -> list[FileProblem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.path))


def _duplicates(data: dict[str, Any], where: SourceMap) -> Iterator[FileProblem]:
    for section, key, what in _UNIQUE:
        items = data.get(section)
        if not isinstance(items, list):
            continue
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get(key), str | int):
                continue
            name = str(item[key])
            path: Path = (section, index, key)
            if name in first:
                yield where.problem(
                    path, f"{what} {name!r} is given twice (first on line {first[name]})"
                )
            else:
                first[name] = where.line_of(path)


def _undefined_references(loaded: ProgramFile) -> list[FileProblem]:
    defined = {
        "store": {store.code for store in loaded.stores},
        "channel": {channel.code for channel in loaded.channels},
    }
    problems = []
    for ref in references(loaded.rules):
        known = defined[ref.kind]
        if ref.code not in known:
            listed = ", ".join(sorted(known)) or "none"
            problems.append(
                loaded.problem(
                    ref.path,
                    f"no {ref.kind} {ref.code!r} in this file's {ref.kind}s (defined: {listed})",
                )
            )
    return problems + _undefined_tiers_and_rewards(loaded)


def _undefined_tiers_and_rewards(loaded: ProgramFile) -> list[FileProblem]:
    """Tier and reward names used across sections that the file does not define."""
    tiers = [level.code for level in loaded.tiers.levels] if loaded.tiers else []
    rewards = [reward.code for reward in loaded.rewards]
    where_tiers = "no tiers: section" if not tiers else f"defined: {', '.join(tiers)}"
    problems = []

    def check_tier(code: str, path: tuple[str | int, ...]) -> None:
        if code not in tiers:
            problems.append(loaded.problem(path, f"no tier {code!r} in this file ({where_tiers})"))

    for section in ("earning_rules", "growth_rules"):
        for index, rule in enumerate(getattr(loaded, section)):
            for position, code in enumerate(rule.when.tier or ()):
                check_tier(str(code), (section, index, "when", "tier", position))
    for index, reward in enumerate(loaded.rewards):
        for position, code in enumerate(reward.tiers or ()):
            check_tier(code, ("rewards", index, "tiers", position))
        for code in reward.prices:
            check_tier(code, ("rewards", index, "prices", code))
    listed = ", ".join(rewards) or "none"
    for index, level in enumerate(loaded.tiers.levels if loaded.tiers else []):
        gift = level.benefits.birthday_gift
        named: list[tuple[str, tuple[str | int, ...]]] = []
        if gift is not None and gift.reward is not None:
            named.append((gift.reward, ("birthday_gift", "reward")))
        named += [
            (p.reward, ("periodic", n, "reward")) for n, p in enumerate(level.benefits.periodic)
        ]
        for code, tail in named:
            if code not in rewards:
                problems.append(
                    loaded.problem(
                        ("tiers", "levels", index, "benefits", *tail),
                        f"no reward {code!r} in this file's rewards (defined: {listed})",
                    )
                )
    return problems


# -- exporting -------------------------------------------------------------------------------


def export(session: Session, program: Program) -> str:
    """The programme as a file that `apply` turns into no change."""
    settings = ProgramCreate.model_validate(
        {name: getattr(program, name) for name in ProgramCreate.model_fields}
    )
    document: dict[str, Any] = {"program": settings.model_dump(mode="python")}
    # 10.0000 as stored reads 10; the value is the same
    document["program"]["point_value_amount"] = _plain(settings.point_value_amount)
    document["stores"] = [
        _compact(StoreSpec.model_validate(store)) for store in list_stores(session, program.id)
    ]
    document["channels"] = [
        _compact(ChannelSpec.model_validate(channel))
        for channel in list_channels(session, program.id)
    ]
    current = current_rules(session, program.id)
    for name in RULE_KEYS:
        value = _compact_value(getattr(current.rules, name))
        if value is not None:
            document[name] = value
    if program.tiers is not None:
        document["tiers"] = _compact(TierPolicy.model_validate(program.tiers))
    specs = reward_specs(session, program.id)
    if specs:
        document["rewards"] = [_compact(spec) for spec in specs]
    header = (
        f"# jifen programme file: {program.code}, rules version {current.version}.\n"
        "# Apply with `jifen programs apply FILE` (add --dry-run to see the changes first).\n"
    )
    body = yaml.dump(
        _plain_values(document),
        Dumper=_Dumper,
        allow_unicode=True,
        sort_keys=False,
        width=100,
    )
    return header + body


def reward_specs(session: Session, program_id: int) -> list[RewardSpec]:
    """The catalog as specs, in the order the rewards were first defined."""
    from jifen.rewards.catalog import spec_of  # the catalog's rows belong to jifen.rewards
    from jifen.rewards.models import Reward

    rows = session.execute(
        select(Reward).where(Reward.program_id == program_id).order_by(Reward.id)
    ).scalars()
    return [spec_of(row) for row in rows]


def _compact(model: BaseModel) -> dict[str, Any]:
    """The fields that differ from their defaults, as a person would write them; an object
    that is all defaults (`limit: {count: 1, per: ever}`) is written out in full, since
    leaving it out would mean something else (no limit)."""
    found: dict[str, Any] = {}
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        if not info.is_required() and _same(value, info.get_default(call_default_factory=True)):
            continue
        found[info.alias or name] = _compact_value(value)
    if not found:
        return {
            info.alias or name: _compact_value(getattr(model, name))
            for name, info in type(model).model_fields.items()
            if getattr(model, name) is not None
        }
    return found


def _compact_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _compact(value)
    if isinstance(value, list | tuple):
        return [_compact_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _compact_value(item) for key, item in value.items()}
    return value


def _same(value: Any, default: Any) -> bool:
    # 1.0 is not left out for a default of 1: the stored rules keep the text as written
    if isinstance(value, Decimal) or isinstance(default, Decimal):
        return str(value) == str(default)
    return bool(value == default)


def _plain(amount: Decimal) -> Decimal:
    return Decimal(format(amount.normalize(), "f"))


def _plain_values(value: Any) -> Any:
    """Enums as their values, times as HH:MM[:SS]; Decimals stay (their text is kept)."""
    if isinstance(value, dict):
        return {key: _plain_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_values(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, time):
        return value.isoformat(timespec="minutes" if value.second == 0 else "seconds")
    return value


class _Dumper(yaml.SafeDumper):
    """Decimals written as the number they are (their exact text); lists of plain values
    on one line (`store: [sh-001, sh-002]`); code first in each store and channel."""


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    text = str(value)
    if text.lstrip("-").isdigit():
        return dumper.represent_scalar("tag:yaml.org,2002:int", text)
    if "." in text and "E" not in text.upper():
        return dumper.represent_scalar("tag:yaml.org,2002:float", text)
    return dumper.represent_str(text)  # 1E+1: read back as text, which pydantic accepts


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flat = bool(value) and all(not isinstance(item, dict | list) for item in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


def _mapping(dumper: yaml.SafeDumper, value: dict[str, Any]) -> yaml.Node:
    if "code" in value:  # stores and channels read best code first
        value = {"code": value["code"]} | {k: v for k, v in value.items() if k != "code"}
    return dumper.represent_mapping("tag:yaml.org,2002:map", value)


_Dumper.add_representer(Decimal, _decimal)
_Dumper.add_representer(list, _list)
_Dumper.add_representer(dict, _mapping)

"""Which tier a record earns: thresholds against measures, no database, no clock.

A threshold is met when any one of its measures is reached ("5,000 growth or 20 orders").
The tier a record *supports*, for a member whose qualified tier is at rank `current`, is
the highest qualifiable tier whose threshold the record meets, with the retain threshold
for the current tier and those below it and the enter threshold for those above it; the
base tier (rank 0) is always supported. Tiers with `qualifiable: false` are reached only
by grants.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from jifen.programs.tiers import Measure, Threshold, TierPolicy

Measures = Mapping[Measure, Decimal]

NEAR = Decimal("0.9")
"""A member is near a tier when a measure has reached 90% of its enter threshold."""


def zero() -> dict[Measure, Decimal]:
    """Nothing measured: spend in cents, as money is shown."""
    return {
        Measure.GROWTH: Decimal(0),
        Measure.SPEND: Decimal("0.00"),
        Measure.PURCHASES: Decimal(0),
    }


def better(*found: Measures) -> dict[Measure, Decimal]:
    """Each measure the best of several windows (keeping a tier in calendar periods)."""
    return {m: max((f.get(m, Decimal(0)) for f in found), default=Decimal(0)) for m in Measure}


def meets(threshold: Threshold | None, measures: Measures) -> bool:
    if threshold is None:
        return False
    return any(measures.get(m, Decimal(0)) >= need for m, need in threshold.measures().items())


def shortfall(threshold: Threshold, measures: Measures) -> dict[Measure, Decimal]:
    """What each measure of the threshold still lacks (0 where it is reached)."""
    return {
        m: max(need - measures.get(m, Decimal(0)), Decimal(0))
        for m, need in threshold.measures().items()
    }


def near(threshold: Threshold | None, measures: Measures) -> bool:
    """Within 10% of the threshold on some measure, and not meeting it."""
    if threshold is None or meets(threshold, measures):
        return False
    return any(
        need > 0 and measures.get(m, Decimal(0)) >= need * NEAR
        for m, need in threshold.measures().items()
    )


def entered(policy: TierPolicy, above: int, measures: Measures) -> int:
    """The highest qualifiable tier above rank `above` whose enter threshold `measures`
    meet; `above` itself when none is."""
    for rank in range(len(policy.levels) - 1, above, -1):
        tier = policy.levels[rank]
        if tier.qualifiable and meets(tier.enter, measures):
            return rank
    return above


def supported(policy: TierPolicy, current: int, enter: Measures, keep: Measures) -> int:
    """The tier the record supports for a member qualified at rank `current` (see the
    module's docstring)."""
    for rank in range(len(policy.levels) - 1, 0, -1):
        tier = policy.levels[rank]
        if not tier.qualifiable:
            continue
        if rank <= current and meets(tier.keep, keep):
            return rank
        if rank > current and meets(tier.enter, enter):
            return rank
    return 0


def next_rank(policy: TierPolicy, rank: int) -> int | None:
    """The next tier above `rank` that a record can reach (None at the top)."""
    for above in range(rank + 1, len(policy.levels)):
        tier = policy.levels[above]
        if tier.qualifiable and tier.enter is not None:
            return above
    return None


def needed(policy: TierPolicy, ranks: range) -> frozenset[Measure]:
    """The measures the enter and retain thresholds of the tiers at `ranks` name (worked
    out once per policy and ranks: a batch asks it of every member)."""
    cached = _NEEDED.get(id(policy))
    if cached is None or cached[0] is not policy:  # (a policy held here keeps its id)
        if len(_NEEDED) >= 64:
            _NEEDED.clear()
        cached = _NEEDED[id(policy)] = (policy, {})
    key = (ranks.start, ranks.stop, ranks.step)
    found = cached[1].get(key)
    if found is None:
        measures: set[Measure] = set()
        for rank in ranks:
            tier = policy.levels[rank]
            for threshold in (tier.enter, tier.retain):
                if threshold is not None:
                    measures |= set(threshold.measures())
        found = cached[1][key] = frozenset(measures)
    return found


_NEEDED: dict[int, tuple[TierPolicy, dict[tuple[int, int, int], frozenset[Measure]]]] = {}
"""`needed` by policy (parsed once per programme's document: `standing.policy_of`)."""

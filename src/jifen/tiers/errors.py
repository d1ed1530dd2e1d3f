"""Why a tier request is refused: each a `JifenError` with a stable code (the problem type
over HTTP) and a message in zh-CN and en that says what to do."""

from __future__ import annotations

from jifen.core.errors import JifenError


class TiersNotConfigured(JifenError):
    """The programme has no tiers (no `tiers:` section in its programme file)."""

    code = "tiers-not-configured"
    status = 409
    title = {"zh-CN": "未设置会员等级", "en": "No tiers"}
    template = {
        "zh-CN": "本计划没有设置会员等级：请先在计划文件的 tiers: 部分定义等级。",
        "en": "This programme has no tiers: define them in the tiers: section of its "
        "programme file first.",
    }


class UnknownTier(JifenError):
    """The tier named is not one of the programme's levels (or is the base level, which
    everyone has and nobody needs to be given)."""

    code = "unknown-tier"
    status = 422
    title = {"zh-CN": "没有这个等级", "en": "Unknown tier"}
    template = {
        "zh-CN": "没有可授予的等级 {tier}；可授予的等级：{known}。",
        "en": "There is no tier {tier!r} to grant; the tiers that can be granted: {known}.",
    }


class GrantEndsBeforeStart(JifenError):
    """A grant must end after it starts (it starts now)."""

    code = "grant-ends-before-start"
    status = 422
    title = {"zh-CN": "结束时间早于开始时间", "en": "Grant ends before it starts"}
    template = {
        "zh-CN": "授予的等级须在开始（{starts_at}）之后结束，而结束时间为 {ends_at}。",
        "en": "A grant must end after it starts ({starts_at}); it would end at {ends_at}.",
    }


class GrantReferenceConflict(JifenError):
    """The reference (a payment or order id) already names another grant: the same
    reference sent again for the same member, tier and kind returns the first grant."""

    code = "grant-reference-conflict"
    status = 409
    title = {"zh-CN": "凭证号已被使用", "en": "Reference already used"}
    template = {
        "zh-CN": "凭证号 {reference} 已用于授予 {grant_id}（会员 {member_id}，等级 {tier}，"
        "类型 {kind}）；新的授予请使用新的凭证号。",
        "en": "Reference {reference!r} already names grant {grant_id} (member {member_id}, "
        "tier {tier}, kind {kind}); a new grant needs a new reference.",
    }


class GrantNotActive(JifenError):
    """The grant has already ended: there is nothing left to revoke."""

    code = "grant-not-active"
    status = 409
    title = {"zh-CN": "授予已结束", "en": "Grant not active"}
    template = {
        "zh-CN": "授予 {grant_id} 已于 {ended_at} 结束，无法撤销。",
        "en": "Grant {grant_id} ended at {ended_at}; there is nothing to revoke.",
    }

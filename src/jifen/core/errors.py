"""The one error tree of jifen.

Every expected failure is a `JifenError` subclass with a stable `code` (it becomes the
problem-details `type` over HTTP and never changes once published), an HTTP status, and a
message in zh-CN and en that tells a person what went wrong and what to do. The HTTP
layer renders them as RFC 9457 problem details, the CLI as one line. Anything that is
not a `JifenError` is a bug and surfaces as a 500.
"""

from __future__ import annotations

from typing import Any, ClassVar

LANGUAGES = ("zh-CN", "en")


def pick_language(accept: str | None, default: str = "zh-CN") -> str:
    """Choose zh-CN or en from an Accept-Language header or a locale string such as en_US.UTF-8.

    Languages are tried in the caller's order of preference (`q`, highest first, then as
    listed); `q=0` means "not this one"."""
    if not accept:
        return default
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.replace("_", "-").split(",")):
        tag, *params = part.split(";")
        quality = 1.0
        for param in params:
            name, _, value = param.strip().partition("=")
            if name.lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for negative_quality, _, tag in sorted(ranked):
        if negative_quality >= 0:
            break
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return default


class JifenError(Exception):
    """Base of every expected failure."""

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[dict[str, str]] = {"zh-CN": "请求有误", "en": "Bad request"}
    template: ClassVar[dict[str, str]] = {"zh-CN": "请求有误。", "en": "The request is not valid."}

    def __init__(self, **params: Any) -> None:
        self.params = params
        super().__init__(self.message("en"))

    def message(self, lang: str = "zh-CN") -> str:
        text = self.template.get(lang) or self.template["en"]
        return text.format(**self.params)

    def title_in(self, lang: str = "zh-CN") -> str:
        return self.title.get(lang) or self.title["en"]


class InvalidInput(JifenError):
    """A value in the request breaks a rule; `field` names it."""

    code = "invalid-input"
    status = 422
    title = {"zh-CN": "输入无效", "en": "Invalid input"}
    template = {"zh-CN": "{field}：{reason}", "en": "{field}: {reason}"}


class NotFound(JifenError):
    """The thing asked for does not exist in this programme."""

    code = "not-found"
    status = 404
    title = {"zh-CN": "未找到", "en": "Not found"}
    template = {
        "zh-CN": "未找到{what} {key}（在本计划中）。",
        "en": "No {what} {key} in this programme.",
    }


class Conflict(JifenError):
    """The request clashes with the current state (a duplicate, a closed thing)."""

    code = "conflict"
    status = 409
    title = {"zh-CN": "冲突", "en": "Conflict"}
    template = {"zh-CN": "{reason}", "en": "{reason}"}


class Unauthorized(JifenError):
    code = "unauthorized"
    status = 401
    title = {"zh-CN": "未认证", "en": "Not authenticated"}
    template = {
        "zh-CN": "缺少或无效的 API 密钥：请在 Authorization 头中以 Bearer 方式传入密钥。",
        "en": "Missing or invalid API key: pass it as 'Authorization: Bearer <key>'.",
    }


class Forbidden(JifenError):
    code = "forbidden"
    status = 403
    title = {"zh-CN": "无权操作", "en": "Forbidden"}
    template = {
        "zh-CN": "该密钥的权限（{scope}）不允许此操作，需要：{needed}。",
        "en": "This key's scope ({scope}) does not allow this; it needs one of: {needed}.",
    }


class IdempotencyKeyReused(JifenError):
    code = "idempotency-key-reused"
    status = 422
    title = {"zh-CN": "幂等键已用于其他请求", "en": "Idempotency key reused"}
    template = {
        "zh-CN": "幂等键 {key} 已用于另一个不同的请求；请为新请求使用新的键。",
        "en": "Idempotency key {key} was already used with a different request; "
        "use a new key for a new request.",
    }


class IdempotencyKeyMissing(JifenError):
    code = "idempotency-key-missing"
    status = 400
    title = {"zh-CN": "缺少幂等键", "en": "Idempotency key missing"}
    template = {
        "zh-CN": "写操作必须带 Idempotency-Key 请求头（例如一个 UUID），重试时使用同一个键。",
        "en": "Every write needs an Idempotency-Key header (e.g. a UUID); "
        "send the same key when you retry.",
    }


class ConcurrencyExhausted(JifenError):
    code = "busy"
    status = 503
    title = {"zh-CN": "系统繁忙", "en": "Busy"}
    template = {
        "zh-CN": "并发写入冲突，重试 {attempts} 次后仍未成功；请稍后用同一幂等键重试。",
        "en": "Concurrent writes kept clashing after {attempts} attempts; "
        "retry later with the same idempotency key.",
    }


# Ledger and member errors live here too, so every layer (and later packages) share one tree.


class InsufficientPoints(JifenError):
    """The member's available points do not cover the debit."""

    code = "insufficient-points"
    status = 409
    title = {"zh-CN": "积分不足", "en": "Insufficient points"}
    template = {
        "zh-CN": "可用积分不足：需要 {needed}，可用 {available}。",
        "en": "Insufficient points: {needed} needed, {available} available.",
    }


class MemberFrozen(JifenError):
    """The member is frozen: no earning, no spending until unfrozen."""

    code = "member-frozen"
    status = 409
    title = {"zh-CN": "会员已冻结", "en": "Member frozen"}
    template = {
        "zh-CN": "会员 {member_id} 已被冻结，不能获得或使用积分；请先解冻。",
        "en": "Member {member_id} is frozen and can neither earn nor spend points; unfreeze first.",
    }


class MemberClosed(JifenError):
    """The member is closed for good."""

    code = "member-closed"
    status = 409
    title = {"zh-CN": "会员已注销", "en": "Member closed"}
    template = {
        "zh-CN": "会员 {member_id} 已注销，不能再获得或使用积分。",
        "en": "Member {member_id} is closed and can no longer earn or spend points.",
    }


class HoldNotActive(JifenError):
    """The hold was already captured, voided or lapsed."""

    code = "hold-not-active"
    status = 409
    title = {"zh-CN": "预授权不可用", "en": "Hold not active"}
    template = {
        "zh-CN": "预授权 {hold_id} 当前状态为 {status}，不能再{action}。",
        "en": "Hold {hold_id} is {status} and can no longer be {action}.",
    }


class HoldExpired(JifenError):
    """The hold passed its deadline; its points went back to the member."""

    code = "hold-expired"
    status = 409
    title = {"zh-CN": "预授权已过期", "en": "Hold expired"}
    template = {
        "zh-CN": "预授权 {hold_id} 已于 {expires_at} 过期，积分已退回；请重新预授权。",
        "en": "Hold {hold_id} expired at {expires_at} and its points were returned; "
        "authorise a new hold.",
    }


class CaptureExceedsHold(JifenError):
    """A capture asked for more points than the hold holds."""

    code = "capture-exceeds-hold"
    status = 422
    title = {"zh-CN": "扣款超过预授权", "en": "Capture exceeds hold"}
    template = {
        "zh-CN": "扣款 {amount} 超过预授权金额 {held}。",
        "en": "Capture of {amount} exceeds the {held} points held.",
    }


class NotReversible(JifenError):
    """This kind of transaction, or this one, cannot be reversed."""

    code = "not-reversible"
    status = 409
    title = {"zh-CN": "不可冲正", "en": "Not reversible"}
    template = {
        "zh-CN": "交易 {transaction_id} 不能冲正：{reason}",
        "en": "Transaction {transaction_id} cannot be reversed: {reason}",
    }


class TransfersDisabled(JifenError):
    """The programme does not allow member-to-member transfers."""

    code = "transfers-disabled"
    status = 409
    title = {"zh-CN": "不允许转赠", "en": "Transfers disabled"}
    template = {
        "zh-CN": "本计划不允许会员之间转赠积分。",
        "en": "This programme does not allow members to transfer points to each other.",
    }


class DuplicateIdentifier(JifenError):
    """A phone, e-mail, card number or external id already belongs to another member."""

    code = "duplicate-identifier"
    status = 409
    title = {"zh-CN": "标识已被占用", "en": "Identifier taken"}
    template = {
        "zh-CN": "{field} {value} 已属于本计划的会员 {member_id}。",
        "en": "{field} {value} already belongs to member {member_id} in this programme.",
    }


class DuplicateReference(JifenError):
    """An external reference (order id, …) is unique per programme."""

    code = "duplicate-reference"
    status = 409
    title = {"zh-CN": "外部单号重复", "en": "Duplicate reference"}
    template = {
        "zh-CN": "外部单号 {reference} 已被交易 {transaction_id} 使用。",
        "en": "Reference {reference} was already used by transaction {transaction_id}.",
    }


class UnknownCode(JifenError):
    """A channel, store, payment method or event type the programme does not define."""

    code = "unknown-code"
    status = 422
    title = {"zh-CN": "未定义的代码", "en": "Unknown code"}
    template = {
        "zh-CN": "{field}：本计划没有（启用的）{code}。可用的有：{known}",
        "en": "{field}: this programme has no (active) {code!r}. Known: {known}",
    }


class OrderConflict(JifenError):
    """An order id already recorded, now sent with a different member or total."""

    code = "order-conflict"
    status = 409
    title = {"zh-CN": "订单号冲突", "en": "Order id clash"}
    template = {
        "zh-CN": "订单 {external_id} 已记录（消费 {purchase_id}），但{difference}不同。",
        "en": "Order {external_id} is already recorded (purchase {purchase_id}) "
        "with a different {difference}.",
    }


class OutsideClaimWindow(JifenError):
    """A purchase too old to be attached to a member."""

    code = "outside-claim-window"
    status = 422
    title = {"zh-CN": "超过补录期限", "en": "Outside the claim window"}
    template = {
        "zh-CN": "该订单发生于 {occurred_at}，超过了 {days} 天的补录期限。",
        "en": "The order happened at {occurred_at}, more than {days} days ago: "
        "too late to attach it to a member.",
    }


class AlreadyClaimed(JifenError):
    """The order already belongs to a member."""

    code = "already-claimed"
    status = 409
    title = {"zh-CN": "订单已归属会员", "en": "Already claimed"}
    template = {
        "zh-CN": "订单 {external_id} 已归属会员 {member_id}。",
        "en": "Order {external_id} already belongs to member {member_id}.",
    }


class ReturnExceedsPurchase(JifenError):
    """A return asks back more than the purchase has left."""

    code = "return-exceeds-purchase"
    status = 409
    title = {"zh-CN": "退货超出订单", "en": "Return exceeds the purchase"}
    template = {
        "zh-CN": "第 {line} 行：退 {asked}，但只剩 {left} 可退。",
        "en": "Line {line}: returns {asked}, but only {left} is left to return.",
    }
    whole_order = {
        "zh-CN": "整单：退 {asked}，但只剩 {left} 可退。",
        "en": "The order: refunds {asked}, but only {left} is left to refund.",
    }

    def message(self, lang: str = "zh-CN") -> str:
        if self.params.get("line") is None:  # an order-level refund
            return (self.whole_order.get(lang) or self.whole_order["en"]).format(**self.params)
        return super().message(lang)

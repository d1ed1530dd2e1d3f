"""Why a redemption, a coupon or a points payment is refused: each a `JifenError` with a
stable code (the problem type over HTTP) and a message a person can act on."""

from __future__ import annotations

from jifen.core.errors import JifenError


class UnknownReward(JifenError):
    """The programme's catalog has no reward with this code."""

    code = "unknown-reward"
    status = 404
    title = {"zh-CN": "没有这个奖励", "en": "Unknown reward"}
    template = {
        "zh-CN": "积分商城里没有奖励 {code}。",
        "en": "The catalog has no reward {code!r}.",
    }


class RewardUnavailable(JifenError):
    """The reward exists but cannot be redeemed now: withdrawn, not yet or no longer on
    offer, or only given as a benefit."""

    code = "reward-unavailable"
    status = 409
    title = {"zh-CN": "奖励暂不可兑换", "en": "Reward not available"}
    template = {
        "zh-CN": "奖励 {code} 现在不可兑换：{reason}。",
        "en": "Reward {code!r} cannot be redeemed now: {reason}.",
    }
    reasons = {
        "inactive": {"zh-CN": "已下架", "en": "it was withdrawn"},
        "not-yet": {
            "zh-CN": "{available_from} 起才可兑换",
            "en": "it is on offer from {available_from}",
        },
        "ended": {
            "zh-CN": "兑换已于 {available_until} 结束",
            "en": "its offer ended at {available_until}",
        },
        "started": {
            "zh-CN": "活动已于 {starts_at} 开始",
            "en": "the event started at {starts_at}",
        },
        "benefit-only": {
            "zh-CN": "仅作为会员权益发放，不可用积分兑换",
            "en": "it is only given as a benefit, never redeemed",
        },
    }

    def message(self, lang: str = "zh-CN") -> str:
        """`reason` is a key of `reasons` (its text in the caller's language), or free text."""
        known = self.reasons.get(str(self.params.get("reason")))
        if known is None:
            return super().message(lang)
        reason = (known.get(lang) or known["en"]).format(**self.params)
        return (self.template.get(lang) or self.template["en"]).format(
            **(self.params | {"reason": reason})
        )


class OutOfStock(JifenError):
    """Fewer left than asked for (goods, seats, or the reward's total limit)."""

    code = "out-of-stock"
    status = 409
    title = {"zh-CN": "库存不足", "en": "Out of stock"}
    template = {
        "zh-CN": "奖励 {code} 库存不足：需要 {quantity}，剩余 {left}。",
        "en": "Reward {code!r} is out of stock: {quantity} asked, {left} left.",
    }


class TierNotAllowed(JifenError):
    """The reward is only for some tiers, and the member is in another."""

    code = "tier-not-allowed"
    status = 403
    title = {"zh-CN": "会员等级不符", "en": "Tier not allowed"}
    template = {
        "zh-CN": "奖励 {code} 仅限 {allowed} 兑换，该会员当前等级为 {tier}。",
        "en": "Reward {code!r} is for {allowed} only; the member's tier is {tier}.",
    }


class LimitReached(JifenError):
    """A per-member limit (per day or ever) of the reward is used up."""

    code = "limit-reached"
    status = 409
    title = {"zh-CN": "已达兑换上限", "en": "Limit reached"}
    template = {
        "zh-CN": "奖励 {code} 每位会员{period}限兑 {limit} 个，已兑 {used} 个。",
        "en": "Reward {code!r} is limited to {limit} per member {period}; {used} already redeemed.",
    }
    periods = {
        "day": {"zh-CN": "每天", "en": "a day"},
        "ever": {"zh-CN": "", "en": "in all"},
    }

    def message(self, lang: str = "zh-CN") -> str:
        """`period` is `day` (a programme-local day) or `ever`."""
        words = self.periods.get(str(self.params.get("period")))
        period = (words.get(lang) or words["en"]) if words else self.params.get("period")
        return (self.template.get(lang) or self.template["en"]).format(
            **(self.params | {"period": period})
        )


class RedemptionState(JifenError):
    """The redemption is not in a state that allows this step (cancel a delivered parcel,
    ship a coupon…)."""

    code = "redemption-state"
    status = 409
    title = {"zh-CN": "兑换单状态不允许此操作", "en": "Not possible in this state"}
    template = {
        "zh-CN": "兑换单 {redemption_id} 当前为 {status}，不能{action}。",
        "en": "Redemption {redemption_id} is {status}: it cannot be {action}.",
    }
    actions = {
        "ship": {"zh-CN": "发货", "en": "shipped"},
        "deliver": {"zh-CN": "确认送达", "en": "marked delivered"},
        "cancel": {"zh-CN": "取消", "en": "cancelled"},
    }

    def message(self, lang: str = "zh-CN") -> str:
        """`action` is a key of `actions` (ship, deliver, cancel), or free text."""
        words = self.actions.get(str(self.params.get("action")))
        action = (words.get(lang) or words["en"]) if words else self.params.get("action")
        return (self.template.get(lang) or self.template["en"]).format(
            **(self.params | {"action": action})
        )


class CouponCodeInvalid(JifenError):
    """The text is not a well-formed coupon code (a typo, caught before any lookup)."""

    code = "coupon-code-invalid"
    status = 422
    title = {"zh-CN": "券码有误", "en": "Invalid coupon code"}
    template = {
        "zh-CN": "券码 {code} 有误：{reason}。请核对后重新输入。",
        "en": "Coupon code {code!r} is not valid: {reason}. Please check it and type it again.",
    }


class UnknownCoupon(JifenError):
    """A well-formed code that no coupon of this programme has."""

    code = "unknown-coupon"
    status = 404
    title = {"zh-CN": "券不存在", "en": "Unknown coupon"}
    template = {
        "zh-CN": "本计划没有券码为 {code} 的券。",
        "en": "This programme has no coupon with code {code}.",
    }


class CouponNotUsable(JifenError):
    """The coupon was used (on another order), has expired or was cancelled."""

    code = "coupon-not-usable"
    status = 409
    title = {"zh-CN": "券不可用", "en": "Coupon not usable"}
    template = {
        "zh-CN": "券 {code} 不可用：{reason}。",
        "en": "Coupon {code} cannot be used: {reason}.",
    }


class CouponNotApplicable(JifenError):
    """The coupon is valid but this basket does not qualify (minimum spend, categories,
    another member's coupon, no delivery fee)."""

    code = "coupon-not-applicable"
    status = 409
    title = {"zh-CN": "订单不满足用券条件", "en": "Coupon does not apply"}
    template = {
        "zh-CN": "券 {code} 不适用于此订单：{reason}。",
        "en": "Coupon {code} does not apply to this order: {reason}.",
    }


class PointsPaymentDisabled(JifenError):
    """The programme does not let points pay at a checkout."""

    code = "points-payment-disabled"
    status = 409
    title = {"zh-CN": "未开通积分抵现", "en": "Points cannot pay"}
    template = {
        "zh-CN": "本计划未开通积分抵现。",
        "en": "This programme does not let points pay for orders.",
    }


class PointsPaymentRefused(JifenError):
    """The points asked for break the programme's points-payment rules (minimum, step,
    maximum share of the order)."""

    code = "points-payment-refused"
    status = 422
    title = {"zh-CN": "抵现积分不符合规则", "en": "Points payment refused"}
    template = {
        "zh-CN": "不能使用 {points} 积分抵现：{reason}。",
        "en": "{points} points cannot pay for this order: {reason}.",
    }


class StockBelowRedeemed(JifenError):
    """A reward's stock (what may ever be redeemed) cannot fall below what live
    redemptions already hold: restock, or cancel redemptions first."""

    code = "stock-below-redeemed"
    status = 409
    title = {"zh-CN": "库存低于已兑数量", "en": "Stock below what is redeemed"}
    template = {
        "zh-CN": "奖励 {code} 已兑出 {redeemed} 个，库存总量不能设为 {stock}。",
        "en": "Reward {code!r} has {redeemed} redeemed: its stock cannot be {stock}.",
    }


class CancelRefused(JifenError):
    """The redemption cannot be cancelled: a coupon of it was used, or the experience has
    started."""

    code = "cancel-refused"
    status = 409
    title = {"zh-CN": "兑换单不能取消", "en": "Cannot be cancelled"}
    template = {
        "zh-CN": "兑换单 {redemption_id} 不能取消：{reason}。",
        "en": "Redemption {redemption_id} cannot be cancelled: {reason}.",
    }
    reasons = {
        "coupon-used": {
            "zh-CN": "券 {coupon} 已被使用",
            "en": "its coupon {coupon} was already used",
        },
        "started": {
            "zh-CN": "活动已于 {starts_at} 开始",
            "en": "the event started at {starts_at}",
        },
    }

    def message(self, lang: str = "zh-CN") -> str:
        known = self.reasons[str(self.params["reason"])]
        reason = (known.get(lang) or known["en"]).format(**self.params)
        return (self.template.get(lang) or self.template["en"]).format(
            **(self.params | {"reason": reason})
        )

"""Why a redemption, a coupon or a points payment is refused: each a `JifenError` with a
stable code (the problem type over HTTP) and a message a person can act on."""

from __future__ import annotations

from typing import Any, ClassVar

from jifen.core.errors import JifenError


class _Reasons:
    """A refusal whose `reason` parameter is a key of `reasons`: the message says it in
    the caller's language (free text is shown as it is), and the problem details carry
    the key as `reason` for programs to act on."""

    params: dict[str, Any]
    template: ClassVar[dict[str, str]]
    reasons: ClassVar[dict[str, dict[str, str]]] = {}

    def message(self, lang: str = "zh-CN") -> str:
        known = self.reasons.get(str(self.params.get("reason")))
        params = dict(self.params)
        if known is not None:
            params["reason"] = (known.get(lang) or known["en"]).format(**self.params)
        return (self.template.get(lang) or self.template["en"]).format(**params)


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
        "zh-CN": "兑换单 {redemption_id} 当前为 {state}，不能{action}。",
        "en": "Redemption {redemption_id} is {state}: it cannot be {action}.",
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


class CouponCodeInvalid(_Reasons, JifenError):
    """The text is not a well-formed coupon code (a typo, caught before any lookup)."""

    code = "coupon-code-invalid"
    status = 422
    title = {"zh-CN": "券码有误", "en": "Invalid coupon code"}
    template = {
        "zh-CN": "券码 {code} 有误：{reason}。请核对后重新输入。",
        "en": "Coupon code {code!r} is not valid: {reason}. Please check it and type it again.",
    }
    reasons = {
        "look-alike": {
            "zh-CN": "券码不含 {char}（{group} 外形相近，都不使用），这里应是别的字母或数字",
            "en": "codes never contain {char!r} ({group} look alike, so none of them is used); "
            "it is probably another letter or digit",
        },
        "read-as": {
            "zh-CN": "券码不含 {char}（易与 {instead} 混淆），这里应是 {instead}",
            "en": "codes never contain {char!r} (it looks like {instead}); it is probably "
            "{instead}",
        },
        "character": {
            "zh-CN": "{char} 不是券码中的字符",
            "en": "{char!r} is not a character codes use",
        },
        "length": {
            "zh-CN": "券码共 {length} 位，这里有 {given} 位",
            "en": "a code has {length} characters, this has {given}",
        },
        "check": {
            "zh-CN": "有一位输错，或相邻两位颠倒",
            "en": "a character is wrong or two are swapped",
        },
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


class CouponNotUsable(_Reasons, JifenError):
    """The coupon was used (on another order), has expired or was cancelled."""

    code = "coupon-not-usable"
    status = 409
    title = {"zh-CN": "券不可用", "en": "Coupon not usable"}
    template = {
        "zh-CN": "券 {code} 不可用：{reason}。",
        "en": "Coupon {code} cannot be used: {reason}.",
    }
    reasons = {
        "used": {
            "zh-CN": "已于 {used_at} 用于订单 {order}",
            "en": "it was used on order {order} at {used_at}",
        },
        "expired": {"zh-CN": "已于 {expires_at} 过期", "en": "it expired at {expires_at}"},
        "cancelled": {"zh-CN": "已于 {closed_at} 作废", "en": "it was cancelled at {closed_at}"},
    }


class CouponNotApplicable(_Reasons, JifenError):
    """The coupon is valid but this basket does not qualify (minimum spend, categories,
    another member's coupon, no delivery fee)."""

    code = "coupon-not-applicable"
    status = 409
    title = {"zh-CN": "订单不满足用券条件", "en": "Coupon does not apply"}
    template = {
        "zh-CN": "券 {code} 不适用于此订单：{reason}。",
        "en": "Coupon {code} does not apply to this order: {reason}.",
    }
    reasons = {
        "min-spend": {
            "zh-CN": "需满 {min_spend}，可用券商品合计 {eligible}",
            "en": "it needs a spend of {min_spend} on eligible lines, which come to {eligible}",
        },
        "no-eligible-line": {
            "zh-CN": "订单中没有 {categories} 类商品",
            "en": "no line of the order is in {categories}",
        },
        "no-delivery-fee": {
            "zh-CN": "订单没有运费可免",
            "en": "the order has no delivery fee to waive",
        },
        "nothing-off": {
            "zh-CN": "可用券商品合计 {eligible}，无可减免",
            "en": "its eligible lines come to {eligible}: there is nothing to take off",
        },
        "other-member": {"zh-CN": "这是其他会员的券", "en": "it belongs to another member"},
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


class PointsPaymentRefused(_Reasons, JifenError):
    """The points asked for break the programme's points-payment rules (minimum, step,
    maximum share of the order)."""

    code = "points-payment-refused"
    status = 422
    title = {"zh-CN": "抵现积分不符合规则", "en": "Points payment refused"}
    template = {
        "zh-CN": "不能使用 {points} 积分抵现：{reason}。",
        "en": "{points} points cannot pay for this order: {reason}.",
    }
    reasons = {
        "below-minimum": {
            "zh-CN": "每单至少使用 {minimum} 积分",
            "en": "at least {minimum} points must be used",
        },
        "step": {
            "zh-CN": "积分须按 {step} 的整数倍使用",
            "en": "points are used in multiples of {step}",
        },
        "above-maximum": {
            "zh-CN": "此订单最多可用 {maximum} 积分（可抵现金额 {eligible} 的 {share}）",
            "en": "this order allows at most {maximum} points ({share} of the eligible {eligible})",
        },
        "worthless": {
            "zh-CN": "这些积分抵不了 0.01 元",
            "en": "they are worth less than the smallest unit of money",
        },
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


class CheckoutHoldMismatch(_Reasons, JifenError):
    """The purchase names a checkout hold placed for another member or another order."""

    code = "checkout-hold-mismatch"
    status = 409
    title = {"zh-CN": "预授权与订单不符", "en": "Hold does not match the order"}
    template = {
        "zh-CN": "预授权 {hold_id} 不能支付此订单：{reason}。",
        "en": "Hold {hold_id} cannot pay for this order: {reason}.",
    }
    reasons = {
        "member": {
            "zh-CN": "它冻结的是会员 {held_for} 的积分",
            "en": "it holds points of member {held_for}",
        },
        "order": {
            "zh-CN": "它是为订单 {held_for} 预授权的",
            "en": "it was placed for order {held_for}",
        },
    }


class OrderAlreadyHeld(JifenError):
    """The order already has an active checkout hold of other points (or of another
    member): void it before holding a different amount."""

    code = "order-already-held"
    status = 409
    title = {"zh-CN": "订单已有积分预授权", "en": "Order already has a hold"}
    template = {
        "zh-CN": "订单 {order} 已有预授权 {hold_id}（会员 {member_id}，{points} 积分，"
        "{expires_at} 到期）；如需改用其他积分数，请先撤销它。",
        "en": "Order {order} already has hold {hold_id} (member {member_id}, {points} points, "
        "until {expires_at}); void it to hold a different amount.",
    }


class OrderAlreadyRecorded(JifenError):
    """The order is already recorded as a purchase: points can no longer pay for it."""

    code = "order-already-recorded"
    status = 409
    title = {"zh-CN": "订单已完成", "en": "Order already recorded"}
    template = {
        "zh-CN": "订单 {order} 已记录为消费 {purchase_id}，不能再用积分支付。",
        "en": "Order {order} is already recorded (purchase {purchase_id}): points can no "
        "longer pay for it.",
    }

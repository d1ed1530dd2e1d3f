"""The shape of the synthetic data: every parameter the generator draws from, in one place.

`Shape()` is the default, a Chinese supermarket chain (docs/generator.md explains each
choice). The numbers are relative weights unless a name says otherwise (`_share`,
`_rate`, `_days`); changing one changes the data but never its format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

# -- categories and their goods --------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """One category of goods: how often it is bought, how many SKUs it has, its prices."""

    code: str
    weight: float
    """Share of order lines (relative)."""
    skus: float
    """Share of the catalogue's SKUs (relative)."""
    median_price: float
    """Median unit price in yuan (per kg for goods sold by weight)."""
    price_sigma: float
    """Spread of the log-normal SKU prices around the median."""
    brands: tuple[str, ...] = ()
    """Brand codes, the first the most common; none: the goods carry no brand."""
    by_weight: float = 0.0
    """Share of its SKUs sold by weight (quantity in kg, 3 decimals)."""
    discountable: bool = True
    online: bool = True
    """Sold in the app and the mini programme too (tobacco is sold in stores only)."""
    prices: tuple[int, ...] = ()
    """Fixed prices in yuan (gift cards), instead of the log-normal."""


CATEGORIES: tuple[Category, ...] = (
    Category("fresh", 20, 12, 12.0, 0.6, ("", "", "", "house"), by_weight=0.7),
    Category("dairy", 11, 6, 9.0, 0.5, ("yili", "mengniu", "bright", "junlebao", "house")),
    Category("bakery", 6, 4, 8.0, 0.5, ("house", "toly", "mankattan")),
    Category("grocery", 12, 14, 15.0, 0.7, ("jinlongyu", "haitian", "luhua", "house")),
    Category("snacks", 12, 14, 10.0, 0.6, ("lays", "three-squirrels", "wangwang", "oreo")),
    Category("beverage", 12, 8, 5.5, 0.6, ("nongfu", "master-kong", "coca-cola", "yuanqi")),
    Category("frozen", 5, 5, 20.0, 0.5, ("sanquan", "synear", "wanchai-ferry")),
    Category("alcohol", 3, 5, 60.0, 1.0, ("tsingtao", "snow", "changyu", "wuliangye")),
    Category("household", 7, 12, 25.0, 0.8, ("bluemoon", "liby", "vinda", "house")),
    Category("personal_care", 5, 10, 35.0, 0.7, ("safeguard", "head", "colgate", "yunnanbaiyao")),
    Category("baby", 2, 4, 120.0, 0.6, ("feihe", "pampers", "anmum")),
    Category("tobacco", 2, 1, 25.0, 0.4, ("zhonghua", "yuxi", "furongwang", "liqun"),
             discountable=False, online=False),
    Category("gift_card", 0.4, 0.1, 0.0, 0.0, discountable=False, prices=(100, 200, 500, 1000)),
)  # fmt: skip


# -- members ---------------------------------------------------------------------------------

SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.7), ("刘", "liu", 5.4),
    ("陈", "chen", 4.5), ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.0),
    ("吴", "wu", 1.9), ("周", "zhou", 1.9), ("徐", "xu", 1.3), ("孙", "sun", 1.2),
    ("马", "ma", 1.1), ("朱", "zhu", 1.1), ("胡", "hu", 1.0), ("郭", "guo", 1.0),
    ("何", "he", 0.9), ("高", "gao", 0.9), ("林", "lin", 0.9), ("罗", "luo", 0.8),
    ("郑", "zheng", 0.8), ("梁", "liang", 0.7), ("谢", "xie", 0.6), ("宋", "song", 0.5),
    ("唐", "tang", 0.5), ("许", "xu", 0.5), ("韩", "han", 0.5), ("冯", "feng", 0.5),
    ("邓", "deng", 0.5), ("曹", "cao", 0.5), ("彭", "peng", 0.4), ("曾", "zeng", 0.4),
    ("沈", "shen", 0.3), ("欧阳", "ouyang", 0.05),
)  # fmt: skip
"""Surname, its pinyin, its share in per cent (roughly the census ranking)."""

GIVEN_FEMALE: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"),
    ("娟", "juan"), ("霞", "xia"), ("秀", "xiu"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"),
    ("欣", "xin"), ("怡", "yi"), ("梦", "meng"), ("雨", "yu"), ("晓", "xiao"), ("佳", "jia"),
    ("玉", "yu"), ("萍", "ping"), ("红", "hong"), ("燕", "yan"), ("慧", "hui"), ("颖", "ying"),
)  # fmt: skip
GIVEN_MALE: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"),
    ("杰", "jie"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("平", "ping"),
    ("辉", "hui"), ("鑫", "xin"), ("宇", "yu"), ("浩", "hao"), ("俊", "jun"), ("斌", "bin"),
    ("鹏", "peng"), ("建", "jian"), ("国", "guo"), ("志", "zhi"), ("文", "wen"), ("博", "bo"),
)  # fmt: skip

CITIES: tuple[tuple[str, float], ...] = (
    ("上海", 34), ("北京", 22), ("苏州", 7), ("杭州", 6), ("南京", 5), ("天津", 5),
    ("无锡", 3), ("嘉兴", 2), ("廊坊", 2), ("宁波", 2), ("昆山", 2), ("南通", 1.5),
    ("保定", 1.5), ("常州", 1.5), ("石家庄", 1), ("合肥", 1), ("广州", 1), ("深圳", 1),
    ("成都", 1), ("武汉", 1),
)  # fmt: skip

MOBILE_PREFIXES: tuple[str, ...] = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152",
    "155", "156", "157", "158", "159", "166", "173", "177", "180", "181", "182", "183",
    "185", "186", "187", "188", "189", "191", "198", "199",
)  # fmt: skip

EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("qq.com", 48), ("163.com", 22), ("126.com", 9), ("139.com", 5), ("sina.com", 4),
    ("outlook.com", 5), ("gmail.com", 4), ("foxmail.com", 3),
)  # fmt: skip


# -- the calendar ----------------------------------------------------------------------------

SPRING_FESTIVAL: dict[int, date] = {
    year: date.fromisoformat(day)
    for year, day in (
        (2015, "2015-02-19"), (2016, "2016-02-08"), (2017, "2017-01-28"), (2018, "2018-02-16"),
        (2019, "2019-02-05"), (2020, "2020-01-25"), (2021, "2021-02-12"), (2022, "2022-02-01"),
        (2023, "2023-01-22"), (2024, "2024-02-10"), (2025, "2025-01-29"), (2026, "2026-02-17"),
        (2027, "2027-02-06"), (2028, "2028-01-26"), (2029, "2029-02-13"), (2030, "2030-02-03"),
        (2031, "2031-01-23"), (2032, "2032-02-11"), (2033, "2033-01-31"), (2034, "2034-02-19"),
        (2035, "2035-02-08"),
    )
}  # fmt: skip
"""Chinese New Year's Day (正月初一) by year. Years outside the table have no Spring
Festival effect (the generator says nothing about them; the table covers 2015–2035)."""


def _hours(*weights: float) -> tuple[float, ...]:
    assert len(weights) == 24
    return weights


@dataclass(frozen=True)
class Shape:
    """Every parameter of the synthetic data (docs/generator.md describes each)."""

    # members
    programme_age_years: float = 2.0
    """The programme launched this long before --start: the first members enrol then."""
    enrolment_growth_rate: float = 0.5
    """Enrolments per day grow as exp(rate × years since launch) (a growing programme)."""
    activity_sigma: float = 1.3
    """Each member's purchase rate is log-normal(0, sigma): heavy-tailed spend."""
    never_buy_share: float = 0.12
    """Members who enrol and never buy."""
    email_share: float = 0.62
    birthday_share: float = 0.9
    female_share: float = 0.56
    gender_unknown_share: float = 0.05
    english_share: float = 0.03
    age_mode: float = 34.0
    """Ages at enrolment are 18–80, triangular with this mode."""
    home_store_share: float = 0.85
    """A member's store orders go to the home store this often, else any store."""

    # orders
    unclaimed_share: float = 0.05
    """Orders with no member (walk-in shoppers; they may claim the receipt later)."""
    line_count_p: float = 0.42
    """Lines per order: geometric with this p (mean 1/p), at most `max_lines`."""
    max_lines: int = 40
    quantity_weights: tuple[float, ...] = (72, 17, 6, 2.5, 1, 1.5)
    """Pieces of a line: 1, 2, … 6 (goods sold by weight: log-normal kilograms)."""
    kg_median: float = 0.6
    kg_sigma: float = 0.6
    discount_share: float = 0.08
    """Lines with a discount, of 10–30 % of the line amount."""
    sku_count: int = 5000
    zipf_exponent: float = 1.1
    """SKU popularity within a category: the r-th most popular weighs 1 / r ** exponent."""
    catalogue: tuple[Category, ...] = CATEGORIES

    channel_weights: dict[str, float] = field(
        default_factory=lambda: {
            "store": 60, "pos": 60, "app": 25, "mini_program": 15, "web": 10,
        }
    )  # fmt: skip
    """Orders per channel, by the channel's kind; several channels of one kind share it."""
    payment_weights: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "store": {"wechat": 48, "alipay": 37, "card": 10, "cash": 5},
            "app": {"wechat": 45, "alipay": 45, "card": 10},
            "mini_program": {"wechat": 92, "card": 8},
            "web": {"alipay": 60, "wechat": 25, "card": 15},
        }
    )
    """Payment methods by channel kind (pos as store); no cash online."""

    # returns
    return_share: float = 0.03
    whole_return_share: float = 0.4
    """Of the returned orders, those returned whole; the others return part of one line."""
    return_delay_days: float = 3.0
    """Days from purchase to return: exponential with this mean (plus one hour)."""

    # the calendar
    month_weights: tuple[float, ...] = (1.0, 0.9, 0.95, 0.95, 1.0, 1.05, 0.95, 0.95, 1.0, 1.05,
                                        1.25, 1.1)  # fmt: skip
    weekday_weights: tuple[float, ...] = (0.9, 0.88, 0.9, 0.95, 1.05, 1.22, 1.15)
    """Monday … Sunday."""
    store_hours: tuple[float, ...] = _hours(
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0.3,
        1.5,
        2.5,
        3.5,
        5.0,
        5.5,
        4.0,
        3.0,
        3.0,
        3.5,
        5.5,
        6.5,
        6.0,
        4.5,
        2.5,
        0.8,
        0,
    )
    """Orders per local hour in stores (open 07:00–22:59): a lunch and an evening peak."""
    online_hours: tuple[float, ...] = _hours(
        1.2,
        0.7,
        0.4,
        0.2,
        0.2,
        0.3,
        0.8,
        1.8,
        2.8,
        3.0,
        3.2,
        3.8,
        4.5,
        3.8,
        3.0,
        3.0,
        3.2,
        3.8,
        4.5,
        5.2,
        6.0,
        6.5,
        5.5,
        3.0,
    )
    """Orders per local hour in the app and mini programme: a late-evening peak."""
    holidays: tuple[tuple[str, float], ...] = (
        ("spring-festival-eve", 1.5), ("spring-festival", 0.7), ("618-run-up", 1.1),
        ("618", 1.8), ("national-day", 1.25), ("11.11-run-up", 1.3), ("11.11", 3.0),
        ("12.12", 1.5),
    )  # fmt: skip
    """Day factors on top of month and weekday (see `jifen.generator.calendar.day_factor`)."""

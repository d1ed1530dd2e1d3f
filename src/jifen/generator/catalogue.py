"""The goods on sale: SKUs with a category, a brand, a stable price and a popularity.

Popularity is Zipf within each category (the r-th best seller weighs 1 / r ** s) times
the category's share of lines; prices are log-normal around the category's median,
rounded to whole 角 and, for about a third of the SKUs, ending in 9 分 (12.99).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from jifen.generator.shape import Category, Shape

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

EXTRA_CATEGORY = Category("", 2, 2, 20.0, 0.7)
"""A category a programme's rules name that the catalogue lacks: a modest general one."""


@dataclass(frozen=True)
class Catalogue:
    """Parallel arrays, one entry per SKU."""

    sku: pa.Array
    category: pa.Array
    brand: pa.Array
    price_cents: Ints
    by_weight: Bools
    discountable: Bools
    store_p: Floats
    """Probability of each SKU on a line of a store order."""
    online_p: Floats
    """… of an online order (goods sold in stores only weigh nothing)."""

    def __len__(self) -> int:
        return len(self.price_cents)


def categories(shape: Shape, extra: tuple[str, ...]) -> tuple[Category, ...]:
    """The shape's categories and, after them, those of `extra` it does not have."""
    known = {c.code for c in shape.catalogue}
    added = tuple(
        Category(code, *_fields(EXTRA_CATEGORY))
        for code in dict.fromkeys(extra)
        if code not in known
    )
    return shape.catalogue + added


def _fields(category: Category) -> tuple[float, float, float, float]:
    return (category.weight, category.skus, category.median_price, category.price_sigma)


def build_catalogue(shape: Shape, rng: np.random.Generator, extra: tuple[str, ...]) -> Catalogue:
    kinds = categories(shape, extra)
    shares = np.array([c.skus for c in kinds if not c.prices], dtype=np.float64)
    shares /= shares.sum()
    priced = iter(np.maximum(1, np.round(shares * shape.sku_count)).astype(np.int64))
    codes: list[str] = []
    category_codes: list[str] = []
    brands: list[str] = []
    prices: list[Ints] = []
    by_weight: list[Bools] = []
    discountable: list[Bools] = []
    store_p: list[Floats] = []
    online_p: list[Floats] = []
    line_weights = np.array([c.weight for c in kinds], dtype=np.float64)
    line_weights /= line_weights.sum()
    for category, line_weight in zip(kinds, line_weights, strict=True):
        count = len(category.prices) if category.prices else int(next(priced))
        stem = category.code[:50]
        codes += [f"{stem}-{i:05d}" for i in range(1, count + 1)]
        category_codes += [category.code] * count
        if category.prices:
            cents = np.array(category.prices, dtype=np.int64) * 100
        else:
            yuan = rng.lognormal(np.log(category.median_price), category.price_sigma, count)
            cents = np.maximum(50, np.round(yuan * 10).astype(np.int64) * 10)
            cents -= rng.random(count) < 0.35  # 12.99 rather than 13.00
        prices.append(cents)
        if category.brands:
            brand_weights = 1 / np.arange(1, len(category.brands) + 1) ** 0.7
            picked = rng.choice(len(category.brands), count, p=brand_weights / brand_weights.sum())
            brands += [category.brands[i] for i in picked]
        else:
            brands += [""] * count
        by_weight.append(rng.random(count) < category.by_weight)
        discountable.append(np.full(count, category.discountable))
        popularity = 1 / np.arange(1, count + 1, dtype=np.float64) ** shape.zipf_exponent
        popularity *= line_weight / popularity.sum()
        store_p.append(popularity)
        online_p.append(popularity if category.online else np.zeros(count))
    store = np.concatenate(store_p)
    online = np.concatenate(online_p)
    return Catalogue(
        sku=pa.array(codes, pa.string()),
        category=pa.array(category_codes, pa.string()),
        brand=pa.array(brands, pa.string()),
        price_cents=np.concatenate(prices),
        by_weight=np.concatenate(by_weight),
        discountable=np.concatenate(discountable),
        store_p=store / store.sum(),
        online_p=online / online.sum(),
    )

"""The example programmes that ship with jifen (PRODUCT.md O2), one YAML file each.

Each is a complete programme file (`jifen.programs.config`): the brief's retail chain, a
coffee chain, an airline, a restaurant, an e-commerce shop and an employee-incentive
programme. Staff copy one as the start of their own; the tests play a customer journey
on each (tests/programs/examples/).
"""

from __future__ import annotations

from importlib.resources import files

_SUFFIX = ".yaml"


def names() -> list[str]:
    """The examples' names, sorted (`retail-chain`, …)."""
    return sorted(
        entry.name.removesuffix(_SUFFIX)
        for entry in files(__name__).iterdir()
        if entry.name.endswith(_SUFFIX)
    )


def text(name: str) -> str:
    """The programme file of example `name`; KeyError for an unknown name."""
    if name not in names():
        raise KeyError(f"no example programme {name!r} (examples: {', '.join(names())})")
    return (files(__name__) / f"{name}{_SUFFIX}").read_text(encoding="utf-8")

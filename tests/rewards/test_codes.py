"""Coupon codes: ≥ 64 bits of randomness, no look-alikes, every single wrong character and
(all but one) neighbour swaps caught by the check character, before any lookup."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jifen.rewards import codes
from jifen.rewards.errors import CouponCodeInvalid

SAMPLES = ["23456789ABCDEF", "ZZZZZZZZZZZZZZ", "22222222222222", "K7QM4XH2RT9PZC"]
"""Payloads: ordinary, and the extremes of the alphabet (the Luhn doubling's edges)."""


def full(payload: str) -> str:
    return payload + codes.check_character(payload)


def refusal(text: str) -> CouponCodeInvalid:
    with pytest.raises(CouponCodeInvalid) as caught:
        codes.normalise(text)
    return caught.value


def test_a_code_has_at_least_64_random_bits_from_the_os_generator() -> None:
    assert codes.random_bits() == pytest.approx(14 * math.log2(30))
    assert codes.random_bits() >= 68.6  # 30^14 ≈ 2^68.7
    assert len(codes.ALPHABET) == len(set(codes.ALPHABET)) == 30
    # new_code draws every random character with secrets.choice
    import inspect

    assert "secrets.choice" in inspect.getsource(codes.new_code)


def test_the_alphabet_has_no_look_alikes() -> None:
    assert not set("01OILU") & set(codes.ALPHABET)
    assert set(codes.ALPHABET) <= set("23456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def test_new_codes_are_valid_distinct_and_use_the_whole_alphabet() -> None:
    made = [codes.new_code() for _ in range(3000)]
    assert len(set(made)) == len(made)
    for code in made:
        assert len(code) == codes.LENGTH == 15
        assert codes.normalise(code) == code
        assert codes.is_valid(code)
    seen = {ch for code in made for ch in code[:-1]}
    assert seen == set(codes.ALPHABET)  # 42,000 draws miss a character with odds ~ 10^-600


@pytest.mark.parametrize("payload", SAMPLES)
def test_every_single_wrong_character_is_caught(payload: str) -> None:
    code = full(payload)
    assert codes.is_valid(code)
    wrong = 0
    for position in range(len(code)):
        for ch in codes.ALPHABET:
            if ch == code[position]:
                continue
            typo = code[:position] + ch + code[position + 1 :]
            assert not codes.is_valid(typo), (code, position, ch)
            assert refusal(typo).params["reason"] == "check"
            wrong += 1
    assert wrong == 15 * 29


@given(st.text(alphabet=codes.ALPHABET, min_size=14, max_size=14), st.data())
def test_any_single_substitution_in_any_code_is_caught(payload: str, data: st.DataObject) -> None:
    code = full(payload)
    position = data.draw(st.integers(0, 14))
    ch = data.draw(st.sampled_from(codes.ALPHABET).filter(lambda c: c != code[position]))
    assert not codes.is_valid(code[:position] + ch + code[position + 1 :])


@given(st.text(alphabet=codes.ALPHABET, min_size=14, max_size=14), st.integers(0, 13))
def test_swapping_two_neighbours_is_caught_unless_they_are_2_and_z(
    payload: str, position: int
) -> None:
    code = full(payload)
    a, b = code[position], code[position + 1]
    swapped = code[:position] + b + a + code[position + 2 :]
    if a == b:
        return
    if {a, b} == {"2", "Z"}:  # Luhn's one blind spot: values 0 and N-1
        assert codes.is_valid(swapped)
    else:
        assert not codes.is_valid(swapped), (code, position)


@pytest.mark.parametrize(
    ("char", "group"), [("0", "0/O"), ("O", "0/O"), ("1", "1/I/L"), ("I", "1/I/L"), ("L", "1/I/L")]
)
def test_a_look_alike_is_explained(char: str, group: str) -> None:
    code = full(SAMPLES[3])
    problem = refusal(code[:4] + char + code[5:])
    assert problem.params == {
        "code": code[:4] + char + code[5:],
        "reason": "look-alike",
        "char": char,
        "group": group,
    }
    assert f"'{char}'" in problem.message("en")
    assert group in problem.message("en")
    assert group in problem.message("zh-CN")
    assert "请核对后重新输入" in problem.message("zh-CN")


def test_a_lower_case_look_alike_is_explained_too() -> None:
    problem = refusal("k7qm4-xh2rl-9pzc8")
    assert (problem.params["reason"], problem.params["char"]) == ("look-alike", "L")


def test_u_is_read_as_v() -> None:
    code = full(SAMPLES[0])
    problem = refusal(code[:3] + "U" + code[4:])
    assert problem.params["reason"] == "read-as"
    assert problem.params["instead"] == "V"
    assert "probably V" in problem.message("en")
    assert "应是 V" in problem.message("zh-CN")


@pytest.mark.parametrize("text", ["ABCDE#FGHJK-MNPQR", "ABCDE-FGHJK-MNPQ€", "券码ABCDEFGHJKMNP"])
def test_a_foreign_character_is_named(text: str) -> None:
    problem = refusal(text)
    assert problem.params["reason"] == "character"
    assert problem.params["char"] in "#€券"


@pytest.mark.parametrize(("text", "given_length"), [("ABCDE-FGHJK", 10), ("", 0), ("A" * 20, 20)])
def test_a_wrong_length_says_how_long_a_code_is(text: str, given_length: int) -> None:
    problem = refusal(text)
    assert (problem.params["reason"], problem.params["given"]) == ("length", given_length)
    assert "a code has 15 characters" in problem.message("en")
    assert "券码共 15 位" in problem.message("zh-CN")


def test_very_long_input_is_refused_without_scanning_it() -> None:
    problem = refusal("A" * 10_000)
    assert problem.params["reason"] == "length"
    assert len(problem.params["code"]) <= 40


def test_case_separators_and_full_width_input_are_accepted() -> None:
    code = full(SAMPLES[3])
    shown = codes.display(code)
    assert shown == f"{code[:5]}-{code[5:10]}-{code[10:]}"
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in code)  # what a Chinese IME types
    for text in (
        code,
        code.lower(),
        shown,
        shown.lower(),
        f"  {code[:5]} {code[5:10]} {code[10:]} ",
        f"{code[:5]}—{code[5:10]}–{code[10:]}",
        f"{code[:5]}.{code[5:10]}.{code[10:]}",
        f"{wide[:5]}－{wide[5:10]}－{wide[10:]}",
    ):
        assert codes.normalise(text) == code, text


def test_random_typos_are_never_taken_for_another_valid_code() -> None:
    """A single typo can never land on another valid code, so it never reaches the
    database as a guess."""
    rng = random.Random(7)
    for _ in range(2000):
        code = codes.new_code()
        position = rng.randrange(15)
        ch = rng.choice([c for c in codes.ALPHABET if c != code[position]])
        assert not codes.is_valid(code[:position] + ch + code[position + 1 :])

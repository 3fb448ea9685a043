"""Base45 (RFC 9285): the RFC's vectors, strict refusal of invalid text, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yima_sdk import base45


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"AB", "BB8"),
        (b"Hello!!", "%69 VD92EX0"),
        (b"base-45", "UJCLQE7W581"),
        (b"ietf!", "QED8WEX0"),
        (b"", ""),
    ],
)
def test_rfc_vectors(raw: bytes, text: str) -> None:
    assert base45.encode(raw) == text
    assert base45.decode(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        "GGW",  # RFC 9285 section 6: 65536 does not fit two bytes
        ":::",  # the largest triplet, 91124
        "BB8A",  # one dangling character
        "bb8",  # lower case is not in the alphabet
        "BB_",
        "QED8WE\u00e9",
        "A\n8",
        "V8",  # final pair 30 + 45*8 = 390 > 255
    ],
)
def test_invalid_text_is_refused(text: str) -> None:
    with pytest.raises(base45.Base45Error):
        base45.decode(text)
    assert issubclass(base45.Base45Error, ValueError)


@given(st.binary(max_size=400))
def test_round_trip(raw: bytes) -> None:
    text = base45.encode(raw)
    assert set(text) <= set(base45.ALPHABET)
    assert base45.decode(text) == raw


@given(st.text(alphabet=base45.ALPHABET, max_size=60))
def test_decode_is_exact_inverse_or_refuses(text: str) -> None:
    try:
        raw = base45.decode(text)
    except base45.Base45Error:
        return
    assert base45.encode(raw) == text


def _outcome(text: str) -> bytes | str:
    try:
        return base45.decode(text)
    except base45.Base45Error as exc:
        return f"error: {exc}"


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120).map(base45.encode),  # valid, of every length
            st.text(
                alphabet=base45.ALPHABET, max_size=12
            ),  # often invalid: a triplet over 65535, a dangling one
            st.text(max_size=9),  # characters outside the alphabet, non-ASCII
        ),
        max_size=12,
    )
)
def test_decode_many_answers_each_text_as_decode_does(texts: list[str]) -> None:
    answers = base45.decode_many(texts)
    assert [a if isinstance(a, bytes) else f"error: {a}" for a in answers] == [_outcome(t) for t in texts]


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=60).filter(lambda raw: len(raw) % 2 == 0).map(base45.encode),  # whole triplets
            st.text(alphabet=base45.ALPHABET, min_size=3, max_size=3),  # a triplet over 65535 now and then
            st.sampled_from(["bb8", "BB\u00e9", "B 8"]),  # outside the alphabet, non-ASCII; and a valid one
        ),
        max_size=10,
    )
)
def test_decode_joined_is_the_concatenation_or_none(texts: list[str]) -> None:
    outcomes = [_outcome(text) for text in texts]
    joined = base45.decode_joined(texts)
    if all(isinstance(outcome, bytes) for outcome in outcomes):
        assert joined == b"".join(outcomes)  # type: ignore[arg-type]
    else:
        assert joined is None


def test_decode_joined_refuses_texts_that_are_not_whole_triplets() -> None:
    # "BB" + "8BB8" would line up as "BB8" + "BB8" and decode without complaint
    with pytest.raises(ValueError, match="whole triplets"):
        base45.decode_joined(["BB", "8BB8"])

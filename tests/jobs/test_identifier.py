import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearjobs.jobs import InvalidRequestIdentifier, RequestIdentifier, ResponseFailure

MESSAGE = "Request ID must be 22 base64 characters or 32 hexadecimal characters."


def test_new_ids_are_16_random_bytes() -> None:
    first, second = RequestIdentifier.new(), RequestIdentifier.new()
    assert len(first.bytes) == 16
    assert first != second


def test_str_is_22_url_safe_characters_without_padding() -> None:
    ident = RequestIdentifier(bytes(range(250, 256)) + bytes(10))
    text = str(ident)
    assert len(text) == 22
    assert "=" not in text
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert "+" not in text and "/" not in text


def test_exact_is_24_characters_with_padding() -> None:
    ident = RequestIdentifier.new()
    assert ident.exact() == str(ident) + "=="
    assert base64.urlsafe_b64decode(ident.exact()) == ident.bytes


@given(st.binary(min_size=16, max_size=16))
def test_every_form_round_trips(raw: bytes) -> None:
    ident = RequestIdentifier(raw)
    assert RequestIdentifier.parse(str(ident)) == ident
    assert RequestIdentifier.parse(ident.exact()) == ident
    assert RequestIdentifier.parse(ident.hex()) == ident
    assert RequestIdentifier.parse(ident.hex().upper()) == ident


@given(st.text(max_size=40).filter(lambda s: len(s) not in (22, 24, 32)))
def test_other_lengths_fail_with_the_reference_message(text: str) -> None:
    with pytest.raises(InvalidRequestIdentifier) as caught:
        RequestIdentifier.parse(text)
    assert str(caught.value) == MESSAGE
    assert caught.value.response_failure() is ResponseFailure.INVALID_REQUEST


@pytest.mark.parametrize(
    "text",
    [
        "g" * 32,  # not hex
        "0123456789abcdef0123456789abcde ",
        "AAAAAAAAAAAAAAAAAAAAA+",  # standard, not URL-safe, base64
        "AAAAAAAAAAAAAAAAAAAAA/",
        "AAAAAAAAAAAAAAAAAAAAA=",  # padding in the 22 form
        "AAAAAAAAAAAAAAAAAAAAAA=A",  # misplaced padding
        "AAAAAAAAAAAAAAAAAAAAAAAA",  # 24 without padding
        "AAAAAAAAAAAAAAAAAAAAAé",
    ],
)
def test_wrong_alphabet_fails_with_the_reference_message(text: str) -> None:
    with pytest.raises(InvalidRequestIdentifier, match=r"^Request ID must be 22 base64"):
        RequestIdentifier.parse(text)


@given(st.text(min_size=22, max_size=32).filter(lambda s: len(s) in (22, 24, 32)))
def test_parse_either_succeeds_canonically_or_fails_cleanly(text: str) -> None:
    try:
        ident = RequestIdentifier.parse(text)
    except InvalidRequestIdentifier:
        return
    if len(text) == 32:
        assert text.lower() == ident.hex()
    else:
        # The first 21 characters and the top bits of the 22nd carry the 16 bytes.
        assert str(ident)[:21] == text[:21]
        assert RequestIdentifier.parse(str(ident)) == ident


def test_the_unused_bits_of_the_22nd_character_are_ignored_as_in_the_reference() -> None:
    assert RequestIdentifier.parse("AAAAAAAAAAAAAAAAAAAAAB") == RequestIdentifier(bytes(16))
    assert RequestIdentifier.parse("AAAAAAAAAAAAAAAAAAAAAP==") == RequestIdentifier(bytes(16))
    assert str(RequestIdentifier.parse("AAAAAAAAAAAAAAAAAAAAAB")) == "A" * 22


def test_ids_are_hashable_values() -> None:
    ident = RequestIdentifier.new()
    assert {ident: 1}[RequestIdentifier.parse(str(ident))] == 1
    assert repr(ident) == f"RequestIdentifier({str(ident)!r})"


def test_raw_bytes_must_be_16_long() -> None:
    with pytest.raises(InvalidRequestIdentifier):
        RequestIdentifier(b"short")

"""What a find_node answer must look like before a lookup reads it (protocol.valid_node_list):
a rogue peer's malformed contact (a host that is not an IPv4 literal included) makes the
whole answer count as no answer."""

from __future__ import annotations

from typing import Any

from cqkd.dht.protocol import valid_node_list
from hypothesis import given
from hypothesis import strategies as st

contacts = st.lists(
    st.tuples(st.binary(min_size=20, max_size=20), st.ip_addresses(v=4).map(str),
              st.integers(1, 65535)).map(list),
    max_size=40,
)
# One field of one contact made wrong, as a rogue peer or a bit flip would.
BAD_FIELDS: list[tuple[int, Any]] = [
    (0, b"\x00" * 19), (0, b"\x00" * 21), (0, "a" * 20), (0, None),
    (1, b"127.0.0.1"), (1, 7), (1, "127.0.0.1\x00"), (1, "localhost"), (1, "::1"), (1, ""),
    (1, "127.0.0.256"),
    (2, 0), (2, 65536), (2, -1), (2, True), (2, 80.0), (2, "80"),
]
BAD_SHAPES: list[Any] = [("a" * 20, "h", 1), ["a" * 20, "h"], [b"\x00" * 20, "h", 1, 2], {}, None]


@given(contacts)
def test_well_formed_answers_are_read(answer: list[list[Any]]) -> None:
    assert valid_node_list(answer)


@given(contacts.filter(bool), st.data())
def test_one_malformed_contact_spoils_the_answer(answer: list[list[Any]], data: Any) -> None:
    index = data.draw(st.integers(0, len(answer) - 1))
    if data.draw(st.booleans()):
        field, wrong = data.draw(st.sampled_from(BAD_FIELDS))
        answer[index] = [*answer[index]]
        answer[index][field] = wrong
    else:
        answer[index] = data.draw(st.sampled_from(BAD_SHAPES))
    assert not valid_node_list(answer)


def test_an_answer_that_is_not_a_list_is_refused() -> None:
    for answer in ((), {"value": 1}, b"", None, "nodes"):
        assert not valid_node_list(answer)

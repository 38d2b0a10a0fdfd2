"""The key store hands each key out once, all or nothing, and never shows a key."""

import pytest
from cqkd.qkd.keystore import KeyStore


def test_pop_hands_a_key_out_once() -> None:
    store = KeyStore()
    store.add("a", b"\x01" * 32)
    assert store.pop("a") == b"\x01" * 32
    assert store.pop("a") is None
    assert store.count() == 0


def test_duplicate_and_empty_keys_are_refused() -> None:
    store = KeyStore()
    store.add("a", b"\x01")
    with pytest.raises(ValueError, match="already stored"):
        store.add("a", b"\x02")
    with pytest.raises(ValueError, match="empty"):
        store.add("b", b"")


def test_take_is_all_or_nothing_and_by_size() -> None:
    store = KeyStore()
    store.add("small", b"\x00" * 16)
    store.add("big1", b"\x01" * 32)
    store.add("big2", b"\x02" * 32)
    assert store.take(3, 32) == []
    assert store.count(32) == 2
    assert store.take(2, 32) == [("big1", b"\x01" * 32), ("big2", b"\x02" * 32)]
    assert store.count() == 1
    assert store.count(16) == 1


def test_pop_many_is_all_or_nothing() -> None:
    store = KeyStore()
    store.add("a", b"\x01")
    store.add("b", b"\x02")
    assert store.pop_many(["a", "zz"]) == ({}, ["zz"])
    assert store.count() == 2
    assert store.pop_many(["b", "a", "b"]) == ({"b": b"\x02", "a": b"\x01"}, [])
    assert store.count() == 0


def test_bounded_store_drops_the_oldest() -> None:
    store = KeyStore(max_keys=2)
    for i in range(3):
        store.add(str(i), bytes([i + 1]))
    assert "0" not in store
    assert store.dropped == 1
    assert len(store) == 2


def test_repr_shows_no_key_material() -> None:
    store = KeyStore()
    store.add("a", b"\xde\xad\xbe\xef")
    assert repr(store) == "KeyStore(keys=1, max_keys=10000)"

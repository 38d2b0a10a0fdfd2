"""The key store keeps one pool per consumer: a key goes out only to its own consumer, and a
request for another consumer's key leaves it where it is."""

import pytest
from cqkd.qkd.keystore import CONTROL, KeyElsewhere, KeyStore, etsi_consumer

PAIR = etsi_consumer("sae-master", "sae-slave")
OTHER_PAIR = etsi_consumer("sae-master", "sae-other")


def test_a_key_goes_only_to_its_consumer_and_stays_when_refused() -> None:
    store = KeyStore()
    store.add("c", b"\x01" * 32, CONTROL)
    store.add("e", b"\x02" * 32, PAIR)
    assert store.take(1, 32, OTHER_PAIR) == []
    assert store.take(2, 32, PAIR) == []  # all or nothing, and the control key is not PAIR's
    with pytest.raises(KeyElsewhere) as refused:
        store.pop("e", CONTROL)
    assert refused.value.key_ids == ["e"] and "\x02" not in str(refused.value)
    with pytest.raises(KeyElsewhere):
        store.pop_many(["e", "c"], PAIR)
    assert "c" in store and "e" in store  # nothing was handed out
    assert store.count(consumer=PAIR) == store.count(32, CONTROL) == 1
    assert store.take(1, 32, PAIR) == [("e", b"\x02" * 32)]
    assert store.pop("c", CONTROL) == b"\x01" * 32
    assert len(store) == 0


def test_a_full_store_drops_the_oldest_key_of_the_largest_pool() -> None:
    store = KeyStore(max_keys=3)
    store.add("c1", b"\x01", CONTROL)
    store.add("e1", b"\x02", PAIR)
    store.add("e2", b"\x03", PAIR)
    store.add("c2", b"\x04", CONTROL)
    assert "e1" not in store and store.dropped == 1
    assert store.count(consumer=CONTROL) == 2 and store.count(consumer=PAIR) == 1


def test_discard_withdraws_a_key_whatever_its_consumer() -> None:
    store = KeyStore()
    store.add("e", b"\x02", PAIR)
    store.discard("e")
    store.discard("e")
    assert "e" not in store

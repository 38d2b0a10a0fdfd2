"""Identities: sealed payloads, signed commands from trusted owners only, key files."""

import os
import stat
from pathlib import Path

import pytest
from cqkd.qkd.crypto import CryptoFailure, Identity, parse_public_key, verify_signed


def test_sealed_payload_opens_only_at_the_receiver_and_names_the_sender() -> None:
    alice, bob, eve = Identity.generate(), Identity.generate(), Identity.generate()
    sealed = alice.seal(bob.public_key, b"spins")
    assert b"spins" not in sealed
    assert bob.open(sealed) == (alice.public_key, b"spins")
    with pytest.raises(CryptoFailure):
        eve.open(sealed)


def test_tampered_payload_is_refused() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    sealed = bytearray(alice.seal(bob.public_key, b"bits"))
    sealed[-1] ^= 1
    with pytest.raises(CryptoFailure):
        bob.open(bytes(sealed))
    with pytest.raises(CryptoFailure):
        bob.open(b"short")


def test_commands_verify_only_from_trusted_owners() -> None:
    owner, stranger = Identity.generate(), Identity.generate()
    trusted = frozenset({owner.public_key})
    assert verify_signed(owner.sign(b"do QSG"), trusted) == (owner.public_key, b"do QSG")
    with pytest.raises(CryptoFailure, match="does not trust"):
        verify_signed(stranger.sign(b"do QSG"), trusted)
    forged = bytearray(owner.sign(b"do QSG"))
    forged[-1] ^= 1
    with pytest.raises(CryptoFailure, match="signature"):
        verify_signed(bytes(forged), trusted)


def test_key_file_is_private_never_overwritten_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "owner.key"
    identity = Identity.generate()
    identity.write_key_file(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Identity.from_file(path).public_key == identity.public_key
    with pytest.raises(FileExistsError):
        Identity.generate().write_key_file(path)
    assert identity.public_key.hex() in repr(identity)
    assert path.read_text().strip() not in repr(identity)


def test_bad_key_file_and_public_key_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("not hex")
    with pytest.raises(ValueError, match="cannot read"):
        Identity.from_file(path)
    with pytest.raises(ValueError):
        parse_public_key("abcd")

"""Node identities: one Ed25519 key per node signs commands; its X25519 form seals payloads.

Sealed payload: sender's Ed25519 public key (32 bytes) || NaCl Box (X25519 +
XSalsa20-Poly1305) from sender to receiver. Only the receiver can read it, and it proves
the sender holds that key. Box keys are cached per peer, so steady traffic costs one
symmetric AEAD per message.
Signed command: signer's public key (32) || signature (64) || body.
Admission ticket: the signature (64) of the deployment's admission key over
ADMISSION_CONTEXT || the worker's public key; Alice and Bob allocate only workers whose
ticket verifies under an admission public key they were given.
"""

from __future__ import annotations

import os
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import Box, PublicKey
from nacl.signing import SigningKey, VerifyKey

KEY_BYTES = 32
_SIGNATURE_BYTES = 64
_BOX_CACHE_LIMIT = 4096
ADMISSION_CONTEXT = b"cqkd-admitted-worker\x00"


class CryptoFailure(ValueError):
    """A payload that does not open or verify; the message never includes its content."""


def parse_public_key(text: str) -> bytes:
    """A public key given as 64 hex digits."""
    raw = bytes.fromhex(text.strip())
    if len(raw) != KEY_BYTES:
        raise ValueError(f"a public key is {KEY_BYTES} bytes (64 hex digits)")
    return raw


class Identity:
    def __init__(self, signing_key: SigningKey) -> None:
        self._signing = signing_key
        self._private = signing_key.to_curve25519_private_key()
        self.public_key: bytes = bytes(signing_key.verify_key)
        self._boxes: dict[bytes, Box] = {}

    @classmethod
    def generate(cls) -> Identity:
        return cls(SigningKey.generate())

    @classmethod
    def from_file(cls, path: Path) -> Identity:
        """Read a private key file written by `write_key_file` (64 hex digits)."""
        try:
            seed = bytes.fromhex(path.read_text().strip())
        except (OSError, ValueError) as exc:
            reason = type(exc).__name__
            raise ValueError(f"cannot read a private key from {path}: {reason}") from None
        if len(seed) != KEY_BYTES:
            raise ValueError(f"{path} does not hold a {KEY_BYTES}-byte private key")
        return cls(SigningKey(seed))

    def write_key_file(self, path: Path) -> None:
        """Write the private key, mode 0600; never overwrites an existing file."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(bytes(self._signing).hex() + "\n")

    def __repr__(self) -> str:
        return f"Identity(public_key={self.public_key.hex()})"

    def _box(self, peer: bytes) -> Box:
        box = self._boxes.get(peer)
        if box is None:
            if len(peer) != KEY_BYTES:
                raise CryptoFailure("bad public key length")
            try:
                curve = VerifyKey(peer).to_curve25519_public_key()
            except (CryptoError, ValueError):
                raise CryptoFailure("not a valid public key") from None
            if len(self._boxes) >= _BOX_CACHE_LIMIT:
                self._boxes.clear()
            box = self._boxes[peer] = Box(self._private, PublicKey(bytes(curve)))
        return box

    def seal(self, receiver: bytes, body: bytes) -> bytes:
        return self.public_key + bytes(self._box(receiver).encrypt(body))

    def open(self, data: bytes) -> tuple[bytes, bytes]:
        """(sender public key, body) of a sealed payload; CryptoFailure if it does not open."""
        if len(data) < KEY_BYTES + Box.NONCE_SIZE + 16:
            raise CryptoFailure("sealed payload too short")
        sender = data[:KEY_BYTES]
        try:
            return sender, self._box(sender).decrypt(data[KEY_BYTES:])
        except CryptoError:
            raise CryptoFailure("sealed payload does not open") from None

    def sign(self, body: bytes) -> bytes:
        return self.public_key + self._signing.sign(body).signature + body


def verify_signed(data: bytes, trusted: frozenset[bytes]) -> tuple[bytes, bytes]:
    """(signer, body) of a signed command from a trusted owner; CryptoFailure otherwise."""
    if len(data) < KEY_BYTES + _SIGNATURE_BYTES:
        raise CryptoFailure("signed command too short")
    signer = data[:KEY_BYTES]
    if signer not in trusted:
        raise CryptoFailure("command signed by an owner this node does not trust")
    signature = data[KEY_BYTES : KEY_BYTES + _SIGNATURE_BYTES]
    body = data[KEY_BYTES + _SIGNATURE_BYTES :]
    try:
        VerifyKey(signer).verify(body, signature)
    except CryptoError:
        raise CryptoFailure("bad command signature") from None
    return signer, body


def admit(authority: Identity, worker_key: bytes) -> bytes:
    """The admission ticket (64 bytes) that `authority` issues for a worker's public key."""
    if len(worker_key) != KEY_BYTES:
        raise ValueError(f"a public key is {KEY_BYTES} bytes")
    return authority._signing.sign(ADMISSION_CONTEXT + worker_key).signature


def is_admitted(worker_key: bytes, ticket: bytes, authorities: frozenset[bytes]) -> bool:
    """True iff `ticket` is a ticket for `worker_key` from one of `authorities`."""
    if len(ticket) != _SIGNATURE_BYTES:
        return False
    for authority in authorities:
        try:
            VerifyKey(authority).verify(ADMISSION_CONTEXT + worker_key, ticket)
        except (CryptoError, ValueError):
            continue
        return True
    return False

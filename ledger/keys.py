"""Ed25519 keys of a punch log, and their key ids.

Key id = base64 of SHA-256 over the public key's SubjectPublicKeyInfo DER, so that anyone
holding the PEM can recompute it with ``openssl pkey -pubin -outform DER | sha256sum``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.errors import Forged, Malformed


def _kid(public: Ed25519PublicKey) -> str:
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


class VerifyKey:
    """A public key that checks signatures."""

    def __init__(self, public: Ed25519PublicKey) -> None:
        self._public = public
        self.kid = _kid(public)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> VerifyKey:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as err:
            raise Malformed(f"not a PEM public key: {err}") from err
        if not isinstance(public, Ed25519PublicKey):
            raise Malformed("the public key is not an Ed25519 key")
        return cls(public)

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        try:
            return cls(Ed25519PublicKey.from_public_bytes(raw))
        except ValueError as err:
            raise Malformed(f"not an Ed25519 public key: {err}") from err

    def pem(self) -> str:
        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def raw(self) -> bytes:
        """The 32-byte RFC 8032 encoding, as C2SP signed notes hash it into key ids."""
        return self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        try:
            self._public.verify(signature, message)
        except InvalidSignature as err:
            raise Forged(f"signature does not verify under key {self.kid}") from err


class SigningKey:
    """A private key that signs. Its bytes never appear in ``repr`` or logs."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.verify_key = VerifyKey(private.public_key())
        self.kid = self.verify_key.kid

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as err:
            raise Malformed(f"{path}: not a PEM private key: {err}") from err
        if not isinstance(private, Ed25519PrivateKey):
            raise Malformed(f"{path}: the key is not an Ed25519 key")
        return cls(private)

    def save(self, path: Path) -> None:
        """Write the key as PKCS#8 PEM, readable by the owner only, never replacing a key."""
        pem = self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

"""The key that seals stored fingerprint templates, and the sealing (PIPL art. 28: sensitive personal information).

A key file of its own (32 random bytes, mode 0600, in ``<state_dir>/keys/``), made the first time a template
is sealed, never printed or logged, and not in backups (``appliance backup`` copies the log-signing key only):
a backup that leaves the plant carries no usable template, and an appliance restored from one reads the
fingers again from its terminals. Three keys are derived from it: AES-256-GCM for the templates, each sealed
with a fresh nonce and bound to its worker and finger (a sealed template moved to another row does not open);
HMAC-SHA256 to compare a template read from a terminal with a stored one without opening either; and the key's
id, stored with each sealed template.

The constructor does no I/O; the file is read (or made) at the first use.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEY_BYTES = 32
NONCE_BYTES = 12
AAD = b"punchproof/template/v1\n"


class TemplateKeyError(Exception):
    """The key file exists but is not a template key (wrong size): nothing is sealed or opened with it."""


class TemplateVault:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: tuple[AESGCM, bytes, str] | None = None

    @property
    def key_id(self) -> str:
        return self._load()[2]

    def seal(self, user_id: str, finger: int, template: bytes) -> bytes:
        aead, _mac, _kid = self._load()
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + aead.encrypt(nonce, template, _bound(user_id, finger))

    def open(self, user_id: str, finger: int, sealed: bytes) -> bytes | None:
        """The template, or None if it was sealed with another key, for another row, or altered."""
        aead, _mac, _kid = self._load()
        try:
            return aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _bound(user_id, finger))
        except (InvalidTag, ValueError):
            return None

    def mac(self, template: bytes) -> str:
        return hmac.new(self._load()[1], template, hashlib.sha256).hexdigest()

    def _load(self) -> tuple[AESGCM, bytes, str]:
        with self._lock:
            if self._keys is None:
                key = self._read_or_make()
                self._keys = (
                    AESGCM(_derive(key, b"seal")),
                    _derive(key, b"mac"),
                    _derive(key, b"key-id")[:8].hex(),
                )
            return self._keys

    def _read_or_make(self) -> bytes:
        """The key file's key; made first if there is none. Written whole to a file of its own and linked
        into place, so that a worker of another terminal starting at the same moment reads a whole key."""
        if self.path.exists():
            return self._read()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(draft, self.path)  # fails if another made it first: theirs is the key
            made = True
        except FileExistsError:
            made = False
        finally:
            os.unlink(draft)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the key survives a power cut before the first template sealed with it does
        finally:
            os.close(directory)
        if made:
            log.info("made the template key %s (mode 0600); stored fingerprint templates are sealed with it", self.path)
        return self._read()

    def _read(self) -> bytes:
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("the template key %s was readable by others (mode %o); set to 0600", self.path, mode)
            os.chmod(self.path, 0o600)
        key = self.path.read_bytes()
        if len(key) != KEY_BYTES:
            raise TemplateKeyError(f"{self.path} holds {len(key)} bytes, not a {KEY_BYTES}-byte template key")
        return key


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, b"punchproof/template-key/v1/" + purpose, hashlib.sha256).digest()


def _bound(user_id: str, finger: int) -> bytes:
    return AAD + f"{user_id}\n{finger}".encode()

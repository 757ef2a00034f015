"""The configuration the cloud pushes to one appliance: versioned, signed, canonical JSON.

A document carries master data in the shapes the appliance's tables already hold (what
``appliance.roster.importer`` produces), so the appliance applies it with the code that imports
the HR office's sheets. The cloud signs it with its witness key under ``CONFIG_DOMAIN``, a prefix
no other signed message uses, so a signed acknowledgement can never pass for a configuration.
The appliance believes a document only when the signature verifies, the plant and appliance are
its own and the version is newer than the one it applied. docs/sync-config.md describes it.

On the wire (topic ``down/config``, retained) the envelope ``{"v":1,"kind":"config","doc":{..},
"sig":".."}`` is sent as is while small; above ``COMPRESS_ABOVE`` bytes it is zlib-compressed
behind the 4-byte marker ``ZLIB_MAGIC``. Sizes are checked before anything is parsed: the payload
against the broker's limit, the inflated envelope against ``MAX_CONFIG_BYTES``.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger import canonical
from ledger.errors import Malformed
from ledger.keys import SigningKey, VerifyKey
from ledger.messages import MAX_MESSAGE_BYTES
from ledger.record import b64, unb64

CONFIG_DOMAIN = b"punchproof/config/v1\n"
ZLIB_MAGIC = b"PPZ1"
COMPRESS_ABOVE = 64 * 1024  # smaller envelopes stay readable with mosquitto_sub
MAX_CONFIG_BYTES = 16 * 1024 * 1024  # an inflated envelope above this is refused (a zlib bomb)
STATUSES = frozenset({"ok", "rejected"})
# what head office keeps of an answer (cloud.plantconfig.config_push.ConfigApplied): a version in a 32-bit column,
# the document's SHA-256 in hex (a varchar(255) on PostgreSQL)
MAX_VERSION = 2**31 - 1
MAX_HASH_CHARS = 128
_HASH = re.compile(rf"[0-9A-Za-z]{{0,{MAX_HASH_CHARS}}}")

REQUIRED = object()  # marks a field a row must carry
_INT = int
# section -> field -> (type, default or REQUIRED). The fields are the appliance's table columns.
ROW_SECTIONS: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "shifts": {
        "id": (str, REQUIRED),
        "name": (str, ""),
        "spans": (str, REQUIRED),  # "08:00-12:00,13:00-17:00"; an end before its start ends the next day
        "late_grace_min": (_INT, 5),
        "early_grace_min": (_INT, 0),
        "checkin_before_min": (_INT, 120),
        "checkout_after_min": (_INT, 240),
        "terminals": (str, ""),  # names, comma-separated; "" = every terminal
    },
    "rosters": {
        "id": (str, REQUIRED),
        "kind": (str, "weekly"),  # weekly | rotating
        "pattern": (str, REQUIRED),
        "anchor": (str, ""),
        "holidays": (str, "observe"),  # observe | ignore
        "makeup_weekday": (_INT, 0),
    },
    "employees": {
        "user_id": (str, REQUIRED),
        "name": (str, ""),
        "line": (str, ""),
        "department": (str, ""),
        "roster": (str, ""),
        "valid_from": (str, ""),
        "valid_to": (str, ""),
        "active": (bool, True),
    },
    "schedule": {"employee": (str, REQUIRED), "day": (str, REQUIRED), "shifts": (str, "")},
    "leave": {
        "id": (str, REQUIRED),
        "employee": (str, REQUIRED),
        "kind": (str, "请假"),
        "start_ms": (_INT, REQUIRED),
        "end_ms": (_INT, REQUIRED),
        "status": (str, "approved"),  # approved | cancelled
    },
    "trips": {
        "id": (str, REQUIRED),
        "employee": (str, REQUIRED),
        "destination": (str, ""),
        "start_ms": (_INT, REQUIRED),
        "end_ms": (_INT, REQUIRED),
        "status": (str, "approved"),
    },
    "corrections": {
        "id": (str, REQUIRED),
        "employee": (str, REQUIRED),
        "at_ms": (_INT, REQUIRED),
        "direction": (str, "unknown"),  # in | out | unknown
        "reason": (str, REQUIRED),
        "by": (str, ""),
        "recorded_ms": (_INT, 0),
        "status": (str, "approved"),
    },
    # Only what is safe to change from afar: how a terminal's clock is watched and corrected, and how
    # often it is read. Never its address or comm key: a wrong one would cut the appliance off the terminal.
    "devices": {
        "terminal": (str, REQUIRED),
        "clock_alarm_s": (_INT, 60),
        "clock_correct_above_s": ((int, type(None)), None),  # None: never set the terminal's clock
        "poll_seconds": (_INT, 5),
    },
}
OBJECT_SECTIONS: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "calendar": {"text": (str, REQUIRED)},  # calendar overrides, TOML (appliance.rules.parse_overrides)
    "policy": {
        "version": (str, "default"),
        "duplicate_window_s": (_INT, 60),
        "tentative_after_min": (_INT, 15),
        "confirm_margin_min": (_INT, 60),
    },
}
SECTIONS = (*ROW_SECTIONS, *OBJECT_SECTIONS)
KEYS: dict[str, tuple[str, ...]] = {  # what identifies a row: a section holds each key once
    "shifts": ("id",),
    "rosters": ("id",),
    "employees": ("user_id",),
    "schedule": ("employee", "day"),
    "leave": ("id",),
    "trips": ("id",),
    "corrections": ("id",),
    "devices": ("terminal",),
}
CHOICES: dict[tuple[str, str], frozenset[Any]] = {
    ("rosters", "kind"): frozenset({"weekly", "rotating"}),
    ("rosters", "holidays"): frozenset({"observe", "ignore"}),
    ("leave", "status"): frozenset({"approved", "cancelled"}),
    ("trips", "status"): frozenset({"approved", "cancelled"}),
    ("corrections", "status"): frozenset({"approved", "cancelled"}),
    ("corrections", "direction"): frozenset({"in", "out", "unknown"}),
}


class ConfigTooLarge(Malformed):
    """The document does not fit one broker message even compressed."""


@dataclass(frozen=True, slots=True)
class ConfigDocument:
    """One version of one appliance's configuration. ``sections`` holds only the sections it replaces."""

    plant: str
    appliance: str
    version: int
    created_ms: int
    by: str
    sections: Mapping[str, Any]

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "plant": self.plant,
            "appliance": self.appliance,
            "version": self.version,
            "created_ms": self.created_ms,
            "by": self.by,
            "sections": dict(self.sections),
        }

    def canonical(self) -> bytes:
        return canonical.encode(self.body())

    @property
    def hash(self) -> str:
        """SHA-256 of the canonical document, hex: what the appliance reports back and the cloud stores."""
        return hashlib.sha256(self.canonical()).hexdigest()

    @classmethod
    def build(
        cls, plant: str, appliance: str, version: int, created_ms: int, by: str, sections: Mapping[str, Any]
    ) -> ConfigDocument:
        """A checked document with every row's defaults filled in, so that what is signed is complete."""
        return cls._checked(
            {
                "v": 1,
                "plant": plant,
                "appliance": appliance,
                "version": version,
                "created_ms": created_ms,
                "by": by,
                "sections": normalize_sections(sections),
            }
        )

    @classmethod
    def _checked(cls, body: Any) -> ConfigDocument:
        if not isinstance(body, dict) or body.get("v") != 1:
            raise Malformed("not a version-1 configuration document")
        unknown = set(body) - {"v", "plant", "appliance", "version", "created_ms", "by", "sections"}
        if unknown:
            raise Malformed(f"configuration document has unknown field(s) {', '.join(sorted(unknown))}")
        for name in ("plant", "appliance", "by"):
            if not isinstance(body.get(name), str) or (name != "by" and not body[name]):
                raise Malformed(f"configuration document needs a string {name!r}")
        for name in ("version", "created_ms"):
            value = body.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (1 if name == "version" else 0):
                raise Malformed(f"configuration document needs a positive integer {name!r}")
        sections = body.get("sections")
        if not isinstance(sections, dict):
            raise Malformed("configuration document needs a 'sections' object")
        if normalize_sections(sections) != sections:
            raise Malformed("configuration sections are not complete (defaults missing)")
        canonical.encode(body)  # integers within ±2^53, ASCII keys, no floats
        return cls(body["plant"], body["appliance"], body["version"], body["created_ms"], body["by"], sections)


def normalize_sections(sections: Mapping[str, Any]) -> dict[str, Any]:
    """Check every section and row against the schema; return them with defaults filled in."""
    if not isinstance(sections, Mapping):
        raise Malformed("sections must be an object")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise Malformed(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    out: dict[str, Any] = {}
    for name, value in sections.items():
        if name in OBJECT_SECTIONS:
            out[name] = _row(name, OBJECT_SECTIONS[name], value, name)
            continue
        if not isinstance(value, list):
            raise Malformed(f"section {name!r} must be a list of rows")
        rows = [_row(name, ROW_SECTIONS[name], row, f"{name}[{i}]") for i, row in enumerate(value)]
        seen: set[tuple[Any, ...]] = set()
        for index, row in enumerate(rows):
            key = tuple(row[k] for k in KEYS[name])
            if key in seen:
                raise Malformed(f"{name}[{index}]: {'/'.join(map(str, key))} appears twice")
            seen.add(key)
        out[name] = rows
    return out


def _row(section: str, spec: Mapping[str, tuple[Any, Any]], row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise Malformed(f"{where}: must be an object")
    unknown = sorted(set(row) - set(spec))
    if unknown:
        raise Malformed(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(spec)}")
    out = {}
    for name, (kind, default) in spec.items():
        if name not in row:
            if default is REQUIRED:
                raise Malformed(f"{where}.{name}: required")
            out[name] = default
            continue
        value = row[name]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise Malformed(f"{where}.{name}: expected {getattr(kind, '__name__', 'integer or null')}")
        if default is REQUIRED and isinstance(value, str) and not value.strip():
            raise Malformed(f"{where}.{name}: required, must not be empty")
        allowed = CHOICES.get((section, name))
        if allowed is not None and value not in allowed:
            raise Malformed(f"{where}.{name}: {value!r} is not one of {', '.join(sorted(allowed))}")
        out[name] = value
    return out


@dataclass(frozen=True, slots=True)
class SignedConfig:
    """A document and the cloud's signature over ``CONFIG_DOMAIN || canonical(document)``."""

    document: ConfigDocument
    sig: str

    @classmethod
    def sign(cls, document: ConfigDocument, key: SigningKey) -> SignedConfig:
        return cls(document, b64(key.sign(CONFIG_DOMAIN + document.canonical())))

    def verify(self, key: VerifyKey) -> ConfigDocument:
        """The document, if ``key`` signed exactly it; ``Forged`` otherwise."""
        key.verify(unb64(self.sig, what="configuration signature", size=64), CONFIG_DOMAIN + self.document.canonical())
        return self.document

    def encode(self) -> bytes:
        """The payload for ``down/config``: plain canonical JSON, or zlib behind ``ZLIB_MAGIC`` when large."""
        envelope = canonical.encode({"v": 1, "kind": "config", "doc": self.document.body(), "sig": self.sig})
        if len(envelope) > MAX_CONFIG_BYTES:
            raise ConfigTooLarge(f"configuration of {len(envelope)} bytes exceeds {MAX_CONFIG_BYTES} bytes")
        if len(envelope) <= COMPRESS_ABOVE:
            return envelope
        payload = ZLIB_MAGIC + zlib.compress(envelope, 9)
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ConfigTooLarge(
                f"configuration of {len(envelope)} bytes is {len(payload)} bytes compressed, above the "
                f"{MAX_MESSAGE_BYTES}-byte message limit; send fewer past leave and correction rows"
            )
        return payload

    @classmethod
    def decode(cls, payload: bytes) -> SignedConfig:
        """Parse a payload, checking sizes first; the signature is not checked here (``verify``)."""
        if len(payload) > MAX_MESSAGE_BYTES:
            raise Malformed(f"configuration of {len(payload)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")
        if payload.startswith(ZLIB_MAGIC):
            payload = _inflate(payload[len(ZLIB_MAGIC) :])
        try:
            message = json.loads(payload, parse_float=_no_float)
        except (UnicodeDecodeError, ValueError) as err:
            raise Malformed(f"configuration is not JSON: {err}") from err
        if not isinstance(message, dict) or message.get("kind") != "config" or message.get("v") != 1:
            raise Malformed("not a version-1 configuration message")
        if set(message) != {"v", "kind", "doc", "sig"} or not isinstance(message["sig"], str):
            raise Malformed("a configuration message holds exactly v, kind, doc and sig")
        return cls(ConfigDocument._checked(message["doc"]), message["sig"])


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_CONFIG_BYTES)
    except zlib.error as err:
        raise Malformed(f"configuration is not a valid zlib stream: {err}") from err
    if inflater.unconsumed_tail or not inflater.eof:
        raise Malformed(f"configuration inflates beyond {MAX_CONFIG_BYTES} bytes, or is truncated")
    return out


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text!r} is not allowed")


@dataclass(frozen=True, slots=True)
class ConfigStatus:
    """The appliance's answer on ``up/config``: the version it applied, or why it refused one.

    ``applied`` is the version it runs after this message (unchanged by a rejection). Not signed:
    the broker's ACL lets only this appliance publish under its own ``up/``.
    """

    version: int
    hash: str
    status: str
    applied: int
    at_ms: int
    reason: str = ""

    def encode(self) -> bytes:
        return canonical.encode(
            {
                "v": 1,
                "kind": "config_status",
                "version": self.version,
                "hash": self.hash,
                "status": self.status,
                "applied": self.applied,
                "at_ms": self.at_ms,
                "reason": self.reason,
            }
        )

    @classmethod
    def decode(cls, payload: bytes) -> ConfigStatus:
        if len(payload) > 64 * 1024:
            raise Malformed(f"configuration status of {len(payload)} bytes is too large")
        try:
            message = json.loads(payload, parse_float=_no_float)
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            raise Malformed(f"configuration status is not JSON: {str(err)[:200]}") from err
        if not isinstance(message, dict) or message.get("kind") != "config_status" or message.get("v") != 1:
            raise Malformed("not a version-1 configuration status")
        try:
            status = cls(message["version"], message["hash"], message["status"], message["applied"], message["at_ms"])
        except KeyError as err:
            raise Malformed(f"configuration status lacks {err}") from err
        reason = message.get("reason", "")
        ints = ((status.version, MAX_VERSION), (status.applied, MAX_VERSION), (status.at_ms, canonical.MAX_SAFE_INT))
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= high for v, high in ints):
            raise Malformed(
                f"configuration status: version and applied must be integers from 0 to {MAX_VERSION}, "
                f"at_ms from 0 to {canonical.MAX_SAFE_INT}"
            )
        if not isinstance(status.status, str) or status.status not in STATUSES:
            raise Malformed(f"configuration status {status.status!r:.40} is not ok or rejected")
        if not isinstance(status.hash, str) or not _HASH.fullmatch(status.hash) or not isinstance(reason, str):
            raise Malformed(
                f"configuration status: hash (at most {MAX_HASH_CHARS} letters and digits) and reason must be text"
            )
        reason = reason.replace("\x00", "\ufffd")[:1000]  # kept in a text column: PostgreSQL refuses a NUL
        return cls(status.version, status.hash, status.status, status.applied, status.at_ms, reason)

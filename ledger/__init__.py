"""The signed record format shared by the appliance, the cloud and the offline verifier.

This package owns the bytes: canonical encoding, hashes, signatures, the hash chain, the
messages that carry ranges of records over MQTT, and their verification. It imports nothing
of ours, so that the cloud and a third-party verifier never depend on appliance code.
The format is specified in ``docs/record-format.md``.
"""

from ledger.errors import ChainBroken, Forged, LedgerError, Malformed
from ledger.keys import SigningKey, VerifyKey
from ledger.record import GENESIS_PREV, RECORD_TYPES, SignedRecord, leaf_hash, make_record, parse

__all__ = [
    "GENESIS_PREV",
    "RECORD_TYPES",
    "ChainBroken",
    "Forged",
    "LedgerError",
    "Malformed",
    "SignedRecord",
    "SigningKey",
    "VerifyKey",
    "leaf_hash",
    "make_record",
    "parse",
]

"""Verification of a contiguous range of records: schema, chain, key and signatures."""

from __future__ import annotations

from typing import Any

from ledger.errors import ChainBroken, Forged, Malformed
from ledger.keys import VerifyKey
from ledger.messages import Batch
from ledger.record import b64


def verify_batch(batch: Batch, *, key: VerifyKey, prev: bytes) -> list[tuple[dict[str, Any], bytes]]:
    """Check every record of ``batch`` (signature first, then schema) and that the range links to ``prev``.

    Returns each record's fields with its leaf hash. Raises ``Malformed``, ``ChainBroken`` or
    ``Forged`` naming the first offending seq; nothing is returned for a range that fails.
    """
    out = []
    for offset, record in enumerate(batch.records):
        seq = batch.first + offset
        try:  # the signature first: nothing unsigned is parsed for meaning
            record.verify(key)
        except Forged as err:
            raise Forged(f"{batch.log} seq {seq}: {err}") from err
        try:
            fields = record.fields()
        except Malformed as err:
            raise Malformed(f"{batch.log} seq {seq}: {err}") from err
        if fields["log"] != batch.log:
            raise Malformed(f"seq {seq} belongs to log {fields['log']!r}, not {batch.log!r}")
        if fields["seq"] != seq:
            raise ChainBroken(f"{batch.log}: record at position {seq} carries seq {fields['seq']}")
        if fields["prev"] != b64(prev):
            raise ChainBroken(f"{batch.log} seq {seq}: does not link to the previous record")
        if fields["kid"] != key.kid:
            raise Forged(f"{batch.log} seq {seq}: names key {fields['kid']}, but was signed by {key.kid}")
        leaf = record.leaf
        out.append((fields, leaf))
        prev = leaf
    return out

"""A case's timeline: append-only entries, each hashing the one before, readable as a list.

The hash covers the entry's seq, time, kind, actor, both texts and its data (canonical JSON), and
the previous entry's hash; ``verify`` recomputes the chain, so an entry deleted or edited in the
database afterwards is found. (The cloud's signed log, built elsewhere, carries them further.)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cloud.escalation.models import AbsenceCase, CaseEntry

GENESIS = "0" * 64


@dataclass(frozen=True)
class Item:
    seq: int
    at_ms: int
    kind: str
    actor: str
    text_zh: str
    text_en: str
    data: dict[str, Any]


def digest(prev: str, seq: int, at_ms: int, kind: str, actor: str, zh: str, en: str, data: str) -> str:
    body = json.dumps([prev, seq, at_ms, kind, actor, zh, en, data], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


_digest = digest  # the name this module used first


def encode_data(data: dict[str, Any]) -> str:
    """An entry's data as stored and hashed: canonical JSON."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def append(
    case: AbsenceCase, kind: str, zh: str, en: str, *, at_ms: int, actor: str = "engine", **data: Any
) -> CaseEntry:
    """Add an entry; call inside the transaction that holds the case's lock (``cases.locked_case``).

    The engine's ticks append through ``batch.CaseBatch.append``, which chains entries the same way."""
    last = (
        CaseEntry.select(CaseEntry.seq, CaseEntry.hash)
        .where(CaseEntry.case == case)
        .order_by(CaseEntry.seq.desc())
        .first()
    )
    seq, prev = (last.seq + 1, last.hash) if last else (0, GENESIS)
    text = encode_data(data)
    return CaseEntry.create(
        case=case,
        seq=seq,
        at_ms=at_ms,
        kind=kind,
        actor=actor,
        text_zh=zh,
        text_en=en,
        data=text,
        prev_hash=prev,
        hash=digest(prev, seq, at_ms, kind, actor, zh, en, text),
    )


def items(case: AbsenceCase | int) -> list[Item]:
    """The timeline in order, for pages and exports."""
    rows = CaseEntry.select().where(CaseEntry.case == case).order_by(CaseEntry.seq)
    return [Item(r.seq, r.at_ms, r.kind, r.actor, r.text_zh, r.text_en, json.loads(r.data)) for r in rows]


def verify(case: AbsenceCase | int) -> list[str]:
    """Problems with the chain (empty when intact)."""
    problems, prev, expected = [], GENESIS, 0
    for r in CaseEntry.select().where(CaseEntry.case == case).order_by(CaseEntry.seq):
        if r.seq != expected:
            problems.append(f"entry {expected} is missing")
        if r.prev_hash != prev or r.hash != digest(prev, r.seq, r.at_ms, r.kind, r.actor, r.text_zh, r.text_en, r.data):
            problems.append(f"entry {r.seq} does not match its hash")
        prev, expected = r.hash, r.seq + 1
    return problems


def kinds(case: AbsenceCase | int) -> list[str]:
    return [
        k for (k,) in CaseEntry.select(CaseEntry.kind).where(CaseEntry.case == case).order_by(CaseEntry.seq).tuples()
    ]

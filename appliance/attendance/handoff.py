"""The evaluator's records handed to the one log writer: a queue table the writer drains.

The evaluator runs in a process of its own (``appliance.runtime.evaluator_process``), so that the
rules' CPU never delays a punch on its way from the terminal to the log and the kiosk. It holds no
signing key and appends nothing: it queues each day fact and missed check-in alert it decides on
in ``EvalHandoff`` (``put``), one row per key, a newer decision replacing one not yet signed. The
daemon, the only process that signs and assigns seqs, appends them (``drain``) and deletes their
rows in the same transaction.

Each record is written once, whoever stops where:
- the evaluator killed before its rows are committed: its next pass (after the daemon restarts
  it) decides the same from the same database and queues them again;
- the daemon killed while appending: the records and the deletion of their rows are one
  transaction, so either both happened or neither;
- a row queued again before the first was signed (the evaluator does not wait for the writer):
  ``drain`` compares each with the log as it is then, so a fact whose decision the log already
  states, or an alert of a (date, shift, line) already raised, is dropped, not signed twice. What a
  fact supersedes is also read there, from the log, never from the evaluator's older view.

``Direct`` is the hand-off inside one process (a test, or a tool that evaluates once): queue and
drain at once, through the same code.

Memory: the evaluator's process imports this module but never the log writer's side (``drain``,
``Direct``, ``Signer``), so ``appliance.capture.punchlog`` and ``ledger`` (and with them the
cryptography package, some 8 MB resident) are imported where that side runs, not at the top.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from appliance.attendance import actions, alerts, facts
from appliance.clock import Clock, to_ms
from appliance.store import CHANGED, BoardRow, DayFactIndex, EvalHandoff, EvaluatorState

if TYPE_CHECKING:
    from appliance.capture.punchlog import Entry, LogWriter

log = logging.getLogger(__name__)

DAYFACT = "dayfact"
ALERT = alerts.TYPE
BATCH = 500  # rows per drain: one append, one short transaction
_drain_lock = threading.Lock()  # one drain at a time in a process: each compares with the log it then appends to


def alert_key(body: Mapping[str, object]) -> str:
    return f"{body['date']}/{body['shift']}/{body['line']}"


def put(kind: str, bodies: Sequence[Mapping[str, Any]], now_ms: int) -> int:
    """Queue records for the writer, in one transaction; a row of the same key not yet signed is replaced.

    One prepared statement fed a row at a time: a full pass at a 5,000-worker plant queues thousands of
    facts at once, and building them all first (each one's JSON text, then peewee's query nodes for
    ``insert_many``) cost some 8 kB a fact: 27 MB more at the peak of a pass with 3,333 facts due."""
    if not bodies:
        return 0
    db = EvalHandoff._meta.database
    with db.atomic():
        db.cursor().executemany(_QUEUE_ROW, _rows(kind, bodies, now_ms))
    _failpoint("handoff.queued")  # a test kills the evaluator here: queued, the rest of its pass not done
    return len(bodies)


_QUEUE_ROW = f"INSERT OR REPLACE INTO {EvalHandoff._meta.table_name} (kind, key, body, queued_ms) VALUES (?, ?, ?, ?)"


def _rows(kind: str, bodies: Sequence[Mapping[str, Any]], now_ms: int) -> Iterator[tuple[str, str, str, int]]:
    for body in bodies:
        key = str(body["key"]) if kind == DAYFACT else alert_key(body)
        yield (kind, key, json.dumps(body, ensure_ascii=False, separators=(",", ":")), now_ms)


def _failpoint(name: str) -> None:
    """``ledger.failpoints.hit``, imported only when a fault test arms failpoints (``PUNCHPROOF_FAILPOINTS``):
    unarmed, ``hit`` does nothing, and importing ``ledger`` would load the cryptography package into the
    evaluator's process for nothing."""
    if os.environ.get("PUNCHPROOF_FAILPOINTS"):
        from ledger import failpoints

        failpoints.hit(name)


def queued() -> int:
    return EvalHandoff.select().count()


def drain(writer: LogWriter, now_ms: int) -> list[int]:
    """Append what the evaluator queued and is still new; return the seqs appended (the writer's side)."""
    seqs: list[int] = []
    with _drain_lock:
        while True:
            rows = list(EvalHandoff.select().order_by(EvalHandoff.id).limit(BATCH).tuples())
            if not rows:
                return seqs
            seqs += _append(writer, rows, now_ms)
            if len(rows) < BATCH:
                return seqs


def _append(writer: LogWriter, rows: list[tuple[Any, ...]], now_ms: int) -> list[int]:
    from appliance.capture.punchlog import Entry

    fact_keys = [key for _id, kind, key, _b, _q in rows if kind == DAYFACT]
    known = _latest(fact_keys)
    raised = {"/".join(a.key) for a in alerts.raised(now_ms - alerts.KEEP_MS)} if len(fact_keys) < len(rows) else set()
    entries: list[Entry] = []
    signed: list[tuple[int, str]] = []  # (seq, fact key), filled as the writer signs: the board's rows point at them
    for _id, kind, key, body_text, _queued in rows:
        body = json.loads(body_text)
        if kind == DAYFACT:
            fact = _fact_now(body, known.get(key))
            if fact is None:
                continue
            entries.append(_noted(facts.entry(fact), key, signed))  # a key is queued once (unique): no repeat here
        elif kind == ALERT and key not in raised:
            entries.append(Entry(ALERT, body))
            raised.add(key)
    ids = [row[0] for row in rows]

    def then() -> None:
        cursor = EvalHandoff._meta.database.cursor()
        cursor.executemany(_DELETE_ROW, ((i,) for i in ids))
        # the board's row points at its fact at once, not at the next full pass; one prepared statement
        # (3,000 updates built by peewee one by one cost a Pi core most of a minute)
        cursor.executemany(_POINT_ROW, (_point(seq, key) for seq, key in signed))
        if signed and cursor.rowcount > 0:
            EvaluatorState.update(board_version=EvaluatorState.board_version + 1).where(
                EvaluatorState.id == 1
            ).execute()

    return writer.append(entries, then=then)


_DELETE_ROW = f"DELETE FROM {EvalHandoff._meta.table_name} WHERE id = ?"
_POINT_ROW = (
    f"UPDATE {BoardRow._meta.table_name} SET fact_seq = ?, changed = {CHANGED} "
    "WHERE work_date = ? AND employee = ? AND shift = ? "
    "AND (fact_seq IS NULL OR fact_seq != ?)"
)


def _point(seq: int, key: str) -> tuple[int, str, str, str, int]:
    employee, work_date, shift = key.rsplit("/", 2)
    return (seq, work_date, employee, shift, seq)


def _fact_now(body: dict[str, Any], previous: facts.Latest | None) -> dict[str, Any] | None:
    """The fact as the log needs it now: None if the log's latest fact of its key states the same
    decision; else superseding that latest fact (whatever the evaluator saw when it queued it)."""
    body.pop("supersedes", None)
    if previous is None:
        return body
    if previous.decision == facts.decision_text(body):
        return None
    return {**body, "supersedes": previous.fact_id}


def _latest(keys: Sequence[str]) -> dict[str, facts.Latest]:
    found: dict[str, facts.Latest] = {}
    for start in range(0, len(keys), facts.KEYS_PER_QUERY):
        chunk = list(keys[start : start + facts.KEYS_PER_QUERY])
        query = (
            DayFactIndex.select(DayFactIndex.key, DayFactIndex.fact_id, DayFactIndex.decision, DayFactIndex.seq)
            .where(DayFactIndex.key.in_(chunk))
            .order_by(DayFactIndex.seq)
            .tuples()
        )
        for key, fid, dec, seq in query:
            found[key] = facts.Latest(seq, fid, dec)
    return found


def _noted(entry: Entry, key: str, signed: list[tuple[int, str]]) -> Entry:
    from appliance.capture.punchlog import Entry

    derive = entry.derive
    assert derive is not None

    def noting(seq: int, now_ms: int) -> Any:
        signed.append((seq, key))
        return derive(seq, now_ms)

    return Entry(entry.type, entry.body, noting)


class Outbox:
    """The evaluator's side in its own process: queue, and let the daemon sign."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def facts(self, due: list[dict[str, Any]]) -> list[int]:
        put(DAYFACT, due, to_ms(self._clock.now()))
        return []

    def alerts(self, bodies: list[dict[str, Any]]) -> list[int]:
        put(ALERT, bodies, to_ms(self._clock.now()))
        return []

    def tick(self) -> None:
        """Nothing to sign here: the daemon signs the pages' actions and drains the queue."""


class Direct:
    """The hand-off inside one process (tests, one-off evaluations): queue, then drain at once."""

    def __init__(self, writer: LogWriter, clock: Clock) -> None:
        self.writer = writer
        self._clock = clock

    def facts(self, due: list[dict[str, Any]]) -> list[int]:
        put(DAYFACT, due, to_ms(self._clock.now()))
        return self._drain()

    def alerts(self, bodies: list[dict[str, Any]]) -> list[int]:
        put(ALERT, bodies, to_ms(self._clock.now()))
        return self._drain()

    def tick(self) -> None:
        actions.sign_pending(self.writer)
        self._drain()

    def _drain(self) -> list[int]:
        return drain(self.writer, to_ms(self._clock.now()))


class Signer:
    """The daemon's side: every ``every_s`` (or when woken), sign the pages' queued actions and what
    the evaluator's process queued. A thread of the daemon, which holds the key."""

    def __init__(self, writer: LogWriter, clock: Clock, *, every_s: float = 0.5) -> None:
        self._writer = writer
        self._clock = clock
        self._every = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="attendance-signer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop, after signing what is queued now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        self._guarded(self.once)

    def once(self) -> list[int]:
        return actions.sign_pending(self._writer) + drain(self._writer, to_ms(self._clock.now()))

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._guarded(self.once)

    def _guarded(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # the top of the loop: the next tick tries again
            if not self._failing:
                log.exception("signing the evaluator's records failed")
            self._failing = True
            return
        self._failing = False

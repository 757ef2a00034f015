"""Confirmed day facts and fresh punches, read from the plants' stored logs since the last tick.

Each appliance's records are stored contiguously in seq order while its ``LogHead`` row is locked
(``cloud.ingest.verifier``), so reading ``(cursor, head]`` per appliance misses nothing and reads nothing
twice, on SQLite and on PostgreSQL with several ingest workers alike. A fact that supersedes an
earlier one for the same key (leave approved later, a 补卡) replaces it in ``AttendanceDay``; the
signed log keeps both.

A punch its appliance signed at or past the key's compromise point (``punchproof cloud revoke-key
--compromised-since``, ``cloud.appliances.trust``) is not read as a fresh punch: whoever copied the key could
have made it, so it never resolves a case as "employee back". Such day facts are stored like any other; counting
marks them untrusted.

Only facts the appliance confirmed exist at all: a plant whose terminals have not been read past a
shift's end sends no fact for it, so an outage produces no absence here, only a later fact.

Appliances are read a part at a time (``PART_RECORDS`` records or so), each part in one transaction that
holds its appliances' cursor rows (in appliance order, so two runners never wait on each other in a
circle): its records in one query, its facts stored in one statement (PostgreSQL: COPY'd into a
transaction's scratch table, then one ``INSERT ... SELECT ... ON CONFLICT``), its punches in one query, its
cursors moved in one statement. A group's morning (2,000 appliances, a million facts) is a hundred
transactions, not two thousand; on PostgreSQL the next part is read and decoded on a second connection while
this one's facts are stored (``_Ahead``).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import orjson
import peewee as pw

from cloud.appliances.trust import Trust
from cloud.escalation import bulk
from cloud.escalation.models import FactCursor
from cloud.store import Appliance, LogHead, database

ATTENDED = frozenset({"present", "late", "left_early", "incomplete"})
EXCUSED = frozenset({"on_leave", "business_trip"})
OFF = frozenset({"rest_day", "holiday", "not_scheduled", "upcoming"})
PART_RECORDS = 10_000  # records read per transaction (a part): twenty appliances' day of 500 badges
STORED = (  # the AttendanceDay columns a fact sets, in this order
    "plant_id",
    "user_id",
    "fact_key",
    "work_date",
    "shift",
    "status",
    "start_ms",
    "end_ms",
    "watch",
    "excusal",
    "fact_id",
    "appliance_id",
    "seq",
    "versions",
)


@dataclass
class Fresh:
    """What a read found: badges whose facts changed, and each badge's latest new punch."""

    touched: set[tuple[str, str]] = field(default_factory=set)  # (plant, user_id) with a non-attended or changed fact
    attended: set[tuple[str, str]] = field(
        default_factory=set
    )  # a plain attended fact (matters only with an open case)
    punches: dict[tuple[str, str], int] = field(default_factory=dict)  # latest punch time (ms) per badge
    facts: int = 0


class Range:
    """One appliance's part of a read: records ``(after, upto]`` of its log, and its punches up to
    ``punches_upto`` (short of its key's compromise point)."""

    __slots__ = ("appliance", "plant", "after", "upto", "punches_upto")

    def __init__(self, appliance: int, plant: str, after: int, upto: int, punches_upto: int) -> None:
        self.appliance, self.plant, self.after, self.upto, self.punches_upto = (
            appliance,
            plant,
            after,
            upto,
            punches_upto,
        )


def read_new(limit_per_appliance: int = 20_000, part_records: int = PART_RECORDS) -> Fresh:
    """The facts and punches stored since the last read (see the module's text).

    Python's cyclic garbage collector is held off while it reads: decoding makes a few dicts a record and no
    cycles, yet each full collection walks every object alive, the million badges read so far too; a group's day
    spent a third of its decoding there (measured: 33 µs a fact with it, 20 µs without)."""
    with collector_held():
        return _read_new(limit_per_appliance, part_records)


@contextlib.contextmanager
def collector_held() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (and on again after it, if it was)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def _read_new(limit_per_appliance: int, part_records: int) -> Fresh:
    fresh = Fresh()
    behind = list(
        LogHead.select(
            LogHead.appliance, LogHead.seq, Appliance.plant, pw.fn.COALESCE(FactCursor.seq, -1).alias("done")
        )
        .join(Appliance, on=(Appliance.id == LogHead.appliance))
        .join(FactCursor, pw.JOIN.LEFT_OUTER, on=(FactCursor.appliance == LogHead.appliance))
        .where(LogHead.seq > pw.fn.COALESCE(FactCursor.seq, -1))
        .order_by(LogHead.appliance)
        .tuples()
    )
    if not behind:
        return fresh
    bulk.insert(FactCursor, [{"appliance": a, "seq": -1} for a, _head, _plant, _done in behind], ignore=True)
    trust = Trust.load()
    parts = list(_parts(behind, min(limit_per_appliance, part_records), part_records))
    with _Ahead(parts, limit_per_appliance) as ahead:
        for n, part in enumerate(parts):
            heads = {appliance: (head, plant) for appliance, head, plant, _done in part}
            # the cursor rows are the lock: two runners never project the same range
            with _transaction():
                ranges = []
                for appliance, done in _lock_cursors(sorted(heads)):
                    head, plant = heads[appliance]
                    upto = min(head, done + limit_per_appliance)
                    if upto <= done:
                        continue
                    point = trust.points.get(appliance)
                    since = min(upto, point.since_seq - 1) if point else upto
                    ranges.append(Range(appliance, plant, done, upto, since))
                decoded = ahead.get(n, ranges)  # decoded while the part before was stored, if its ranges hold
                if not ranges:
                    continue
                _store(decoded if decoded is not None else _decode(ranges), fresh)
                _punches(ranges, fresh)
                bulk.execute(
                    "UPDATE fact_cursor SET seq = CASE appliance_id "
                    + " ".join("WHEN ? THEN ?" for _ in ranges)
                    + f" END WHERE appliance_id IN ({bulk.marks(len(ranges))})",
                    [v for r in ranges for v in (r.appliance, r.upto)] + [r.appliance for r in ranges],
                )
    return fresh


class _Ahead:
    """On PostgreSQL, the next part's records read and decoded on a second connection (a thread) while this
    part's facts are stored: the server stores one part while Python decodes the next, on two cores rather than
    one after the other. A part's records never change once stored (ingest appends under the log's head lock), so
    what was read ahead is used when the cursors, locked, still stand where the read assumed (they do unless
    another runner moved them meanwhile: then the part is read again under the lock)."""

    def __init__(self, parts: list[list[tuple]], limit: int) -> None:
        self._parts = parts
        self._limit = limit
        self._on = isinstance(database.obj, pw.PostgresqlDatabase) and len(parts) > 1
        self._results: queue.Queue[tuple[int, dict[int, tuple[int, int]], Decoded | BaseException]] = queue.Queue(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facts-ahead", daemon=True)

    def __enter__(self) -> _Ahead:
        if self._on:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._on:
            self._stop.set()
            while self._thread.is_alive():  # let it see the stop (it may wait to hand over a part)
                with contextlib.suppress(queue.Empty):
                    self._results.get(timeout=0.1)
            self._thread.join()

    def _run(self) -> None:
        try:
            for n, part in enumerate(self._parts):
                ranges = [
                    Range(appliance, plant, done, min(head, done + self._limit), 0)
                    for appliance, head, plant, done in part
                    if min(head, done + self._limit) > done
                ]
                try:
                    got: Decoded | BaseException = _decode(ranges)
                except Exception as err:  # noqa: BLE001 - handed to the reader, which reads the part itself
                    got = err
                item = (n, {r.appliance: (r.after, r.upto) for r in ranges}, got)
                while not self._stop.is_set():
                    try:
                        self._results.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        finally:
            database.obj.close()  # this thread's connection

    def get(self, n: int, ranges: list[Range]) -> Decoded | None:
        """Part ``n`` as read ahead, if it was read over exactly ``ranges``; None: read it now."""
        while self._on:
            try:
                got, assumed, decoded = self._results.get(timeout=1)
                break
            except queue.Empty:
                if not self._thread.is_alive():  # it stopped short (it never should): the rest is read here
                    self._on = False
        if not self._on:
            return None
        if got != n:
            raise RuntimeError(f"parts out of order: {got} for {n}")
        if isinstance(decoded, BaseException) or assumed != {r.appliance: (r.after, r.upto) for r in ranges}:
            return None
        return decoded


def _parts(behind: list[tuple], limit: int, records: int) -> Iterable[list[tuple]]:
    """The appliances behind, in order, a part at a time: about ``records`` records to read in each."""
    part: list[tuple] = []
    size = 0
    for row in behind:
        part.append(row)
        size += min(row[1] - row[3], limit)
        if size >= records:
            yield part
            part, size = [], 0
    if part:
        yield part


def _transaction():  # type: ignore[no-untyped-def]
    db = database.obj
    return db.atomic("IMMEDIATE") if isinstance(db, pw.SqliteDatabase) else db.atomic()


def _lock_cursors(appliances: list[int]) -> list[tuple[int, int]]:
    """The cursors of ``appliances`` (which exist), locked in appliance order on PostgreSQL."""
    lock = "" if isinstance(database.obj, pw.SqliteDatabase) else " FOR UPDATE"
    return bulk.select_in(
        "SELECT appliance_id, seq FROM fact_cursor WHERE appliance_id IN ({}) ORDER BY appliance_id" + lock,
        appliances,
    )


def _ranges_cte(ranges: Sequence[Range], upto: str = "upto") -> tuple[str, list[int]]:
    """``WITH r(app, lo, hi) AS (VALUES ...)``: the part's ranges as a table, for one query over them all."""
    text = f"WITH r(app, lo, hi) AS (VALUES {', '.join(['(?, ?, ?)'] * len(ranges))}) "
    return text, [v for r in ranges for v in (r.appliance, r.after, getattr(r, upto))]


@dataclass
class Decoded:
    """A part's facts as they are to be stored (``STORED`` rows, a row per key) and, per key, the user and status
    of each appliance's fact of it, in appliance order."""

    rows: list[list]
    named: dict[tuple[str, str], list[tuple[str, str]]]
    facts: int
    text: str | None = None  # the rows as COPY text (PostgreSQL), made where they were decoded


def _decode(ranges: Sequence[Range]) -> Decoded:
    """Read and decode the part's facts. Within one appliance's range the last fact of a key wins; a key that facts
    of several appliances of a plant name in one part is stored once, the last appliance's (in appliance order)
    fact, counting one version for each, as appliance after appliance would have stored it."""
    if not ranges:
        return Decoded([], {}, 0)
    cte, params = _ranges_cte(ranges)
    rows = bulk.execute(
        cte + "SELECT l.appliance_id, l.seq, l.data FROM r JOIN log_record l ON l.appliance_id = r.app "
        "AND l.seq > r.lo AND l.seq <= r.hi WHERE l.type = 'dayfact' ORDER BY l.appliance_id, l.seq",
        params,
    ).fetchall()
    plant_of = {r.appliance: r.plant for r in ranges}
    latest: dict[tuple[int, str], tuple[int, dict]] = {}
    for appliance_id, seq, data in rows:
        fact = orjson.loads(data)["fact"]
        latest[(appliance_id, str(fact["key"]))] = (seq, fact)  # the last fact of a key in the range wins
    del rows
    stored: dict[tuple[str, str], list] = {}  # (plant, key) -> the row to store, versions counted
    named: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (plant, key) -> (user, status) of each appliance's
    for (appliance_id, key), (seq, fact) in latest.items():  # in appliance order, then the range's
        plant = plant_of[appliance_id]
        user = str(fact["emp"])
        before = stored.get((plant, key))
        status = str(fact["status"])
        stored[(plant, key)] = [
            plant,
            user,
            key,
            str(fact["date"]),
            str(fact.get("shift", "")),
            status,
            fact.get("start_ms"),
            fact.get("end_ms"),
            str(fact.get("watch", "")),
            str(fact.get("excusal", "")),
            fact_id(fact),
            appliance_id,
            seq,
            1 if before is None else before[-1] + 1,
        ]
        named.setdefault((plant, key), []).append((user, status))
    rows = list(stored.values())
    text = _copy_text(rows) if isinstance(database.obj, pw.PostgresqlDatabase) else None
    return Decoded(rows, named, len(latest), text)


def _store(decoded: Decoded, fresh: Fresh) -> None:
    """Store a part's facts and sort their badges into ``fresh``."""
    if not decoded.rows:
        return
    fresh.facts += decoded.facts
    versions = {(plant, key): v for plant, key, _user, v in _write(decoded.rows, text=decoded.text)}  # above 1
    for at, given in decoded.named.items():
        # as one upsert after another: the first fact of a key not stored before is new (attended or not by its
        # status), every later one (or every one, the key stored before) supersedes: a change to look at
        new = versions.get(at, 1) == len(given)
        for n, (user, status) in enumerate(given):
            if n == 0 and new and status in ATTENDED | OFF:
                fresh.attended.add((at[0], user))
            else:
                fresh.touched.add((at[0], user))


SUPERSEDE = '"versions" = attendance_day."versions" + excluded."versions"'


def _upsert(values: list[dict]) -> list[tuple]:
    """Store facts given as ``AttendanceDay`` rows by field name, one version each; (fact_key, user_id, versions)
    of each row written."""
    rows = [[row.get(c, row.get(c.removesuffix("_id"), 1)) for c in STORED] for row in values]
    return [(key, user, versions) for _plant, key, user, versions in _write(rows, every=True)]


def _write(rows: list[list], *, every: bool = False, text: str | None = None) -> list[tuple]:
    """Store the facts (``STORED`` columns, ``versions`` the number of facts of the key in this read); a fact of
    a key already stored supersedes it: the row takes the new fact and counts its versions on. Returns (plant,
    fact_key, user_id, versions) of each row that has had more than one fact now (stored before, or named twice
    in this read), or of ``every`` row.

    On PostgreSQL the rows are COPY'd into a scratch table dropped at commit and stored with one ``INSERT ...
    SELECT``: a million facts as parameters (arrays or VALUES lists) cost the client more to quote and the
    server more to parse than to store, and only the rows superseded come back."""
    if not rows:
        return []
    columns = ", ".join(f'"{c}"' for c in STORED)
    sets = ", ".join(f'"{c}" = excluded."{c}"' for c in STORED if c != "versions")
    tail = (
        f'ON CONFLICT ("plant_id", "fact_key") DO UPDATE SET {sets}, {SUPERSEDE} '
        'RETURNING "plant_id", "fact_key", "user_id", "versions"'
    )
    db = database.obj
    if not isinstance(db, pw.PostgresqlDatabase):
        out: list[tuple] = []
        marks = f"({bulk.marks(len(STORED))})"
        for part in bulk.chunks(rows, bulk.MAX_PARAMS // len(STORED)):
            text = f"INSERT INTO attendance_day ({columns}) VALUES {', '.join([marks] * len(part))} {tail}"
            out += [r for r in bulk.execute(text, [v for row in part for v in row]).fetchall() if every or r[3] > 1]
        return out
    with db.atomic():  # the scratch table lasts until the transaction's end (a savepoint inside one)
        db.execute_sql(
            f"CREATE TEMP TABLE fact_stage ON COMMIT DROP AS SELECT {columns} FROM attendance_day WITH NO DATA"
        )
        copy = f"COPY fact_stage ({', '.join(COPY_ORDER)}) FROM STDIN"
        db.cursor().copy_expert(copy, io.StringIO(text if text is not None else _copy_text(rows)))
        found = db.execute_sql(
            f"WITH w AS (INSERT INTO attendance_day ({columns}) SELECT {columns} FROM fact_stage {tail}) "
            'SELECT "plant_id", "fact_key", "user_id", "versions" FROM w' + ("" if every else ' WHERE "versions" > 1')
        ).fetchall()
        db.execute_sql("DROP TABLE fact_stage")
    return found


_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})  # COPY text's, as cloud.rows


COPY_ORDER = ("plant_id", "user_id", "fact_key", "work_date", "shift", "status", "watch", "excusal", "fact_id")
COPY_ORDER += ("start_ms", "end_ms", "appliance_id", "seq", "versions")  # the text columns first, then numbers
_TEXT = [STORED.index(c) for c in COPY_ORDER[:9]]
_NUMBERS = [STORED.index(c) for c in COPY_ORDER[9:]]


def _copy_text(rows: list[list]) -> str:
    """``STORED`` rows as COPY text in ``COPY_ORDER``: what ``cloud.rows.copy_text`` makes of them, in a
    quarter of its time (a row's text columns escaped in one pass: a NUL, which no text column can hold, would
    add a column and fail the COPY, as it failed the statement before)."""
    a, b, c, d, e, f, g, h, i = _TEXT
    j, k, m, n, o = _NUMBERS
    lines = []
    for r in rows:
        text = "\0".join((r[a], r[b], r[c], r[d], r[e], r[f], r[g], r[h], r[i])).translate(_ESCAPES)
        numbers = "\t".join(
            str(v) if type(v) is int else "\\N" if v is None else str(v).translate(_ESCAPES)
            for v in (r[j], r[k], r[m], r[n], r[o])
        )
        lines.append(text.replace("\0", "\t") + "\t" + numbers)
    lines.append("")
    return "\n".join(lines)


def fact_id(fact: dict) -> str:
    """The id a superseding fact names: SHA-256 of the fact's canonical JSON, as ``appliance.rules.fact_id``.

    A stored record passed ``ledger.record.parse`` (its values strings, integers below 2^53, booleans, null,
    objects and arrays: no floats), and on those orjson's sorted compact bytes are the canonical ones
    (``ledger.canonical``, property-tested there and in tests/cloud/escalation/test_intake_fast_path.py), five
    times faster than ``json``; what orjson refuses takes ``json``'s way."""
    try:
        return hashlib.sha256(orjson.dumps(fact, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError:
        return slow_fact_id(fact)


def slow_fact_id(fact: dict) -> str:
    """``fact_id`` as ``appliance.rules.dayfact.fact_id`` computes it (``json``)."""
    data = json.dumps(fact, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _punches(ranges: Sequence[Range], fresh: Fresh) -> None:
    cte, params = _ranges_cte(ranges, "punches_upto")
    plant_of = {r.appliance: r.plant for r in ranges}
    for appliance_id, employee, at_ms in bulk.execute(
        cte + "SELECT p.appliance_id, p.employee, MAX(p.at_utc_ms) FROM r JOIN punch p ON p.appliance_id = r.app "
        "AND p.seq > r.lo AND p.seq <= r.hi GROUP BY p.appliance_id, p.employee",
        params,
    ).fetchall():
        badge = (plant_of[appliance_id], employee)
        fresh.punches[badge] = max(at_ms, fresh.punches.get(badge, 0))


def badges(items: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    by_plant: dict[str, list[str]] = {}
    for plant, user in items:
        by_plant.setdefault(plant, []).append(user)
    return by_plant

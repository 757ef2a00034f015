"""Fuzz head office's ingest: N malformed MQTT messages through the worker's own handlers, then a good batch.

In process, against a real SQLite database in a temporary directory (or ``--database-url``, e.g. a
PostgreSQL made for the run): registers one appliance with a real key, signs a history of real
punch records, stores the first part, then sends ``--cases`` messages chosen at random: random
bytes, real batches truncated or mutated (bytes flipped, JSON values retyped, huge integers, deep
nesting, records re-signed with a stranger's key, oversize), batches on the wrong topics or
appliances, live-lane, device-status, status and configuration answers likewise, and replays of
real messages. Each goes to the handler the ingest worker (cloud/workers/ingest.py ``_one``) calls
for its topic: ``BatchIngest.handle`` (with the batch parsed ahead by ``prepare``, as the worker's
pool does, and its acknowledgement signed), ``LaneIngest.live``/``device``, ``record_status`` and
the appliance-status update. Prints:

  cases             sent, by handler, and the rate
  crashes           exceptions escaping a handler (or ``prepare``, which would end the worker's
                    parsing thread), each kind once with its first traceback line; limit 0
  outcomes          acknowledgements by status, quarantined messages
  quarantine        bytes kept, and the database's growth, per 1,000 quarantined messages (#24 item 1)
  good batch        after the fuzzing, the rest of the history in one batch, sent twice: each record
                    stored exactly once (limit: all, once), the second answered 'duplicate'

Exit status 1 if there was a crash or the good batch was not stored exactly once.

Run: .venv/bin/python bench/fuzz_ingest.py [--cases 100000] [--seed 1] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import peewee as pw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import TERM  # noqa: E402
from cloud.appliances import registry  # noqa: E402
from cloud.clock import SystemClock  # noqa: E402
from cloud.ingest.lanes import LaneIngest  # noqa: E402
from cloud.ingest.prepare import prepare  # noqa: E402
from cloud.ingest.verifier import BatchIngest  # noqa: E402
from cloud.plantconfig import config_push  # noqa: E402
from cloud.store import LogRecord, Punch, Quarantine, database, open_db, reconnecting  # noqa: E402
from cloud.workers.ingest import IngestWorker  # noqa: E402
from ledger import GENESIS_PREV, SignedRecord, SigningKey, make_record, merkle, note, topics  # noqa: E402
from ledger.config_message import ConfigStatus  # noqa: E402
from ledger.messages import MAX_MESSAGE_BYTES, Batch  # noqa: E402

PLANT, NAME = "fuzz-plant", "pi-fuzz"
LOG = f"punchproof/{PLANT}/{NAME}/1"
HISTORY = 600  # records signed; the fuzzing draws its real batches from the first CORPUS
CORPUS = 500
STORED_FIRST = 50  # stored before the fuzzing, so replays, overlaps and gaps all occur
HUGE_INTS = (2**53, 2**63 - 1, -(2**63), 2**64, 10**30, -1, -(2**53) - 1, 0)
WEIRD = (None, True, False, "", "abc", "\x00", "王" * 300, 1.5, -0.0, 1e308, [], {}, [[[]]], {"a": {"b": None}})


class Corpus:
    """The real material: one appliance's key, its signed history, a stranger's key."""

    def __init__(self, rng: random.Random) -> None:
        self.key, self.stranger = SigningKey.generate(), SigningKey.generate()
        self.records: list[SignedRecord] = []
        prev = GENESIS_PREV
        for seq in range(HISTORY):
            term = TERM | {"idx": seq, "t": f"2026-03-02T{7 + seq // 3600:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}"}
            record = make_record(
                key=self.key,
                log=LOG,
                seq=seq,
                type="punch",
                prev=prev,
                t_wall_ms=1_772_409_480_000 + seq,
                emp=f"E{seq}",
                term=term,
            )
            self.records.append(record)
            prev = record.leaf
        self.rng = rng

    def batch(self, first: int, last: int, *, checkpointed: bool, key: SigningKey | None = None) -> Batch:
        checkpoint = ""
        if checkpointed:
            leaves = [r.leaf for r in self.records[: last + 1]]
            cp = note.Checkpoint(LOG, last + 1, merkle.root(leaves))
            checkpoint = note.render(cp, [note.sign(cp, key or self.key)])
        return Batch(LOG, first, tuple(self.records[first : last + 1]), checkpoint)

    def real_batch(self) -> bytes:
        r = self.rng
        first = r.randrange(CORPUS)
        last = min(CORPUS - 1, first + r.choice((0, 1, 3, 9, 40)))
        return self.batch(first, last, checkpointed=r.random() < 0.5).encode()


class Cases:
    """Random messages: (topic, payload), each drawn from a kind of damage."""

    def __init__(self, rng: random.Random, corpus: Corpus) -> None:
        self.rng, self.corpus = rng, corpus
        self.recent: list[tuple[str, bytes]] = []  # for replays

    # ---- topics -----------------------------------------------------------------------------

    def topic(self, kind: str) -> str:
        r = self.rng
        if r.random() < 0.85:
            plant, name = PLANT, NAME
        else:
            plant, name = r.choice(((PLANT, "pi-99"), ("other", NAME), ("", NAME), (PLANT, ""), ("王", "x" * 300)))
        good = {
            "batch": topics.batch(plant, name),
            "live": topics.live(plant, name),
            "config": topics.config_applied(plant, name),
            "status": topics.status(plant, name),
            "device": topics.device(plant, name, r.choice(("gate-1", "gate-2", "门", "x" * 70, "t" * 300, "a/b", ""))),
        }[kind]
        if r.random() < 0.03:
            return r.choice(("pp", "pp/x", "pp//up/batch", "xx/a/b/up/batch", "pp/a/b/up/batch/extra", good + "\x00"))
        return good

    # ---- payloads ---------------------------------------------------------------------------

    def random_bytes(self) -> bytes:
        r = self.rng
        n = r.choice((0, 1, 2, 10, 100, 1000, r.randrange(5000)))
        return r.randbytes(n)

    def flip(self, payload: bytes) -> bytes:
        r = self.rng
        data = bytearray(payload)
        for _ in range(r.choice((1, 1, 2, 5, 30))):
            if not data:
                break
            at = r.randrange(len(data))
            op = r.randrange(4)
            if op == 0:
                data[at] ^= 1 << r.randrange(8)
            elif op == 1:
                data[at] = r.choice(b'{}[]",:0123456789\\-eE .ntf\x00\xff')
            elif op == 2:
                del data[at : at + r.randrange(1, 20)]
            else:
                data[at:at] = r.randbytes(r.randrange(1, 10))
        return bytes(data)

    def truncate(self, payload: bytes) -> bytes:
        return payload[: self.rng.randrange(len(payload) + 1)]

    def deep(self) -> Any:
        r = self.rng
        depth = 100_000 if r.random() < 0.01 else r.choice((50, 500, 1200, 5000))
        opener, closer = r.choice((("[", "]"), ('{"a":', "}")))
        return opener * depth + "1" + closer * depth

    def weird_value(self) -> Any:
        r = self.rng
        choice = r.randrange(4)
        if choice == 0:
            return r.choice(HUGE_INTS)
        if choice == 1:
            return r.choice(WEIRD)
        if choice == 2:
            return "x" * (70_000 if r.random() < 0.02 else 100)
        return {"k": r.choice(HUGE_INTS), "l": [r.choice(WEIRD)]}

    def mutate_json(self, value: Any, depth: int = 0) -> Any:
        """A copy of ``value`` with one node replaced, deleted or added."""
        r = self.rng
        if isinstance(value, dict) and value and (depth == 0 or r.random() < 0.7):
            key = r.choice(list(value))
            out = dict(value)
            action = r.randrange(5)
            if action == 0:
                del out[key]
            elif action == 1:
                out[r.choice(("extra", key + "x", "", "\x00"))] = self.weird_value()
            elif action == 2:
                out[key] = self.mutate_json(out[key], depth + 1)
            else:
                out[key] = self.weird_value()
            return out
        if isinstance(value, list) and value and r.random() < 0.8:
            out_list = list(value)
            at = r.randrange(len(out_list))
            action = r.randrange(5)
            if action == 0:
                del out_list[at]
            elif action == 1:
                out_list.insert(at, self.weird_value())
            elif action == 2:
                out_list = out_list * r.choice((2, 50))
            else:
                out_list[at] = self.mutate_json(out_list[at], depth + 1)
            return out_list
        return self.weird_value()

    def dumps(self, value: Any) -> bytes:
        text = json.dumps(value, ensure_ascii=self.rng.random() < 0.5)
        if self.rng.random() < 0.05 and text.endswith("}"):  # deep nesting beside the fields
            text = text[:-1] + ', "nest": ' + self.deep() + "}"
        return text.encode("utf-8", errors="surrogatepass")

    def mutated_batch(self) -> bytes:
        r = self.rng
        payload = self.corpus.real_batch()
        how = r.randrange(9)
        if how == 0:
            return self.flip(payload)
        if how == 1:
            return self.truncate(payload)
        if how in (2, 3):
            return self.dumps(self.mutate_json(json.loads(payload)))
        if how == 4:  # a record's own fields changed, its signature kept
            message = json.loads(payload)
            index = r.randrange(len(message["records"]))
            fields = json.loads(message["records"][index][0])
            message["records"][index][0] = json.dumps(self.mutate_json(fields), separators=(",", ":"))
            return self.dumps(message)
        if how == 5:  # signed by a stranger, or a checkpoint signed by one
            first = r.randrange(CORPUS)
            batch = self.corpus.batch(first, min(CORPUS - 1, first + 3), checkpointed=True, key=self.corpus.stranger)
            if r.random() < 0.5:
                records = tuple(
                    make_record(
                        key=self.corpus.stranger,
                        log=LOG,
                        seq=first + i,
                        type="punch",
                        prev=GENESIS_PREV,
                        t_wall_ms=0,
                        emp="E0",
                        term=TERM,
                    )
                    for i in range(2)
                )
                batch = Batch(LOG, first, records)
            return batch.encode()
        if how == 6:  # oversize, rarely (each is quarantined whole: half a megabyte), else bytes flipped
            if r.random() > 0.05:
                return self.flip(payload)
            message = json.loads(payload)
            message["pad"] = "x" * (MAX_MESSAGE_BYTES + r.randrange(10))
            return json.dumps(message).encode()
        if how == 7:  # a well-formed envelope around junk
            return self.dumps(
                {
                    "v": 1,
                    "kind": "batch",
                    "log": LOG,
                    "first": r.choice(HUGE_INTS),
                    "checkpoint": r.choice(("", "x\n\n— y")),
                    "records": [
                        [r.choice(("", "{}", "[]", "null", '{"seq":1}')), base64.b64encode(r.randbytes(64)).decode()]
                    ],
                }
            )
        return self.deep().encode()

    def device_payload(self) -> bytes:
        r = self.rng
        body: dict[str, Any] = {
            "terminal": "gate-1",
            "available": r.random() < 0.5,
            "error": "",
            "last_contact_ms": 1_772_409_600_000,
            "clock_offset_ms": -120,
            "records_left": 10,
        }
        return self.dumps(self.mutate_json(body)) if r.random() < 0.8 else json.dumps(body).encode()

    def config_payload(self) -> bytes:
        r = self.rng
        status = ConfigStatus(
            r.randrange(1, 5), "h" * 64, r.choice(("ok", "rejected")), r.randrange(5), 1_772_409_600_000
        )
        payload = status.encode()
        return self.dumps(self.mutate_json(json.loads(payload))) if r.random() < 0.8 else payload

    def case(self) -> tuple[str, bytes]:
        r = self.rng
        pick = r.random()
        if pick < 0.05 and self.recent:
            return r.choice(self.recent)  # a replay
        if pick < 0.12:
            kind, payload = r.choice(("batch", "live", "config", "status", "device")), self.random_bytes()
        elif pick < 0.45:
            kind, payload = "batch", self.mutated_batch()
        elif pick < 0.55:
            kind, payload = "batch", self.corpus.real_batch()  # genuine, mostly replays or gaps
        elif pick < 0.68:
            kind = "live"
            payload = self.mutated_batch() if r.random() < 0.7 else self.corpus.real_batch()
        elif pick < 0.80:
            kind, payload = "device", self.device_payload()
        elif pick < 0.90:
            kind, payload = "config", self.config_payload()
        elif pick < 0.93:
            kind, payload = "status", r.choice((b"online", b"offline", self.random_bytes(), b"x" * 1000))
        else:  # the wrong kind of message on a topic
            kind = r.choice(("batch", "live", "config", "status", "device"))
            payload = r.choice((self.device_payload, self.config_payload, self.corpus.real_batch))()
        message = (self.topic(kind), payload)
        if r.random() < 0.02:
            self.recent = (self.recent + [message])[-50:]
        return message


class Handlers:
    """The worker's dispatch (``IngestWorker._one``), each handler called as the worker calls it."""

    def __init__(self, worker: IngestWorker, ingest: BatchIngest, lanes: LaneIngest, witness: SigningKey) -> None:
        self.worker, self.ingest, self.lanes, self.witness = worker, ingest, lanes, witness
        self.clock = SystemClock()
        self.acks: Counter[str] = Counter()

    def handler(self, topic: str) -> str:
        if topic.endswith("/status"):
            return "status"
        if topic.endswith("/up/live"):
            return "live"
        if "/device/" in topic:
            return "device"
        if topic.endswith("/up/config"):
            return "config"
        return "batch"

    def call(self, topic: str, payload: bytes) -> None:
        name = self.handler(topic)
        if name == "status":
            self.worker._status(topic, payload)
        elif name == "live":
            reconnecting(lambda: self.lanes.live(topic, payload))
        elif name == "device":
            reconnecting(lambda: self.lanes.device(topic, payload))
        elif name == "config":
            reconnecting(lambda: config_push.record_status(topic, payload, self.clock))
        else:
            is_batch = topic.startswith(topics.PREFIX + "/") and topic.endswith("/up/batch")
            prepared = prepare(payload) if is_batch else None  # the worker's pool: an exception here ends it
            outcome = reconnecting(lambda: self.ingest.handle(topic, payload, prepared))
            if outcome is not None:  # what _acknowledge publishes
                outcome.ack.signed(self.witness).encode()
                self.acks[outcome.ack.status] += 1


def db_bytes(url: str) -> int:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return int(database.obj.execute_sql("SELECT pg_database_size(current_database())").fetchone()[0])


def quarantine_bytes() -> int:
    sql = "SELECT COALESCE(SUM(LENGTH(payload) + LENGTH(reason) + LENGTH(topic)), 0) FROM quarantine"
    return int(database.obj.execute_sql(sql).fetchone()[0])


def rejected() -> tuple[int, int]:
    """Quarantined messages: kept whole, and counted only (past a source's sample, cloud.ingest.quarantine)."""
    try:
        from cloud.ingest.quarantine import QuarantineOverflow
    except ImportError:  # before the sample: every message kept whole
        return Quarantine.select().count(), 0
    counted = QuarantineOverflow.select(pw.fn.COALESCE(pw.fn.SUM(QuarantineOverflow.count), 0)).scalar()
    return Quarantine.select().count(), int(counted)


def run(cases: int, seed: int, database_url: str | None, *, quiet: bool = False) -> dict[str, Any]:
    logging.basicConfig(level=logging.CRITICAL)  # each quarantined message is logged: not on the terminal here
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="fuzz-ingest-") as tmp:
        url = database_url or f"sqlite:///{tmp}/cloud.sqlite3"
        db = open_db(url)
        try:
            return _run(cases, rng, seed, url, quiet=quiet)
        finally:
            db.close()


def _run(cases: int, rng: random.Random, seed: int, url: str, *, quiet: bool) -> dict[str, Any]:
    from cloud.config import CloudSettings

    clock = SystemClock()
    corpus = Corpus(rng)
    registry.register(
        {
            "plant": PLANT,
            "appliance": NAME,
            "log": LOG,
            "public_key": corpus.key.verify_key.pem(),
            "kid": corpus.key.kid,
        },
        clock,
    )
    witness = SigningKey.generate()
    ingest, lanes = BatchIngest(clock, witness), LaneIngest(clock)
    worker = IngestWorker(CloudSettings(database_url=url), clock=clock)  # only its status handler is used
    handlers = Handlers(worker, ingest, lanes, witness)
    assert ingest.handle(topics.batch(PLANT, NAME), corpus.batch(0, STORED_FIRST - 1, checkpointed=True).encode())
    generator = Cases(rng, corpus)
    by_handler: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    first_crash: dict[str, str] = {}
    kept_before, counted_before = rejected()
    q_bytes_before, db_before = quarantine_bytes(), db_bytes(url)
    started = time.monotonic()
    for number in range(cases):
        topic, payload = generator.case()
        name = handlers.handler(topic)
        by_handler[name] += 1
        try:
            handlers.call(topic, payload)
        except Exception as err:  # noqa: BLE001 - what the fuzzing counts: any exception escaping a handler
            kind = f"{name}: {type(err).__name__}"
            crashes[kind] += 1
            if kind not in first_crash:
                last = traceback.extract_tb(err.__traceback__)[-1]
                first_crash[kind] = (
                    f"{str(err)[:160]!r} at {Path(last.filename).name}:{last.lineno}; "
                    f"topic {topic[:80]!r}, payload {payload[:120]!r}{'...' if len(payload) > 120 else ''}"
                )
                if not quiet:  # with where it came from, in our code
                    frames = [f for f in traceback.extract_tb(err.__traceback__) if "site-packages" not in f.filename]
                    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames[-5:]))
                    print(f"  crash {kind}: {first_crash[kind]}\n    {where}", file=sys.stderr, flush=True)
        if not quiet and number and number % 50_000 == 0:
            print(f"  {number:,} cases, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.monotonic() - started
    kept, counted = rejected()
    kept, counted = kept - kept_before, counted - counted_before
    q_bytes = quarantine_bytes() - q_bytes_before
    grown = db_bytes(url) - db_before

    # the good batch: the rest of the history after whatever head the fuzzing left, twice
    head = LogRecord.select().count() - 1
    good = corpus.batch(head + 1, HISTORY - 1, checkpointed=True).encode()
    first_answer = handlers_answer(ingest, witness, good)
    second_answer = handlers_answer(ingest, witness, good)
    seqs = Counter(seq for (seq,) in LogRecord.select(LogRecord.seq).tuples())
    once = all(seqs[s] == 1 for s in range(HISTORY)) and len(seqs) == HISTORY
    punches = Punch.select().count()
    result = {
        "cases": cases,
        "elapsed": elapsed,
        "by_handler": by_handler,
        "crashes": crashes,
        "first_crash": first_crash,
        "acks": handlers.acks,
        "quarantined": kept + counted,
        "kept": kept,
        "quarantine_bytes": q_bytes,
        "db_growth": grown,
        "good": (first_answer, second_answer),
        "stored_once": once and punches == HISTORY,
        "records": len(seqs),
        "punches": punches,
    }
    if not quiet:
        report(result, seed, url)
    return result


def handlers_answer(ingest: BatchIngest, witness: SigningKey, payload: bytes) -> str:
    outcome = ingest.handle(topics.batch(PLANT, NAME), payload, prepare(payload))
    return outcome.ack.status if outcome else "none"


def report(r: dict[str, Any], seed: int, url: str) -> None:
    per_k = 1000 / max(1, r["quarantined"])
    rate = r["cases"] / r["elapsed"]
    print(f"cases:          {r['cases']:,} in {r['elapsed']:.1f} s ({rate:,.0f}/s, seed {seed}, {url.split(':')[0]})")
    print("by handler:     " + ", ".join(f"{k}: {v:,}" for k, v in sorted(r["by_handler"].items())))
    print(f"crashes:        {sum(r['crashes'].values()):,} (exceptions escaping a handler; limit 0)")
    for kind, count in sorted(r["crashes"].items()):
        print(f"  {count:>7,}  {kind}: {r['first_crash'][kind]}")
    print("acks:           " + ", ".join(f"{k}: {v:,}" for k, v in sorted(r["acks"].items())))
    print(f"quarantined:    {r['quarantined']:,} messages ({r['kept']:,} kept whole, the rest counted only)")
    print(
        f"quarantine:     {r['quarantine_bytes'] * per_k / 1024:,.1f} KiB kept per 1,000 quarantined messages; "
        f"the database grew {r['db_growth'] * per_k / 1024:,.1f} KiB per 1,000 (#24 item 1)"
    )
    good, again = r["good"]
    print(f"good batch:     answered {good!r}, sent again {again!r} (limit: 'ok', then 'duplicate')")
    print(
        f"stored:         {r['records']:,} records of {HISTORY:,}, {r['punches']:,} punches; "
        f"each once: {r['stored_once']}"
    )


def ok(r: dict[str, Any]) -> bool:
    return not r["crashes"] and r["stored_once"] and r["good"][1] == "duplicate" and r["good"][0] in ("ok", "duplicate")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", default=None, help="an empty database to fuzz (default: a temporary SQLite)")
    args = parser.parse_args()
    return 0 if ok(run(args.cases, args.seed, args.database_url)) else 1


if __name__ == "__main__":
    sys.exit(main())

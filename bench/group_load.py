"""Head office at group scale: 1,000 appliances at a shift change against Mosquitto, N ingest workers, PostgreSQL.

Each simulated appliance is what the real one is to the broker: its own MQTT v5 session with its own login
(issued by ``cloud.appliances.broker_auth`` as ``punchproof cloud register-appliance`` does, checked by the
broker's password file and ACL over TLS, docs/broker-security.md), a persistent session, QoS 1, batches of its
signed log each ending at a signed checkpoint, at most ``--inflight`` (32) batches awaiting the cloud's
acknowledgement, and the appliance's flow control (appliance/sync/uplink.py): when it is behind, one batch
carries everything up to the latest checkpoint within 256 records; a ``gap`` acknowledgement sends again
from the cloud's head (once: later gaps naming the same head are ignored), an acknowledgement that does not
come within 10 s likewise; a batch the broker dropped for want of a subscriber (PUBACK reason 16) sends one
record again every 0.5-2 s until a worker takes it.

Every appliance punches ``--rate`` (17) records a second for ``--seconds``: a shift change at a plant of
1,000 people is ~17 punches a second for a quarter of an hour. Every ``--batch-ms`` (500 ms, a terminal poll)
it checkpoints what it has and sends it. The logs (signed records, signed checkpoints) are made once and kept
under ``--cache`` (/var/tmp/pp-group-load); generating them is not timed.

Against that: ``punchproof cloud ingest`` processes, N of them on one MQTT v5 shared subscription, and one
PostgreSQL (tests/harness/postgres.py, fsync on), all on this machine. Printed for each N, measured only:

- stored records/s while the shift change lasts and until the backlog is stored, beside the offered rate
  (``--appliances`` x ``--rate``) as a ratio: below 1.00, the cloud saturated at that figure;
- p50/p99 punch -> stored: from the moment a record was punched (its place in the schedule) until the
  cloud's acknowledgement that the range holding it is verified and committed reached the appliance;
- with ``--late-workers S``: the workers start S s after the shift change began, so that every batch until
  they are subscribed is dropped by the broker; printed: how long after they were subscribed every record
  was stored (the recovery an admin restarting head office's workers would see);
- where it saturates: CPU seconds each part used during the run (Mosquitto, the ingest workers with their
  parsing processes, PostgreSQL, the load generator), against the machine's cores x the run's length.

Run it niced and short, the cores may be shared:

    nice -n 10 .venv/bin/python bench/group_load.py [--appliances 1000] [--rate 17] [--seconds 10]
        [--workers 1,2,4] [--generators 2] [--late-workers S]
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import os
import pickle
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg2  # noqa: E402
from _common import TERM  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from ledger import GENESIS_PREV, SignedRecord, SigningKey, make_record, merkle, note, topics  # noqa: E402
from ledger.messages import Ack, Batch  # noqa: E402

PER_PLANT = 5  # appliances per plant: 1,000 appliances are 200 plants
BATCH_RECORDS = 256  # the appliance's batch_records: at most this many records per batch, ending at a checkpoint
INFLIGHT = 32  # the appliance's [mqtt] inflight
ACK_TIMEOUT_S = 10.0  # the appliance's [mqtt] ack_timeout_s
NO_SUBSCRIBERS = 16  # PUBACK reason: no worker subscribed, the broker dropped the batch (appliance/sync/uplink.py)
PROBE_FIRST_S, PROBE_MAX_S = 0.5, 2.0  # then one record again this often, doubling, until a worker answers
T0_MS = 1772409480000  # 2026-03-02 07:58 (Asia/Shanghai 15:58): the records' wall times start here


def names(index: int) -> tuple[str, str]:
    return f"plant-{index // PER_PLANT:03d}", f"pi-{index % PER_PLANT}"


# -- the logs, made once -------------------------------------------------------------------------


@dataclass
class Log:
    """One appliance's log for the run: records in order, and at the end of each send window the checkpoint
    then signed (size = records up to it)."""

    plant: str
    name: str
    origin: str
    public_key: str
    records: list[tuple[bytes, bytes]]  # (data, sig)
    windows: list[tuple[int, str]]  # (size, checkpoint note)


def make_log(index: int, per_window: list[int]) -> Log:
    plant, name = names(index)
    origin = f"punchproof/{plant}/{name}/1"
    key = SigningKey.generate()
    prev, tree, records, windows, seq = GENESIS_PREV, merkle.CompactRange(), [], [], 0
    for count in per_window:
        for _ in range(count):
            record = make_record(
                key=key,
                log=origin,
                seq=seq,
                type="punch",
                prev=prev,
                t_wall_ms=T0_MS + seq * 59,
                t_boot_us=seq,
                boot_id="group",
                clk={"sync": 1, "src": "kernel", "err_us": 5000},
                emp=str(100000 + (index * 997 + seq) % 1000),
                src="zk",
                term=TERM,
            )
            prev = record.leaf
            tree.append(prev)
            records.append((record.data, record.sig))
            seq += 1
        checkpoint = note.Checkpoint(origin, tree.size, tree.root())
        windows.append((tree.size, note.render(checkpoint, [note.sign(checkpoint, key)])))
    return Log(plant, name, origin, key.verify_key.pem(), records, windows)


def schedule(rate: float, seconds: float, batch_ms: int) -> list[int]:
    """Records punched in each send window: ``rate`` a second, spread evenly."""
    windows = int(seconds * 1000 / batch_ms)
    return [int((w + 1) * batch_ms * rate / 1000) - int(w * batch_ms * rate / 1000) for w in range(windows)]


def _make_shard(args: tuple[Path, list[int], list[int]]) -> None:
    path, indexes, per_window = args
    logs = [make_log(i, per_window) for i in indexes]
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(logs, protocol=pickle.HIGHEST_PROTOCOL))
    tmp.rename(path)


def cached_logs(cache: Path, appliances: int, per_window: list[int], shards: int) -> list[Path]:
    """The shards' files, made now in ``shards`` processes if not made before with these parameters."""
    folder = cache / f"v1-{appliances}-{'-'.join(map(str, per_window[:4]))}-{len(per_window)}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"shard-{s}.pickle" for s in range(shards)]
    todo = [(p, list(range(s, appliances, shards)), per_window) for s, p in enumerate(paths) if not p.exists()]
    if todo:
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(len(todo)) as pool:
            pool.map(_make_shard, todo)
        print(f"made {appliances:,} signed logs in {time.perf_counter() - started:.0f} s (kept in {folder})")
    return paths


# -- one generator process: its share of the appliances, one selector loop over their sessions -----


@dataclass
class Appliance:
    log: Log
    client: mqtt.Client
    phase_s: float  # when in each window this appliance sends: spread over the window, as real plants are
    acked: int = -1  # the cloud's head as acknowledged
    next: int = 0  # the first record not sent
    inflight: dict[int, tuple[int, float]] = field(default_factory=dict)  # first -> (last, sent at)
    window: int = 0  # send windows come so far (their records are checkpointed and may be sent)
    mids: dict[int, int] = field(default_factory=dict)  # MQTT message id -> first seq of the batch in flight
    probing: int = 0  # > 0 while the broker drops its batches (no worker subscribed): probes dropped so far
    paused_until: float = 0.0
    resent_from: int | None = None  # the cloud's head a gap made it resend from


class Generator:
    """Its appliances' sessions in one selector loop. Work is done only where something happened: an
    appliance whose send window has come (a heap of the next ones), one whose acknowledgement arrived, a
    session with bytes left to write; ack timeouts are looked for once a second. The generator's own CPU
    is printed beside the cloud's."""

    def __init__(self, logs: list[Log], broker: dict, batch_ms: int, rate: float) -> None:
        self.batch_s = batch_ms / 1000
        self.rate = rate
        self.broker = broker
        self.selector = selectors.DefaultSelector()
        self.apps: list[Appliance] = []
        self.latencies = array("d")
        self.sent_batches = 0
        self.resends = 0
        self.statuses: dict[str, int] = {}
        self.t0 = 0.0
        self.ready: set[int] = set()  # appliances to try sending for (a window came, an ack freed room)
        self.writing: set[int] = set()  # sessions with bytes paho could not write yet
        self.paused: dict[int, float] = {}  # appliances waiting to probe again, and until when
        self.dropped = 0  # batches the broker dropped for want of a subscriber
        for n, log in enumerate(logs):
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=f"pp-{log.plant}-{log.name}", protocol=mqtt.MQTTv5
            )
            username, password = broker["logins"][(log.plant, log.name)]
            client.username_pw_set(username, password)
            client.tls_set(ca_certs=broker["cafile"])
            client.max_inflight_messages_set(INFLIGHT * 2)
            client.max_queued_messages_set(0)
            app = Appliance(log, client, phase_s=self.batch_s * n / max(1, len(logs)))
            client.on_message = lambda _c, _u, message, n=n: self._ack(n, message.payload)
            client.on_publish = lambda _c, _u, mid, reason, _p, n=n: self._puback(n, mid, reason)
            self.apps.append(app)

    def connect(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600
        pending = set(range(len(self.apps)))
        for n, app in enumerate(self.apps):
            app.client.on_connect = lambda _c, _u, _f, _r, _p, n=n: pending.discard(n)
            host, port = self.broker["host"], self.broker["port"]
            app.client.connect(host, port, keepalive=60, clean_start=True, properties=props)
            self.selector.register(app.client.socket(), selectors.EVENT_READ, n)
        deadline = time.monotonic() + 120
        while pending and time.monotonic() < deadline:
            self._pump(0.1)
        if pending:
            raise SystemExit(f"{len(pending)} appliance sessions were not accepted by the broker")
        for n, app in enumerate(self.apps):
            app.client.subscribe(topics.ack(app.log.plant, app.log.name), qos=1)
            self._wrote(n)
        self._pump(0.5)

    def _wrote(self, n: int) -> None:
        if self.apps[n].client.want_write():
            self.writing.add(n)

    def _pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            client = self.apps[key.data].client
            client.loop_read(100)
            sock = client.socket()
            while sock is not None and getattr(sock, "pending", lambda: 0)():
                client.loop_read(100)
            self._wrote(key.data)
        for n in list(self.writing):
            client = self.apps[n].client
            client.loop_write()
            if not client.want_write():
                self.writing.discard(n)

    def _ack(self, n: int, payload: bytes) -> None:
        app = self.apps[n]
        ack = Ack.decode(payload)
        now = time.time()
        self.statuses[ack.status] = self.statuses.get(ack.status, 0) + 1
        batch = app.inflight.get(ack.first)
        if ack.status in ("gap", "rejected") and (batch is None or batch[0] != ack.last):
            return
        if ack.status == "gap" and ack.head_seq == app.resent_from:
            return  # sent before the resend from that head, which is on its way
        app.probing = 0
        if ack.head_seq > app.acked:
            base = self.t0 + app.phase_s
            self.latencies.extend(now - (base + seq / self.rate) for seq in range(app.acked + 1, ack.head_seq + 1))
            app.acked = ack.head_seq
        for first in [f for f, (last, _) in app.inflight.items() if last <= app.acked]:
            del app.inflight[first]
        if ack.status in ("gap", "rejected"):
            app.inflight.clear()
            app.next = app.acked + 1
            app.resent_from = ack.head_seq if ack.status == "gap" else None
            self.resends += 1
        self.ready.add(n)

    def _puback(self, n: int, mid: int, reason) -> None:
        app = self.apps[n]
        first = app.mids.pop(mid, None)
        if getattr(reason, "value", 0) != NO_SUBSCRIBERS or first is None or first not in app.inflight:
            return
        self.dropped += 1
        app.probing += 1
        app.paused_until = time.time() + min(PROBE_MAX_S, PROBE_FIRST_S * 2 ** (app.probing - 1))
        self.paused[n] = app.paused_until
        app.inflight.clear()
        app.mids.clear()
        app.next = app.acked + 1
        app.resent_from = None

    def _send(self, n: int, now: float) -> None:
        app = self.apps[n]
        if now < app.paused_until:
            return
        window = 1 if app.probing else INFLIGHT  # no worker took the last batch: one record at a time
        while len(app.inflight) < window and app.window and app.next < app.log.windows[app.window - 1][0]:
            end, checkpoint = next(
                (w for w in reversed(app.log.windows[: app.window]) if w[0] <= app.next + BATCH_RECORDS), (0, "")
            )
            if end <= app.next:  # no checkpoint within 256 records: a batch of 256 without one
                end, checkpoint = app.next + BATCH_RECORDS, ""
            if app.probing and end > app.next + 1:
                end, checkpoint = app.next + 1, ""
            records = tuple(SignedRecord(d, s) for d, s in app.log.records[app.next : end])
            payload = Batch(app.log.origin, app.next, records, checkpoint).encode()
            info = app.client.publish(topics.batch(app.log.plant, app.log.name), payload, qos=1)
            app.mids[info.mid] = app.next
            app.inflight[app.next] = (end - 1, now)
            app.next = end
            self.sent_batches += 1
        self._wrote(n)

    def _timeouts(self, now: float) -> None:
        """The appliance's ack timeout: nothing acknowledged within 10 s, everything in flight is sent again."""
        for n, app in enumerate(self.apps):
            if any(now - sent > ACK_TIMEOUT_S for _, sent in app.inflight.values()):
                app.inflight.clear()
                app.mids.clear()
                app.next = app.acked + 1
                app.resent_from = None
                self.resends += 1
                self.ready.add(n)

    def run(self, t0: float, deadline: float) -> None:
        self.t0 = t0
        total = sum(len(a.log.records) for a in self.apps)
        windows = [(t0 + app.phase_s + self.batch_s, n) for n, app in enumerate(self.apps)]
        heapq.heapify(windows)
        checked = kept_alive = time.time()
        while time.time() < deadline and len(self.latencies) < total:
            now = time.time()
            while windows and windows[0][0] <= now:
                _, n = heapq.heappop(windows)
                app = self.apps[n]
                app.window += 1
                self.ready.add(n)
                if app.window < len(app.log.windows):
                    heapq.heappush(windows, (t0 + app.phase_s + (app.window + 1) * self.batch_s, n))
            for n, until in list(self.paused.items()):
                if until <= now:
                    del self.paused[n]
                    self.ready.add(n)
            for n in self.ready:
                self._send(n, now)
            self.ready.clear()
            if now - checked >= 1:
                checked = now
                self._timeouts(now)
            if now - kept_alive > 10:  # keepalive pings, as paho's own loop sends them
                kept_alive = now
                for app in self.apps:
                    app.client.loop_misc()
            wait = min(0.05, max(0.0, windows[0][0] - time.time())) if windows else 0.05
            self._pump(wait)

    def close(self) -> None:
        for app in self.apps:
            app.client.disconnect()
            app.client.loop_write()


def generate_load(shard: Path, broker: dict, batch_ms: int, rate: float, ready, go, out) -> None:
    logs = pickle.loads(shard.read_bytes())
    generator = Generator(logs, broker, batch_ms, rate)
    generator.connect()
    ready.put(len(logs))
    t0, deadline = go.get()
    cpu = time.process_time()
    generator.run(t0, deadline)
    out.put(
        (
            generator.latencies.tobytes(),
            sum(len(a.log.records) for a in generator.apps),
            generator.sent_batches,
            generator.resends,
            generator.statuses,
            time.process_time() - cpu,
            generator.dropped,
        )
    )
    generator.close()


# -- the cloud -----------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes and all their descendants (alive ones; parse pools included)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except (OSError, IndexError):
            continue
        todo += [int(c) for c in children]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=17.0, help="punches a second at each appliance")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the shift change lasts")
    parser.add_argument("--batch-ms", type=int, default=500, help="an appliance sends what it has this often")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes")
    parser.add_argument("--drain", type=float, default=180.0, help="at most this long after the shift change")
    parser.add_argument("--cache", type=Path, default=Path("/var/tmp/pp-group-load"))
    parser.add_argument(
        "--late-workers",
        type=float,
        default=None,
        metavar="S",
        help="start the ingest workers S s after the shift change begins (the broker drops every batch till then)",
    )
    args = parser.parse_args()
    per_window = schedule(args.rate, args.seconds, args.batch_ms)
    shards = cached_logs(args.cache, args.appliances, per_window, args.generators)
    total = args.appliances * sum(per_window)
    offered = args.appliances * args.rate
    print(
        f"{args.appliances:,} appliances x {args.rate:g} punches/s for {args.seconds:g} s = {total:,} records, "
        f"offered {offered:,.0f} records/s, a batch per appliance every {args.batch_ms} ms; "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    from tests.harness.postgres import PostgresServer

    root = Path(tempfile.mkdtemp(prefix="pp-group-"))
    server = PostgresServer(durable=True).start()
    broker = None
    try:
        broker, logins, cloud_login, cafile = secured_broker(root, server, args.appliances)
        for workers in (int(w) for w in args.workers.split(",")):
            run(args, workers, root, server, broker, logins, cloud_login, cafile, shards, total, offered)
    finally:
        if broker is not None:
            broker.kill()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def secured_broker(root: Path, server, appliances: int):
    """Mosquitto as docs/broker-security.md sets it up: TLS, the appliances' and the cloud's logins, the ACL,
    written by cloud.appliances.broker_auth from a database holding every appliance's login."""
    from cloud.appliances import broker_auth
    from cloud.store import open_db
    from punchproof.broker import Mosquitto, Security
    from tests.harness.clock import FrozenClock
    from tests.harness.tls import TestCA

    ca = TestCA.create(root / "ca")
    cert = ca.issue(("localhost", "127.0.0.1"))
    files = broker_auth.BrokerFiles(
        root / "broker" / "passwd", root / "broker" / "cloud-passwd", root / "broker" / "acl"
    )
    db = open_db(server.create_database("logins"))
    clock = FrozenClock(datetime.now(UTC))
    logins = {}
    for index in range(appliances):
        plant, name = names(index)
        issued = broker_auth.issue_appliance(plant, name, clock)
        logins[(plant, name)] = (issued.username, issued.password)
    cloud = broker_auth.issue_cloud("ingest", clock)
    broker_auth.write_files(files)
    db.close()
    security = Security(cert.certfile, cert.keyfile, files.password_file, files.cloud_password_file, files.acl_file)
    broker = Mosquitto(root / "broker", host="127.0.0.1", security=security)
    broker.start()
    return broker, logins, (cloud.username, cloud.password), str(ca.cafile)


def run(args, workers, root, server, broker, logins, cloud_login, cafile, shards, total, offered) -> None:
    from cloud.admin.config_edit import update_file
    from cloud.appliances import registry
    from cloud.store import open_db
    from tests.harness.clock import FrozenClock

    url = server.create_database(f"group{workers}")
    conf = root / f"cloud-{workers}.toml"
    subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "init", "-o", conf, "--state-dir", root / f"cloud-{workers}",
         "--database-url", url, "--mqtt-host", "localhost", "--mqtt-port", str(broker.cloud_port), "--no-tsa"],
        check=True, capture_output=True,
    )  # fmt: skip
    update_file(
        conf,
        "mqtt",
        {"shared": True, "tls": True, "ca_file": cafile, "username": cloud_login[0], "password": cloud_login[1]},
    )
    db = open_db(url)
    clock = FrozenClock(datetime.now(UTC))
    for shard in shards:
        for log in pickle.loads(shard.read_bytes()):
            registry.register(
                {"plant": log.plant, "appliance": log.name, "log": log.origin, "public_key": log.public_key}, clock
            )
    db.close()
    logs = [root / f"ingest-{workers}-{i}.log" for i in range(workers)]
    procs: list[subprocess.Popen] = []

    def start_workers() -> float:
        """Start the workers; when they said they subscribed (time.time())."""
        procs.extend(
            subprocess.Popen(
                [sys.executable, "-m", "punchproof", "cloud", "ingest", "-c", conf, "--worker-id", f"w{i}"],
                stdout=subprocess.DEVNULL,
                stderr=open(log, "w"),  # noqa: SIM115
            )
            for i, log in enumerate(logs)
        )
        wait_for(lambda: all(f"ingest worker w{i} connected" in log.read_text() for i, log in enumerate(logs)), 300)
        return time.time()

    late = args.late_workers
    if late is None:
        start_workers()
        time.sleep(1)  # their subscriptions, sent just before that line, reach the broker: a batch before them is lost
    context = multiprocessing.get_context("spawn")
    ready, go, out = context.Queue(), context.Queue(), context.Queue()
    broker_info = {"host": "localhost", "port": broker.port, "cafile": cafile, "logins": logins}
    gens = [
        context.Process(target=generate_load, args=(s, broker_info, args.batch_ms, args.rate, ready, go, out))
        for s in shards
    ]
    for g in gens:
        g.start()
    connected = sum(ready.get(timeout=600) for _ in gens)
    with psycopg2.connect(url) as conn:
        conn.autocommit = True
        parts = {
            "Mosquitto": lambda: [broker.pid],
            f"{workers} ingest worker(s)": lambda: [p.pid for p in procs],
            "PostgreSQL": lambda: [server.pid],
            "load generator": lambda: [g.pid for g in gens],
        }
        before = {name: cpu_seconds(pids()) for name, pids in parts.items()}
        t0 = time.time() + 2
        deadline = t0 + args.seconds + args.drain + (late or 0)
        for _ in gens:
            go.put((t0, deadline))
        subscribed = t0
        if late is not None:
            time.sleep(max(0.0, t0 + late - time.time()))  # the schedule of the restart, not a wait for a condition
            subscribed = start_workers()
        results = [out.get(timeout=deadline - time.time() + 120) for _ in gens]
        ended = time.time()
        after = {name: cpu_seconds(pids()) for name, pids in parts.items()}
        with conn.cursor() as cursor:
            cursor.execute("SELECT coalesce(sum(seq + 1), 0) FROM log_head")
            stored = int(cursor.fetchone()[0])
            cursor.execute("SELECT max(received_ms) FROM log_record")
            last_ms = cursor.fetchone()[0] or 0
    for g in gens:
        g.join(timeout=60)
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)
    latencies = array("d")
    for data, *_ in results:
        latencies.frombytes(data)
    ordered = sorted(latencies)
    missing = total - len(ordered)  # not acknowledged when the run ended: each waited longer than the run

    def p(q: float) -> str:
        at = min(total - 1, int(q * total))
        return f"{ordered[at]:.1f} s" if at < len(ordered) else f"over {ended - t0:.0f} s"

    span = max(1e-9, (last_ms / 1000 if last_ms else ended) - t0)
    rate = stored / span
    print(
        f"{workers} worker(s): {connected:,} sessions; stored {stored:,} of {total:,} records in {span:.1f} s = "
        f"{rate:,.0f} records/s, ratio {rate / offered:.2f} of the offered {offered:,.0f}/s; punch -> stored "
        f"p50 {p(0.5)}, p99 {p(0.99)} ({len(ordered):,} acknowledged, {missing:,} not by the end); "
        f"{sum(r[2] for r in results):,} batches sent, {sum(r[3] for r in results):,} resends, "
        f"acks {merge(r[4] for r in results)}",
        flush=True,
    )
    if late is not None:
        stored_all = stored == total and last_ms
        done = f"{last_ms / 1000 - subscribed:.1f} s after" if stored_all else "NOT all stored by the end,"
        print(
            f"    workers started {late:g} s into the shift change, subscribed at +{subscribed - t0:.1f} s; the broker "
            f"dropped {sum(r[6] for r in results):,} batches meanwhile; every record stored {done} they were "
            "subscribed",
            flush=True,
        )
    wall = ended - t0
    cores = os.cpu_count() or 1
    used = {name: after[name] - before[name] for name in parts}
    print(
        "    CPU during the run ("
        + f"{wall:.0f} s x {cores} cores = {wall * cores:.0f} core-s): "
        + ", ".join(f"{name} {sec:.0f} s ({sec / (wall * cores):.0%})" for name, sec in used.items())
        + f"; the most: {max(used, key=used.get)}; "
        + f"{stored / max(1e-9, sum(v for k, v in used.items() if k != 'load generator')):,.0f} records stored per "
        + "CPU-second of broker, workers and PostgreSQL together",
        flush=True,
    )


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("the ingest workers did not connect to the broker (see their logs)")
        time.sleep(0.1)


def merge(dicts) -> str:
    out: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return json.dumps(out, sort_keys=True)


if __name__ == "__main__":
    main()

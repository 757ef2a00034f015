"""Cloud: ingest throughput with 1, 2 and 4 workers on one MQTT v5 shared subscription and one PostgreSQL.

Several appliances' backlogs (signed, chained, checkpointed, as the appliance makes them) are
published at full speed to a real Mosquitto; N real ``punchproof cloud ingest`` processes share
the subscription and one throwaway PostgreSQL database. Timed from the first publish until every
log is verified and committed. Beside each figure: the same run with one worker, as the ratio.

On a machine with few cores the workers, the broker and PostgreSQL share them: the figure says
what this machine gives, not what the design allows.

Run: .venv/bin/python bench/ingest_scaleout.py [--appliances 8] [--records 25000] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg2  # noqa: E402
from cloud_backlog import generate  # noqa: E402

from ledger import SigningKey, topics  # noqa: E402
from punchproof.broker import Mosquitto  # noqa: E402
from tests.harness.postgres import PostgresServer  # noqa: E402


def punchproof(*args: object, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "punchproof", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def run(
    workers: int,
    url: str,
    root: Path,
    broker: Mosquitto,
    logs: dict[str, tuple[SigningKey, list[bytes]]],
    per_log: int,
) -> float:
    conf = root / f"cloud-{workers}.toml"
    subprocess.run(
        [sys.executable, "-m", "punchproof", "cloud", "init", "-o", conf, "--state-dir", root / f"cloud-{workers}",
         "--database-url", url, "--mqtt-port", str(broker.port)],
        check=True, capture_output=True,
    )  # fmt: skip
    conf.write_text(conf.read_text().replace("shared = false", "shared = true"))
    for name, (key, _) in logs.items():
        identity = root / f"{name}.json"
        identity.write_text(json.dumps({"plant": "bench", "appliance": name, "log": f"punchproof/bench/{name}/1",
                                        "public_key": key.verify_key.pem(), "kid": key.kid}))  # fmt: skip
        subprocess.run([sys.executable, "-m", "punchproof", "cloud", "register-appliance", "-c", conf, identity],
                       check=True, capture_output=True)  # fmt: skip
    procs = [punchproof("cloud", "ingest", "-c", conf, "--worker-id", f"w{i}") for i in range(workers)]
    with psycopg2.connect(url) as conn:
        conn.autocommit = True
        wait_for(lambda: subscribers(broker) >= workers, 30)
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        publisher.max_inflight_messages_set(256)
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        start = time.perf_counter()
        for index in range(max(len(b) for _, b in logs.values())):  # interleaved, in order within each log
            for name, (_, batches) in logs.items():
                if index < len(batches):
                    publisher.publish(topics.batch("bench", name), batches[index], qos=1)
        heads_sql = "SELECT coalesce(sum(seq + 1), 0) FROM log_head"
        records = per_log * len(logs)

        def done() -> bool:
            with conn.cursor() as cursor:
                cursor.execute(heads_sql)
                return cursor.fetchone()[0] >= records

        wait_for(done, 3600)
        elapsed = time.perf_counter() - start
        publisher.loop_stop()
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=60)
    return elapsed


def subscribers(broker: Mosquitto) -> int:
    text = broker.log_path.read_text(errors="replace") if broker.log_path.exists() else ""
    return text.count("New client connected") - text.count("disconnected")


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appliances", type=int, default=8)
    parser.add_argument("--records", type=int, default=25_000, help="per appliance")
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    started = time.perf_counter()
    logs = {}
    for i in range(args.appliances):
        key = SigningKey.generate()
        logs[f"pi-{i:02d}"] = (key, generate(key, args.records, log=f"punchproof/bench/pi-{i:02d}/1"))
    total = args.appliances * args.records
    print(f"generated {total:,} records for {args.appliances} appliances in {time.perf_counter() - started:.0f} s")
    root = Path(tempfile.mkdtemp(prefix="pp-scaleout-"))
    broker = Mosquitto(root / "broker", extra_config="log_type all\n").start()
    server = PostgresServer(durable=True).start()
    results: dict[int, float] = {}
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            url = server.create_database(f"scale{workers}")
            elapsed = run(workers, url, root, broker, logs, args.records)
            results[workers] = elapsed
            base = results.get(1)
            ratio = f"{base / elapsed:.2f}x one worker" if base else ""
            print(f"{workers} worker(s): {elapsed:6.1f} s = {total / elapsed:8,.0f} records/s  {ratio}", flush=True)
    finally:
        server.stop()
        broker.kill()
    print(f"(this machine: {os.cpu_count()} cores shared by the workers, Mosquitto and PostgreSQL)")


if __name__ == "__main__":
    main()

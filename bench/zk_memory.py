"""The appliance's memory while it reads a ZK terminal holding N records for the first time (issue #25, item 3).

Real processes, as an installer runs them: ``punchproof emulate zk --records N`` (a terminal whose log already
holds N punches of its roster), ``punchproof appliance init`` / ``run`` against it. The daemon starts while the
terminal is still off, so its idle size is measured with everything loaded but nothing read; then the terminal
comes up and the daemon's first read stores all N records. The daemon's RSS (/proc/<pid>/status VmRSS) is
sampled every 20 ms throughout. Printed: the idle size, the peak during the read, the growth beside the limit
(50 MB) as a ratio, and the time the read took to store every record.

Run: .venv/bin/python bench/zk_memory.py [--records 1000000]
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from plant_common import cli, free_port, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 50.0


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.last = pid, 0, 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.last = rss_kb(self.pid)
            except (OSError, RuntimeError):
                return
            self.peak = max(self.peak, self.last)
            time.sleep(0.02)


def stored(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM punch").fetchone()[0])
    except sqlite3.Error:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--roster", type=int, default=2000)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory(prefix="zkmem-") as tmp:
        root = Path(tmp)
        port = free_port()
        conf = root / "appliance.toml"
        cli("cloud", "init", "-o", root / "cloud.toml", "--state-dir", root / "cloud")
        cli(
            *("appliance", "init", "-o", conf, "--plant", "bench-plant", "--appliance", "pi-01"),
            *("--state-dir", root / "state", "--cloud-key", root / "cloud" / "cloud-witness.pub"),
            *("--mqtt-port", free_port(), "--terminal", f"zk1=127.0.0.1:{port}"),
        )
        db = root / "state" / "appliance.sqlite3"
        log = (root / "daemon.log").open("ab")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "punchproof", "appliance", "run", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
        emulator = None
        try:
            wait_for(db.exists, 60, "the appliance's database")

            def unavailable() -> bool:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                    try:
                        row = conn.execute("SELECT available FROM terminal_health WHERE name = 'zk1'").fetchone()
                    except sqlite3.Error:
                        return False
                return row is not None and row[0] == 0

            wait_for(unavailable, 90, "the daemon's first (failed) poll of the terminal that is still off")
            idle_samples = []
            for _ in range(50):  # one second, settled
                idle_samples.append(rss_kb(daemon.pid))
                time.sleep(0.02)
            idle = max(idle_samples)
            sampler = Sampler(daemon.pid)
            sampler.start()
            emulator = subprocess.Popen(
                [sys.executable, "-m", "punchproof", "emulate", "zk", "--port", str(port), "--roster", str(args.roster)]
                + ["--records", str(args.records), "--punch-every", "0"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd=ROOT,
            )
            t0 = time.monotonic()
            wait_for(lambda: stored(db) >= args.records, 3600, f"{args.records} records stored", every=0.5)
            took = time.monotonic() - t0
            sampler.running = False
            sampler.join()
        finally:
            for proc in (emulator, daemon):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout=60)
    growth = (sampler.peak - idle) / 1024
    print(f"records read and stored:   {args.records:,} in {took:.1f} s (emulator start included)")
    print(f"appliance daemon idle RSS: {idle / 1024:.1f} MB")
    print(f"peak RSS during the read:  {sampler.peak / 1024:.1f} MB")
    print(f"growth: {growth:.1f} MB   limit {LIMIT_MB:.0f} MB   ratio {growth / LIMIT_MB:.2f}")


if __name__ == "__main__":
    main()

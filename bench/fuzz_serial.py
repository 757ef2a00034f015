"""Serial readers under garbage: random byte streams into the real daemon's card reader and R30x module.

The appliance daemon runs as in a plant (its readers opened through pyserial on ``socket://`` endpoints,
group commit, the signed log). Into the card reader's line go N random streams: random bytes (any value,
line ends included, as a reader at the wrong baud rate or a noisy cable sends), and now and then the line
of a card nobody owns; into the R30x module's line, random bytes between its real answers. Then a known
card and a known finger: both must be stored. Counted: errors the daemon logged (a crash of a reader's
thread would be one), the reader still available, every signed record by kind.

Printed beside the limits: 0 errors, 2 of 2 good punches stored after the garbage, and the signed records
per unreadable read, against the 1 per read the appliance signed before noise episodes were counted.

Run: .venv/bin/python bench/fuzz_serial.py [--streams 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from appliance.store import LogRecord, Punch  # noqa: E402
from firmware_bridge.readers.emulators import CardReaderEmulator, R30xEmulator  # noqa: E402
from firmware_bridge.readers.endpoints import SocketEndpoint  # noqa: E402
from ledger import parse  # noqa: E402
from tests.appliance.test_push import Appliance, appliance_settings  # noqa: E402
from tests.harness.clock import FrozenClock  # noqa: E402
from tests.harness.wait import wait_until  # noqa: E402


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def stream(rng: random.Random) -> bytes:
    if rng.random() < 0.05:  # a card nobody owns, well formed
        return f"{rng.randrange(10**9, 10**10):010d}\r\n".encode()
    data = bytearray(rng.randbytes(rng.randrange(1, 120)))
    for _ in range(rng.randrange(0, 3)):
        data.insert(rng.randrange(0, len(data) + 1), rng.choice(b"\r\n\x03"))
    return bytes(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    errors = Errors()
    logging.getLogger().addHandler(errors)
    clock = FrozenClock()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "cards.csv").write_text("卡号,工号\n0012345678,E001\n", encoding="utf-8-sig")
        (root / "pages.csv").write_text("page,employee\n0,E001\n1,E002\n", encoding="utf-8")
        card_port, finger_port = SocketEndpoint().plug(), SocketEndpoint().plug()
        settings = appliance_settings(
            root,
            [
                {"name": "gate-card", "kind": "card", "url": card_port.url, "cards_file": "cards.csv"},
                {"name": "gate-finger", "kind": "r30x", "url": finger_port.url, "pages_file": "pages.csv"},
            ],
        )
        plant = Appliance(settings, clock).start()
        try:
            reader = plant.daemon.readers.readers["gate-card"]
            wait_until(lambda: reader.loop.opens, message="the card reader's port open")  # opening discards input
            card = CardReaderEmulator(card_port)
            module = R30xEmulator(finger_port).start()
            module.enroll(1, "finger-li")
            sent_bytes = 0
            started = time.monotonic()
            for n in range(args.streams):
                data = stream(rng)
                card.write_raw(data)
                sent_bytes += len(data)
                if n % 50 == 0:
                    finger_port.write(rng.randbytes(rng.randrange(1, 40)))
                if n % 100 == 99:
                    clock.advance(seconds=1)  # 100,000 streams: about 28 minutes of plant time
                if n % 5000 == 4999:
                    before = reader.reads
                    wait_until(lambda b=before: reader.reads > b, timeout=60, message="the reader keeping up")
            card.write_raw(b"\r\n")
            clock.advance(seconds=5)  # past the repeat window of any unknown card
            card.present_decimal(12345678)
            wait_until(
                lambda: Punch.select().where(Punch.terminal == "gate-card").count() == 1,
                timeout=120,
                message="the good card after the garbage",
            )
            module.place("finger-li")
            wait_until(
                lambda: Punch.select().where(Punch.terminal == "gate-finger").count() == 1,
                timeout=60,
                message="the good finger after the garbage",
            )
            elapsed = time.monotonic() - started
            module.stop()
            kinds: Counter[str] = Counter()
            for row in LogRecord.select().where(LogRecord.type == "incident"):
                kinds[parse(bytes(row.data))["kind"]] += 1
            unreadable = reader.reads - kinds["unknown_card"] - 1
            good = Punch.select().count()
            print(f"streams sent:                 {args.streams:,} ({sent_bytes:,} bytes) in {elapsed:.1f} s")
            print(f"card reader lines read:       {reader.reads:,} (unreadable {unreadable:,})")
            print(f"signed incidents by kind:     {dict(sorted(kinds.items()))}")
            noise = kinds["bad_reader_read"] + kinds["reader_noise"]
            print(
                f"signed records per unreadable read: {noise / max(unreadable, 1):.4f}  "
                f"(before noise episodes: 1 per read; ratio {noise / max(unreadable, 1):.4f})"
            )
            print(f"errors logged:                {len(errors.records)}  (limit 0)")
            print(f"good punches after garbage:   {good} of 2  (limit 2)")
            print(f"reader available at the end:  {reader.loop.available}")
            for record in errors.records[:5]:
                print("  error:", record.getMessage())
        finally:
            plant.stop()
            card_port.unplug()
            finger_port.unplug()


if __name__ == "__main__":
    main()

"""The demo's time clock: an emulated ZKTeco terminal (``firmware_bridge.zk``) whose workers punch on cue.

The terminal enrols the demo's workers with their names, as HR's sheet has them, and serves the ZK protocol
on ``port`` once ``start()`` is called; ``play(presses)`` then presses each worker's finger at its moment
(in or out), in a thread, so the punches arrive live as they would at a plant: the appliance reads them,
the kiosk shows them, the board counts them. Nobody punches who is not in ``presses``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from firmware_bridge.zk.emulator import ZKEmulator
from firmware_bridge.zk.emulator_state import TerminalState
from punchproof.demo_story import Press, Worker

log = logging.getLogger(__name__)


class DemoTerminal:
    def __init__(
        self,
        workers: Sequence[Worker],
        port: int,
        tz: ZoneInfo,
        *,
        serial: str = "DEMO-ZK-0001",
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.workers = tuple(workers)
        self.port = port
        self.tz = tz
        self.serial = serial
        self.now = now
        self.pressed = 0
        self._emulator: ZKEmulator | None = None
        self._player: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def connections(self) -> int:
        """How many times a client (the appliance) connected so far."""
        return self._emulator.connections if self._emulator is not None else 0

    def start(self) -> DemoTerminal:
        state = TerminalState(serial=self.serial, tz=self.tz)
        for worker in self.workers:
            state.add_user(worker.badge, worker.name)
        self._emulator = ZKEmulator(state, "127.0.0.1", self.port).start()
        return self

    def play(self, presses: Sequence[Press]) -> None:
        """Press each of ``presses`` at its moment (a moment already past: at once), in a thread."""
        if self._emulator is None:
            raise RuntimeError("start() the terminal first")
        state = self._emulator.state
        names = {w.badge: w.name for w in self.workers}

        def run() -> None:
            for press in sorted(presses, key=lambda p: p.at):
                wait = (press.at - self.now()).total_seconds()
                if wait > 0 and self._stopping.wait(wait):
                    return
                punch = state.punch(press.badge, state=press.state, verify=1)
                self.pressed += 1
                log.info(
                    "%s %s %s at %s",
                    press.badge,
                    names.get(press.badge, ""),
                    "out" if press.state else "in",
                    punch.time,
                )

        self._player = threading.Thread(target=run, name="demo-punches", daemon=True)
        self._player.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._player is not None:
            self._player.join(timeout=5)
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None

"""Which terminal recorded the punches: its model, serial number and firmware, signed into the log.

An arbitrator reading an evidence bundle asks what device made each record. The appliance states it in an
``incident`` record of kind ``terminal_identity`` (an incident of nobody's: no worker, no terminal's bytes, so every
bundle of the period discloses it): ``term`` gives the terminal's ``name`` (as configured), ``src`` (``zk``, ``adms``,
``card``, ``r30x``), ``sn``, ``model``, ``firmware`` (each "" when the terminal does not say), a ZK terminal's
``platform``, a serial reader's ``port``, and ``first_seen_ms``, when the appliance first read a terminal of that
serial; ``change`` says why the record was made: ``new`` (never stated before), ``changed`` (model, serial or
firmware differ from the last statement, which ``before`` repeats) or ``restated`` (the first statement of a plant
day, so that a bundle of any day carries the identity of every terminal read that day).

The last statement of each terminal is found in the log itself at the first use, so a restart neither repeats it
nor forgets it. Construction does no I/O.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from appliance.capture.punchlog import Entry, LogWriter
from appliance.clock import Clock, to_ms
from appliance.store import LogRecord
from ledger.record import parse

log = logging.getLogger(__name__)

KIND = "terminal_identity"
COMPARED = ("sn", "model", "firmware")  # what a change is: the terminal's name and port are the plant's settings
RECHECK_S = 3600  # a terminal that must be asked what it is (a ZK terminal) is asked again after this long


@dataclass(frozen=True)
class Identity:
    """What a terminal says it is (and, for a serial reader, where it is plugged in)."""

    name: str
    src: str
    sn: str
    model: str = ""
    firmware: str = ""
    port: str = ""
    platform: str = ""  # a ZK terminal's hardware platform (ZMM220_TFT...), beside its model

    def term(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "name": self.name,
            "src": self.src,
            "sn": self.sn,
            "model": self.model,
            "firmware": self.firmware,
        }
        if self.port:
            fields["port"] = self.port
        if self.platform:
            fields["platform"] = self.platform
        return fields


class Provenance:
    """Signs each terminal's identity when it is first read, whenever its model, serial or firmware change, and once
    every plant day it is read. Thread-safe: terminal workers, the push receiver and the readers share one."""

    def __init__(self, writer: LogWriter, clock: Clock, tz: tzinfo) -> None:
        self._writer = writer
        self._clock = clock
        self._tz = tz
        self._last: dict[str, dict[str, Any]] = {}  # terminal name -> the term of its latest statement
        self._day: dict[str, str] = {}  # terminal name -> the plant day of that statement
        self._loaded: set[str] = set()
        self._checked: dict[str, float] = {}  # terminal name -> when (monotonic) its identity was last compared
        self._lock = threading.Lock()

    def due(self, name: str, sn: str | None = None) -> bool:
        """Whether ``name``'s identity is to be compared again: never stated, not yet today, ``sn`` is not the last
        one stated, or an hour has passed since it was (a firmware upgraded at the terminal). A caller that must ask
        the terminal for its model and firmware asks only then, and passes the answer to ``seen``."""
        with self._lock:
            self._load(name)
            last = self._last.get(name)
            if last is None or self._day.get(name) != self._today():
                return True
            if sn is not None and last.get("sn") != sn:
                return True
            return self._clock.monotonic() - self._checked.get(name, float("-inf")) >= RECHECK_S

    def seen(self, identity: Identity) -> int | None:
        """Sign ``identity`` if it is due; return the record's seq, or None when nothing was signed."""
        with self._lock:
            self._load(identity.name)
            now_ms = to_ms(self._clock.now())
            today = self._today()
            self._checked[identity.name] = self._clock.monotonic()
            last = self._last.get(identity.name)
            term = identity.term()
            if last is None:
                change, before = "new", None
            elif any(last.get(k, "") != term[k] for k in COMPARED):
                change, before = "changed", {k: last.get(k, "") for k in COMPARED}
            elif self._day.get(identity.name) != today:
                change, before = "restated", None
            else:
                return None
            same_serial = (
                last is not None and last.get("sn") == identity.sn and isinstance(last.get("first_seen_ms"), int)
            )
            term["first_seen_ms"] = last["first_seen_ms"] if same_serial else now_ms
            body: dict[str, Any] = {"kind": KIND, "change": change, "term": term}
            if before is not None:
                body["before"] = before
            seq = self._writer.append([Entry("incident", body)])[0]
            self._last[identity.name], self._day[identity.name] = term, today
        if change != "restated":
            log.info(
                "terminal %s: %s identity signed (seq %d): model %r, serial %r, firmware %r",
                identity.name,
                change,
                seq,
                identity.model,
                identity.sn,
                identity.firmware,
            )
        return seq

    def _today(self) -> str:
        return self._clock.now().astimezone(self._tz).date().isoformat()

    def _load(self, name: str) -> None:
        """The latest statement of ``name`` in the log (incidents are few: read newest first until found)."""
        if name in self._loaded:
            return
        self._loaded.add(name)
        query = LogRecord.select(LogRecord.data).where(LogRecord.type == "incident").order_by(LogRecord.seq.desc())
        for row in query.iterator():
            data = bytes(row.data)
            if b'"terminal_identity"' not in data:
                continue
            fields = parse(data)
            term = fields.get("term")
            if fields.get("kind") == KIND and isinstance(term, dict) and term.get("name") == name:
                self._last[name] = term
                self._day[name] = datetime.fromtimestamp(fields["t_wall_ms"] / 1000, self._tz).date().isoformat()
                return

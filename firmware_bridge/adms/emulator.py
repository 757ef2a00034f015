"""An emulated ADMS push terminal that talks real HTTP (``http.client``) to a receiver.

It behaves as ZK push firmware does: handshake (``options=all``) and resume after the
``ATTLOGStamp`` the server returns; push its log in ATTLOG batches with ``Stamp=<stamp of the
last record>``; keep a batch until the server answers ``OK`` (a refused or unanswered push is
sent again, unchanged, later: nothing is lost); poll ``getrequest`` (saying its user and finger
counts and fingerprint version in ``INFO=``), run the commands and report each result to
``devicecmd``. Each record's stamp is its position in the log (1, 2, 3...). Text goes out in the
terminal's encoding (GB18030 by default).

It keeps users and fingerprint templates: ``DATA UPDATE``/``DELETE`` of ``USERINFO``, ``FINGERTMP``
and (with ``biodata=True``, as newer firmware, which then refuses FINGERTMP) ``BIODATA``, and
``DATA QUERY`` of each, answered by uploading the table before the result. A finger enrolled at its
keypad (``enrol_finger``) is uploaded at its next round as a real terminal does: an OPERLOG
``FP PIN=..`` line, or a ``table=BIODATA`` line. ``identify`` is a finger on its sensor.

Tests drive it step by step (``run_once``); ``start()`` runs the same loop in a thread.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import http.client
import logging
import random
import signal
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from firmware_bridge.adms.directory import fields_of
from firmware_bridge.zk.emulator_state import keypad_template
from firmware_bridge.zk.wire import decode_time

log = logging.getLogger(__name__)


class PushFailed(Exception):
    """The receiver could not be reached, or did not answer OK."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    pin: str
    time: datetime  # naive: the terminal's clock
    state: int
    verify: int
    workcode: int = 0

    def line(self) -> str:
        return f"{self.pin}\t{self.time:%Y-%m-%d %H:%M:%S}\t{self.state}\t{self.verify}\t{self.workcode}\t0\t0"


class AdmsTerminalEmulator:
    """A push terminal. Construction does no I/O."""

    def __init__(
        self,
        serial: str,
        host: str,
        port: int,
        *,
        tz: tzinfo,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        clock_offset: timedelta = timedelta(0),
        encoding: str = "gb18030",
        batch_size: int = 200,
        timeout: float = 3.0,
        follows_date_header: bool = False,
        biodata: bool = False,
        fp_version: str = "10",
    ) -> None:
        self.serial = serial
        self.host, self.port = host, port
        self.tz = tz
        self.now = now
        self.clock_offset = clock_offset
        self.encoding = encoding
        self.batch_size = batch_size
        self.timeout = timeout
        self.follows_date_header = follows_date_header
        self.records: list[LogRecord] = []
        self.users: dict[str, dict[str, str]] = {}
        self.fingers: dict[tuple[str, int], tuple[int, bytes]] = {}  # (PIN, finger) -> (valid flag, template)
        self.biodata = biodata
        self.fp_version = fp_version
        self.uploads: list[tuple[str, str]] = []  # (table, line) enrolled at the keypad, not yet uploaded
        self.operlog_stamp = 0
        self.refuse: dict[str, int] = {}  # test control: commands starting with a key are answered with its code
        self.options: dict[str, str] = {}
        self.acked = 0  # records the server has confirmed (the server's ATTLOGStamp after a handshake)
        self.handshaken = False
        self.pending: tuple[int, bytes] | None = None  # (stamp, body) of the batch not yet confirmed
        self.results: list[str] = []  # devicecmd lines not yet delivered
        self.executed: list[str] = []
        self.pushes = 0
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the terminal's own life --------------------------------------------------------------

    def device_now(self) -> datetime:
        return (self.now() + self.clock_offset).astimezone(self.tz).replace(tzinfo=None, microsecond=0)

    def punch(self, pin: str, *, state: int = 0, verify: int = 1, when: datetime | None = None) -> LogRecord:
        with self.lock:
            record = LogRecord(pin, when or self.device_now(), state, verify)
            self.records.append(record)
            return record

    def enrol_finger(self, pin: str, finger: int, template: bytes | None = None) -> bytes:
        """A worker enrols a finger at this terminal's keypad: kept, recognised at once, and uploaded at the
        next round. Returns the template."""
        with self.lock:
            if pin not in self.users:
                raise KeyError(f"no user {pin} on terminal {self.serial}")
            data = template if template is not None else keypad_template(f"{self.serial}/{pin}", finger)
            self.fingers[(pin, finger)] = (1, data)
            self.uploads.append(self._finger_line(pin, finger))
            return data

    def identify(self, template: bytes) -> str | None:
        """A finger on the sensor: the PIN of the user whose valid finger it is, or None."""
        with self.lock:
            return next(
                (pin for (pin, _), (valid, data) in self.fingers.items() if valid == 1 and data == template), None
            )

    def finger(self, pin: str, finger: int) -> bytes | None:
        with self.lock:
            held = self.fingers.get((pin, finger))
            return held[1] if held is not None else None

    # ---- the protocol -------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Handshake if needed, push what is unconfirmed, poll and run commands, report results.
        Returns False when the receiver could not be reached or refused us (records are kept)."""
        try:
            if not self.handshaken:
                self.handshake()
            while self.push():
                pass
            self.upload()
            self.poll()
            return True
        except PushFailed as err:
            log.info("%s: %s; will try again", self.serial, err)
            return False

    def handshake(self) -> dict[str, str]:
        status, text, headers = self._request("GET", "/iclock/cdata", {"options": "all", "pushver": "2.4.1"})
        if status != 200:
            raise PushFailed(f"handshake refused: {status} {text.strip()}")
        options = dict(line.partition("=")[::2] for line in text.splitlines()[1:] if "=" in line)
        with self.lock:
            self.options = options
            stamp = options.get("ATTLOGStamp", "None")
            self.acked = min(int(stamp), len(self.records)) if stamp.isdigit() else 0
            self.pending = None  # rebuilt from the server's stamp
            self.handshaken = True
        if self.follows_date_header and "Date" in headers:
            self._set_clock(parsedate_to_datetime(headers["Date"]).astimezone(self.tz).replace(tzinfo=None))
        return options

    def push(self) -> bool:
        """Send the next unconfirmed batch. True if one was accepted."""
        with self.lock:
            if self.pending is None:
                batch = self.records[self.acked : self.acked + self.batch_size]
                if not batch:
                    return False
                body = "".join(r.line() + "\r\n" for r in batch).encode(self.encoding)
                self.pending = (self.acked + len(batch), body)
            stamp, body = self.pending
        status, text, _ = self._request(
            "POST", "/iclock/cdata", {"table": "ATTLOG", "Stamp": str(stamp)}, body, "application/x-www-form-urlencoded"
        )
        if status != 200 or not text.startswith("OK"):
            raise PushFailed(f"ATTLOG push not accepted: {status} {text.strip()}")
        with self.lock:
            if self.pending is not None and self.pending[0] == stamp:
                self.acked, self.pending = stamp, None
            self.pushes += 1
        return True

    def upload(self) -> None:
        """Send what was enrolled at the keypad since the last round (kept until the server answers OK)."""
        with self.lock:
            pending = list(self.uploads)
        for table in ("OPERLOG", "BIODATA"):
            lines = [line for t, line in pending if t == table]
            if lines:
                self._upload(table, lines)
        with self.lock:
            del self.uploads[: len(pending)]

    def info(self) -> str:
        """What the terminal says of itself with each poll: firmware, users, fingers, records, address,
        fingerprint version, face version, faces enrolled, faces, functions."""
        with self.lock:
            users, fingers, records = len(self.users), len(self.fingers), len(self.records)
        return f"Ver 8.0.4-20180809,{users},{fingers},{records},127.0.0.1,{self.fp_version},7,0,0,101"

    def poll(self) -> list[str]:
        self._flush_results()
        status, text, _ = self._request("GET", "/iclock/getrequest", {"INFO": self.info()})
        if status != 200:
            raise PushFailed(f"getrequest refused: {status} {text.strip()}")
        ran = []
        for line in text.splitlines():
            if not line.startswith("C:"):
                continue
            _, command_id, command = line.split(":", 2)
            code, verb, content = self._execute(command)
            report = f"ID={command_id}&Return={code}&CMD={verb}"
            with self.lock:
                self.results.append(report + ("\n" + content if content else ""))
                self.executed.append(command)
            ran.append(command)
        self._flush_results()
        return ran

    def _execute(self, command: str) -> tuple[int, str, str]:
        verb, _, rest = command.partition(" ")
        refused = next((code for prefix, code in self.refuse.items() if command.startswith(prefix)), None)
        if refused is not None:
            return refused, "DATA" if verb == "DATA" else verb, ""
        if command.startswith("SET OPTION "):
            key, _, value = command[len("SET OPTION ") :].partition("=")
            if key == "DateTime":
                self._set_clock(self._parse_datetime(value))
            self.options[key] = value
            return 0, "SET OPTION", ""
        if verb == "DATA":
            with self.lock:
                return self._data(rest), "DATA", ""
        if verb in ("CHECK", "REBOOT"):
            self.handshaken = False  # re-reads the options (and the stamp) on the next round
            return 0, verb, ""
        if verb == "INFO":
            info = f"~SerialNumber={self.serial}\nUserCount={len(self.users)}\nAttLogCount={len(self.records)}"
            return 0, "INFO", info
        return -1002, verb, ""

    def _data(self, command: str) -> int:
        """``DATA <UPDATE|DELETE|QUERY> <table> <fields>``: the return code."""
        action, _, rest = command.partition(" ")
        table, _, rest = rest.partition(" ")
        table = table.upper()
        _, fields = fields_of(rest)
        fields = {k.upper() if k.upper() in ("PIN", "TMP") else k: v for k, v in fields.items()}
        pin = fields.get("PIN", "")
        if table == "BIODATA" and not self.biodata or table == "FINGERTMP" and self.biodata:
            return -1004  # this model keeps its fingers in the other table
        if action == "QUERY":
            if table == "USERINFO":
                self._upload("OPERLOG", [self._user_line(p) for p in self.users])
            elif table in ("FINGERTMP", "BIODATA"):
                self._upload(
                    "OPERLOG" if table == "FINGERTMP" else "BIODATA", [self._finger_line(*k)[1] for k in self.fingers]
                )
            else:
                return -1004
            return 0
        if not pin:
            return -1002
        if (action, table) == ("UPDATE", "USERINFO"):
            if "Privilege" in fields:
                fields["Pri"] = fields.pop("Privilege")
            self.users[pin] = {**self.users.get(pin, {}), **fields}
            return 0
        if (action, table) == ("DELETE", "USERINFO"):
            self.users.pop(pin, None)
            for k in [k for k in self.fingers if k[0] == pin]:
                del self.fingers[k]
            return 0
        number = fields.get("FID" if table == "FINGERTMP" else "No", "")
        if action == "DELETE" and table in ("FINGERTMP", "BIODATA"):
            for k in [k for k in self.fingers if k[0] == pin and (not number or str(k[1]) == number)]:
                del self.fingers[k]
            return 0
        if action == "UPDATE" and table in ("FINGERTMP", "BIODATA"):
            if pin not in self.users or not number.isdigit() or int(number) > 9:
                return -1  # no such user, or no such finger
            if table == "BIODATA" and fields.get("Type") != "1":
                return -1004  # faces and palms: not on this model
            try:
                data = base64.b64decode(fields.get("TMP", ""), validate=True)
            except (binascii.Error, ValueError):
                return -1002
            if table == "FINGERTMP":
                valid = int(fields.get("Valid", "1") or 1)
            else:
                valid = 3 if fields.get("Duress") == "1" else int(fields.get("Valid", "1") == "1")
            self.fingers[(pin, int(number))] = (valid, data)
            return 0
        return -1002

    def _user_line(self, pin: str) -> str:
        u = self.users[pin]
        return f"USER PIN={pin}\tName={u.get('Name', '')}\tPri={u.get('Pri', '0')}\tCard={u.get('Card', '')}"

    def _finger_line(self, pin: str, finger: int) -> tuple[str, str]:
        """(table, line) that uploads one finger, as this model does."""
        valid, data = self.fingers[(pin, finger)]
        text = base64.b64encode(data).decode("ascii")
        if not self.biodata:
            return "OPERLOG", f"FP PIN={pin}\tFID={finger}\tSize={len(text)}\tValid={valid}\tTMP={text}"
        duress = int(valid == 3)
        line = (
            f"BIODATA Pin={pin}\tNo={finger}\tIndex=0\tValid={int(valid in (1, 3))}\tDuress={duress}\tType=1"
            f"\tMajorVer={self.fp_version}\tMinorVer=0\tFormat=0\tTmp={text}"
        )
        return "BIODATA", line

    def _upload(self, table: str, lines: list[str]) -> None:
        body = "".join(line + "\r\n" for line in lines).encode(self.encoding)
        query = {"table": table}
        if table == "OPERLOG":
            self.operlog_stamp += 1
            query["Stamp"] = str(self.operlog_stamp)
        status, text, _ = self._request("POST", "/iclock/cdata", query, body)
        if status != 200:
            raise PushFailed(f"{table} push not accepted: {status} {text.strip()}")

    def _flush_results(self) -> None:
        with self.lock:
            if not self.results:
                return
            body = "\n".join(self.results).encode(self.encoding)
        status, text, _ = self._request("POST", "/iclock/devicecmd", {}, body)
        if status != 200:
            raise PushFailed(f"devicecmd not accepted: {status} {text.strip()}")
        with self.lock:
            self.results.clear()

    def _set_clock(self, wanted: datetime) -> None:
        self.clock_offset = wanted.replace(tzinfo=self.tz) - self.now().replace(microsecond=0)

    @staticmethod
    def _parse_datetime(value: str) -> datetime:
        return decode_time(int(value)) if value.isdigit() else datetime.strptime(value, "%Y-%m-%d %H:%M:%S")

    def _request(
        self, method: str, path: str, query: dict[str, str], body: bytes | None = None, content_type: str = "text/plain"
    ) -> tuple[int, str, dict[str, str]]:
        url = path + "?" + urllib.parse.urlencode({"SN": self.serial, **query})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        headers = {"User-Agent": "iClock Proxy/1.09"}
        if body is not None:
            headers["Content-Type"] = content_type
        try:
            conn.request(method, url, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, data.decode(self.encoding, errors="replace"), dict(response.getheaders())
        except (OSError, http.client.HTTPException) as err:
            raise PushFailed(f"{self.host}:{self.port} unreachable ({err})") from err
        finally:
            conn.close()

    # ---- running on its own -------------------------------------------------------------------

    def start(self, *, every_s: float = 3.0) -> AdmsTerminalEmulator:
        def loop() -> None:
            while not self._stop.is_set():
                self.run_once()
                self._stop.wait(every_s)

        self._thread = threading.Thread(target=loop, name=f"adms-terminal-{self.serial}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """``punchproof emulate adms``: a push terminal pushing to a receiver, with random punches."""
    parser = argparse.ArgumentParser(prog="punchproof emulate adms", description="an ADMS (iclock) push terminal")
    parser.add_argument("--server", default="127.0.0.1:8081", help="the receiver, host:port")
    parser.add_argument("--serial", default="EMU-ADMS-01")
    parser.add_argument("--timezone", default="Asia/Shanghai")
    parser.add_argument("--encoding", default="gb18030")
    parser.add_argument("--pins", type=int, default=30, help="workers 1001.. who punch")
    parser.add_argument("--punch-every", type=float, default=0.0, metavar="SECONDS", help="0: never")
    parser.add_argument("--poll-every", type=float, default=3.0, metavar="SECONDS")
    parser.add_argument("--clock-offset", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args(argv)
    host, _, port = args.server.rpartition(":")
    terminal = AdmsTerminalEmulator(
        args.serial,
        host or "127.0.0.1",
        int(port),
        tz=ZoneInfo(args.timezone),
        encoding=args.encoding,
        clock_offset=timedelta(seconds=args.clock_offset),
    )
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    terminal.start(every_s=args.poll_every)
    print(f"ADMS terminal {args.serial} pushing to http://{args.server}/iclock/", flush=True)
    rng = random.Random(args.serial)  # noqa: S311 - demo data
    while not stopping.wait(args.punch_every or 3600):
        if args.punch_every:
            record = terminal.punch(str(1001 + rng.randrange(args.pins)), state=rng.choice((0, 1)))
            log.info("%s punched at %s", record.pin, record.time)
    terminal.stop()
    return 0

"""Who a push (ADMS) terminal knows, as the receiver learns it, and the commands that change it.

A push terminal cannot be read on demand. It uploads what it holds when asked (``DATA QUERY USERINFO``,
``DATA QUERY FINGERTMP``, or ``DATA QUERY BIODATA Type=1`` on firmware that keeps fingers as BIODATA), and
what is enrolled at its keypad as it happens: OPERLOG lines ``USER PIN=..\\tName=..\\tPri=..\\tCard=..`` and
``FP PIN=..\\tFID=..\\tSize=..\\tValid=..\\tTMP=<base64>``, or ``table=BIODATA`` lines ``BIODATA Pin=..\\tNo=..
\\tIndex=..\\tValid=..\\tDuress=..\\tType=1\\tMajorVer=..\\tMinorVer=..\\tFormat=..\\tTmp=<base64>``. It is changed
by commands it takes at its next ``getrequest`` poll (``DATA UPDATE USERINFO``, ``DATA DELETE USERINFO``,
``DATA UPDATE FINGERTMP`` or ``BIODATA``, ``DATA DELETE FINGERTMP`` or ``BIODATA``), each confirmed by its result
at ``devicecmd``. With every poll it reports its counts: ``INFO=<firmware>,<users>,<fingers>,<records>,<address>,
<fingerprint version>,...``.

``TerminalDirectory`` is that knowledge for one terminal, in memory: filled by a full query (after each start,
and again when the counts the terminal reports stay different from it for a few polls: a user deleted at its
menu uploads nothing), kept up to date by its uploads and by the results of the commands it confirmed.
``PushEnrolmentSource`` gives the appliance's enrolment the view of it that a ZK terminal gives (counts, users,
templates) and turns its changes (``firmware_bridge.zk.userwrite``) into queued commands; their outcomes are
known once the terminal has run them (``QueuedChanges.outcomes``).

Templates are biometric data: they are held here only while the terminal holds them, never logged, and a
queued command says in its description which worker and finger it carries, never the template.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from firmware_bridge.zk.directory import Counts, UserTable
from firmware_bridge.zk.records import FLAG_VALID, FingerTemplate, UserRecord
from firmware_bridge.zk.userwrite import Change, Outcome, PutTemplates, PutUser, RemoveTemplate, RemoveUser

if TYPE_CHECKING:
    from firmware_bridge.adms.commands import Command, CommandQueue

log = logging.getLogger(__name__)

FLAG_DURESS = 3
LAYOUT = 72  # names of up to 24 bytes, as on colour terminals (what ``UserTable.shown`` fits a name to)
REQUERY_POLLS = 3  # polls whose reported counts differ from what is known before the terminal is asked again
RETRY_QUERY = timedelta(minutes=1)  # after a query the terminal refused
QUERY_USERS = "DATA QUERY USERINFO"
QUERY_FINGERTMP = "DATA QUERY FINGERTMP"
QUERY_BIODATA = "DATA QUERY BIODATA Type=1"
NOT_A_TABLE = (-1002, -1004)  # a FINGERTMP query answered so: the firmware keeps fingers as BIODATA
NO_DATA = -1  # a query of an empty table, on some firmware


class Clock(Protocol):
    def now(self) -> datetime: ...


def fields_of(line: str) -> tuple[str, dict[str, str]]:
    """A pushed line's kind (``USER``, ``FP``, ``BIODATA``; "" without one) and its fields, keys as sent."""
    head, space, rest = line.partition(" ")
    if not space or "=" in head:
        head, rest = "", line
    values: dict[str, str] = {}
    for part in rest.split("\t"):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            values.setdefault(key.strip(), value.strip("\r\n"))
    return head.upper(), values


def _get(values: dict[str, str], key: str, default: str = "") -> str:
    """A field by name, whatever its case (``Pin`` in BIODATA, ``PIN`` elsewhere)."""
    wanted = key.lower()
    return next((v for k, v in values.items() if k.lower() == wanted), default)


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


def _template(text: str) -> bytes | None:
    try:
        data = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data or None


def _clean(value: str) -> str:
    """A value as one field of a command: tabs and line breaks would split it."""
    return "".join(" " if c in "\t\r\n" else c for c in value)


@dataclass(frozen=True, slots=True)
class Finger:
    flag: int  # FLAG_VALID, FLAG_DURESS, 0 invalid
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Reported:
    """What the terminal said of itself with its last poll."""

    users: int
    fingers: int
    algorithm: str


def parse_info(text: str) -> Reported | None:
    """``getrequest``'s ``INFO=Ver 8.0.4,12,20,3051,192.168.1.201,10,7,0,0,...``; None if it says less."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) < 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    algorithm = parts[5] if len(parts) > 5 and parts[5].replace(".", "").isdigit() else ""
    return Reported(int(parts[1]), int(parts[2]), algorithm.split(".")[0])


class TerminalDirectory:
    """What one push terminal holds, as far as the receiver knows. Thread-safe; construction does no I/O."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        self.users: dict[str, dict[str, str]] = {}  # PIN -> the fields as the terminal keeps them
        self.fingers: dict[tuple[str, int], Finger] = {}
        self.biodata = False  # the terminal keeps its fingers as BIODATA (it sent or asked for that table)
        self.algorithm = ""  # its fingerprint version ("10"): templates of another version do not match
        self.state = "unknown"  # "querying", then "known"
        self.awaiting: set[str] = set()  # queries sent and not answered yet
        self.to_queue: list[str] = []  # queries to send at the next chance
        self.reported: Reported | None = None  # None also once something changed since it was said
        self._judged = False  # the report was compared with what is known
        self.disagreed = 0  # polls in a row whose reported counts were not what is known
        self.retry_at: datetime | None = None
        self.version = 0  # bumped by every change
        self.lock = threading.RLock()

    # ---- what the terminal tells ---------------------------------------------------------------

    def take_upload(self, table: str, lines: Sequence[str]) -> int:
        """Users and fingers in a pushed table (OPERLOG, USERINFO, FINGERTMP, BIODATA); returns how many."""
        taken = 0
        with self.lock:
            for line in lines:
                kind, values = fields_of(line)
                kind = kind or {"USERINFO": "USER", "FINGERTMP": "FP", "BIODATA": "BIODATA"}.get(table.upper(), "")
                if kind == "USER" and _get(values, "PIN"):
                    self.users[_get(values, "PIN")] = _user_fields(values)
                    taken += 1
                elif kind in ("FP", "BIODATA"):
                    taken += self._take_finger(kind, values)
            if taken:
                self.version += 1
                self.reported = None  # counted before this upload
        return taken

    def take_report(self, info: str | None) -> None:
        reported = parse_info(info or "")
        with self.lock:
            self.reported, self._judged = reported, False
            if reported is not None and reported.algorithm and not self.algorithm:
                self.algorithm = reported.algorithm

    def take_result(self, command: str, code: int, now: datetime) -> None:
        """A command's result: a change it confirmed is now on the terminal; a query answered."""
        with self.lock:
            if command.startswith("DATA QUERY "):
                self._answered(command, code, now)
                return
            if code != 0:
                return
            verb, _, rest = command.partition(" ")
            if verb != "DATA":
                return
            action, _, rest = rest.partition(" ")
            table, _, rest = rest.partition(" ")
            _, values = fields_of(rest)
            pin = _get(values, "PIN")
            if not pin:
                return
            if (action, table) == ("UPDATE", "USERINFO"):
                self.users[pin] = {**self.users.get(pin, {}), **_user_fields(values)}
            elif (action, table) == ("DELETE", "USERINFO"):
                self.users.pop(pin, None)
                for k in [k for k in self.fingers if k[0] == pin]:
                    del self.fingers[k]
            elif action == "UPDATE" and table in ("FINGERTMP", "BIODATA"):
                self._take_finger("FP" if table == "FINGERTMP" else "BIODATA", values)
            elif action == "DELETE" and table in ("FINGERTMP", "BIODATA"):
                number = _get(values, "FID" if table == "FINGERTMP" else "No")
                for k in [k for k in self.fingers if k[0] == pin and (not number or k[1] == _int(number, -1))]:
                    del self.fingers[k]
            self.version += 1
            self.reported = None  # counted before this change: the next poll's counts tell

    # ---- what the appliance asks ---------------------------------------------------------------

    def known(self, now: datetime) -> bool:
        """True when what is known can be planned with; otherwise the queries it takes are in ``to_queue``."""
        with self.lock:
            if self.state == "querying":
                if self.awaiting or self.to_queue:
                    return False
                self.state = "known"
            if self.state == "unknown":
                if self.retry_at is None or now >= self.retry_at:
                    self._query()
                return False
            if self.reported is None or (self.reported.users, self.reported.fingers) == self.counts():
                self.disagreed = 0
                return True
            if not self._judged:  # each report counts once, however often the terminal calls before the next
                self._judged = True
                self.disagreed += 1
            if self.disagreed < REQUERY_POLLS:
                return False  # an upload may be on its way
            log.info(
                "push terminal %s reports %d user(s) and %d finger(s), %d and %d known: asking it again",
                self.serial,
                self.reported.users,
                self.reported.fingers,
                *self.counts(),
            )
            self._query()
            return False

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return len(self.users), len(self.fingers)

    # ---- inside -------------------------------------------------------------------------------

    def _query(self) -> None:
        self.users, self.fingers = {}, {}
        self.version += 1
        self.state, self.disagreed, self.retry_at = "querying", 0, None
        self.to_queue = [QUERY_USERS, QUERY_BIODATA if self.biodata else QUERY_FINGERTMP]
        self.awaiting = set(self.to_queue)

    def _answered(self, command: str, code: int, now: datetime) -> None:
        if command not in self.awaiting:
            return
        self.awaiting.discard(command)
        if code >= 0 or code == NO_DATA:
            return
        if command == QUERY_FINGERTMP and code in NOT_A_TABLE:  # fingers are BIODATA on this firmware
            self.biodata = True
            self.to_queue.append(QUERY_BIODATA)
            self.awaiting.add(QUERY_BIODATA)
            return
        log.warning("push terminal %s refused %r (Return=%d): asked again in a minute", self.serial, command, code)
        self.state, self.awaiting, self.to_queue = "unknown", set(), []
        self.retry_at = now + RETRY_QUERY

    def _take_finger(self, kind: str, values: dict[str, str]) -> int:
        pin = _get(values, "PIN")
        if kind == "FP":
            number, flag, text = _get(values, "FID"), _int(_get(values, "Valid", "1"), 1), _get(values, "TMP")
        else:
            if _get(values, "Type", "1") != "1":
                return 0  # a face or palm: not a fingerprint
            self.biodata = True
            number, text = _get(values, "No"), _get(values, "Tmp")
            valid = _get(values, "Valid", "1") == "1"
            flag = FLAG_DURESS if _get(values, "Duress", "0") == "1" else (FLAG_VALID if valid else 0)
            major = _get(values, "MajorVer")
            if major.isdigit() and not self.algorithm:
                self.algorithm = major
        finger = _int(number, -1)
        data = _template(text)
        if not pin or not 0 <= finger <= 9 or data is None:
            log.warning("push terminal %s sent a %s line that is not a finger: ignored", self.serial, kind)
            return 0
        self.fingers[(pin, finger)] = Finger(flag, data)
        return 1


def _user_fields(values: dict[str, str]) -> dict[str, str]:
    fields = {k: v for k, v in values.items() if k.lower() != "pin"}
    if "Privilege" in fields and "Pri" not in fields:  # older servers' spelling
        fields["Pri"] = fields.pop("Privilege")
    return {"PIN": _get(values, "PIN"), **fields}


# ---- commands -----------------------------------------------------------------------------------


def user_command(pin: str, fields: dict[str, str]) -> str:
    """``DATA UPDATE USERINFO`` with the fields the terminal keeps (so a rename keeps card, PIN and privilege)."""
    order = ["Name", "Pri", "Passwd", "Card", "Grp"]
    keys = order + sorted(k for k in fields if k not in order and k != "PIN")
    parts = [f"PIN={_clean(pin)}"] + [f"{k}={_clean(fields.get(k, ''))}" for k in keys if k in fields]
    return "DATA UPDATE USERINFO " + "\t".join(parts)


def finger_command(pin: str, template: FingerTemplate, *, biodata: bool, algorithm: str) -> str:
    text = base64.b64encode(template.data).decode("ascii")
    if not biodata:
        valid = template.flag
        return f"DATA UPDATE FINGERTMP PIN={pin}\tFID={template.finger}\tSize={len(text)}\tValid={valid}\tTMP={text}"
    duress = int(template.flag == FLAG_DURESS)
    valid = int(template.flag in (FLAG_VALID, FLAG_DURESS))
    return (
        f"DATA UPDATE BIODATA Pin={pin}\tNo={template.finger}\tIndex=0\tValid={valid}\tDuress={duress}\tType=1"
        f"\tMajorVer={algorithm or 10}\tMinorVer=0\tFormat=0\tTmp={text}"
    )


def delete_finger_command(pin: str, finger: int, *, biodata: bool) -> str:
    if biodata:
        return f"DATA DELETE BIODATA Pin={pin}\tType=1\tNo={finger}"
    return f"DATA DELETE FINGERTMP PIN={pin}\tFID={finger}"


# ---- the enrolment's view -----------------------------------------------------------------------


class PushDirectoryReader:
    """A snapshot of a push terminal as ``firmware_bridge.zk.directory.DirectoryReader`` reads a ZK terminal:
    slots (``uid``) are numbered here, in PIN order; the terminal itself knows users by PIN only."""

    def __init__(self, serial: str, directory: TerminalDirectory, encoding: str) -> None:
        with directory.lock:
            self._users = {pin: dict(f) for pin, f in directory.users.items()}
            self._fingers = dict(directory.fingers)
            self._algorithm = directory.algorithm
        self._serial = serial
        self._encoding = encoding
        self._uid = {pin: n for n, pin in enumerate(sorted(self._users), start=1)}

    def counts(self) -> Counts:
        return Counts(self._serial, users=len(self._users), fingers=len(self._fingers), algorithm=self._algorithm)

    def users(self, count: int = 0) -> UserTable:
        records = tuple(
            UserRecord(
                self._uid[pin],
                pin,
                f.get("Name", ""),
                privilege=_int(f.get("Pri", "0")),
                card=_int(f.get("Card", "0")),
                password=f.get("Passwd", ""),
                group=f.get("Grp", ""),
            )
            for pin, f in sorted(self._users.items())
        )
        return UserTable(records, LAYOUT, self._encoding)

    def templates(self) -> tuple[FingerTemplate, ...]:
        return tuple(
            FingerTemplate(self._uid[pin], finger, held.flag, held.data)
            for (pin, finger), held in sorted(self._fingers.items())
            if pin in self._uid
        )


class QueuedChanges:
    """Changes handed to a push terminal's queue: their outcomes once the terminal has reported every one."""

    def __init__(self, queue: CommandQueue, serial: str, planned: list[tuple[Change, list[Command]]]) -> None:
        self._queue = queue
        self._serial = serial
        self._planned = planned

    def outcomes(self) -> list[Outcome] | None:
        """One outcome per change, in order; None while the terminal has not run them all."""
        if any(c.result is None for _, commands in self._planned for c in commands):
            return None
        outcomes = []
        for change, commands in self._planned:
            refused = [c for c in commands if c.result is not None and not c.result.ok]
            if refused:
                first = refused[0]
                assert first.result is not None
                what = first.text.split("\t", 1)[0]
                outcomes.append(Outcome(change, f"refused by the terminal: {what}: Return={first.result.return_code}"))
            else:
                outcomes.append(Outcome(change))
        self._queue.forget(self._serial, {c.id for _, commands in self._planned for c in commands})
        return outcomes


class PushEnrolmentSource:
    """A push terminal as the appliance's enrolment sees it. Construction does no I/O."""

    def __init__(
        self,
        serial: str,
        directory: TerminalDirectory,
        queue: CommandQueue,
        clock: Clock,
        *,
        encoding: str = "gb18030",
    ) -> None:
        self.serial = serial
        self._directory = directory
        self._queue = queue
        self._clock = clock
        self._encoding = encoding
        self._queries: list[Command] = []

    def ready(self) -> bool:
        """True when the terminal's users and fingers are known; else the queries are queued (or waited for)."""
        now = self._clock.now()
        d = self._directory
        with d.lock:
            known = d.known(now)
            queries, d.to_queue = d.to_queue, []
        answered = {c.id for c in self._queries if c.result is not None}
        if answered:  # their results are in the directory: the queue need not keep them
            self._queue.forget(self.serial, answered)
            self._queries = [c for c in self._queries if c.id not in answered]
        for text in queries:
            description = f"查询 / query {text[len('DATA QUERY ') :]}"
            self._queries.append(self._queue.add(self.serial, lambda _now, t=text: t, description, now))
        return known

    @contextmanager
    def directory(self) -> Iterator[PushDirectoryReader]:
        yield PushDirectoryReader(self.serial, self._directory, self._encoding)

    def queue_changes(self, changes: Sequence[Change]) -> QueuedChanges:
        """Queue the commands for ``changes``, in order; the terminal takes them at its next poll."""
        now = self._clock.now()
        planned = []
        with self._directory.lock:
            biodata, algorithm = self._directory.biodata, self._directory.algorithm
            users = {pin: dict(f) for pin, f in self._directory.users.items()}
        for change in changes:
            commands = [
                self._queue.add(self.serial, lambda _now, t=text: t, description, now)
                for text, description in _commands(change, users, biodata=biodata, algorithm=algorithm)
            ]
            planned.append((change, commands))
        return QueuedChanges(self._queue, self.serial, planned)


def _commands(
    change: Change, users: dict[str, dict[str, str]], *, biodata: bool, algorithm: str
) -> list[tuple[str, str]]:
    """(command, description) for one change; the description names the worker and finger, never a template."""
    if isinstance(change, PutUser):
        u = change.user
        fields = users.get(u.user_id) or {"Pri": str(u.privilege), "Passwd": "", "Card": "", "Grp": "1"}
        fields = {**fields, "Name": u.name}
        return [(user_command(u.user_id, fields), f"员工 / user {u.user_id}")]
    if isinstance(change, RemoveUser):
        return [(f"DATA DELETE USERINFO PIN={change.user_id}", f"删除员工 / remove user {change.user_id}")]
    if isinstance(change, PutTemplates):
        pin = change.user.user_id
        return [
            (finger_command(pin, t, biodata=biodata, algorithm=algorithm), f"指纹 / finger {pin}#{t.finger}")
            for t in change.templates
        ]
    if isinstance(change, RemoveTemplate):
        text = delete_finger_command(change.user_id, change.finger, biodata=biodata)
        return [(text, f"删除指纹 / remove finger {change.user_id}#{change.finger}")]
    raise TypeError(f"not a change: {change!r}")

"""Enrolment once for every gate: the plant's roster becomes the users of each terminal (ZK and push), and a
finger enrolled at one terminal is copied to the others.

A push (ADMS) terminal cannot be called: its ``QueuedSource`` (``firmware_bridge.adms.directory``) is what the
terminal holds as its uploads and confirmed commands tell, and its changes are queued for its next call
(``appliance.capture.push`` syncs at each call). The plan is the same; its changes are signed once the terminal
reports them done, nothing is planned for it while they wait, and a change it refused is visible
(``EnrolmentState.last_error``) and planned again ``RETRY_S`` later.

Each terminal's worker (``appliance.capture.poller``) calls ``TerminalEnrolment.sync()`` after its punch
read, so the worker stays the only one that changes its terminal and punches always come first. A sync:

1. works out the roster today from the master tables (``Employee``: on the roster from ``valid_from``
   to ``valid_to``, while ``active``), again only when they or the date changed;
2. asks the terminal for its counts (one short exchange). Same serial, users and fingers as the last
   sync left, and the same roster and stored templates: nothing to do, nothing more is asked;
3. otherwise reads its users, and its fingers if their count changed (or hourly): a finger enrolled at
   its keypad is stored, sealed (``template_vault``); one deleted at its menu is tombstoned;
4. plans (``enrolment_plan``) and makes at most ``MAX_STEPS`` changes (the rest at the next poll):
   leavers removed, workers added or renamed, stored fingers copied, tombstoned ones deleted;
5. signs one ``action`` record per change made (``act``: ``terminal_user_added``, ``_renamed``,
   ``_removed``, ``template_stored``, ``template_copied``, ``template_removed``, ``templates_deleted``),
   each naming the worker, the terminal(s), the finger and a size, never a template.

The brake: a roster that makes more of its workers leave at once than the limit (``[enrolment]`` in
appliance.toml; ``enrolment_plan.brake``) removes none of them and deletes none of their fingers; the hold is
signed (``removals_held``), shown on the pages, and lasts until a person confirms (``confirm_removals``, signed
as ``removals_confirmed`` when the daemon takes it up) or a roster names them again (``removals_hold_cleared``).

A worker who leaves the roster has their stored fingers deleted from the appliance at once (one signed
``templates_deleted`` record) and is removed from each terminal at its next poll, fingers with them; a
terminal that is off is caught up when it is back. Templates never leave the appliance but to its own
terminals: not in a record, not in a log line, not over MQTT.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import date, tzinfo
from pathlib import Path
from typing import Protocol, runtime_checkable

from appliance.capture.enrolment_plan import (
    Braked,
    BrakeRule,
    Hold,  # noqa: F401  (the brake's hold, for the CLI and tests; the pages import it from enrolment_plan)
    Kept,
    Key,
    Plan,
    Roster,
    Seen,
    Step,
    Terminal,
    Tombstone,
    brake,
    held_removals,  # noqa: F401
    hold_message,  # noqa: F401
    plan,
)
from appliance.capture.punchlog import Entry, LogWriter
from appliance.capture.template_vault import TemplateKeyError, TemplateVault
from appliance.clock import Clock, to_ms
from appliance.config import EnrolmentSettings
from appliance.store import (
    Employee,
    EnrolmentState,
    EvaluatorState,
    RemovalBrake,
    StoredTemplate,
    TemplateTombstone,
    TemplateVersion,
    TerminalFinger,
)
from firmware_bridge.errors import TerminalError
from firmware_bridge.zk.directory import Counts, DirectoryReader, UserTable
from firmware_bridge.zk.records import FLAG_VALID, FingerTemplate, UserRecord
from firmware_bridge.zk.userwrite import Change, Outcome, PutTemplates, PutUser, RemoveTemplate, RemoveUser

log = logging.getLogger(__name__)

# changes made per poll, the terminal disabled meanwhile (pyzk refreshes its data after each user): a roster of
# thousands reaches a new terminal over some polls, and nobody waits at a disabled terminal for long
MAX_STEPS = 50
MAX_FOUND = 500  # fingers stored from a terminal per poll (sealed and signed): a first look at a full one takes some
RECHECK_S = 3600  # fingers are read again at least this often, even when their count says nothing changed
KEY_FILE = Path("keys") / "templates.key"  # in the state directory, beside the log-signing key
RETRY_S = 30  # a change a push terminal refused is queued again at its first poll this much later
REFUSED = "+refused"  # the basis of a push terminal that refused a change: planned again after RETRY_S
STORE_LOCK = threading.Lock()  # one worker at a time changes the stored templates
BRAKE_LOCK = threading.Lock()  # one worker at a time decides on the brake (and signs what it decided)


class Reader(Protocol):
    def counts(self) -> Counts: ...
    def users(self, count: int) -> UserTable: ...
    def templates(self) -> tuple[FingerTemplate, ...]: ...


@runtime_checkable
class EnrolmentSource(Protocol):
    """A terminal that is changed while the appliance waits (ZK, port 4370)."""

    def directory(self) -> AbstractContextManager[DirectoryReader]: ...
    def write_changes(self, changes: Sequence[Change], *, layout: int) -> list[Outcome]: ...


class Queued(Protocol):
    def outcomes(self) -> list[Outcome] | None: ...


@runtime_checkable
class QueuedSource(Protocol):
    """A terminal that takes changes when it calls (push, ADMS): queued now, their outcomes known later."""

    def ready(self) -> bool: ...
    def directory(self) -> AbstractContextManager[Reader]: ...
    def queue_changes(self, changes: Sequence[Change]) -> Queued: ...


@dataclass(frozen=True)
class _Made:
    """What a plan was made from, kept until its changes' outcomes are known."""

    result: Plan
    counts: Counts
    basis: str
    read_ms: int | None
    unread: bool
    held: dict[Key, str]


class _Joined:
    """Outcomes known now (not sent) with those a push terminal reports later, in the steps' order."""

    def __init__(self, size: int, known: dict[int, Outcome], order: list[int], queued: Queued | None) -> None:
        self._size, self._known, self._order, self._queued = size, known, order, queued

    def outcomes(self) -> list[Outcome] | None:
        later = self._queued.outcomes() if self._queued is not None else []
        if later is None:
            return None
        every = {**self._known, **dict(zip(self._order, later, strict=True))}
        return [every[n] for n in range(self._size)]


def roster_today(today: date) -> Roster:
    """Who is on the roster today, and who left and why; badges a terminal cannot keep are left out."""
    iso = today.isoformat()
    current: dict[str, str] = {}
    leaving: dict[str, str] = {}
    rows = Employee.select(Employee.user_id, Employee.name, Employee.valid_from, Employee.valid_to, Employee.active)
    for badge, name, valid_from, valid_to, active in rows.tuples().iterator():
        if not (badge.isascii() and 0 < len(badge) <= 23):
            continue
        if not active:
            leaving[badge] = "inactive on the roster"
        elif valid_to and valid_to < iso:
            leaving[badge] = f"valid_to {valid_to} passed"
        elif not valid_from or valid_from <= iso:
            current[badge] = name
    text = json.dumps([sorted(current.items()), sorted(leaving.items())], ensure_ascii=False)
    return Roster(current, leaving, hashlib.sha256(text.encode()).hexdigest())


class RosterCache:
    """The roster today, worked out once for all of a plant's terminals (the daemon gives every terminal's
    enrolment the same one): 20 terminals' workers kept 20 copies of a 5,000-name roster. Worked out again when
    the master tables or the date change; thread-safe, one worker works it out while the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[tuple[int, str], Roster] | None = None

    def roster(self, master_version: int, day: str) -> Roster:
        """The roster of ``day`` (ISO) as the master tables stand at ``master_version``."""
        key = (master_version, day)
        with self._lock:
            if self._kept is not None and self._kept[0] == key:
                return self._kept[1]
            roster = roster_today(date.fromisoformat(day))
            self._kept = (key, roster)
            return roster


# -- the brake on a mass removal: the row ``RemovalBrake`` ----------------------------------------------------


def brake_rule(settings: EnrolmentSettings) -> BrakeRule:
    return BrakeRule(settings.removal_hold_min, settings.removal_hold_percent)


def configure_brake(rule: BrakeRule) -> None:
    """The rule the daemon's workers hold removals by (``[enrolment]`` in appliance.toml): at the daemon's start."""
    RemovalBrake.insert(id=1, min_leavers=rule.min_leavers, percent=rule.percent).on_conflict(
        conflict_target=[RemovalBrake.id],
        update={RemovalBrake.min_leavers: rule.min_leavers, RemovalBrake.percent: rule.percent},
    ).execute()


def pending_removals(today: date, rule: BrakeRule, *, accepted: frozenset[str] | None = None) -> Braked:
    """What the brake makes of the roster today (nothing written): the leavers since the roster the daemon last
    accepted, or ``accepted`` if it never looked at one."""
    row = RemovalBrake.get_or_none(RemovalBrake.id == 1)
    if row is not None and row.accepted is not None:
        accepted = frozenset(json.loads(row.accepted))
    return brake(roster_today(today), accepted, frozenset(), rule)


def confirm_removals(badges: Sequence[str], *, by: str, now_ms: int) -> None:
    """A person confirmed removing these leavers: the daemon signs it and removes them at the next poll."""
    RemovalBrake.insert(id=1).on_conflict_ignore().execute()
    RemovalBrake.update(
        confirmed=json.dumps(sorted(badges)), confirmed_by=by, confirmed_ms=now_ms, version=RemovalBrake.version + 1
    ).where(RemovalBrake.id == 1).execute()


class TerminalEnrolment:
    """One terminal's enrolment. The constructor only assigns; the template key is read at its first use."""

    def __init__(
        self,
        terminal: str,
        source: EnrolmentSource | QueuedSource,
        writer: LogWriter,
        clock: Clock,
        *,
        tz: tzinfo,
        vault: TemplateVault | None = None,
        rule: BrakeRule | None = None,
        rosters: RosterCache | None = None,
    ) -> None:
        self.terminal = terminal
        self._rosters = rosters or RosterCache()  # the plant's terminals share one (the daemon's), else its own
        self._source = source
        self._writer = writer
        self._clock = clock
        self._tz = tz
        self._vault = vault
        self._rule = rule  # None: the one the daemon wrote at its start (``configure_brake``), else the default
        self._roster: tuple[tuple[int, str, int | None], Roster] | None = None
        self._looked = False  # a whole look at the terminal since this process started (then counts may suffice)
        self._notes: set[str] = set()  # what was left alone and why, said once
        self._error: str | None = None  # the failure in progress, said when it begins and when it ends
        self._pending: tuple[_Made, Queued] | None = None  # a push terminal's changes, queued, not yet run
        self._retry_ms = 0  # a push terminal's refused change is planned again from this time on

    def sync(self) -> int:
        """Make the terminal match the roster and the stored fingers; return how many records were signed.
        A terminal that cannot be reached is a state (logged when it changes), not an error."""
        try:
            signed = self._sync()
        except (TerminalError, TemplateKeyError, OSError) as err:  # OSError: the key file could not be made
            self._failed(str(err))
            return 0
        if self._error is not None:
            log.info("terminal %s: enrolment works again", self.terminal)
            self._error = None
        return signed

    def forget_leavers(self) -> int:
        """Without the terminal (it is off): delete the stored fingers of those who left the roster, now."""
        return self._roster_today()[1]

    def changed_since_last_pass(self) -> bool:
        """Whether the roster or the stored fingers changed since this terminal's last pass (what its ``basis``
        was made from), without asking the terminal: such a change goes to the terminal at its next pass even
        while a shift change's punches hold other passes back (``appliance.capture.poller``). A pass still under
        way on the same roster (a big roster, ``MAX_STEPS`` a pass) is no change."""
        roster = self._roster_today()[0]
        if roster.empty:
            return False
        basis = f"{roster.digest}/{TemplateVersion.get_by_id(1).version}"
        state = EnrolmentState.get_or_none(EnrolmentState.terminal == self.terminal)
        return state is None or not state.basis.startswith(basis)

    def _sync(self) -> int:
        roster, signed = self._roster_today()
        if roster.empty:
            return signed  # no roster yet: a terminal is never emptied for want of one
        if self._pending is not None:  # a push terminal's changes, queued at an earlier poll
            made, queued = self._pending
            outcomes = queued.outcomes()
            if outcomes is None:
                return signed  # not all run yet: nothing is planned again meanwhile
            self._pending = None
            signed += self._made(made, outcomes)
        if isinstance(self._source, QueuedSource) and not self._source.ready():
            return signed  # its users and fingers are not known yet: they are asked for at this poll
        basis = f"{roster.digest}/{TemplateVersion.get_by_id(1).version}"
        state = EnrolmentState.get_or_none(EnrolmentState.terminal == self.terminal)
        now_ms = to_ms(self._clock.now())
        refused = state is not None and state.basis.startswith(basis) and state.basis.endswith(REFUSED)
        if refused and now_ms < self._retry_ms:  # the same plan again: a refused change is retried a little later
            return signed
        with self._source.directory() as directory:
            counts = directory.counts()
            if self._looked and _unchanged(state, counts, basis, now_ms):
                return signed
            table = directory.users(counts.users)
            fresh = state is None or state.serial != counts.serial
            roster_changed = state is None or not state.basis.startswith(roster.digest)  # a worker may now count
            read_fingers = fresh or roster_changed or not self._looked or state.fingers != counts.fingers
            read_fingers = read_fingers or _stale(state, now_ms)
            templates = directory.templates() if read_fingers else None
        if fresh:  # another terminal at this address (or the first look): what was seen on the old one means nothing
            TerminalFinger.delete().where(TerminalFinger.terminal == self.terminal).execute()
        where = Terminal(self.terminal, counts.serial, counts.algorithm)
        seen, data = self._seen(table.users, templates)
        kept = self._kept()  # first: it forgets what was seen under a template key this appliance no longer has
        held = _held(self.terminal)
        result = plan(
            where,
            roster,
            table,
            seen,
            complete=templates is not None and len(templates) == counts.fingers,
            kept=kept,
            held=held,
            tombstones={(t.user_id, t.finger): Tombstone(t.terminal, t.mac) for t in TemplateTombstone.select()},
            limit=MAX_STEPS,
        )
        for note in result.notes:
            self._note(f"terminal {self.terminal}: {note}")
        unread = len(result.found) > MAX_FOUND
        if unread:  # the rest are found again at the next poll, which reads the fingers again
            for k, _why in result.found[MAX_FOUND:]:
                result.held.pop(k, None)
            result.found, result.more = result.found[:MAX_FOUND], True
        signed += self._keep_found(where, result, data, held)
        read_ms = now_ms if templates is not None else (state.templates_read_ms if state else None)
        made = _Made(result, counts, basis, read_ms, unread, held)
        written = self._write(result.steps, table.layout)
        if isinstance(written, list):
            return signed + self._made(made, written)
        self._pending = (made, written)  # signed when the terminal has run them (at a later poll)
        log.info("terminal %s: %d enrolment change(s) queued for its next poll", self.terminal, len(result.steps))
        return signed

    def _made(self, made: _Made, outcomes: list[Outcome]) -> int:
        """Sign the changes made and keep where the terminal's enrolment stands; return how many were signed."""
        result = made.result
        done = [step for step, o in zip(result.steps, outcomes, strict=True) if o.done]
        refused = []
        for step, outcome in zip(result.steps, outcomes, strict=True):
            if not outcome.done:
                what = f"{step.records[0]['act']} {step.records[0]['emp']}"
                refused.append(f"{what} not done: {outcome.error}")
                self._note(f"terminal {self.terminal}: {refused[-1]}")
        entries = [Entry("action", body) for step in done for body in step.records]
        # the counts our changes leave: the next poll finds them unless someone enrolled at the keypad meanwhile;
        # a refusal changes nothing (a ZK terminal's is tried again when something changes, or at the hourly look;
        # a push terminal's at a poll RETRY_S later)
        users, fingers = _expected(made.counts, result, done, unknown=any(o.unknown for o in outcomes))
        fingers = None if made.unread else fingers
        now_ms = to_ms(self._clock.now())
        queued = isinstance(self._source, QueuedSource)
        row = {
            "serial": made.counts.serial,
            # more to do, or a refusal to try again: not "unchanged" at the next poll
            "basis": made.basis + ("+more" if result.more else "") + (REFUSED if refused and queued else ""),
            "users": users,
            "fingers": fingers,
            "templates_read_ms": made.read_ms,
            "synced_ms": now_ms,
            "last_error": "; ".join(refused[:3]) + (f" (+{len(refused) - 3})" if len(refused) > 3 else ""),
        }
        if refused and queued:
            self._retry_ms = now_ms + RETRY_S * 1000
        now_held: dict[Key, str | None] = dict(result.held)
        for step in done:
            now_held.update(step.held)
        self._writer.append(entries, then=lambda: _save(self.terminal, row, made.held, now_held))
        self._looked = True
        if entries:
            log.info("terminal %s: %d enrolment change(s) made and signed", self.terminal, len(entries))
        return len(entries)

    # -- reading ----------------------------------------------------------------------------------

    def _roster_today(self) -> tuple[Roster, int]:
        """The roster, worked out again when the master tables or the date changed; leavers' stored fingers
        are deleted then (returns how many records that signed)."""
        key = (
            EvaluatorState.get_by_id(1).master_version,
            self._clock.now().astimezone(self._tz).date().isoformat(),
            RemovalBrake.select(RemovalBrake.version).where(RemovalBrake.id == 1).scalar(),
        )
        if self._roster is not None and self._roster[0] == key:
            return self._roster[1], 0
        roster, signed = self._braked(self._rosters.roster(key[0], key[1]))
        signed += self._forget_leavers(roster)
        self._roster = (key, roster)
        return roster, signed

    def _braked(self, roster: Roster) -> tuple[Roster, int]:
        """The roster with the brake applied, and the brake's state kept (signed when it changes)."""
        with BRAKE_LOCK:
            row = RemovalBrake.get_or_none(RemovalBrake.id == 1) or RemovalBrake(id=1)
            rule = self._rule or BrakeRule(row.min_leavers, row.percent)
            accepted = frozenset(json.loads(row.accepted)) if row.accepted is not None else None
            confirmed = frozenset(json.loads(row.confirmed)) if row.confirmed_ms is not None else frozenset()
            braked = brake(roster, accepted, confirmed, rule)
            was_held = json.loads(row.held)
            now_ms = to_ms(self._clock.now())
            update: dict[str, object] = {}
            entries = []
            if braked.held and list(braked.held) != was_held:
                entries.append(_brake_record("removals_held", braked, reason="more leave the roster at once"))
                update |= {"held": json.dumps(braked.held), "held_before": braked.before, "held_limit": braked.limit}
                update["held_ms"] = now_ms
                log.warning(
                    "the roster makes %d worker(s) leave at once (more than the limit of %d): none removed from the "
                    "terminals until a person confirms (punchproof appliance confirm-removals)",
                    len(braked.held),
                    braked.limit,
                )
            elif not braked.held and was_held:
                if braked.confirmed:
                    entries.append(
                        _brake_record(
                            "removals_confirmed", braked, user=row.confirmed_by, confirmed_ms=row.confirmed_ms
                        )
                    )
                else:
                    why = "the roster names them again" if not braked.leavers else "within the limit now"
                    entries.append(_brake_record("removals_hold_cleared", braked, held=len(was_held), reason=why))
                update |= {"held": "[]", "held_ms": None, "held_before": 0, "held_limit": 0}
            elif braked.confirmed:  # confirmed before the daemon held them (import-roster --allow-removals)
                entries.append(
                    _brake_record("removals_confirmed", braked, user=row.confirmed_by, confirmed_ms=row.confirmed_ms)
                )
            if braked.accepted != accepted:
                update["accepted"] = json.dumps(sorted(braked.accepted))
            taken = row.confirmed_ms  # a confirmation is taken up once: applied, or out of date when seen
            if taken is not None and not braked.confirmed and braked.held:
                log.warning(
                    "a confirmation by %s does not cover the %d worker(s) now held: confirm again",
                    row.confirmed_by,
                    len(braked.held),
                )
            if not update and taken is None:
                return braked.roster, 0
            rule_row = {"min_leavers": rule.min_leavers, "percent": rule.percent}

            def then() -> None:
                RemovalBrake.insert(id=1, **rule_row).on_conflict_ignore().execute()
                if update:
                    RemovalBrake.update(**update, version=RemovalBrake.version + 1).where(
                        RemovalBrake.id == 1
                    ).execute()
                if taken is not None:  # unless a person confirmed again meanwhile
                    RemovalBrake.update(
                        confirmed="[]", confirmed_by="", confirmed_ms=None, version=RemovalBrake.version + 1
                    ).where((RemovalBrake.id == 1) & (RemovalBrake.confirmed_ms == taken)).execute()

            self._writer.append([Entry("action", body) for body in entries], then=then)
        return braked.roster, len(entries)

    def _seen(
        self, users: Sequence[UserRecord], templates: Sequence[FingerTemplate] | None
    ) -> tuple[dict[Key, Seen] | None, dict[Key, bytes]]:
        """The valid fingers read, by badge (a finger whose slot has no user, or a duress finger, is left out)."""
        if templates is None:
            return None, {}
        badge_of = {u.uid: u.user_id for u in users}
        data = {(badge_of[t.uid], t.finger): t.data for t in templates if t.uid in badge_of and t.flag == FLAG_VALID}
        if not data:
            return {}, {}
        vault = self._vault_()
        return {k: Seen(vault.mac(d), len(d)) for k, d in data.items()}, data

    def _kept(self) -> dict[Key, Kept]:
        if not StoredTemplate.select().exists():
            return {}  # nothing stored: the key file is not needed (nor made)
        key_id = self._vault_().key_id
        stale = StoredTemplate.delete().where(StoredTemplate.key_id != key_id).execute()
        if stale:  # a database restored without its template key: sealed with a key this appliance lacks
            TerminalFinger.delete().execute()  # their MACs were under that key too: every terminal is looked at anew
            log.warning("deleted %d stored template(s) sealed with another key; they are read again", stale)
        fields = (StoredTemplate.user_id, StoredTemplate.finger, StoredTemplate.mac, StoredTemplate.size)
        fields += (StoredTemplate.terminal, StoredTemplate.terminal_sn, StoredTemplate.algorithm)
        return {(b, f): Kept(m, s, t, sn, a) for b, f, m, s, t, sn, a in StoredTemplate.select(*fields).tuples()}

    def _vault_(self) -> TemplateVault:
        if self._vault is None:  # beside the database: the state directory (the daemon's, or a test's)
            self._vault = TemplateVault(Path(StoredTemplate._meta.database.database).parent / KEY_FILE)
        return self._vault

    # -- changing ---------------------------------------------------------------------------------

    def _keep_found(self, where: Terminal, result: Plan, data: dict[Key, bytes], held: dict[Key, str]) -> int:
        """Store the fingers enrolled at this terminal and tombstone those deleted at its menu, signed."""
        if not result.found and not result.deleted_here:
            return 0
        vault = self._vault_()
        now_ms = to_ms(self._clock.now())
        rows = []
        entries = []
        for (badge, finger), why in result.found:
            template = data[(badge, finger)]
            rows.append(
                {
                    "user_id": badge,
                    "finger": finger,
                    "sealed": vault.seal(badge, finger, template),
                    "mac": vault.mac(template),
                    "size": len(template),
                    "key_id": vault.key_id,
                    "terminal": where.name,
                    "terminal_sn": where.serial,
                    "algorithm": where.algorithm,
                    "stored_ms": now_ms,
                }
            )
            entries.append(
                Entry("action", where.record("template_stored", badge, finger=finger, size=len(template), reason=why))
            )
        for badge, finger in result.deleted_here:
            reason = "deleted at this terminal's menu"
            entries.append(Entry("action", where.record("template_removed", badge, finger=finger, reason=reason)))

        def then() -> None:
            for row in rows:
                StoredTemplate.replace(**row).execute()
                _untomb(row["user_id"], row["finger"])
            for badge, finger in result.deleted_here:  # unless enrolled again elsewhere meanwhile
                StoredTemplate.delete().where(
                    (StoredTemplate.user_id == badge)
                    & (StoredTemplate.finger == finger)
                    & (StoredTemplate.mac == held[(badge, finger)])
                ).execute()
                TemplateTombstone.replace(
                    user_id=badge, finger=finger, mac=held[(badge, finger)], terminal=where.name, removed_ms=now_ms
                ).execute()

        with STORE_LOCK:
            self._writer.append(entries, then=then)
        log.info(
            "terminal %s: %d finger(s) enrolled there stored, %d deleted at its menu",
            self.terminal,
            len(result.found),
            len(result.deleted_here),
        )
        return len(entries)

    def _forget_leavers(self, roster: Roster) -> int:
        """Delete the stored fingers of those who left the roster: one signed record per worker."""
        leaving = list(roster.leaving)
        with STORE_LOCK:
            fingers: dict[str, list[int]] = {}
            for start in range(0, len(leaving), 500):
                query = StoredTemplate.select(StoredTemplate.user_id, StoredTemplate.finger)
                for badge, finger in query.where(StoredTemplate.user_id.in_(leaving[start : start + 500])).tuples():
                    fingers.setdefault(badge, []).append(finger)
            if not fingers:
                return 0
            entries = [
                Entry(
                    "action",
                    {
                        "act": "templates_deleted",
                        "emp": badge,
                        "fingers": sorted(found),
                        "reason": roster.leaving[badge],
                        "user": "appliance",
                    },
                )
                for badge, found in sorted(fingers.items())
            ]

            def then() -> None:
                for badge in fingers:
                    StoredTemplate.delete().where(StoredTemplate.user_id == badge).execute()

            self._writer.append(entries, then=then)
        log.info("deleted the stored fingers of %d worker(s) who left the roster", len(fingers))
        return len(entries)

    def _write(self, steps: list[Step], layout: int) -> list[Outcome] | Queued:
        """Make the steps' changes; one outcome per step (a push terminal's: once it has run them). A copy whose
        stored template does not open (altered in the database) is not sent."""
        outcomes: dict[int, Outcome] = {}
        changes: list[tuple[int, Change]] = []
        for n, step in enumerate(steps):
            change = step.change
            if isinstance(change, PutTemplates):
                templates = [self._open(k, change.user.uid) for k in step.copies]
                if None in templates:
                    outcomes[n] = Outcome(change, "a stored template does not open with this appliance's key")
                    continue
                change = replace(change, templates=tuple(t for t in templates if t is not None))
            changes.append((n, change))
        if isinstance(self._source, QueuedSource):
            queued = self._source.queue_changes([c for _, c in changes]) if changes else None
            return _Joined(len(steps), outcomes, [n for n, _ in changes], queued)
        if changes:
            sent = self._source.write_changes([c for _, c in changes], layout=layout)
            outcomes.update((n, o) for (n, _), o in zip(changes, sent, strict=True))
        return [outcomes[n] for n in range(len(steps))]

    def _open(self, k: Key, uid: int) -> FingerTemplate | None:
        row = StoredTemplate.get_or_none((StoredTemplate.user_id == k[0]) & (StoredTemplate.finger == k[1]))
        template = self._vault_().open(k[0], k[1], bytes(row.sealed)) if row is not None else None
        return FingerTemplate(uid, k[1], FLAG_VALID, template) if template is not None else None

    def _failed(self, error: str) -> None:
        EnrolmentState.insert(terminal=self.terminal, last_error=error).on_conflict(
            conflict_target=[EnrolmentState.terminal],
            update={EnrolmentState.last_error: error, EnrolmentState.users: None},
        ).execute()
        if error != self._error:
            log.warning("terminal %s: enrolment not done, tried again at the next poll: %s", self.terminal, error)
        self._error = error

    def _note(self, message: str) -> None:
        if message not in self._notes:
            self._notes.add(message)
            log.warning("%s", message)


def _brake_record(act: str, braked: Braked, **fields: object) -> dict[str, object]:
    """An ``action`` record of the brake: how many, the limit and the roster's size it was judged by."""
    body = {"act": act, "count": len(braked.leavers), "limit": braked.limit, "before": braked.before}
    return {**body, "user": "appliance", **fields}


def _unchanged(state: EnrolmentState | None, counts: Counts, basis: str, now_ms: int) -> bool:
    return (
        state is not None
        and state.basis == basis
        and state.serial == counts.serial
        and state.users == counts.users
        and state.fingers == counts.fingers
        and not _stale(state, now_ms)
    )


def _expected(counts: Counts, result: Plan, done: list[Step], *, unknown: bool) -> tuple[int | None, int | None]:
    """The terminal's user and finger counts once ``done`` is made; None where it cannot be told (a broken
    connection; a user removed with fingers the appliance may not know of): read everything next poll."""
    if unknown:
        return None, None
    users, fingers = counts.users, counts.fingers
    for step in done:
        change = step.change
        if isinstance(change, RemoveUser):
            users, fingers = users - 1, None
        elif isinstance(change, PutUser) and step.records[0]["act"] == "terminal_user_added":
            users += 1
        elif fingers is not None and isinstance(change, PutTemplates):
            fingers += sum(1 for k in step.copies if k not in result.held)
        elif fingers is not None and isinstance(change, RemoveTemplate):
            fingers -= 1
    return users, fingers


def _stale(state: EnrolmentState, now_ms: int) -> bool:
    return state.templates_read_ms is None or now_ms - state.templates_read_ms >= RECHECK_S * 1000


def _held(terminal: str) -> dict[Key, str]:
    query = TerminalFinger.select(TerminalFinger.user_id, TerminalFinger.finger, TerminalFinger.mac)
    return {(b, f): m for b, f, m in query.where(TerminalFinger.terminal == terminal).tuples()}


def _untomb(badge: str, finger: int) -> None:
    TemplateTombstone.delete().where(
        (TemplateTombstone.user_id == badge) & (TemplateTombstone.finger == finger)
    ).execute()


def _save(terminal: str, row: dict[str, object], before: dict[Key, str], after: dict[Key, str | None]) -> None:
    """The terminal's fingers as now known (what changed since ``before``), and where its enrolment stands:
    with the records, in one transaction."""
    for k in before.keys() - {k for k, mac in after.items() if mac is not None}:
        TerminalFinger.delete().where(
            (TerminalFinger.terminal == terminal) & (TerminalFinger.user_id == k[0]) & (TerminalFinger.finger == k[1])
        ).execute()
    rows = [
        {"terminal": terminal, "user_id": b, "finger": f, "mac": mac}
        for (b, f), mac in after.items()
        if mac is not None and before.get((b, f)) != mac
    ]
    for start in range(0, len(rows), 200):
        TerminalFinger.replace_many(rows[start : start + 200]).execute()
    EnrolmentState.insert(terminal=terminal, **row).on_conflict(
        conflict_target=[EnrolmentState.terminal], update=row
    ).execute()

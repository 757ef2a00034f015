"""What one terminal must be told to match the roster and the plant's fingers: a pure function, no I/O.

Inputs: the roster today (who works here, who left and why), what the terminal holds (its users; its
fingers as read now, or as last seen when nothing says they changed), what the appliance keeps (stored
templates by MAC, tombstones) and which fingers it last saw on this terminal. Output:

- fingers enrolled at this terminal since it was last looked at: to store (and copy to the others);
- fingers deleted at this terminal's menu: to tombstone, so that the other terminals delete them too;
- the changes to make on the terminal, each with the records to sign once it is done: leavers removed,
  workers added or renamed, stored fingers copied, tombstoned fingers deleted.

Only workers on the roster count: users the roster does not know are left as they are (an installer's
admin, a test badge), and so are their fingers; a worker who left is removed, fingers and all. A finger
the terminal holds that the appliance last saw there is not "new" however the store changed, so a
store restored without its key refills itself from the terminals instead of deleting anything: only a
tombstone deletes.

The brake (``brake``): a roster that makes more of the accepted roster's workers leave at once than the
limit removes none of them: they are held, neither removed nor added, fingers and all, until a person
confirms or a roster names them again. Everything else (adds, renames, copies) goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.store import RemovalBrake
from firmware_bridge.zk.directory import UserTable
from firmware_bridge.zk.records import UserRecord
from firmware_bridge.zk.userwrite import PRIVILEGES_KEPT, Change, PutTemplates, PutUser, RemoveTemplate, RemoveUser

Key = tuple[str, int]  # badge, finger


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A finger deleted on purpose: where, and which template (by MAC)."""

    terminal: str
    mac: str


@dataclass(frozen=True, slots=True)
class Roster:
    current: Mapping[str, str]  # badge -> name, for those on the roster today
    leaving: Mapping[str, str]  # badge -> why no longer ("inactive", "valid_to 2026-03-01")
    digest: str
    held: Mapping[str, str] = field(default_factory=dict)  # leavers not removed: the brake holds them (badge -> why)

    @property
    def empty(self) -> bool:
        return not self.current and not self.leaving and not self.held


@dataclass(frozen=True, slots=True)
class BrakeRule:
    """More leavers at once than max(``min_leavers``, ``percent`` % of the workers on the roster before): held."""

    min_leavers: int = 5
    percent: float = 10.0

    def limit(self, before: int) -> int:
        return max(self.min_leavers, int(before * self.percent / 100))


@dataclass(frozen=True, slots=True)
class Braked:
    """What the brake made of a roster: the roster to plan with, and what to keep of it."""

    roster: Roster  # ``leaving`` without the held leavers, who are in ``held``
    leavers: tuple[str, ...]  # the accepted roster's workers this roster makes leave
    before: int  # the accepted roster's size
    limit: int
    accepted: frozenset[str]  # the roster as accepted from now on (unchanged while held)
    confirmed: bool  # a person's confirmation released them

    @property
    def held(self) -> tuple[str, ...]:
        return tuple(sorted(self.roster.held))


def brake(roster: Roster, accepted: frozenset[str] | None, confirmed: frozenset[str], rule: BrakeRule) -> Braked:
    """``accepted``: the badges on the roster as last accepted (None: never looked at: this roster is accepted);
    ``confirmed``: the leavers a person confirmed removing. The leavers are the accepted workers this roster makes
    leave; more than the limit are held unless every one of them was confirmed."""
    if accepted is None:
        accepted = frozenset(roster.current)
        return Braked(roster, (), len(accepted), rule.limit(len(accepted)), accepted, False)
    leavers = tuple(sorted(b for b in roster.leaving if b in accepted))
    limit = rule.limit(len(accepted))
    released = bool(leavers) and bool(confirmed) and set(leavers) <= confirmed
    if len(leavers) <= limit or released:
        return Braked(roster, leavers, len(accepted), limit, frozenset(roster.current), released)
    why = "held: more leave at once than the limit; a person confirms first"
    held = dict.fromkeys(leavers, why)
    leaving = {b: r for b, r in roster.leaving.items() if b not in held}
    text = json.dumps([roster.digest, sorted(held)])
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Braked(Roster(roster.current, leaving, digest, held), leavers, len(accepted), limit, accepted, False)


@dataclass(frozen=True, slots=True)
class Kept:
    """A stored template as the plan sees it: never its bytes."""

    mac: str
    size: int
    terminal: str  # where it was enrolled
    terminal_sn: str
    algorithm: str  # the enrolling terminal's ZKFinger version: templates of another do not match


@dataclass(frozen=True, slots=True)
class Seen:
    """A finger on the terminal, read now."""

    mac: str
    size: int


@dataclass(frozen=True, slots=True)
class Terminal:
    name: str
    serial: str
    algorithm: str

    def record(self, act: str, badge: str, **fields: Any) -> dict[str, Any]:
        """An ``action`` record's body: what the appliance did to a worker's account on a terminal."""
        return {"act": act, "emp": badge, "term": {"name": self.name, "sn": self.serial}, "user": "appliance", **fields}


@dataclass(frozen=True, slots=True)
class Step:
    change: Change
    records: tuple[dict[str, Any], ...]  # signed once the change is done, one per user or finger changed
    held: tuple[tuple[Key, str | None], ...] = ()  # the terminal's fingers once done (None: gone)
    copies: tuple[Key, ...] = ()  # PutTemplates: the stored fingers it carries (opened by the caller)


@dataclass
class Plan:
    found: list[tuple[Key, str]] = field(default_factory=list)  # (finger, why) to store from this terminal
    deleted_here: list[Key] = field(default_factory=list)
    held: dict[Key, str] = field(default_factory=dict)  # this terminal's fingers as the reads tell, before the steps
    steps: list[Step] = field(default_factory=list)
    more: bool = False  # the limit was reached: the rest at the next poll
    notes: list[str] = field(default_factory=list)  # what was left alone, for the journal


def plan(
    terminal: Terminal,
    roster: Roster,
    table: UserTable,
    seen: Mapping[Key, Seen] | None,
    *,
    complete: bool,
    kept: Mapping[Key, Kept],
    held: Mapping[Key, str],
    tombstones: Mapping[Key, Tombstone],
    limit: int,
) -> Plan:
    """``seen``: the fingers read now (None: not read, assume ``held``); ``complete``: the read brought as many
    fingers as the terminal counts (a finger deleted at the menu is inferred only from a complete read);
    ``tombstones``: fingers deleted on purpose."""
    result = Plan()
    by_badge: dict[str, UserRecord] = {}
    for user in table.users:
        by_badge.setdefault(user.user_id, user)
    result.held = {k: mac for k, mac in held.items() if k[0] in by_badge}  # a user's fingers go with the user
    on_terminal = _look(roster, seen, complete, kept, held, tombstones, by_badge, result)
    kept_now = dict(kept)
    for k, _why in result.found:
        kept_now[k] = Kept(on_terminal[k], _size(seen, k), terminal.name, terminal.serial, terminal.algorithm)
    for k in result.deleted_here:
        kept_now.pop(k, None)
    found = dict(result.found)
    gone = {k: t.terminal for k, t in tombstones.items() if k not in found}
    gone |= dict.fromkeys(result.deleted_here, terminal.name)
    fingers = _by_badge(kept_now.keys() | on_terminal.keys())  # each worker's fingers, kept or on the terminal

    def add(step: Step) -> bool:
        if len(result.steps) >= limit:
            result.more = True
            return False
        result.steps.append(step)
        return True

    held_by_badge = _by_badge(result.held)
    for badge, why in sorted(roster.leaving.items()):
        user = by_badge.get(badge)
        if user is None:
            continue
        theirs = tuple((k, None) for k in held_by_badge.get(badge, []))
        record = terminal.record("terminal_user_removed", badge, uid=user.uid, fingers=len(theirs), reason=why)
        if not add(Step(RemoveUser(user.uid, badge), (record,), theirs)):
            return result
    next_uid = max((u.uid for u in table.users), default=0) + 1
    skipped_renames = 0
    for badge, name in sorted(roster.current.items()):
        user = by_badge.get(badge)
        shown = table.shown(name)
        if user is None:
            if table.numeric_only() and not badge.isdigit():
                result.notes.append(f"badge {badge!r} cannot be kept by this terminal (numbers only)")
                continue
            user = UserRecord(next_uid, badge, shown)
            next_uid += 1
            record = terminal.record("terminal_user_added", badge, uid=user.uid, reason="on the roster")
            if not add(Step(PutUser(user), (record,))):
                return result
        elif user.name != shown and user.privilege not in PRIVILEGES_KEPT:
            skipped_renames += 1
        elif user.name != shown:
            user = dataclasses.replace(user, name=shown)
            record = terminal.record("terminal_user_renamed", badge, uid=user.uid, reason="renamed on the roster")
            if not add(Step(PutUser(user), (record,))):
                return result
        mine = fingers.get(badge, [])
        if mine and not _fingers(terminal, badge, user, mine, on_terminal, kept_now, gone, result, add):
            return result
    if skipped_renames:
        result.notes.append(f"{skipped_renames} user(s) with a privilege pyzk cannot keep were not renamed")
    unknown = sum(1 for b in by_badge if b not in roster.current and b not in roster.leaving and b not in roster.held)
    held = sum(1 for b in by_badge if b in roster.held)
    if held:
        result.notes.append(
            f"{held} leaver(s) not removed: more leave the roster at once than the limit "
            "(punchproof appliance confirm-removals)"
        )
    if unknown:
        result.notes.append(f"{unknown} user(s) on the terminal are not on the roster: left as they are")
    return result


def _look(
    roster: Roster,
    seen: Mapping[Key, Seen] | None,
    complete: bool,
    kept: Mapping[Key, Kept],
    held: Mapping[Key, str],
    tombstones: Mapping[Key, Tombstone],
    by_badge: Mapping[str, UserRecord],
    result: Plan,
) -> dict[Key, str]:
    """What was done at the terminal itself since it was last looked at; returns its fingers by MAC."""
    if seen is None:
        return dict(result.held)
    for k, finger in sorted(seen.items()):
        if k[0] not in roster.current:
            continue
        stored = kept.get(k)
        deleted = tombstones.get(k)
        if deleted is not None and deleted.mac == finger.mac:
            pass  # the very finger deleted elsewhere, found here (a terminal back from its own backup): deleted too
        elif held.get(k) != finger.mac:  # enrolled (or enrolled again) here since, or the first look at it
            if stored is None or stored.mac != finger.mac:
                why = "found at this terminal" if k not in held else "enrolled again at this terminal"
                result.found.append((k, why))
        elif stored is None and deleted is None:  # the store lost it (restored without its key): keep it again
            result.found.append((k, "kept again: the appliance had no copy"))
        result.held[k] = finger.mac
    if complete:
        for k, mac in sorted(held.items()):
            if k in seen or k[0] not in by_badge or k[0] not in roster.current:
                continue
            stored = kept.get(k)
            if stored is not None and stored.mac == mac:  # the stored finger itself was deleted at the menu
                result.deleted_here.append(k)
            result.held.pop(k, None)
        return {k: f.mac for k, f in seen.items()}
    return {**result.held, **{k: f.mac for k, f in seen.items()}}  # a finger the read missed: as last seen


def _fingers(
    terminal: Terminal,
    badge: str,
    user: UserRecord,
    mine: list[Key],
    on_terminal: Mapping[Key, str],
    kept: Mapping[Key, Kept],
    gone: Mapping[Key, str],
    result: Plan,
    add: Any,
) -> bool:
    """The worker's stored fingers the terminal lacks (or holds another version of), and tombstoned ones it
    still holds; False when the limit stopped it."""
    copies = []
    other_algorithm = 0
    for k in mine:
        if k not in kept or on_terminal.get(k) == kept[k].mac:
            continue
        if kept[k].algorithm and terminal.algorithm and kept[k].algorithm != terminal.algorithm:
            other_algorithm += 1
            continue
        copies.append(k)
    if other_algorithm:
        result.notes.append(f"{badge}: {other_algorithm} finger(s) enrolled on another ZKFinger version not copied")
    if copies:
        records = tuple(
            terminal.record(
                "template_copied",
                badge,
                finger=k[1],
                size=kept[k].size,
                **{"from": {"name": kept[k].terminal, "sn": kept[k].terminal_sn}},
            )
            for k in copies
        )
        held = tuple((k, kept[k].mac) for k in copies)
        if not add(Step(PutTemplates(user, ()), records, held, tuple(copies))):
            return False
    for k in mine:
        mac = on_terminal.get(k)
        if mac is None or k in kept or k not in gone or result.held.get(k) != mac:
            continue
        record = terminal.record(
            "template_removed", badge, finger=k[1], reason=f"deleted at {gone[k]}'s menu", uid=user.uid
        )
        if not add(Step(RemoveTemplate(user.uid, badge, k[1]), (record,), ((k, None),))):
            return False
    return True


def _by_badge(keys: Iterable[Key]) -> dict[str, list[Key]]:
    grouped: dict[str, list[Key]] = {}
    for k in sorted(keys):
        grouped.setdefault(k[0], []).append(k)
    return grouped


def _size(seen: Mapping[Key, Seen] | None, k: Key) -> int:
    return seen[k].size if seen is not None else 0


# -- a hold of the brake, as the pages show it (here, so that the pages do not load the log's writer) -------


@dataclass(frozen=True)
class Hold:
    """Leavers whose removal the brake holds, as the pages and ``confirm-removals`` show them."""

    badges: tuple[str, ...]
    limit: int
    before: int
    since_ms: int | None
    confirmed_by: str  # a confirmation the daemon has not taken up yet ("" if none)


def held_removals() -> Hold | None:
    """The removals the brake holds now, or None."""
    row = RemovalBrake.get_or_none(RemovalBrake.id == 1)
    badges = tuple(json.loads(row.held)) if row is not None else ()
    if not badges:
        return None
    return Hold(badges, row.held_limit, row.held_before, row.held_ms, row.confirmed_by if row.confirmed_ms else "")


def hold_message(hold: Hold, lang: str = "zh") -> str:
    """What the plant's pages say about a hold, in the page's language."""
    if lang == "en":
        return (
            f"The roster would remove {len(hold.badges)} workers from the time clocks (more than the limit of "
            f"{hold.limit}): removal is paused. Check the roster; if it is right, run 'punchproof appliance "
            "confirm-removals' on the appliance. A roster from head office that names them again ends the pause."
        )
    return (
        f"名单变更将从考勤机删除 {len(hold.badges)} 人（超过上限 {hold.limit} 人），已暂停删除。请核对名单；"
        "确认无误后在本机运行 punchproof appliance confirm-removals 确认；"
        "总部重新下发包含这些人员的名单后，暂停自动解除。"
    )

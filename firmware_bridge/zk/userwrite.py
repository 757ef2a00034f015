"""Changing a terminal's users and templates through pyzk 0.9, around its defects.

What pyzk gets wrong here, and what this layer does instead:

- ``set_user`` packs the 28-byte layout of black-and-white terminals unless ``get_users`` ran on the
  same connection first (``user_packet_size`` starts at 28 over UDP); we set the layout we read.
- It cuts the encoded name at 24 bytes, which can leave half a GBK character; names arrive here
  already fitted (``UserTable.shown``) so the terminal shows, and reads back, exactly what was meant.
- It turns every privilege but 0 and 14 into 0 (an enroller or a disabled user would lose theirs):
  such a user is refused here, not silently demoted.
- ``save_user_template`` encodes through ``User.encoding``, a class attribute every ``ZK()`` overwrites:
  two terminals with different encodings in two threads would write each other's. The attribute is
  set and used under one lock (``PYZK_ENCODING``), which ``ZKTerminal`` also holds while constructing.
- ``delete_user_template`` with a badge number over TCP packs a ``str`` into bytes and crashes; we
  always delete by slot (CMD_DELETE_USERTEMP), and refresh the terminal's data after it (pyzk does not).
- A refusal is a ``ZKErrorResponse`` for one change: the rest go on. A dropped connection ends the
  batch; every change says whether it was done, so the caller records exactly what happened.

pyzk's ``save_user_template`` sends a template's bytes, not its flag: a duress finger would arrive as
an ordinary one, so callers copy only ordinary fingers (``FLAG_VALID``).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from zk.exception import ZKError, ZKErrorResponse
from zk.finger import Finger
from zk.user import User

from firmware_bridge.zk.records import FingerTemplate, UserRecord

log = logging.getLogger(__name__)

PYZK_ENCODING = threading.Lock()  # guards zk.user.User.encoding, shared by every pyzk connection in the process
PRIVILEGES_KEPT = (0, 14)  # what pyzk's set_user writes as given; any other is reset to 0 by it


@dataclass(frozen=True, slots=True)
class PutUser:
    """Create the user in ``user.uid``'s slot, or overwrite it (a rename keeps slot, card, PIN and privilege)."""

    user: UserRecord


@dataclass(frozen=True, slots=True)
class RemoveUser:
    """Delete the user; the terminal deletes the user's templates with it."""

    uid: int
    user_id: str


@dataclass(frozen=True, slots=True)
class PutTemplates:
    """Write fingers of one user (the user entry goes with them, as the terminal stores them together)."""

    user: UserRecord
    templates: tuple[FingerTemplate, ...]


@dataclass(frozen=True, slots=True)
class RemoveTemplate:
    uid: int
    user_id: str
    finger: int


Change = PutUser | RemoveUser | PutTemplates | RemoveTemplate


@dataclass(frozen=True, slots=True)
class Outcome:
    change: Change
    error: str = ""  # empty: done
    unknown: bool = False  # the connection broke: it may or may not have been made (read the terminal again)

    @property
    def done(self) -> bool:
        return not self.error


def refusal(change: Change, layout: int) -> str:
    """Why this layer will not send ``change`` at all ("" if it will)."""
    user = change.user if isinstance(change, PutUser | PutTemplates) else None
    if user is None:
        return ""
    if isinstance(change, PutUser) and user.privilege not in PRIVILEGES_KEPT:
        return f"privilege {user.privilege} would be reset to 0 by pyzk 0.9; not written"
    if layout == 28 and not (user.user_id.isdigit() and (not user.group or user.group.isdigit())):
        return f"badge {user.user_id!r}: this terminal's user layout keeps numbers only"
    return ""


def apply(conn: Any, changes: Sequence[Change], *, layout: int, encoding: str) -> list[Outcome]:
    """Make ``changes`` on a connected, disabled pyzk terminal, in order; one outcome per change.

    Raises nothing for a refused change; a broken connection marks the change under way and every
    later one as not done and stops.
    """
    conn.user_packet_size = layout
    outcomes: list[Outcome] = []
    removed_templates = False
    for n, change in enumerate(changes):
        reason = refusal(change, layout)
        if reason:
            outcomes.append(Outcome(change, reason))
            continue
        try:
            _one(conn, change, encoding)
        except ZKErrorResponse as err:  # the terminal said no to this one
            outcomes.append(Outcome(change, f"refused by the terminal: {err}"))
            continue
        except (struct.error, ValueError) as err:  # pyzk could not pack it: nothing was sent
            outcomes.append(Outcome(change, f"not sent: {err}"))
            continue
        except (ZKError, OSError) as err:
            lost = f"connection lost, not known to be done: {err}"
            outcomes += [Outcome(c, lost, unknown=True) for c in changes[n:]]
            return outcomes
        removed_templates |= isinstance(change, RemoveTemplate)
        outcomes.append(Outcome(change))
    if removed_templates:  # the matcher forgets the deleted fingers (pyzk does not ask for it)
        try:
            conn.refresh_data()
        except (ZKError, OSError) as err:  # deleted all the same; the terminal's next refresh catches up
            log.warning("the terminal's data was not refreshed after deleting fingers: %s", err)
    return outcomes


def _one(conn: Any, change: Change, encoding: str) -> None:
    if isinstance(change, PutUser):
        u = change.user
        conn.set_user(
            uid=u.uid,
            name=u.name,
            privilege=u.privilege,
            password=u.password,
            group_id=u.group,
            user_id=u.user_id,
            card=u.card,
        )
    elif isinstance(change, RemoveUser):
        conn.delete_user(uid=change.uid)
    elif isinstance(change, PutTemplates):
        u = change.user
        user = User(u.uid, u.name, u.privilege, u.password, u.group, u.user_id, u.card)
        fingers = [Finger(u.uid, t.finger, t.flag, t.data) for t in change.templates]
        with PYZK_ENCODING:
            User.encoding = encoding
            conn.save_user_template(user, fingers)
    elif not conn.delete_user_template(uid=change.uid, temp_id=change.finger):
        raise ZKErrorResponse(f"finger {change.finger} of slot {change.uid} not deleted")

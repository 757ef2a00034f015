"""How long a login must wait after failed attempts: slower and slower, never a lock-out.

A fixed lock-out (5 failures, then 15 minutes for everyone) lets anyone who can reach the login page
lock the real user out, and behind a reverse proxy that counts every visitor as one address, lock
everybody out. Here each key (an address, a user at an address, a user from anywhere) has a number of
free failures, then every further failure doubles the wait before the next attempt is heard, up to a
ceiling. The right password from another address is never slowed by a guesser's address; a user name
being guessed from many addresses is slowed too, but only by seconds.

The counters live in each site's database, so that every web worker sees the same ones: ``Counters`` reads
and writes them in a site's table of (key, failures, the key's latest failure in ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import peewee as pw

WINDOW_MS = 60 * 60 * 1000  # failures older than this (since the key's last one) are forgotten


@dataclass(frozen=True)
class Rule:
    prefix: str
    free: int  # failures before any wait
    ceiling_s: int  # the longest wait


RULES = (
    Rule("ip", free=10, ceiling_s=15 * 60),  # one address guessing any names
    Rule("user-ip", free=5, ceiling_s=15 * 60),  # one name from one address
    Rule("user", free=20, ceiling_s=60),  # one name from anywhere: the real user waits a minute at most
)


def keys(username: str, address: str) -> list[tuple[str, Rule]]:
    name, addr = username[:64], address[:64]
    values = {"ip": addr, "user-ip": f"{name}@{addr}", "user": name}
    return [(f"{rule.prefix}:{values[rule.prefix]}", rule) for rule in RULES]


def delay_s(failures: int, rule: Rule) -> int:
    """The wait after ``failures`` failures: 0 while free, then 1, 2, 4 ... seconds up to the ceiling."""
    over = failures - rule.free - 1
    if over < 0:
        return 0
    return min(2 ** min(over, 30), rule.ceiling_s)


def wait_s(rows: dict[str, tuple[int, int]], username: str, address: str, now_ms: int) -> int:
    """Seconds before this user at this address may try again; ``rows``: key -> (failures, last_ms)."""
    longest = 0
    for key, rule in keys(username, address):
        failures, last_ms = rows.get(key, (0, 0))
        if now_ms - last_ms >= WINDOW_MS:
            continue
        left_ms = delay_s(failures, rule) * 1000 - (now_ms - last_ms)
        longest = max(longest, -(-left_ms // 1000))
    return longest


@dataclass(frozen=True)
class Counters:
    """A site's throttle table: a peewee model with ``key`` (primary key) and ``failures`` columns, and ``last``,
    the field holding the key's latest failure (ms)."""

    model: Any
    last: pw.Field

    def wait_s(self, username: str, address: str, now_ms: int) -> int:
        """Seconds before a login of ``username`` from ``address`` is heard again (0: now)."""
        table, names = self.model, [key for key, _rule in keys(username, address)]
        rows = {r.key: (r.failures, getattr(r, self.last.name)) for r in table.select().where(table.key.in_(names))}
        return wait_s(rows, username, address, now_ms)

    def failed(self, username: str, address: str, now_ms: int) -> None:
        """Count a failure against each key (an upsert each: two workers at once both count)."""
        table = self.model
        stale = self.last <= now_ms - WINDOW_MS
        for key, _rule in keys(username, address):
            table.insert(key=key, failures=1, **{self.last.name: now_ms}).on_conflict(
                conflict_target=[table.key],
                update={table.failures: pw.Case(None, [(stale, 1)], table.failures + 1), self.last: now_ms},
            ).execute()

    def succeeded(self, username: str, address: str) -> None:
        """The user's own counters start again; the address's does not (one good account must not reset it)."""
        names = [key for key, rule in keys(username, address) if rule.prefix != "ip"]
        self.model.delete().where(self.model.key.in_(names)).execute()

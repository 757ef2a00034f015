"""``Dispatcher.dispatch(message) -> Attempt``: the one door the escalation engine uses to reach anyone.

It picks the channel, and makes a step idempotent: the key is (case_ref, step_id, channel, recipient). Once an
attempt under a key was accepted by the provider (or is a person's open task), dispatching the same key again
returns that attempt and sends nothing. A definite failure (refused, unreachable) may be sent again: the
recipient never got it. An uncertain one (no answer) is not resent automatically, since it may have gone out;
``force=True`` is for the person who checked with the provider. While one dispatcher sends under a key, another
gets ``DispatchBusy`` instead of a second send (two escalation runners at once send nothing twice).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from cloud.channels import contact_log
from cloud.channels.base import Attempt, Channel, OutboundMessage, Status
from cloud.channels.contact_log import ContactAttempt, idempotency_key
from cloud.channels.writer import one_writer, together
from cloud.clock import Clock, SystemClock, to_ms

log = logging.getLogger(__name__)
FINAL = (Status.SENT, Status.TASK_OPEN, Status.DONE)
CLAIM_STALE_MS = 15 * 60 * 1000  # a dispatcher that died mid-send releases its key after this


class UnknownChannel(Exception):
    """The message names a channel that is not configured. Callers ask ``has`` first: the escalation records
    such a step as 无法发送 with a task for a person, it never sends into this."""


class DispatchBusy(Exception):
    """Another dispatcher is sending this very step right now."""


class Dispatcher:
    def __init__(self, channels: Iterable[Channel], *, clock: Clock | None = None) -> None:
        self.channels = list(channels)
        self.clock = clock or SystemClock()

    def has(self, name: str) -> bool:
        """Whether a channel of this name or kind is configured."""
        return any(name in (channel.name, channel.kind) for channel in self.channels)

    def channel_for(self, name: str) -> Channel:
        """A channel by its configured name ("sms.tencent"), or the first configured of a kind ("sms")."""
        for channel in self.channels:
            if channel.name == name:
                return channel
        for channel in self.channels:
            if channel.kind == name:
                return channel
        known = ", ".join(c.name for c in self.channels) or "none"
        raise UnknownChannel(f"no channel {name!r} is configured (configured: {known})")

    def dispatch(self, message: OutboundMessage, *, force: bool = False) -> Attempt:
        channel = self.channel_for(message.channel)
        key = idempotency_key(message.case_ref, message.step_id, message.channel, message.recipient)
        previous = self._claim(key)
        released = False
        try:
            if previous is not None:
                status = Status(previous.status)
                if status in FINAL or (status is Status.UNCERTAIN and not force):
                    log.info(
                        "case %s step %s via %s: already %s, not sent again",
                        message.case_ref,
                        message.step_id,
                        channel.name,
                        status.value,
                    )
                    return contact_log.to_attempt(previous)
            attempt = channel.send(message)
            stored = together(lambda: _recorded(message, attempt, key))  # one commit: the attempt stored, the key free
            released = True
            if stored.ok:
                log.info(
                    "case %s step %s via %s: %s", message.case_ref, message.step_id, channel.name, stored.status.value
                )
            else:
                log.warning(
                    "case %s step %s via %s: %s (%s)",
                    message.case_ref,
                    message.step_id,
                    channel.name,
                    stored.status.value,
                    stored.reason,
                )
            return stored
        finally:
            if not released:
                _release(key)

    def _claim(self, key: str) -> ContactAttempt | None:
        """Take the key for this dispatcher, and read what was sent under it before: one short write, committed before
        the message goes out (senders on other threads wait for the writer's turn, not for the provider)."""
        now = to_ms(self.clock.now())

        def claim() -> ContactAttempt | None:
            contact_log.execute(
                'INSERT INTO dispatch_claim ("key", in_flight_ms) VALUES (?, NULL) ON CONFLICT DO NOTHING', [key]
            )
            taken = contact_log.execute(
                'UPDATE dispatch_claim SET in_flight_ms = ? WHERE "key" = ? '
                "AND (in_flight_ms IS NULL OR in_flight_ms < ?)",
                [now, key, now - CLAIM_STALE_MS],
            ).rowcount
            if not taken:
                raise DispatchBusy(f"step {key[:12]}… is being sent by another dispatcher")
            return contact_log.last_attempt(key)

        return together(claim)  # committed before the message goes out, with other senders' writes (SQLite)


def _recorded(message: OutboundMessage, attempt: Attempt, key: str) -> Attempt:
    stored = contact_log.record_attempt(message, attempt, key=key)
    _release(key)
    return stored


def _release(key: str) -> None:
    with one_writer():
        contact_log.execute('UPDATE dispatch_claim SET in_flight_ms = NULL WHERE "key" = ?', [key])

"""Messages that failed verification: a sample kept whole, the rest counted.

Every rejected message used to be stored whole, with no cap: one appliance login sending junk grew head
office's database by about 34 MiB a second. Each source (an appliance's topics, ``pp/<plant>/<appliance>``,
or the topic itself) keeps its first ``SAMPLE`` messages in ``Quarantine`` (each payload cut at
``MAX_PAYLOAD``), enough to see what is arriving and to show it to the appliance's owner; after that each
further message only adds to the source's ``QuarantineOverflow`` counts (how many, how many bytes, since
and until when, the latest reason), which the front page shows. The journal says the first ``SAMPLE``, then
one line in ``LOG_EVERY``.
"""

from __future__ import annotations

import logging

import peewee as pw

from cloud.store import BaseModel, Quarantine
from ledger import topics

log = logging.getLogger(__name__)

SAMPLE = 100
MAX_PAYLOAD = 64 * 1024
LOG_EVERY = 1000
TOPIC_CHARS = 255  # Quarantine.topic, a varchar(255) on PostgreSQL
REASON_CHARS = 2000


class QuarantineOverflow(BaseModel):
    """Quarantined messages of one source past its sample: counted, not kept."""

    source = pw.CharField(primary_key=True, max_length=200)
    count = pw.BigIntegerField(default=0)
    bytes = pw.BigIntegerField(default=0)
    first_ms = pw.BigIntegerField()
    last_ms = pw.BigIntegerField()
    last_reason = pw.TextField(default="")


MODELS = (QuarantineOverflow,)


def source_of(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == topics.PREFIX:
        return "/".join(parts[:3])
    return topic[:200]


def _text(value: str, limit: int) -> str:
    """Text PostgreSQL can keep: no NUL character (it refuses the statement), within the column's length."""
    return value.replace("\x00", "\ufffd")[:limit]


def keep(topic: str, reason: str, payload: bytes, now_ms: int) -> None:
    """Quarantine one message: kept whole while its source's sample lasts, counted after."""
    # a topic (a terminal's name in device/<name>) or a reason quoting the message may be longer than the
    # column or hold a NUL: on PostgreSQL the insert failed and the message escaped the worker's handling
    topic, reason = _text(topic, TOPIC_CHARS), _text(reason, REASON_CHARS)
    source = _text(source_of(topic), 200)
    same = (Quarantine.topic == source) | Quarantine.topic.startswith(source + "/")
    if Quarantine.select().where(same).count() < SAMPLE:
        log.error("quarantined a message on %s: %s", topic, reason)
        cut = f" (payload cut at {MAX_PAYLOAD} of {len(payload)} bytes)" if len(payload) > MAX_PAYLOAD else ""
        Quarantine.create(received_ms=now_ms, topic=topic, reason=reason + cut, payload=payload[:MAX_PAYLOAD])
        return
    QuarantineOverflow.insert(
        source=source, count=1, bytes=len(payload), first_ms=now_ms, last_ms=now_ms, last_reason=reason[:500]
    ).on_conflict(
        conflict_target=[QuarantineOverflow.source],
        update={
            QuarantineOverflow.count: QuarantineOverflow.count + 1,
            QuarantineOverflow.bytes: QuarantineOverflow.bytes + len(payload),
            QuarantineOverflow.last_ms: now_ms,
            QuarantineOverflow.last_reason: reason[:500],
        },
    ).execute()
    counted = QuarantineOverflow.get_by_id(source).count
    if counted == 1 or counted % LOG_EVERY == 0:
        log.error(
            "%s: %d more quarantined message(s) counted, not kept (latest on %s: %s)", source, counted, topic, reason
        )

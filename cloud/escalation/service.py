"""``punchproof cloud escalate``'s loop body: the engine's tick, then delivery reports pulled when due, then
the cloud's evidence log brought up to date (contacts, receipts and people's actions since the last tick).

Pulling is the fallback for pushed reports that never arrived (Tencent's queue, Aliyun's per-message query,
DingTalk's read lists); a provider that fails to answer is logged and asked again at the next pull, and never
stops the escalation itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from cloud.channels import dingtalk, sms_aliyun, sms_tencent
from cloud.channels.base import Channel
from cloud.channels.receipts import pull_receipts
from cloud.channels.transport import NoAnswer, TokenFailed, Unreachable
from cloud.clock import Clock
from cloud.escalation.engine import Engine, TickReport
from cloud.evidence_log import EvidenceLog

log = logging.getLogger(__name__)
PULL_ERRORS = (
    sms_aliyun.QueryFailed,
    sms_tencent.QueryFailed,
    dingtalk.QueryFailed,
    TokenFailed,
    NoAnswer,
    Unreachable,
)


class EscalationService:
    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        channels: Sequence[Channel] = (),
        pull_every_s: int = 300,
        evidence: EvidenceLog | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._channels = list(channels)
        self._every = timedelta(seconds=pull_every_s)
        self._evidence = evidence
        self._pulled: datetime | None = None
        self.failing: set[str] = set()  # channels whose last pull failed (logged once per episode)

    def tick(self) -> TickReport:
        report = self._engine.tick()
        now = self._clock.now()
        if self._channels and (self._pulled is None or now - self._pulled >= self._every):
            self._pulled = now
            report.notes += self.pull()
        if self._evidence is not None:
            self._evidence.catch_up()
        return report

    def pull(self) -> list[str]:
        notes = []
        for channel in self._channels:
            try:
                stored = pull_receipts([channel], self._clock)
            except PULL_ERRORS as err:
                if channel.name not in self.failing:
                    log.warning("delivery reports from %s could not be pulled: %s", channel.name, err)
                self.failing.add(channel.name)
                notes.append(f"{channel.name}: {err}")
                continue
            if channel.name in self.failing:
                log.info("delivery reports from %s are pulled again", channel.name)
                self.failing.discard(channel.name)
            if stored:
                notes.append(f"{channel.name}: {len(stored)} delivery reports")
        return notes

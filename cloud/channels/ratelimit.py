"""How fast a channel may call its provider: a token bucket, the provider's "N per minute", how many requests may
be in flight at once, and a back-off that every sender on the channel keeps when the provider says "too many".

One ``ChannelLimiter`` per channel object, shared by every thread that sends on it (the escalation runner sends
several steps at once). ``acquire()`` waits for a token; ``pause(s)`` is what a sender does on the provider's own
"rate limited" answer: the whole channel waits ``s`` seconds (no thread sends meanwhile) and the bucket starts empty
again, so the provider sees the channel slow down, not only the one request.

Time: the injected clock, never earlier than the limiter's own last reading plus what it has slept since, so that a
clock which does not move (tests) or jumps back (an NTP step) never makes a sender wait for ever.

The defaults (``DEFAULTS``, per ``[channels.*]`` section) are the providers' published limits for one account:

* Aliyun SMS, SendSms: 5000/s per account ("Flow control information", dysmsapi 2017-05-25,
  https://help.aliyun.com/en/sms/developer-reference/api-dysmsapi-2017-05-25-quota). Aliyun also limits what one
  number receives (短信通知: 50 a day per signature and template); it answers ``isv.BUSINESS_LIMIT_CONTROL``.
* Tencent Cloud SMS, SendSms (2021-01-11): "默认接口请求频率限制：3000次/秒"
  (https://cloud.tencent.com/document/api/382/55981).
* WeCom (企业微信) 应用消息: "每企业调用单个cgi/api不可超过1万次/分，15万次/小时"; message/send is counted apart from it
  ("发消息频率不计入基础频率"): per app 账号上限数×200 人次 a day, and per member 30 a minute, 1000 an hour, the excess
  dropped without an error ("访问频率限制", https://developer.work.weixin.qq.com/document/path/90454). We keep to
  the 10,000 a minute.
* DingTalk (钉钉) 工作通知 (asyncsend_v2): an app's calls 20 QPS on the standard edition (40 professional, 60
  exclusive), queued beyond it (https://developer.aliyun.com/ask/615474); one app reaches one user at most 500 times
  a day. Group robots, both providers: 20 a minute per robot (DingTalk throttles a robot for 10 minutes beyond it).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from cloud.clock import Clock

Sleep = Callable[[float], None]
MIN_WAIT_S = 0.001  # a shorter sleep is lost in the clock's resolution (seconds since 1970 as a float)


@dataclass(frozen=True)
class RateLimit:
    """``per_s``: requests a second over time (the bucket's refill), 0 for none; ``burst``: requests at once after a
    quiet spell (the bucket's size); ``per_minute``: at most this many in any 60 seconds, as a provider counts "20 per
    minute", 0 for none; ``concurrency``: requests in flight at once."""

    per_s: float = 0.0
    burst: int = 1
    per_minute: int = 0
    concurrency: int = 16

    def problems(self, where: str) -> list[str]:
        out = []
        if self.per_s < 0 or self.per_minute < 0:
            out.append(f"{where}: per_second and per_minute cannot be negative")
        if self.burst < 1:
            out.append(f"{where}.burst: at least 1")
        if self.concurrency < 1:
            out.append(f"{where}.concurrency: at least 1")
        return out


DEFAULTS: dict[str, RateLimit] = {  # per [channels.*] section; sources in the module's docstring
    "sms_aliyun": RateLimit(per_s=5000, burst=100),
    "sms_tencent": RateLimit(per_s=3000, burst=100),
    "wecom": RateLimit(per_minute=10_000, per_s=10_000 / 60, burst=50),
    "wecom_robot": RateLimit(per_minute=20, concurrency=1),
    "dingtalk": RateLimit(per_s=20, burst=20),
    "dingtalk_robot": RateLimit(per_minute=20, concurrency=1),
}


class ChannelLimiter:
    def __init__(self, limit: RateLimit, clock: Clock, sleep: Sleep = time.sleep) -> None:
        self.limit, self.clock, self.sleep = limit, clock, sleep
        self._tokens = float(limit.burst)
        self._t = 0.0  # the limiter's time: the clock's, never earlier than its last reading plus its sleeps
        self._filled = 0.0
        self._paused_until = 0.0
        self._minute: deque[float] = deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(limit.concurrency)

    def _now(self) -> float:
        self._t = max(self._t, self.clock.now().timestamp())
        return self._t

    def _wait(self, now: float) -> float:
        """Seconds to wait before the next request may go (0: it may go now)."""
        if self._paused_until > now:
            return self._paused_until - now
        limit = self.limit
        if limit.per_s:
            if self._filled:
                self._tokens = min(float(limit.burst), self._tokens + (now - self._filled) * limit.per_s)
            self._filled = now
            # (a token refilled from seconds since 1970, a float good to a microsecond, may come out a hair short)
            if self._tokens < 1 - 1e-6 * max(1.0, limit.per_s):
                return max((1 - self._tokens) / limit.per_s, MIN_WAIT_S)
        if limit.per_minute:
            while self._minute and now - self._minute[0] >= 60:
                self._minute.popleft()
            if len(self._minute) >= limit.per_minute:
                return 60 - (now - self._minute[0])
        return 0.0

    def acquire(self) -> float:
        """Wait until a request may go, and count it; returns how long it waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._now()
                wait = self._wait(now)
                if wait <= 0:
                    if self.limit.per_s:
                        self._tokens -= 1
                    if self.limit.per_minute:
                        self._minute.append(now)
                    return waited
            self.sleep(wait)
            waited += wait
            with self._lock:
                self._t = max(self._t, now + wait)  # at least this long has passed, whatever the clock says

    def back_off(self, seconds: float) -> None:
        """The provider said "too many": no request goes on this channel for ``seconds``; then one, and the bucket
        fills again from there."""
        with self._lock:
            now = self._now()
            self._paused_until = max(self._paused_until, now + seconds)
            self._tokens, self._filled = 1.0, self._paused_until  # then one, the bucket refilled from there

    def pause(self, seconds: float) -> None:
        """Back off, then wait for the next request's turn (the ``sleep`` of a retry after "too many")."""
        self.back_off(seconds)
        self.acquire()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One of the channel's ``concurrency`` requests in flight."""
        with self._slots:
            yield

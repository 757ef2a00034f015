"""The Prometheus text exposition format (0.0.4), written by hand, and who may read ``/metrics``.

Both sides' ``/metrics`` pages (``appliance.web.metrics``, ``cloud.web.metrics``) collect their own
figures and write them with this; the access rule is the same on both: without a token file only
this machine, with one only a request bearing its token. A request that came through a reverse proxy
is never "this machine", although its socket is the proxy's 127.0.0.1: the proxy says so by adding
``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP`` (nginx's usual settings add the first), and such
a request needs the token like any remote client.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Headers a reverse proxy adds: their presence means the socket's address is the proxy's, not the client's.
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


@dataclass
class Metric:
    name: str
    kind: str  # gauge | counter
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, value))
        return self


def exposition(metrics: Iterable[Metric]) -> str:
    """The text format: HELP and TYPE once per family, then its samples; label values escaped."""
    lines = []
    for metric in metrics:
        lines.append(f"# HELP {metric.name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        for labels, value in metric.samples:
            label_text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            lines.append(
                f"{metric.name}{{{label_text}}} {_number(value)}" if labels else f"{metric.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def proxied(headers: Container[str]) -> bool:
    """Whether a request with these headers came through a reverse proxy."""
    return any(name in headers for name in PROXY_HEADERS)


def allowed(remote_addr: str | None, authorization: str, token_file: Path, *, via_proxy: bool) -> bool:
    """Whether a request may read ``/metrics``: the token's bearer if there is a token file, otherwise a
    request from this machine's loopback that no proxy forwarded (``via_proxy``: see ``proxied``)."""
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())
    if via_proxy:
        return False
    try:
        return ipaddress.ip_address(remote_addr or "").is_loopback
    except ValueError:
        return False

"""The Prometheus text exposition format (0.0.4), written by hand, and who may read ``/metrics``.

Both sides' ``/metrics`` pages (``appliance.web.metrics``, ``cloud.web.metrics``) collect their own
figures and write them with this; the access rule is the same on both: without a token file only
this machine, with one only a request bearing its token.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


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


def allowed(remote_addr: str | None, authorization: str, token_file: Path) -> bool:
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    if token:
        return hmac.compare_digest(authorization.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(remote_addr or "").is_loopback
    except ValueError:
        return False

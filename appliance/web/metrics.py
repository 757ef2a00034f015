"""``/metrics``: the appliance's health for Prometheus (text exposition format 0.0.4, written here).

Who may read it: without a token file, only this machine (a local agent, or an SSH tunnel); with
``<state_dir>/metrics.token`` present, whoever sends ``Authorization: Bearer <its content>`` and
nobody else, not even a local request (a reverse proxy on this host would make every visitor
look local). The file is read at every request, so a new token needs no restart.

Everything comes from the database the daemon writes; nothing is computed twice.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request

from appliance.store import LogRecord, Punch, SyncState, TerminalHealth

bp = Blueprint("metrics", __name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


def collect(now_s: float, version: str) -> list[Metric]:
    head = LogRecord.select(LogRecord.seq).order_by(LogRecord.seq.desc()).scalar()
    head = -1 if head is None else head
    sync = SyncState.get_by_id(1)
    oldest = LogRecord.select(LogRecord.t_wall_ms).where(LogRecord.seq == sync.acked_seq + 1).scalar()
    metrics = [
        Metric("punchproof_build_info", "gauge", "The software version running.").add(1, version=version),
        Metric("punchproof_punches_stored_total", "counter", "Terminal punches signed and stored.").add(
            Punch.select().count()
        ),
        Metric("punchproof_log_head_seq", "gauge", "Sequence number of the newest record of the signed log.").add(head),
        Metric("punchproof_sync_acked_seq", "gauge", "Highest seq the cloud verified, stored and acknowledged.").add(
            sync.acked_seq
        ),
        Metric("punchproof_sync_backlog_records", "gauge", "Records the cloud has not acknowledged yet.").add(
            head - sync.acked_seq
        ),
        Metric(
            "punchproof_sync_oldest_unacked_age_seconds",
            "gauge",
            "Age of the oldest record the cloud has not acknowledged; 0 when none waits.",
        ).add(0 if oldest is None else max(0.0, now_s - oldest / 1000)),
        Metric("punchproof_sync_connected", "gauge", "1 when the daemon is connected to the broker.").add(
            int(bool(sync.connected))
        ),
        Metric("punchproof_sync_error", "gauge", "1 when the sync reports an error (shown on the plant page).").add(
            int(bool(sync.last_error))
        ),
    ]
    up = Metric("punchproof_terminal_up", "gauge", "1 when the terminal or reader answered at its last contact.")
    offset = Metric(
        "punchproof_terminal_clock_offset_seconds",
        "gauge",
        "The terminal's clock minus the appliance's, last measured.",
    )
    contact = Metric(
        "punchproof_terminal_last_contact_age_seconds", "gauge", "Seconds since the terminal last answered."
    )
    for row in TerminalHealth.select().order_by(TerminalHealth.name):
        up.add(int(bool(row.available)), terminal=row.name)
        if row.clock_offset_ms is not None:
            offset.add(row.clock_offset_ms / 1000, terminal=row.name)
        if row.last_contact_ms is not None:
            contact.add(max(0.0, now_s - row.last_contact_ms / 1000), terminal=row.name)
    return [*metrics, up, offset, contact]


@bp.route("/metrics")
def metrics() -> Response:
    settings = current_app.config["SETTINGS"]
    if not allowed(request.remote_addr, request.headers.get("Authorization", ""), settings.state_dir / "metrics.token"):
        abort(403)
    return Response(exposition(collect(time.time(), _version())), content_type=CONTENT_TYPE)


def _version() -> str:
    try:
        return metadata.version("punchproof")
    except metadata.PackageNotFoundError:
        return "unknown"

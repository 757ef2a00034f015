"""``/metrics``: the appliance's health for Prometheus (text exposition format 0.0.4, written here).

Who may read it: without a token file, only this machine (a local agent, or an SSH tunnel), and
not a request a reverse proxy forwarded (it carries X-Forwarded-For, Forwarded or X-Real-IP: its
socket is the proxy's 127.0.0.1, its client anyone); with ``<state_dir>/metrics.token`` present,
whoever sends ``Authorization: Bearer <its content>`` and nobody else, not even a local request.
The file is read at every request, so a new token needs no restart (``opskit.metrics.allowed``).

Everything comes from the database the daemon writes; nothing is computed twice.
"""

from __future__ import annotations

import time
from importlib import metadata

from flask import Blueprint, Response, abort, current_app, request

from appliance.store import LogRecord, Punch, SyncState, TerminalHealth
from opskit.metrics import Metric, allowed, exposition, proxied

bp = Blueprint("metrics", __name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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
    token_file = settings.state_dir / "metrics.token"
    authorization = request.headers.get("Authorization", "")
    if not allowed(request.remote_addr, authorization, token_file, via_proxy=proxied(request.headers)):
        abort(403)
    return Response(exposition(collect(time.time(), _version())), content_type=CONTENT_TYPE)


def _version() -> str:
    try:
        return metadata.version("punchproof")
    except metadata.PackageNotFoundError:
        return "unknown"

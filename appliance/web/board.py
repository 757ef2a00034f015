"""The plant manager's page: today's punches, the terminals' health, the sync state."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, current_app, render_template

from appliance.store import LogRecord, Punch, SyncState, TerminalHealth
from appliance.web.auth import login_required

bp = Blueprint("board", __name__)


def local(ms: int | None) -> str:
    if ms is None:
        return "—"
    tz = current_app.config["SETTINGS"].plant.tz
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")


@bp.route("/")
@login_required
def index() -> Any:
    settings = current_app.config["SETTINGS"]
    tz = settings.plant.tz
    midnight = datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start_ms = int(midnight.timestamp() * 1000)
    end_ms = int((midnight + timedelta(days=1)).timestamp() * 1000)
    punches = list(
        Punch.select()
        .where((Punch.at_utc_ms >= start_ms) & (Punch.at_utc_ms < end_ms))
        .order_by(Punch.at_utc_ms.desc())
        .limit(500)
    )
    sync = SyncState.get_by_id(1)
    head = LogRecord.select(LogRecord.seq).order_by(LogRecord.seq.desc()).scalar()
    oldest = (
        LogRecord.select(LogRecord.t_wall_ms).where(LogRecord.seq > sync.acked_seq).order_by(LogRecord.seq).scalar()
    )
    return render_template(
        "board.html",
        settings=settings,
        punches=punches,
        terminals=list(TerminalHealth.select()),
        sync=sync,
        head=head if head is not None else -1,
        oldest_unsynced=oldest,
        local=local,
        today=midnight.strftime("%Y-%m-%d"),
    )

"""``/metrics``: head office's health for Prometheus (text exposition format 0.0.4, written here).

Who may read it: without a token file, only this machine, and not a request the reverse proxy
forwarded (it carries X-Forwarded-For, Forwarded or X-Real-IP: behind the proxy every visitor's
socket is 127.0.0.1); with ``<state_dir>/metrics.token`` present, whoever sends
``Authorization: Bearer <its content>`` and nobody else, not even a local request. The file is read
at every request, so a new token needs no restart (``opskit.metrics.allowed``).

Other areas add their figures (open cases, channel failures) by naming a module in
``COLLECTOR_MODULES`` whose ``metrics(now_s)`` returns a list of ``Metric``; nothing registers
itself at import.
"""

from __future__ import annotations

import importlib
import time
from importlib import metadata
from pathlib import Path

import peewee as pw
from flask import Blueprint, Response, abort, current_app, request

from cloud.store import Appliance, LogHead, Punch, Quarantine
from opskit.metrics import Metric, allowed, exposition, proxied

bp = Blueprint("metrics", __name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Modules with ``metrics(now_s: float) -> list[Metric]``: the escalation runner's open cases and the
# channels' failures land here when those areas are merged (e.g. "cloud.escalation.metrics").
COLLECTOR_MODULES: tuple[str, ...] = ("cloud.escalation.metrics",)


def collect(now_s: float, version: str) -> list[Metric]:
    head = Metric("punchproof_cloud_log_head_seq", "gauge", "Highest seq stored contiguously, per appliance log.")
    up = Metric("punchproof_cloud_appliance_up", "gauge", "1 when the appliance's retained status says online.")
    age = Metric(
        "punchproof_cloud_last_batch_age_seconds", "gauge", "Seconds since the appliance's last batch was stored."
    )
    ingested = 0
    rows = list(
        Appliance.select(
            Appliance.plant.alias("plant_id"),
            Appliance.name,
            Appliance.status,
            Appliance.last_batch_ms,
            LogHead.seq.alias("head_seq"),
        )
        .join(LogHead, on=(LogHead.appliance == Appliance.id), join_type=pw.JOIN.LEFT_OUTER)
        .order_by(Appliance.log_origin)
        .dicts()
    )
    online = 0
    for row in rows:
        labels = {"plant": row["plant_id"], "appliance": row["name"]}
        seq = -1 if row["head_seq"] is None else row["head_seq"]
        ingested += seq + 1
        online += row["status"] == "online"
        head.add(seq, **labels)
        up.add(int(row["status"] == "online"), **labels)
        if row["last_batch_ms"] is not None:
            age.add(max(0.0, now_s - row["last_batch_ms"] / 1000), **labels)
    metrics = [
        Metric("punchproof_cloud_build_info", "gauge", "The software version running.").add(1, version=version),
        Metric("punchproof_cloud_records_ingested_total", "counter", "Signed records verified and stored.").add(
            ingested
        ),
        Metric("punchproof_cloud_punches_total", "counter", "Punches verified and stored.").add(Punch.select().count()),
        Metric(
            "punchproof_cloud_quarantined_total", "counter", "Messages that failed verification, kept verbatim."
        ).add(Quarantine.select().count()),
        Metric("punchproof_cloud_appliances_registered", "gauge", "Appliances registered.").add(len(rows)),
        Metric("punchproof_cloud_appliances_online", "gauge", "Appliances whose retained status says online.").add(
            online
        ),
        head,
        up,
        age,
    ]
    for name in COLLECTOR_MODULES:
        metrics.extend(importlib.import_module(name).metrics(now_s))
    return metrics


@bp.route("/metrics")
def metrics() -> Response:
    settings = current_app.config["SETTINGS"]
    token_file = Path(settings.state_dir) / "metrics.token"
    authorization = request.headers.get("Authorization", "")
    if not allowed(request.remote_addr, authorization, token_file, via_proxy=proxied(request.headers)):
        abort(403)
    try:
        version = metadata.version("punchproof")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return Response(exposition(collect(time.time(), version)), content_type=CONTENT_TYPE)

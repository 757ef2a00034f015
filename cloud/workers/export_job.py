"""An evidence export run for the dashboard, in its own process: ``python -m cloud.workers.export_job JOB_DIR``.

The web worker writes ``job.json`` and starts this; it runs the same ``export_configured`` as
``punchproof cloud export-evidence`` (so the page's bundle is the CLI's, the cloud's evidence log included),
appends each progress message to ``progress.log`` as it goes, writes ``bundle.zip`` (whole, by rename) and
last ``result.json``. Any web worker can report on the job from those files, and a long export never holds a
request (or dies with a recycled worker).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

from cloud.config import CloudSettings

JOB, PROGRESS, BUNDLE, RESULT = "job.json", "progress.log", "bundle.zip", "result.json"


def write_job(folder: Path, settings: CloudSettings, **job: object) -> None:
    """The job's description; the settings without the broker password (an export needs no broker)."""
    folder.mkdir(parents=True, exist_ok=False)
    given = {k: v for k, v in asdict(settings).items() if k not in ("source", "mqtt_password")}
    (folder / JOB).write_text(json.dumps({"settings": given, **job}, ensure_ascii=False), encoding="utf-8")


def _finish(folder: Path, **result: object) -> None:
    partial = folder / (RESULT + ".part")
    partial.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    os.replace(partial, folder / RESULT)


def run(folder: Path) -> int:
    from cloud.clock import SystemClock
    from cloud.evidence.export import ExportError, case_scope, export_configured
    from cloud.store import open_db

    job = json.loads((folder / JOB).read_text(encoding="utf-8"))
    settings = CloudSettings(**job["settings"])
    started = time.monotonic()
    with (folder / PROGRESS).open("a", encoding="utf-8") as log:

        def progress(message: str) -> None:
            log.write(f"{time.monotonic() - started:7.1f}s {message}\n")
            log.flush()

        progress("开始 / starting")
        try:
            db = open_db(settings.database_url, create=False)
            with db.connection_context():
                data = export_configured(  # the CLI's export, the same function
                    settings,
                    job["employee"],
                    date.fromisoformat(job["first"]),
                    date.fromisoformat(job["last"]),
                    clock=SystemClock(),
                    plant_id=job.get("plant") or None,
                    case=case_scope(job["case"]) if job.get("case") else None,
                    progress=progress,
                    exported_by=job.get("owner"),  # the logged-in user who started it (cloud.web.exports)
                )
        except ExportError as err:
            progress(f"未导出 / not exported: {err}")
            _finish(folder, ok=False, error=str(err))
            return 1
        except Exception as err:  # the process's top: whatever went wrong, the page must learn it ended
            progress(f"失败 / failed: {type(err).__name__}: {err}")
            _finish(folder, ok=False, error=f"{type(err).__name__}: {err}")
            raise
        partial = folder / (BUNDLE + ".part")
        partial.write_bytes(data)
        os.replace(partial, folder / BUNDLE)
        progress(f"完成 / done: {len(data) // 1024} KiB")
    _finish(folder, ok=True, size=len(data), seconds=round(time.monotonic() - started, 1))
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))

"""The plant's LAN pages (Flask, served by gunicorn). They read what the daemon writes.

Flask and the models are imported in ``create_app``, not here: gunicorn's master imports
``appliance.web.serving`` for its hooks and should stay small (it never serves a page).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from appliance.config import Settings


def create_app(settings: Settings | None = None, *, max_streams: int | None = None) -> Flask:
    """App factory; without ``settings`` it reads the file named by ``PUNCHPROOF_CONFIG``.

    ``max_streams``: live streams (kiosks, boards) one worker process holds at most; by default
    ``PUNCHPROOF_WEB_STREAMS``, which ``punchproof appliance web`` sets from its thread count.
    """
    from flask import Flask, g, request

    from appliance import storage
    from appliance.config import Settings
    from appliance.store import open_db
    from appliance.web import i18n, serving

    if settings is None:
        settings = Settings.load(os.environ.get("PUNCHPROOF_CONFIG", "/etc/punchproof/appliance.toml"))
    if max_streams is None:
        max_streams = int(os.environ.get("PUNCHPROOF_WEB_STREAMS", serving.STREAMS))
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(settings.state_dir / "web-secret.key"),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        SETTINGS=settings,
    )
    db = open_db(settings.db_path, create=False)  # the pages read; the daemon and the CLI create and write

    @app.before_request
    def _open() -> None:
        db.connect(reuse_if_open=True)
        g.lang = i18n.pick(request.args.get("lang") or request.cookies.get("lang"))

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()

    @app.after_request
    def _remember_language(response):  # type: ignore[no-untyped-def]
        if request.args.get("lang") in i18n.LANGUAGES:
            response.set_cookie("lang", request.args["lang"], max_age=365 * 86400, samesite="Lax")
        return response

    app.jinja_env.globals["t"] = i18n.translate

    @app.context_processor
    def _storage() -> dict[str, object]:
        # Outside the board's render cache: when the disk is full nothing in the database changes.
        return {"disk_free_mb": storage.free_mb_if_low(settings.state_dir)}

    from appliance.web import auth, board, day, export, kiosk, live, metrics, rendercache

    tz = settings.plant.tz
    app.extensions["punchproof.board_rows"] = rendercache.RenderCache()
    app.extensions["punchproof.live"] = live.Hub(db, lambda rows: kiosk.shown(rows, tz), max_streams=max_streams)

    for blueprint in (auth.bp, board.bp, day.bp, export.bp, kiosk.bp, metrics.bp):
        app.register_blueprint(blueprint)
    return app


def _secret_key(path: Path) -> bytes:
    """The session key, made once and shared by every gunicorn worker.

    Written to a temporary file and linked into place, so that a worker starting at the same
    moment reads either no file or the whole key, never an empty one.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".web-secret-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            os.link(temporary, path)  # fails if another worker won the race; then we read its key
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_bytes()

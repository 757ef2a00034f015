"""Head office's pages (Flask, served by gunicorn)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from flask import Flask, g, request

from cloud.config import CloudSettings
from cloud.store import database, open_db
from cloud.web import i18n


def create_app(settings: CloudSettings | None = None) -> Flask:
    """App factory; without ``settings`` it reads the file named by ``PUNCHPROOF_CLOUD_CONFIG``."""
    if settings is None:
        settings = CloudSettings.load(os.environ.get("PUNCHPROOF_CLOUD_CONFIG", "/etc/punchproof/cloud.toml"))
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(settings.secret_key_path),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        SETTINGS=settings,
    )
    open_db(settings.database_url)

    @app.before_request
    def _open() -> None:
        database.connect(reuse_if_open=True)
        g.lang = i18n.pick(request.args.get("lang") or request.cookies.get("lang"))

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not database.is_closed():
            database.close()

    @app.after_request
    def _remember_language(response):  # type: ignore[no-untyped-def]
        if request.args.get("lang") in i18n.LANGUAGES:
            response.set_cookie("lang", request.args["lang"], max_age=365 * 86400, samesite="Lax")
        return response

    app.jinja_env.globals["t"] = i18n.translate
    from cloud.web import accounts, auth, casecontact, cases, employees, exports, metrics, overview, policy, reports

    for blueprint in (auth, overview, metrics, cases, casecontact, employees, policy, reports, exports, accounts):
        app.register_blueprint(blueprint.bp)
    if settings.channels.callback_token:  # the SMS providers' delivery reports (cloud.channels.callbacks)
        from cloud.channels.callbacks import receipts_blueprint

        app.register_blueprint(receipts_blueprint(settings.channels.callback_token))
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

"""Head office's pages (Flask, served by gunicorn)."""

from __future__ import annotations

import os

from flask import Flask

from cloud.config import CloudSettings
from cloud.store import database, open_db
from cloud.web import i18n
from opskit import error_pages
from opskit.urlints import bound_path_ints
from opskit.webapp import per_request, session_config

MAX_BODY = 32 * 1024 * 1024
BODY_DEADLINE_S = 120.0


def create_app(settings: CloudSettings | None = None) -> Flask:
    """App factory; without ``settings`` it reads the file named by ``PUNCHPROOF_CLOUD_CONFIG``."""
    if settings is None:
        settings = CloudSettings.load(os.environ.get("PUNCHPROOF_CLOUD_CONFIG", "/etc/punchproof/cloud.toml"))
    app = Flask(__name__)
    if settings.web_trusted_proxies:  # behind head office's HTTPS proxy: its client address, its scheme
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = settings.web_trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
        app.config["SESSION_COOKIE_SECURE"] = True
    # uploads (an HR sheet, an accident report, a 病假证明 sent with a reply) are a few MB; a phone on a slow link
    # gets two minutes to send one, read before a database connection is taken (opskit.webapp.read_body)
    app.config.update(session_config(settings.secret_key_path), SETTINGS=settings, MAX_CONTENT_LENGTH=MAX_BODY)
    open_db(settings.database_url)
    per_request(app, database, i18n, body_deadline_s=BODY_DEADLINE_S)
    bound_path_ints(app)  # /cases/<huge id> is a 400, not an OverflowError in the database
    # 400/403/404/413/500 in Chinese with a way back (templates/error.html); the providers' receipts and the
    # metrics keep their plain answers
    error_pages.register(app, plain_paths=("/channels/", "/metrics"))
    from cloud.web import (
        accounts,
        auth,
        casecontact,
        cases,
        employees,
        exports,
        injury,
        metrics,
        notice_link,
        overview,
        policy,
        queue,
        reports,
    )

    pages = (
        auth,
        queue,  # the first page: HR's work queue
        overview,  # /devices
        metrics,
        cases,
        casecontact,
        injury,
        employees,
        policy,
        reports,
        exports,
        accounts,
        notice_link,  # the notices' links: no login, the token is the credential
    )
    for blueprint in pages:
        app.register_blueprint(blueprint.bp)
    if settings.channels.callback_token:  # the SMS providers' delivery reports (cloud.channels.callbacks)
        from cloud.channels.callbacks import receipts_blueprint

        app.register_blueprint(receipts_blueprint(settings.channels.callback_token))
    return app

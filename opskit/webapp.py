"""What both sides' Flask apps set up alike: the session cookie, a database connection per request, and
the page language (``?lang=`` remembered in a cookie, Chinese unless English was asked for).

Each side keeps its own factory, pages and message table; this is the part whose meaning is the same.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, Response, abort, g, request

from opskit.secret_key import shared_secret_key

SESSION_HOURS = 8


class Connectable(Protocol):
    def connect(self, reuse_if_open: bool = ...) -> Any: ...

    def is_closed(self) -> bool: ...

    def close(self) -> Any: ...


class Languages(Protocol):
    LANGUAGES: Any

    def pick(self, wanted: str | None) -> str: ...

    translate: Callable[[str], str]


def session_config(secret_key_path: Path) -> dict[str, Any]:
    """Flask settings for the login session: one key shared by every worker, a cookie scripts cannot read."""
    return {
        "SECRET_KEY": shared_secret_key(secret_key_path),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": SESSION_HOURS * 3600,
    }


def per_request(app: Flask, db: Connectable, i18n: Languages, *, body_deadline_s: float = 20.0) -> None:
    """Connect ``db`` for each request and close it after; choose the language and remember a chosen one.

    A request's body is read whole before the database is connected, within ``body_deadline_s``
    (``read_body``): a client that sends its headers and then stalls holds a thread, never one of the few
    database connections every page needs.
    """

    @app.before_request
    def _open() -> None:
        read_body(body_deadline_s, app.config.get("MAX_CONTENT_LENGTH"))
        db.connect(reuse_if_open=True)
        g.lang = i18n.pick(request.args.get("lang") or request.cookies.get("lang"))

    @app.teardown_request
    def _close(_exc: BaseException | None) -> None:
        if not db.is_closed():
            db.close()

    @app.after_request
    def _remember_language(response: Response) -> Response:
        if request.args.get("lang") in i18n.LANGUAGES:
            response.set_cookie("lang", request.args["lang"], max_age=365 * 86400, samesite="Lax")
        return response

    app.jinja_env.globals["t"] = i18n.translate
    security_headers(app)


def read_body(deadline_s: float, limit: int | None) -> None:
    """Read the request's body into memory within ``deadline_s`` in all (408 if it does not come, 413 if it is
    larger than ``limit``), so that nothing later waits on the client. Without gunicorn's socket at hand (the
    test client, a body already in memory) it is read as it is."""
    if request.method not in ("POST", "PUT", "PATCH") or "punchproof.body" in request.environ:
        return
    length = request.content_length
    if limit is not None and length is not None and length > limit:
        abort(413)
    sock = request.environ.get("gunicorn.socket")
    stream = request.environ["wsgi.input"]
    end = time.monotonic() + deadline_s
    chunks, size = [], 0
    before = sock.gettimeout() if sock is not None else None
    try:
        while length is None or size < length:
            left = end - time.monotonic()
            if left <= 0:
                abort(408)
            if sock is not None:
                sock.settimeout(left)
            chunk = stream.read(min(65536, length - size) if length is not None else 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                abort(413)
    except (TimeoutError, OSError):
        abort(408)
    finally:
        if sock is not None:
            sock.settimeout(before)
    body = b"".join(chunks)
    request.environ["wsgi.input"] = io.BytesIO(body)
    request.environ["punchproof.body"] = len(body)


# Scripts only from the site itself, or inline with this response's nonce; styles may be inline (the pages
# carry their small stylesheets); never inside another site's frame; forms post only back here.
CSP = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def security_headers(app: Flask) -> None:
    """Every response: a content security policy, no framing, no type sniffing, no address in the Referer
    sent to other sites (a notice link's token is in its address)."""

    def nonce() -> str:
        if "csp_nonce" not in g:
            g.csp_nonce = secrets.token_urlsafe(16)
        return str(g.csp_nonce)

    app.jinja_env.globals["csp_nonce"] = nonce

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP.format(nonce=nonce()))
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

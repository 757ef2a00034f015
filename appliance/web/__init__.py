"""The plant's LAN pages (Flask, served by gunicorn). They read what the daemon writes.

Flask and the models are imported in ``create_app``, not here: gunicorn's master imports
``appliance.web.serving`` for its hooks and should stay small (it never serves a page).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

CACHE_KIB = 512  # SQLite page cache per connection
POOL = 12  # SQLite connections a worker keeps: the 8 threads kept from streams, the live hub, and some to spare
MAX_BODY = 256 * 1024
TRIM_EVERY_S = 2.0  # after a request, freed memory goes back to the kernel at most this often
# board pages (rows) a worker keeps rendered, for the board's current version: a 5,000-worker board's ten pages
# and two more (another filter, another language), so that someone paging through them (or ten screens, one a
# page) finds each kept until the board changes. A page kept is its markup and references to its rows' texts,
# which the worker keeps anyway (``board.Spliced``): some kilobytes, not the 350 kB of a page of 500 rows
BOARD_PAGES_KEPT = 12
# the board's status part (terminals, sync, the last punches) is rendered at most this often, however often a
# punch moves the board's version: at a shift change, with every fetch of every page
STATUS_EVERY_S = 1.0

if TYPE_CHECKING:
    from flask import Flask

    from appliance.clock import Clock
    from appliance.config import Settings


def create_app(
    settings: Settings | None = None, *, max_streams: int | None = None, clock: Clock | None = None
) -> Flask:
    """App factory; without ``settings`` it reads the file named by ``PUNCHPROOF_CONFIG``.

    ``clock``: what "today" and "now" are for the pages (the system clock by default).

    ``max_streams``: live streams (kiosks, boards) one worker process holds at most; by default
    ``PUNCHPROOF_WEB_STREAMS``, which ``punchproof appliance web`` sets from its thread count.
    """
    from flask import Flask

    from appliance import malloc
    from appliance.capture import storage
    from appliance.clock import SystemClock
    from appliance.config import Settings
    from appliance.store import open_db
    from appliance.web import i18n, serving
    from opskit import error_pages
    from opskit.urlints import bound_path_ints
    from opskit.webapp import per_request, session_config

    if settings is None:
        settings = Settings.load(os.environ.get("PUNCHPROOF_CONFIG", "/etc/punchproof/appliance.toml"))
    if max_streams is None:
        max_streams = int(os.environ.get("PUNCHPROOF_WEB_STREAMS", serving.STREAMS))
    app = Flask(__name__)
    trimmer = malloc.Trimmer(TRIM_EVERY_S)
    app.config.update(
        session_config(settings.state_dir / "web-secret.key"),
        SETTINGS=settings,
        CLOCK=clock or SystemClock(),
        MAX_CONTENT_LENGTH=MAX_BODY,  # the plant's pages take small forms only
    )
    # The pages read; the daemon and the CLI create and write. Connections are pooled (opening one
    # per request was most of a small request's time); each keeps a small page cache, since the
    # kernel's file cache holds the pages anyway and 20 requests at once would each grow SQLite's
    # default 2 MB.
    db = open_db(settings.db_path, create=False, cache_kib=CACHE_KIB, pool=POOL)
    per_request(app, db, i18n)
    bound_path_ints(app)
    # 400/403/404/413/500 in Chinese with a way back (templates/error.html); the kiosk's feed, the board's
    # version and the metrics are read by programs and keep their plain answers
    error_pages.register(app, plain_paths=("/kiosk/feed", "/kiosk/events", "/board/version", "/metrics"))

    @app.teardown_request
    def _give_back(_exc: BaseException | None) -> None:
        trimmer.maybe()

    # What base.html says at the top of every whole page, read when one is rendered: functions, not context
    # processors, which ran for every template, the board's live parts too (three a fetch, ten boards a second at
    # a shift change: some 7% of the pages' core).
    def disk_free_mb() -> int | None:
        # Outside the board's render cache: when the disk is full nothing in the database changes.
        return storage.free_mb_if_low(settings.state_dir)

    def removals_held() -> str | None:
        # a roster change the brake holds (docs/enrolment.md): said on every page of a signed-in user
        from flask import g, session

        from appliance.capture import enrolment_plan  # not enrolment: that loads the log's writer and its crypto

        hold = enrolment_plan.held_removals() if session.get("user") else None
        return enrolment_plan.hold_message(hold, g.lang) if hold else None

    app.jinja_env.globals.update(disk_free_mb=disk_free_mb, removals_held=removals_held)

    from appliance.web import auth, board, day, dayrows, export, kiosk, live, metrics, rendercache

    tz = settings.plant.tz
    app.extensions["punchproof.board_rows"] = rendercache.RenderCache(size=BOARD_PAGES_KEPT)
    app.extensions["punchproof.board_status"] = rendercache.Throttled(  # terminals, sync, the last punches
        STATUS_EVERY_S, lambda: app.config["CLOCK"].monotonic()
    )
    app.extensions["punchproof.board_days"] = rendercache.RenderCache(size=4)  # the rows' order, for every page
    app.extensions["punchproof.board_day_rows"] = dayrows.Days()  # each day's rows, each rendered once
    app.extensions["punchproof.board_row_texts"] = rendercache.RowFragments()  # yesterday's open shifts
    clock_now = app.config["CLOCK"].now
    app.extensions["punchproof.live"] = live.Hub(
        db,
        lambda rows: kiosk.shown(rows, tz),
        max_streams=max_streams,
        now_ms=lambda: int(clock_now().timestamp() * 1000),  # the pages' clock: a test's 08:10 is the kiosk's too
    )

    for blueprint in (auth.bp, board.bp, day.bp, export.bp, kiosk.bp, metrics.bp):
        app.register_blueprint(blueprint)
    return app

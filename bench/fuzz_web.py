"""Fuzz both sites' pages: N requests with hostile query strings, forms and uploads, in process.

Builds the plant's pages on a real SQLite database the evaluator filled (tests.appliance.web's
``Plant``: employees, punches, a terminal) and head office's on the database the real engine filled
(tests.cloud.web.conftest ``build``: two plants, cases, one account per role), through the app
factories and Flask's test client. Each site is fuzzed by a client for every role and one not logged
in. The routes come from ``app.url_map``; the pages each role sees are read first for real links,
form field names and values. Then ``--cases`` requests, each on a random route: path parameters and
query strings (huge and negative integers, unicode, ``%00``, repeated keys, ``a[]=`` arrays, very
long values), POST forms of the page's field names with random values, with the session's CSRF token
nine times in ten so that the views are reached, and multipart uploads to the routes that take a file
(CSV and XLSX-looking junk, a zip bomb inside the size cap, wrong types, hostile file names). A client
whose session a request ended (a role change, a logout) logs in again. Prints:

  cases             sent, per site, and the rate
  answers           by status
  5xx               answers 500 or above, limit 0; each distinct (route, exception and where it was
                    raised) once, with a reproducer (the method, path, form and the role that sent it)
  exceptions        exceptions the app raised (Flask's got_request_exception), limit 0
  logins again      how often a fuzzed request ended the fuzzing's own session (a role change)
  slowest           the slowest requests, over a second

Exit status 1 if there was a 5xx or an exception.

Run: .venv/bin/python bench/fuzz_web.py [--cases 100000] [--seed 1] [--site plant|cloud|both]
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import re
import sys
import tempfile
import time
import traceback
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Flask, got_request_exception  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

PASSWORD = "a long enough password"
HUGE = ("9" * 20, "9" * 400, str(2**63), str(-(2**63) - 1), "-1", "0", "1e9", "0x10", "١٢", "1_0", " 7 ", "NaN", "inf")
JUNK = (
    "",
    "\x00",
    "%00",
    "王" * 300,
    "<script>x</script>",
    "' OR 1=1 --",
    "../../etc/passwd",
    "\u202e",
    "\ud800x",
    '=HYPERLINK("http://e","x")',
    "a" * 5000,
    "2026-02-30",
    "2026-13-01",
    "9999-12-31",
    "0001-01-01",
    "null",
    "true",
    "[]",
    "{}",
    "\r\nX: y",
    "🙂",
    "%ZZ",
    "..",
    "/",
    "p1",
    "p2",
    "2025-03",
    "2026-03-02",
    "1001",
)
STREAMS = ("/kiosk/events", "/board/events")  # endless server-sent events: answered, then closed unread
UPLOAD_FIELDS = ("file",)


@dataclass
class Session:
    """One client of a site: a role's login (``username``) or nobody's."""

    site: str
    client: Any
    username: str = ""
    role: str = ""
    plant: str = ""
    token: str = ""
    relogins: int = 0

    def login(self) -> None:
        page = self.client.get("/login").get_data(as_text=True)
        self.token = _token(page)
        if not self.username:
            return
        response = self.client.post(
            "/login", data={"csrf": self.token, "username": self.username, "password": PASSWORD}
        )
        assert response.status_code == 302, (self.username, response.status_code, response.get_data(as_text=True)[:300])
        page = self.client.get("/").get_data(as_text=True)
        self.token = _token(page) or self.token


def q(text: str) -> str:
    """Percent-encoded, lone surrogates included (as the bytes a broken client would send)."""
    return quote(text, safe="", errors="surrogatepass")


def _token(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    return match.group(1) if match else ""


@dataclass
class Site:
    name: str
    app: Flask
    sessions: list[Session]
    restore: Any  # (session) -> None: the account as it was, the login throttle cleared
    links: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)
    values: set[str] = field(default_factory=set)
    uploads: set[str] = field(default_factory=set)  # endpoints whose forms take a file


# ---- the sites ----------------------------------------------------------------------------------------


def plant_site(folder: Path) -> tuple[Site, Any]:
    from appliance.store import Account, LoginThrottle
    from appliance.web import create_app
    from tests.appliance.web.test_attendance_pages import Plant, local
    from tests.harness.clock import FrozenClock

    plant = Plant(folder, FrozenClock(local(2, 8, 30)))
    for at in (local(2, 7, 55), local(2, 17, 5)):
        plant.punch("1001", at)
    plant.read_terminal()
    plant.evaluator.run_once()
    users = {"fz-admin": "admin", "fz-manager": "plant_manager", "fz-leader": "line_leader"}
    hashed = generate_password_hash(PASSWORD)
    for name, role in users.items():
        Account.create(username=name, password_hash=hashed, role=role, created_ms=0)
    app = create_app(plant.settings, clock=plant.clock)

    def restore(session: Session) -> None:
        if session.username:
            Account.replace(
                username=session.username, password_hash=hashed, role=session.role, created_ms=0, session_epoch=0
            ).execute()
        LoginThrottle.delete().execute()

    sessions = [Session("plant", app.test_client(), name, role) for name, role in users.items()]
    sessions.append(Session("plant", app.test_client()))
    return Site("plant", app, sessions, restore), plant


def cloud_site(folder: Path) -> tuple[Site, Any]:
    from cloud.accounts import LoginThrottle
    from cloud.config import CloudSettings
    from cloud.escalation import cases
    from cloud.store import Account, open_db
    from cloud.web import create_app
    from tests.cloud.web.conftest import USERS, build
    from tests.harness.clock import FrozenClock

    clock = FrozenClock()
    clock._now = clock.now().replace(year=2025, month=1, day=1)
    build(folder / "cloud.sqlite3", clock)
    cases._policies.clear()
    settings = CloudSettings(database_url=f"sqlite:///{folder}/cloud.sqlite3", state_dir=str(folder))
    app = create_app(settings)
    app.config["CLOCK"] = FrozenClock(clock.now())
    db = open_db(settings.database_url, create=False)
    hashed = generate_password_hash(PASSWORD)

    def restore(session: Session) -> None:
        with db.connection_context():
            if session.username:
                Account.update(password_hash=hashed, role=session.role, plant=session.plant).where(
                    Account.username == session.username
                ).execute()
                if not Account.get_or_none(Account.username == session.username):
                    Account.create(
                        username=session.username,
                        password_hash=hashed,
                        role=session.role,
                        plant=session.plant,
                        created_ms=0,
                    )
            LoginThrottle.delete().execute()

    sessions = [
        Session("cloud", app.test_client(), name, role, plant)
        for name, (role, plant) in USERS.items()
        if name in ("admin", "staff", "pm1", "aud")
    ]
    sessions.append(Session("cloud", app.test_client()))
    return Site("cloud", app, sessions, restore), db


def crawl(site: Site, limit: int = 150) -> None:
    """Read the pages each session sees: links, form field names and values, the forms that take files."""
    for session in site.sessions:
        seen: set[str] = set()
        queue = ["/", "/login"]
        while queue and len(seen) < limit:
            path = queue.pop(0)
            if path in seen or any(path.startswith(s) for s in STREAMS) or path.startswith("/logout"):
                continue
            seen.add(path)
            response = session.client.get(path)
            if response.status_code != 200 or not response.mimetype.startswith("text/html"):
                continue
            page = response.get_data(as_text=True)
            for href in re.findall(r'(?:href|action)="(/[^"#]*)"', page):
                href = href.replace("&amp;", "&")
                site.links.add(href)
                if urlsplit(href).path not in seen and not re.search(r"\.(pdf|zip|xlsx|csv|css|js)(\?|$)", href):
                    queue.append(href)
            site.fields.update(re.findall(r'name="([^"]+)"', page))
            site.values.update(v for v in re.findall(r'value="([^"]{0,80})"', page) if v != session.token)
            for form in re.findall(r"<form[^>]*>.*?</form>", page, flags=re.S):
                if 'type="file"' in form or "multipart/form-data" in form:
                    action = re.search(r'action="(/[^"]*)"', form)
                    site.uploads.add(urlsplit(action.group(1) if action else path).path)
    site.fields.discard("csrf")
    for session in site.sessions:  # the fuzzing must not log its own sessions in as someone else
        site.values.discard(session.username)


# ---- the cases ----------------------------------------------------------------------------------------


class Cases:
    def __init__(self, rng: random.Random, site: Site) -> None:
        self.rng, self.site = rng, site
        self.rules = [r for r in site.app.url_map.iter_rules() if r.endpoint != "static"]
        self.links = sorted(site.links)
        self.fields = sorted(site.fields) or ["x"]
        self.values = sorted(site.values)

    def value(self) -> str:
        r = self.rng
        pick = r.random()
        if pick < 0.3 and self.values:
            return r.choice(self.values)
        if pick < 0.55:
            return r.choice(HUGE)
        if pick < 0.85:
            return r.choice(JUNK)
        return "".join(
            chr(r.choice((r.randrange(0x20, 0x7F), r.randrange(0x80, 0x3000)))) for _ in range(r.randrange(1, 30))
        )

    def path(self) -> tuple[str, str, Any]:
        """A method, a path and the rule it was made for."""
        r = self.rng
        if self.links and r.random() < 0.35:
            link = r.choice(self.links)
            rule = self._match(link)
            method = "POST" if rule is not None and "POST" in rule.methods and "GET" not in rule.methods else "GET"
            return method, urlsplit(link).path, rule
        rule = r.choice(self.rules)
        parts = re.split(r"(<[^>]+>)", rule.rule)
        out = []
        for part in parts:
            if part.startswith("<"):
                converter = part[1:-1].split(":")[0] if ":" in part else "string"
                if converter == "int":
                    out.append(
                        r.choice(("1", "2", "3", str(r.randrange(1, 50)))) if r.random() < 0.7 else r.choice(HUGE)
                    )
                elif r.random() < 0.5 and self.values:
                    out.append(q(r.choice(self.values)))
                else:
                    out.append(q(self.value()) or "x")
            else:
                out.append(part)
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        return r.choice(methods), "".join(out), rule

    def _match(self, link: str) -> Any:
        adapter = self.site.app.url_map.bind("localhost")
        try:
            endpoint, _ = adapter.match(urlsplit(link).path, method="GET")
        except Exception:  # noqa: BLE001 - a POST-only route, or no route: either way the link is used as it is
            try:
                endpoint, _ = adapter.match(urlsplit(link).path, method="POST")
            except Exception:  # noqa: BLE001
                return None
        return next((rule for rule in self.rules if rule.endpoint == endpoint), None)

    def query(self, link_query: str = "") -> str:
        r = self.rng
        params = []
        for _ in range(r.choice((0, 0, 1, 2, 3, 6))):
            name = r.choice(self.fields) if r.random() < 0.8 else r.choice(("after", "date", "page", "id", "a[]", "x"))
            params.append(f"{quote(name, safe='[]')}={q(self.value())}")
            if r.random() < 0.1:
                params.append(f"{quote(name, safe='[]')}={q(self.value())}")  # a repeated key
        if r.random() < 0.05:
            params.append(r.choice(("%ZZ=1", "=", "&&", "a=%00", "a=%ff%fe", "a[]=1&a[]=2", "x" * 9000 + "=1")))
        if link_query and r.random() < 0.5:
            params.insert(0, link_query)
        return "&".join(params)

    def form(self, session: Session) -> dict[str, Any]:
        r = self.rng
        data: dict[str, Any] = {}
        for _ in range(r.choice((0, 1, 2, 4, 8))):
            name = r.choice(self.fields)
            value = self.value().encode("utf-8", "surrogatepass").decode("utf-8", "replace")  # what a form can carry
            if name in data and r.random() < 0.5:
                existing = data[name] if isinstance(data[name], list) else [data[name]]
                data[name] = [*existing, value]
            else:
                data[name] = value
        if r.random() < 0.9 and session.token:
            data["csrf"] = session.token
        elif r.random() < 0.5:
            data["csrf"] = self.value().encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        return data

    def upload(self) -> tuple[io.BytesIO, str, str]:
        r = self.rng
        kind = r.randrange(9)
        name = r.choice(
            ("a.xlsx", "a.csv", "a.xls", "a.pdf", "", "../../x.csv", "王.xlsx", "a" * 300 + ".csv", "a.png")
        )
        if kind == 0:
            body = b"PK\x03\x04" + r.randbytes(r.randrange(0, 4000))
        elif kind == 1:
            body = _xlsx(r)
        elif kind == 2:
            body = _zip_bomb(r)
        elif kind == 3:
            header = r.choice(("工号,考勤号,姓名,手机", "工号,姓名,产线,排班", "employee,name", "", "a,b,c"))
            rows = [
                ",".join(self.value().replace("\n", " ") for _ in range(r.randrange(1, 6)))
                for _ in range(r.randrange(0, 30))
            ]
            text = "\n".join([header, *rows])
            body = text.encode(r.choice(("utf-8", "utf-8-sig", "gb18030", "utf-16")), errors="replace")
        elif kind == 4:
            body = r.randbytes(r.randrange(0, 20000))
        elif kind == 5:
            body = b"%PDF-1.4\n" + r.randbytes(r.randrange(100))
        elif kind == 6:
            body = b"\x89PNG\r\n\x1a\n" + r.randbytes(r.randrange(100))
        elif kind == 7:
            body = b""
        else:
            body = _xlsx(r, mutate=True)
        mime = r.choice(
            (
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "text/csv",
                "application/octet-stream",
                "image/png",
                "",
                "text/html",
            )
        )
        return io.BytesIO(body), name, mime


def _xlsx(r: random.Random, *, mutate: bool = False) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(r.choice((["工号", "考勤号", "姓名", "手机"], ["工号", "姓名", "产线", "排班"], ["a"])))
    for _ in range(r.randrange(0, 20)):
        cells = [v for v in (*HUGE, *JUNK, 12, 1e308, None) if not isinstance(v, str) or v.isprintable()]
        sheet.append([r.choice(cells) for _ in range(4)])
    out = io.BytesIO()
    book.save(out)
    data = out.getvalue()
    if mutate and data:
        raw = bytearray(data)
        for _ in range(r.randrange(1, 20)):
            raw[r.randrange(len(raw))] = r.randrange(256)
        data = bytes(raw)
    return data


_BOMB: bytes | None = None


def _zip_bomb(_r: random.Random) -> bytes:
    """An XLSX-shaped zip of ~200 KB whose one sheet expands to ~200 MB of rows: within the upload cap."""
    global _BOMB
    if _BOMB is None:
        row = '<row><c t="inlineStr"><is><t>1</t></is></c></row>'
        sheet = (
            '<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            "<sheetData>" + row * 4_000_000 + "</sheetData></worksheet>"
        )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
            z.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
            z.writestr("xl/workbook.xml", "<workbook/>")
            z.writestr("xl/worksheets/sheet1.xml", sheet)
        _BOMB = out.getvalue()
    return _BOMB


# ---- the run ------------------------------------------------------------------------------------------


@dataclass
class Tally:
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    fives: Counter[str] = field(default_factory=Counter)
    reproducers: dict[str, str] = field(default_factory=dict)
    exceptions: int = 0
    relogins: int = 0
    slowest: list[tuple[float, str]] = field(default_factory=list)


def fuzz(site: Site, cases: int, rng: random.Random, tally: Tally, *, quiet: bool) -> None:
    generator = Cases(rng, site)
    caught: list[BaseException] = []

    def on_exception(_sender: object, exception: BaseException, **_: object) -> None:
        caught.append(exception)

    got_request_exception.connect(on_exception, site.app)
    started = time.monotonic()
    try:
        for number in range(cases):
            session = rng.choice(site.sessions)
            method, path, rule = generator.path()
            if method == "POST" and path.startswith("/logout"):
                method = "GET"  # a logout would only end the fuzzing's own session
            query = generator.query()
            target = f"{path}?{query}" if query else path
            kwargs: dict[str, Any] = {}
            upload_note = ""
            if method == "POST":
                data = generator.form(session)
                if (path in site.uploads or rng.random() < 0.05) and rng.random() < 0.7:
                    body, name, mime = generator.upload()
                    upload_note = f" upload {name!r} ({mime or 'no type'}, {body.getbuffer().nbytes:,} bytes)"
                    data[rng.choice(UPLOAD_FIELDS) if rng.random() < 0.9 else rng.choice(generator.fields)] = (
                        body,
                        name,
                        mime,
                    )
                kwargs["data"] = data
                if rng.random() < 0.5 and any(isinstance(v, tuple) for v in data.values()) is False:
                    kwargs["content_type"] = rng.choice(("application/x-www-form-urlencoded", "multipart/form-data"))
            stream = any(path.startswith(s) for s in STREAMS)
            caught.clear()
            began = time.monotonic()
            response = session.client.open(target, method=method, buffered=False, **kwargs)
            try:
                if not stream:
                    response.get_data()
            finally:
                response.close()
            spent = time.monotonic() - began
            tally.cases[site.name] += 1
            tally.statuses[response.status_code] += 1
            if spent > 1.0:
                tally.slowest = sorted([*tally.slowest, (spent, f"{site.name} {method} {target[:120]}")], reverse=True)[
                    :5
                ]
            if caught:
                tally.exceptions += 1
            if response.status_code >= 500 or caught:
                kind = f"HTTP {response.status_code}"
                if caught:  # the exception and where it was raised: one bug, however many routes it reaches
                    frame = traceback.extract_tb(caught[0].__traceback__)[-1]
                    kind = f"{type(caught[0]).__name__} at {Path(frame.filename).name}:{frame.lineno}"
                key = f"{site.name} {method} {rule.rule if rule is not None else path} -> {kind}"
                tally.fives[key] += 1
                if key not in tally.reproducers:
                    where = ""
                    if caught:
                        frame = traceback.extract_tb(caught[0].__traceback__)[-1]
                        where = f" at {Path(frame.filename).name}:{frame.lineno}: {str(caught[0])[:160]!r}"
                    form = {k: _short(v) for k, v in kwargs.get("data", {}).items() if not isinstance(v, tuple)}
                    who = session.username or "nobody"
                    tally.reproducers[key] = (
                        f"as {who}: {method} {target[:300]!r} form {str(form)[:400]}{upload_note}{where}"
                    )
                    if not quiet:
                        print(f"  5xx {key}: {tally.reproducers[key]}", file=sys.stderr, flush=True)
            if (
                session.username
                and response.status_code == 302
                and response.headers.get("Location", "").startswith("/login")
            ):
                site.restore(session)  # a role change or the like ended this session: log in again
                session.login()
                session.relogins += 1
            if not quiet and number and number % 20_000 == 0:
                print(
                    f"  {site.name}: {number:,} cases, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True
                )
    finally:
        got_request_exception.disconnect(on_exception, site.app)
        tally.relogins += sum(session.relogins for session in site.sessions)


def run(cases: int, seed: int, sites: str = "both", *, quiet: bool = False) -> Tally:
    logging.basicConfig(level=logging.CRITICAL)  # each refused request may be logged: not on the terminal here
    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
    rng = random.Random(seed)
    tally = Tally()
    names = ("plant", "cloud") if sites == "both" else (sites,)
    with tempfile.TemporaryDirectory(prefix="fuzz-web-") as tmp:
        for index, name in enumerate(names):
            folder = Path(tmp) / name
            folder.mkdir()
            site, handle = plant_site(folder) if name == "plant" else cloud_site(folder)
            try:
                for session in site.sessions:
                    session.login()
                crawl(site)
                share = cases // len(names) + (cases % len(names) if index == 0 else 0)
                fuzz(site, share, rng, tally, quiet=quiet)
            finally:
                _close(name, handle)
    return tally


def _close(name: str, handle: Any) -> None:
    if name == "plant":
        handle.db.close()
    else:
        handle.close()


def _short(value: Any) -> Any:
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value if len(value) <= 40 else f"{value[:20]}...({len(value):,} characters)"


def report(tally: Tally, elapsed: float, seed: int) -> None:
    total = sum(tally.cases.values())
    print(
        f"cases:          {total:,} in {elapsed:.1f} s ({total / elapsed:,.0f}/s, seed {seed}): "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(tally.cases.items()))
    )
    print("answers:        " + ", ".join(f"{s}: {n:,}" for s, n in sorted(tally.statuses.items())))
    fives = sum(n for s, n in tally.statuses.items() if s >= 500)
    places = {key.split(" -> ", 1)[1] for key in tally.fives}
    print(
        f"5xx:            {fives:,} (limit 0); distinct by route and exception: {len(tally.fives)}, "
        f"by exception and where raised: {len(places)}" + "".join(f"\n  {place}" for place in sorted(places))
    )
    for key, count in sorted(tally.fives.items()):
        print(f"  {count:>6,}  {key}\n          {tally.reproducers[key]}")
    print(f"exceptions:     {tally.exceptions:,} (raised in the app; limit 0)")
    print(f"logins again:   {tally.relogins:,} (a fuzzed request ended the fuzzing's own session: a role change)")
    if tally.slowest:
        print("slowest:        " + "; ".join(f"{s:.1f} s {what}" for s, what in tally.slowest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--site", choices=("plant", "cloud", "both"), default="both")
    args = parser.parse_args()
    started = time.monotonic()
    tally = run(args.cases, args.seed, args.site)
    report(tally, time.monotonic() - started, args.seed)
    fives = sum(n for s, n in tally.statuses.items() if s >= 500)
    return 0 if fives == 0 and tally.exceptions == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""``punchproof cloud ...``: set up and run head office's service."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import date
from functools import partial
from pathlib import Path

from opskit.cli import account_made, account_refused, command_adder, gunicorn_argv, read_password, show_config
from opskit.config_edit import toml_str

DEFAULT_CONFIG = os.environ.get("PUNCHPROOF_CLOUD_CONFIG", "/etc/punchproof/cloud.toml")
ROLES = ("hr_admin", "hr_staff", "plant_manager", "auditor")
WEB_THREADS = 16  # per web worker

CONFIG_TEMPLATE = """\
# Punchproof cloud configuration. Check it with: punchproof cloud check-config -c {path}
[cloud]
state_dir = {state_dir}
timezone = {timezone}
worker_id = "ingest-1"

[database]
url = {database_url}   # or postgresql://user:password@host/dbname

[mqtt]
host = {mqtt_host}
port = {mqtt_port}
username = {mqtt_username}
password = {mqtt_password}
tls = {mqtt_tls}
ca_file = {mqtt_ca_file}      # the CA that signed the broker's certificate; "" for a public CA
shared = false           # true when several ingest workers share the subscription (MQTT v5)

[web]
bind = {web_bind}

[report]
# font = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"  # the Chinese font report.pdf embeds

# RFC 3161 timestamp authorities: the only time in an evidence bundle that is not the employer's own word.
# Every witness checkpoint is stamped by each of them (hourly and at each export). docs/keys-and-timestamps.md
# ([tsa] timeout_s = 10 sets how long to wait for one.)
{tsa_authorities}"""


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("cloud", help="head office's service: ingest, pages, escalation")
    cmds = parser.add_subparsers(dest="command", required=True)

    cmd = command_adder(cmds, DEFAULT_CONFIG)

    p = cmd("init", _init, "write a configuration file")
    p.add_argument("-o", "--output", default=DEFAULT_CONFIG)
    p.add_argument("--state-dir", default="/var/lib/punchproof")
    p.add_argument("--timezone", default="Asia/Shanghai")
    p.add_argument("--database-url", help="default: SQLite in the state directory")
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--mqtt-username", default="")
    p.add_argument("--mqtt-password", default="")
    p.add_argument("--mqtt-tls", action="store_true", help="connect to the broker over TLS")
    p.add_argument("--mqtt-ca-file", default="", help="the CA certificate (PEM) that signed the broker's")
    p.add_argument("--web-bind", default="0.0.0.0:8000")
    p.add_argument(
        "--tsa-url",
        action="append",
        default=[],
        metavar="URL",
        help="an RFC 3161 timestamp authority (repeat for several); without one, evidence bundles carry no "
        "third-party time. Asked for on a terminal when not given",
    )
    p.add_argument(
        "--tsa-ca-file",
        action="append",
        default=[],
        metavar="PEM",
        help="the TSA's root certificate: one for every --tsa-url, in order, or one for all of them",
    )
    p.add_argument("--no-tsa", action="store_true", help="do not ask for a timestamp authority on a terminal")
    cmd("check-config", _check_config, "validate the configuration, listing every problem")
    p = cmd(
        "show-config",
        partial(show_config, load=_settings),
        "print the configuration with secrets masked, and where each value came from (file, "
        "PUNCHPROOF_CLOUD__<SECTION>__<KEY> in the environment, default)",
    )
    p.add_argument("--json", action="store_true", help="as JSON: {key: {value, from}}")
    p = cmd("register-appliance", _register, "register an appliance from its identity file")
    p.add_argument("identity", help="the JSON file written by 'punchproof appliance identity'")
    p.add_argument("--new-password", action="store_true", help="replace its broker password (lost file, stolen Pi)")
    p.add_argument("-o", "--registration", help="the file for the Pi (default: registration-PLANT-APPLIANCE.json)")
    p = cmd("broker-credentials", _broker_credentials, "the ingest workers' broker login, written for [mqtt]")
    p.add_argument("--name", default="ingest", help="broker user cloud-NAME (default: %(default)s)")
    p.add_argument("--new-password", action="store_true", help="replace its password")
    p = cmd("revoke-key", _revoke_key, "revoke a compromised appliance key: nothing it signs is accepted any more")
    p.add_argument("kid", help="the key id, as 'punchproof appliance identity' or the page shows it")
    p.add_argument(
        "--compromised-since",
        metavar="TIME|SEQ",
        help="自何时（或第几条记录）起密钥可能已被复制：此后该设备日志的记录均不作为证据 / from when (a time, e.g. "
        "2026-03-02T08:00 in the plant's zone, or a record seq) the key may have been copied: every record of its "
        "log from there on is marked untrusted, in the cloud's signed evidence log, in bundles and by verify",
    )
    p.add_argument("--by", default="", help="who revokes it (default: the login name)")
    p = cmd("push-config", _push_config, "push signed master data (JSON) to an appliance, retained on its down/config")
    p.add_argument("--plant", required=True)
    p.add_argument("--appliance", required=True)
    p.add_argument("--by", default="", help="who pushes it (default: the login name)")
    p.add_argument("file", help="JSON: {section: rows}; sections and columns in docs/sync-config.md")
    p = cmd("push-plant-config", _push_plant, "push the plant's HR master data to each of its appliances (signed)")
    p.add_argument("--plant", required=True)
    p.add_argument("--by", default="", help="who pushes it (default: the login name)")
    p.add_argument("--force", action="store_true", help="push even where the appliance has these data already")
    p = cmd("import-hr", _import_hr, "import a plant's HR master data (CSV/XLSX), then push it to the plant")
    p.add_argument("--plant", required=True)
    p.add_argument("--kind", default="auto", help="employees, shifts, rosters, leave, ... (default: guessed)")
    p.add_argument("--no-push", action="store_true", help="import only; push later with push-plant-config")
    p.add_argument("file")
    p = cmd("ingest", _ingest, "run an ingest worker (systemd: punchproof-ingest@N)")
    p.add_argument("--worker-id", help="overrides [cloud] worker_id; unique per worker")
    p = cmd("web", _web, "serve head office's pages with gunicorn (systemd: punchproof-cloud-web)")
    p.add_argument("--bind")
    p = cmd(
        "export-evidence",
        _export_evidence,
        "write the evidence bundle (ZIP) for one employee and period, or for one case (--case)",
    )
    p.add_argument("--case", type=int, help="a case's bundle (its worker, plant, first day to today; verify checks it)")
    p.add_argument("--employee", help="the badge number (user id on the terminals); required without --case")
    p.add_argument("--from", dest="first_day", type=_day, help="first day, YYYY-MM-DD (plant time)")
    p.add_argument("--to", dest="last_day", type=_day, help="last day, YYYY-MM-DD (plant time)")
    p.add_argument("--plant", help="the plant (default: every plant where the employee ever punched)")
    p.add_argument("-o", "--output", required=True, help="the ZIP file to write")
    p.add_argument("--by", default="", help="who exports it, the report's 导出人 (default: the login name)")
    p = cmd("escalate", _escalate, "run the escalation engine: one tick, or every --interval seconds")
    p.add_argument("--interval", type=float, default=0, help="seconds between ticks; 0 (default): one tick and exit")
    p.add_argument("--runner-id", default="escalate-1", help="names this runner in step claims")
    p = cmd("create-user", _create_user, "create a login for head office's pages")
    p.add_argument("username")
    p.add_argument("--role", default="hr_admin", choices=ROLES)
    p.add_argument("--plant", default="", help="a plant manager's own plant (required for --role plant_manager)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add_operations_commands(cmd)
    add_calendar_commands(cmds)
    add_case_commands(cmds)


# -- a case's work-injury claim (issue #19, item 11) ------------------------------------------------


def add_case_commands(cmds: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = cmds.add_parser("case", help="缺勤案件 / what HR does on an absence case from the command line")
    case = command_adder(parser.add_subparsers(dest="case_command", required=True), DEFAULT_CONFIG)
    p = case(
        "claim-injury",
        _claim_injury,
        "登记工伤申请 / register a work-injury claim: 工伤认定 task, review of the termination, 停保 held",
    )
    p.add_argument("case", type=int, help="the case number")
    p.add_argument("--accident-date", required=True, type=_day, help="the accident's date, YYYY-MM-DD (plant time)")
    p.add_argument("--claimant", required=True, help="who claims it, e.g. 员工父亲")
    p.add_argument("--note", default="", help="what was said, documents received")
    p.add_argument("--by", default="", help="who registers it (default: the login name)")
    p = case(
        "decide-injury",
        _decide_injury,
        "登记工伤认定结论 / record the decision: recognised keeps the holds, rejected releases them",
    )
    p.add_argument("case", type=int, help="the case number")
    p.add_argument("outcome", choices=sorted(("recognised", "rejected")))
    p.add_argument("--note", default="", help="the decision's number (认定书文号) or a note")
    p.add_argument("--by", default="", help="who records it (default: the login name)")
    p = case(
        "injury-bundle",
        _injury_bundle,
        "事故当日证据包 / the evidence bundle (ZIP) for the claimed accident's date at the worker's plant",
    )
    p.add_argument("case", type=int, help="the case number")
    p.add_argument("-o", "--output", required=True, help="the ZIP file to write")
    p.add_argument("--by", default="", help="who exports it, the report's 导出人 (default: the login name)")


def _claim_injury(args: argparse.Namespace) -> int:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from cloud.clock import SystemClock, to_ms
    from cloud.escalation import actions
    from cloud.escalation.cases import CaseError
    from cloud.escalation.models import AbsenceCase
    from cloud.store import open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        case = AbsenceCase.get_or_none(AbsenceCase.id == args.case)
        if case is None:
            print(f"没有案件 {args.case} / there is no case {args.case}", file=sys.stderr)
            return 1
        zone = ZoneInfo(case.plant.timezone)
        accident = datetime.combine(args.accident_date, datetime.min.time(), zone)
        try:
            claim = actions.claim_injury(
                case.id,
                by=args.by or getpass.getuser(),
                now_ms=to_ms(SystemClock().now()),
                accident_ms=to_ms(accident),
                claimant=args.claimant,
                note=args.note,
            )
        except CaseError as err:
            print(f"未登记 / not registered: {err}", file=sys.stderr)
            return 1
        _print_claim(claim)
    return 0


def _decide_injury(args: argparse.Namespace) -> int:
    from cloud.clock import SystemClock, to_ms
    from cloud.escalation import actions
    from cloud.escalation.cases import CaseError
    from cloud.store import open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        try:
            claim = actions.decide_injury_claim(
                args.case,
                args.outcome,
                by=args.by or getpass.getuser(),
                now_ms=to_ms(SystemClock().now()),
                note=args.note,
            )
        except CaseError as err:
            print(f"未登记 / not recorded: {err}", file=sys.stderr)
            return 1
        _print_claim(claim)
    return 0


def _print_claim(claim) -> None:  # type: ignore[no-untyped-def]
    from cloud.escalation.actions import INJURY_OUTCOMES
    from cloud.escalation.models import CaseStep, CaseTask

    zh, en = ("待认定", "awaiting the decision") if claim.pending else INJURY_OUTCOMES[claim.outcome]
    print(f"案件 {claim.case_id} 工伤申请 / case {claim.case_id} work-injury claim: {zh} / {en}")
    print(f"  事故日期 / accident date: {claim.accident_day} · 申请人 / claimed by: {claim.claimant}")
    for task in CaseTask.select().where(CaseTask.case == claim.case_id).order_by(CaseTask.id):
        if task.kind in ("injury_report", "review_injury", "injury_recognised") or task.status == "held":
            print(f"  [{task.status}] {task.title_zh}")
    for step in CaseStep.select().where((CaseStep.case == claim.case_id) & (CaseStep.status == "held")):
        print(f"  [held] {step.key} {step.notice}")


def _injury_bundle(args: argparse.Namespace) -> int:
    from cloud.clock import SystemClock
    from cloud.evidence.export import ExportError, export_configured, injury_purpose
    from cloud.store import open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        try:
            scope, day, purpose = injury_purpose(args.case)
            data = export_configured(
                settings,
                scope.employee,
                day,
                day,
                clock=SystemClock(),
                plant_id=scope.plant,
                purpose=purpose,
                progress=lambda message: print(f"... {message}", file=sys.stderr),
                exported_by=args.by or getpass.getuser(),
            )
        except ExportError as err:
            print(f"not exported: {err}", file=sys.stderr)
            return 1
    Path(args.output).write_bytes(data)
    print(
        f"wrote {args.output} ({len(data) // 1024} KiB) for {scope.ref}, accident date {day}; check it with: "
        f"punchproof verify {args.output}"
    )
    return 0


# -- the statutory calendar (issue #19, item 10) --------------------------------------------------


def add_calendar_commands(cmds: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = cmds.add_parser("calendar", help="法定节假日 / head office's statutory calendar, sent to every plant")
    cal = command_adder(parser.add_subparsers(dest="calendar_command", required=True), DEFAULT_CONFIG)
    p = cal("set-year", _calendar_set_year, "publish a year's 法定节假日 and 调休 (TOML), then push it to every plant")
    p.add_argument("year", type=int)
    p.add_argument("file", help='TOML: [holidays] 2027-01-01 = "元旦" ... [workdays] 2027-02-07 = "春节调休"')
    p.add_argument("--note", default="", help="where it comes from, e.g. 国办发明电〔2026〕x 号")
    p.add_argument("--by", default="", help="who publishes it (default: the login name)")
    p.add_argument("--no-push", action="store_true", help="publish only; push later with push-plant-config")
    cal("show", _calendar_show, "the years covered, by the package or published by head office, and what is missing")


def _calendar_set_year(args: argparse.Namespace) -> int:
    from cloud.clock import SystemClock, to_ms
    from cloud.hr.calendar import CalendarError, set_year
    from cloud.plantconfig.config_push import ConfigPushError
    from cloud.plantconfig.push import push_plant
    from cloud.store import Plant, open_db

    settings = _settings(args)
    by = args.by or getpass.getuser()
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except OSError as err:
        print(f"未发布 / not published: {args.file}: {err}", file=sys.stderr)
        return 1
    code = 0
    with open_db(settings.database_url).connection_context():
        try:
            row = set_year(args.year, text, by=by, note=args.note, now_ms=to_ms(SystemClock().now()))
        except CalendarError as err:
            print(f"未发布 / not published: {args.year}", file=sys.stderr)
            for problem in err.problems:
                print(f"  - {problem}", file=sys.stderr)
            return 1
        print(f"{row.year} 年节假日安排：版本 {row.version} / {row.year} public holidays: version {row.version}")
        if args.no_push:
            return 0
        for plant in Plant.select().order_by(Plant.id):
            try:
                results = push_plant(plant.id, by=by, settings=settings)
            except ConfigPushError as err:
                print(f"{plant.id}: 未推送 / not pushed: {err}", file=sys.stderr)
                code = 1
                continue
            if results:
                code = max(code, _print_pushes(plant.id, results))
    return code


def _calendar_show(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from cloud.clock import SystemClock
    from cloud.hr.calendar import head_office_calendar, package_years, published_years
    from cloud.store import open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        package = sorted(package_years())
        print(f"软件包 / package chinesecalendar: {package[0]}–{package[-1]}")
        for row in published_years():
            print(f"总部发布 / head office: {row.year} v{row.version} ({row.by}, {row.note or '-'})")
        today = SystemClock().now().astimezone(ZoneInfo(settings.timezone)).date()
        missing = head_office_calendar().unpublished_years(today)
    for year in missing:
        print(f"未发布 / not published: {year}（临时日历 / provisional calendar）")
    return 0


# -- operations (issue #8): doctor -----------------------------------------------------------------


def add_operations_commands(cmd) -> None:  # type: ignore[no-untyped-def]
    p = cmd(
        "doctor",
        _doctor,
        "自检 / check the clock, disk, database, witness key, broker, appliances and quarantine; "
        "says what to do for each failure (exit 1 if any failed)",
    )
    p.add_argument("--min-free-mb", type=int, default=1024, help="free space the state directory needs (default: 1024)")


def _doctor(args: argparse.Namespace) -> int:
    from cloud.admin.doctor import CloudDoctor, Limits
    from opskit.doctor import report

    text, code = report(CloudDoctor(_settings(args), limits=Limits(min_free_bytes=args.min_free_mb * 2**20)).run())
    print(text)
    return code


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from err


def _export_evidence(args: argparse.Namespace) -> int:
    from cloud.clock import SystemClock
    from cloud.evidence.export import ExportError, case_scope, export_configured
    from cloud.store import open_db

    settings = _settings(args)
    if args.case is None and not (args.employee and args.first_day and args.last_day):
        print("name --employee, --from and --to, or a --case", file=sys.stderr)
        return 2
    clock = SystemClock()
    db = open_db(settings.database_url)
    with db.connection_context():
        try:
            case = case_scope(args.case) if args.case is not None else None
            data = export_configured(  # the dashboard's export runs this same function (cloud.workers.export_job)
                settings,
                args.employee or (case.employee if case else ""),
                args.first_day or (case.first_day if case else date.min),
                args.last_day or (case.today(clock) if case else date.min),
                clock=clock,
                plant_id=args.plant or (case.plant if case else None),
                case=case,
                progress=lambda message: print(f"... {message}", file=sys.stderr),
                exported_by=args.by or getpass.getuser(),
            )
        except ExportError as err:
            print(f"not exported: {err}", file=sys.stderr)
            return 1
    Path(args.output).write_bytes(data)
    print(f"wrote {args.output} ({len(data) // 1024} KiB); check it with: punchproof verify {args.output}")
    return 0


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from cloud.config import CloudSettings

    return CloudSettings.load(args.config)


def _init(args: argparse.Namespace) -> int:
    import tomllib

    from cloud.config import CloudSettings

    output = Path(args.output)
    if output.exists():
        print(f"{output} exists already; not overwriting it.", file=sys.stderr)
        return 1
    if not args.tsa_url and not args.no_tsa and sys.stdin.isatty():
        args.tsa_url, args.tsa_ca_file = _ask_for_tsas()
    authorities, problem = _tsa_authorities(args.tsa_url, args.tsa_ca_file)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    url = args.database_url or f"sqlite:///{Path(args.state_dir).resolve()}/cloud.sqlite3"
    text = CONFIG_TEMPLATE.format(
        path=output,
        state_dir=toml_str(args.state_dir),
        timezone=toml_str(args.timezone),
        database_url=toml_str(url),
        mqtt_host=toml_str(args.mqtt_host),
        mqtt_port=args.mqtt_port,
        mqtt_username=toml_str(args.mqtt_username),
        mqtt_password=toml_str(args.mqtt_password),
        mqtt_tls=str(args.mqtt_tls).lower(),
        mqtt_ca_file=toml_str(args.mqtt_ca_file),
        web_bind=toml_str(args.web_bind),
        tsa_authorities="".join(
            f"\n[[tsa.authority]]\nurl = {toml_str(u)}\nca_file = {toml_str(c)}\n" for u, c in authorities
        )
        or TSA_EXAMPLE,
    )
    CloudSettings.from_sections(tomllib.loads(text), source=str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    from cloud import witness

    key, public = witness.create(CloudSettings.load(output))
    from cloud.evidence.log import create_key

    evidence = create_key(CloudSettings.load(output))
    print(f"wrote {output}; cloud witness key {key.kid}, evidence key {evidence.kid}")
    print(f"copy {public} to every appliance (appliance init --cloud-key)")
    if authorities:
        print(f"timestamp authorities / 时间戳机构: {', '.join(u for u, _c in authorities)}")
    else:
        from cloud.evidence.tsa import NO_TSA_EN, NO_TSA_ZH

        print(f"警告：{NO_TSA_ZH}\nwarning: {NO_TSA_EN}", file=sys.stderr)
    return 0


TSA_EXAMPLE = """
# No authority yet: bundles exported now carry no third-party time. Add one (or several) like this:
# [[tsa.authority]]
# url = "https://freetsa.org/tsr"
# ca_file = "/etc/punchproof/tsa/freetsa-cacert.pem"   # its root certificate, obtained independently
"""


def _tsa_authorities(urls: list[str], ca_files: list[str]) -> tuple[list[tuple[str, str]], str]:
    """Pair each --tsa-url with its --tsa-ca-file (one file may serve all); check each root certificate parses
    and each URL is usable. Returns the pairs (absolute CA paths) or a message saying what is wrong."""
    from cloud.evidence.tsa import TimestampClient, TsaConfigError

    if not urls:
        return [], "--tsa-ca-file needs a --tsa-url / 根证书需配合时间戳机构地址" if ca_files else ""
    if len(ca_files) == 1:
        ca_files = ca_files * len(urls)
    if len(ca_files) != len(urls):
        return [], (
            f"{len(urls)} 个 --tsa-url 需要 {len(urls)} 个 --tsa-ca-file（或一个共用）/ "
            f"{len(urls)} --tsa-url need {len(urls)} --tsa-ca-file (or one for all), got {len(ca_files)}"
        )
    pairs = []
    for url, ca_file in zip(urls, ca_files, strict=True):
        path = Path(ca_file).resolve()
        try:
            TimestampClient(url, path.read_bytes())
        except OSError as err:
            return [], f"无法读取根证书 / cannot read the TSA root certificate {ca_file}: {err.strerror}"
        except TsaConfigError as err:
            return [], f"时间戳机构设置有误 / the timestamp authority {url!r} is unusable: {err}"
        pairs.append((url, str(path)))
    return pairs, ""


def _ask_for_tsas() -> tuple[list[str], list[str]]:
    """On a terminal: ask for each timestamp authority and its root certificate; an empty answer ends."""
    print(
        "第三方时间戳 / third-party timestamps: 证据包中只有 RFC 3161 时间戳机构的时间不是用人单位自己的陈述。\n"
        "Only an RFC 3161 timestamp authority's time in a bundle is not the employer's own word "
        "(docs/keys-and-timestamps.md)."
    )
    urls, ca_files = [], []
    while True:
        try:
            url = input("时间戳机构地址 / TSA URL (empty: no more): ").strip()
            if not url:
                break
            ca_file = input("其根证书文件 / its root certificate (PEM file): ").strip()
        except EOFError:
            break
        urls.append(url)
        ca_files.append(ca_file)
    return urls, ca_files


def _check_config(args: argparse.Namespace) -> int:
    """``check_config``, and the timestamp authorities: each root certificate readable (a problem otherwise), and a
    warning when there is none."""
    from cloud.evidence.tsa import NO_TSA_EN, NO_TSA_ZH, configured_clients

    settings = _settings(args)
    configured_clients(settings)  # a ConfigError lists every unusable authority
    print(f"{args.config}: OK")
    if not settings.tsas:
        print(f"警告 / warning: 未配置第三方时间戳 / no third-party timestamp authority\n  {NO_TSA_ZH}\n  {NO_TSA_EN}")
    return 0


def _register(args: argparse.Namespace) -> int:
    from cloud.appliances import registry
    from cloud.clock import SystemClock
    from cloud.store import open_db

    settings = _settings(args)
    try:
        identity = json.loads(Path(args.identity).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        print(f"cannot read {args.identity}: {err}", file=sys.stderr)
        return 1
    db = open_db(settings.database_url)
    with db.connection_context():
        try:
            appliance = registry.register(identity, SystemClock())
        except registry.RegistryError as err:
            print(f"not registered: {err}", file=sys.stderr)
            return 1
        print(
            f"registered {identity['plant']}/{appliance.name} (log {appliance.log_origin}, key {identity.get('kid')})"
        )
        print(f"公钥登记 / key registration: {_log_key_events(settings)}")
        return _register_broker(args, settings, identity["plant"], appliance.name)


def _register_broker(args: argparse.Namespace, settings, plant: str, name: str) -> int:  # type: ignore[no-untyped-def]
    from cloud.admin import broker_cli
    from cloud.clock import SystemClock

    if not broker_cli.configured(settings):
        print("no broker credential made: [broker] is not configured (docs/broker-security.md)")
        return 0
    default = Path(args.identity).parent / f"registration-{plant}-{name}.json"
    output = Path(args.registration) if args.registration else default
    return broker_cli.register_appliance(
        settings, plant, name, SystemClock(), new_password=args.new_password, output=output
    )


def _broker_credentials(args: argparse.Namespace) -> int:
    from cloud.admin import broker_cli
    from cloud.clock import SystemClock
    from cloud.store import open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        return broker_cli.cloud_credentials(settings, args.name, SystemClock(), new_password=args.new_password)


def _revoke_key(args: argparse.Namespace) -> int:
    from cloud.clock import SystemClock, to_ms
    from cloud.evidence.revocation import RevocationError, revoke
    from cloud.store import open_db

    settings = _settings(args)
    db = open_db(settings.database_url)
    with db.connection_context():
        try:
            row = revoke(args.kid, to_ms(SystemClock().now()), args.compromised_since, args.by or getpass.getuser())
        except RevocationError as err:
            print(f"未吊销 / not revoked: {err}", file=sys.stderr)
            return 1
        logged = _log_key_events(settings)
    print(
        f"已吊销 / revoked key {row.kid} of {row.key_log}; 此后记录不可信 / its records are untrusted {row.since}.\n"
        f"{logged}\n"
        "The appliance must get a new key: on it, move the old key file away, run 'punchproof appliance init' "
        "again and register the new identity file."
    )
    return 0


def _log_key_events(settings) -> str:  # type: ignore[no-untyped-def]
    """Write registrations and revocations into the cloud's signed evidence log now, when this host holds its
    keys; else the next escalation run or export does. Says which, for the admin."""
    from cloud import witness
    from cloud.clock import SystemClock
    from cloud.evidence.log import EvidenceKeyMissing, EvidenceLog, load_key

    try:
        log = EvidenceLog(load_key(settings), witness.load(settings), SystemClock())
    except (EvidenceKeyMissing, witness.WitnessKeyMissing):
        return (
            "将在下次案件处理或导出证据包时记入云端签名证据日志 / it goes into the cloud's signed evidence log at the "
            "next escalation run or evidence export"
        )
    size = log.catch_up().size
    return f"已记入云端签名证据日志（共 {size} 条）/ written into the cloud's signed evidence log (size {size})"


def _push_config(args: argparse.Namespace) -> int:
    from cloud.plantconfig.config_push import ConfigPushError, publish_config
    from cloud.store import open_db

    settings = _settings(args)
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as err:
        print(f"未推送 / not pushed: cannot read {args.file} as JSON: {err}", file=sys.stderr)
        return 1
    db = open_db(settings.database_url)
    with db.connection_context():
        try:
            pushed = publish_config(
                args.plant, args.appliance, document, by=args.by or getpass.getuser(), settings=settings
            )
        except ConfigPushError as err:
            print(f"未推送 / not pushed: {err}", file=sys.stderr)
            return 1
    packed = ", compressed" if pushed.compressed else ""
    print(
        f"已发布配置版本 {pushed.version} / published configuration version {pushed.version} to "
        f"{args.plant}/{args.appliance} ({pushed.size} bytes{packed}, sha256 {pushed.hash[:16]}…)"
    )
    return 0


def _push_plant(args: argparse.Namespace) -> int:
    from cloud.plantconfig.config_push import ConfigPushError
    from cloud.plantconfig.push import push_plant
    from cloud.store import open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        try:
            results = push_plant(args.plant, by=args.by or getpass.getuser(), settings=settings, force=args.force)
        except ConfigPushError as err:
            print(f"未推送 / not pushed: {err}", file=sys.stderr)
            return 1
    return _print_pushes(args.plant, results)


def _print_pushes(plant: str, results) -> int:  # type: ignore[no-untyped-def]
    if not results:
        print(f"厂区 {plant} 没有已登记的设备 / plant {plant} has no registered appliance", file=sys.stderr)
        return 1
    for r in results:
        if r.error:
            print(f"{plant}/{r.appliance}: 未推送 / not pushed: {r.error}", file=sys.stderr)
        elif r.pushed is None:
            print(f"{plant}/{r.appliance}: 无变化 / unchanged")
        else:
            print(f"{plant}/{r.appliance}: 已发布配置版本 {r.pushed.version} / published version {r.pushed.version}")
    return 1 if any(r.error for r in results) else 0


def _import_hr(args: argparse.Namespace) -> int:
    from cloud.clock import SystemClock, to_ms
    from cloud.hr.importer import ImportRefused, import_file
    from cloud.plantconfig.push import push_plant
    from cloud.store import Plant, open_db

    settings = _settings(args)
    with open_db(settings.database_url).connection_context():
        plant = Plant.get_or_none(Plant.id == args.plant)
        if plant is None:
            print(f"未导入 / not imported: no plant {args.plant}", file=sys.stderr)
            return 1
        try:
            report = import_file(Path(args.file), plant, to_ms(SystemClock().now()), kind=args.kind)
        except ImportRefused as err:
            print(f"未导入 / not imported: {err}", file=sys.stderr)
            return 1
        print(f"已导入 / imported: {report}")
        if args.no_push:
            return 0
        return _print_pushes(args.plant, push_plant(args.plant, by=getpass.getuser(), settings=settings))


def _ingest(args: argparse.Namespace) -> int:
    import dataclasses

    from cloud.workers.ingest import run

    settings = _settings(args)
    if args.worker_id:
        settings = dataclasses.replace(settings, worker_id=args.worker_id)
    run(settings, service=getattr(args, "service", None))  # the launcher's systemd link
    return 0


def _web(args: argparse.Namespace) -> int:
    from cloud.store import open_db
    from opskit.webapp import session_config

    settings = _settings(args)
    # what every worker opens first, opened here once: a database that is down or a state directory that cannot
    # be written is one clear message from this command, not a traceback from each worker gunicorn starts
    session_config(settings.secret_key_path)
    open_db(settings.database_url).close()
    os.environ["PUNCHPROOF_CLOUD_CONFIG"] = str(Path(args.config).resolve())
    # threads: a slow upload or a stalled client holds a thread, not one of the few worker processes
    argv = gunicorn_argv(
        "cloud.web:create_app()",
        bind=args.bind or settings.web_bind,
        workers=settings.web_workers,
        options=("--worker-class", "gthread", "--threads", str(WEB_THREADS)),
    )
    os.execv(sys.executable, argv)
    return 0  # not reached


def _escalate(args: argparse.Namespace) -> int:
    import signal

    from cloud import witness
    from cloud.clock import SystemClock
    from cloud.escalation.engine import Engine, Runner
    from cloud.evidence.log import EvidenceLog, create_key
    from cloud.store import open_db
    from cloud.workers.escalate import EscalationService

    settings = _settings(args)
    db = open_db(settings.database_url)
    clock = SystemClock()
    channels = settings.channels.build(clock)
    engine = Engine(clock, _sender(settings, channels, clock), runner_id=args.runner_id)
    evidence = EvidenceLog(create_key(settings), witness.load(settings), clock)
    service = EscalationService(
        engine,
        clock,
        channels=channels,
        pull_every_s=settings.channels.pull_receipts_every_s,
        evidence=evidence,
        settings=settings,  # a termination in effect: its plant's configuration pushed at once
    )
    if args.interval <= 0:
        with db.connection_context():
            report = service.tick()
        print(json.dumps(report.__dict__, ensure_ascii=False))
        return 0
    runner = Runner(service, args.interval, getattr(args, "service", None))  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run()
    except KeyboardInterrupt:
        runner.stop()
    return 0


def _sender(settings, channels, clock):  # type: ignore[no-untyped-def]
    """The channels' dispatcher behind the real sender; without channels or [notices], steps wait (never
    recorded as sent) and the log says what is missing."""
    import logging

    from cloud.channels.dispatch import Dispatcher
    from cloud.escalation.outbound import OutboundSender
    from cloud.escalation.sender import HoldingSender

    missing = [name for name, ok in (("[channels.*]", channels), ("[notices]", settings.notices)) if not ok]
    if missing:
        logging.getLogger("cloud.escalate").warning("steps wait: %s not configured", " and ".join(missing))
        return HoldingSender()
    return OutboundSender(Dispatcher(channels, clock=clock), settings.notices, clock, font=settings.report_font)


def _create_user(args: argparse.Namespace) -> int:
    from cloud import accounts
    from cloud.clock import SystemClock, to_ms
    from cloud.store import open_db

    settings = _settings(args)
    password = read_password(args.password_stdin)
    db = open_db(settings.database_url)
    with db.connection_context():
        try:
            accounts.create(args.username, password, args.role, to_ms(SystemClock().now()), plant=args.plant)
        except accounts.AccountError as err:
            print(account_refused(err), file=sys.stderr)
            return 1
    print(account_made(args.role, args.username))
    return 0

"""``punchproof appliance ...``: set up, run and inspect the appliance."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from functools import partial
from pathlib import Path

from opskit.cli import (
    account_made,
    account_refused,
    check_config,
    command_adder,
    gunicorn_argv,
    read_password,
    show_config,
)
from opskit.config_edit import toml_str

EXIT_LOG_DAMAGED = 3  # systemd/punchproof-appliance.service: RestartPreventExitStatus=3
DEFAULT_CONFIG = os.environ.get("PUNCHPROOF_CONFIG", "/etc/punchproof/appliance.toml")

CONFIG_TEMPLATE = """\
# Punchproof appliance configuration. Check it with: punchproof appliance check-config -c {path}
[plant]
id = {plant}            # lower-case letters, digits, '-'
name = {plant_name}
timezone = {timezone}   # times are stored in UTC and shown in this zone

[appliance]
id = {appliance}
state_dir = {state_dir} # database, keys; back it up

[mqtt]
host = {mqtt_host}
port = {mqtt_port}
username = {mqtt_username}
password = {mqtt_password}
tls = {mqtt_tls}
cloud_key_file = {cloud_key}   # head office's cloud-witness.pub: only acknowledgements it signed count

[web]
bind = {web_bind}
{terminals}"""

TERMINAL_TEMPLATE = """
[[terminals]]
name = {name}
kind = "zk"
host = {host}
port = {port}
comm_key = 0
poll_seconds = {poll}
"""


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("appliance", help="the Raspberry Pi next to the time clocks")
    cmds = parser.add_subparsers(dest="command", required=True)

    cmd = command_adder(cmds, DEFAULT_CONFIG)

    p = cmd(
        "init",
        _init,
        "write a configuration file and the appliance's signing key; on a terminal without --plant, --appliance "
        "or --cloud-key it asks for them, probes each time clock and takes the registration file / 首次设置",
    )
    p.add_argument("-o", "--output", default=DEFAULT_CONFIG)
    p.add_argument("--plant", help="required, unless asked on a terminal")
    p.add_argument("--plant-name", default=None, help="default: empty")
    p.add_argument("--timezone", default=None, help="default: Asia/Shanghai")
    p.add_argument("--appliance", help="required, unless asked on a terminal")
    p.add_argument("--state-dir", default="/var/lib/punchproof")
    p.add_argument("--mqtt-host", default=None, help="default: 127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--mqtt-username", default="")
    p.add_argument(
        "--mqtt-password",
        default=None,
        help="avoid: ps and the shell's history keep it. With --mqtt-username and without this, init asks for it "
        "on a terminal, or reads it from the first line of standard input (--mqtt-password-stdin)",
    )
    p.add_argument("--mqtt-password-stdin", action="store_true", help="read the MQTT password from standard input")
    p.add_argument("--mqtt-tls", action="store_true")
    p.add_argument("--cloud-key", help="cloud-witness.pub, as written by 'punchproof cloud init' (required)")
    p.add_argument("--web-bind", default="0.0.0.0:8080")
    p.add_argument("--terminal", action="append", default=[], metavar="NAME=HOST[:PORT]")
    p.add_argument("--poll-seconds", type=float, default=5.0)
    p.add_argument("--identity", help="also write the identity file for the cloud here")
    p = cmd("join", _join, "take head office's registration file: broker address, CA, login / 导入注册文件")
    p.add_argument("registration", help="the file 'punchproof cloud register-appliance' wrote for this appliance")
    cmd("check-config", partial(check_config, load=_settings), "validate the configuration, listing every problem")
    p = cmd(
        "show-config",
        partial(show_config, load=_settings),
        "print the configuration with secrets masked, and where each value came from (file, "
        "PUNCHPROOF_APPLIANCE__<SECTION>__<KEY> in the environment, default)",
    )
    p.add_argument("--json", action="store_true", help="as JSON: {key: {value, from}}")
    p = cmd("identity", _identity, "print (or write) the identity file the cloud registers")
    p.add_argument("-o", "--output")
    cmd("run", _run, "run the daemon: terminals, signed log, sync (systemd: punchproof-appliance)")
    p = cmd("web", _web, "serve the plant's pages with gunicorn (systemd: punchproof-appliance-web)")
    p.add_argument("--bind")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads per worker (gthread); each open kiosk or board holds one, 8 stay for pages (default: 40)",
    )
    p = cmd("create-user", _create_user, "create a login for the plant's pages")
    p.add_argument("username")
    p.add_argument("--role", default="admin", choices=("admin", "plant_manager", "line_leader"))
    p.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    cmd("status", _status, "print the log head, the sync cursor and the terminals")
    p = cmd(
        "import-roster",
        _import_roster,
        "import employees, shifts, rosters, leave, trips or 补卡 from a .csv or .xlsx file "
        "(columns: see appliance/roster/importer.py; Chinese headers accepted)",
    )
    p.add_argument("file")
    p.add_argument(
        "--kind",
        default="auto",
        choices=("auto", "employees", "shifts", "rosters", "schedule", "leave", "trips", "corrections"),
        help="what a .csv file holds (default: recognised by its headers); .xlsx sheets are named for it",
    )
    p.add_argument(
        "--allow-removals",
        action="store_true",
        help="import even if the file removes more workers from the terminals at once than [enrolment] allows; "
        "counts as confirming their removal (signed) / 确认删除",
    )
    p = cmd(
        "confirm-removals",
        _confirm_removals,
        "确认删除 / list the workers a roster change would remove from the terminals, held because they are more "
        "than [enrolment] allows at once, and confirm removing them (signed; done at each terminal's next poll)",
    )
    p.add_argument("--yes", action="store_true", help="confirm without asking")
    p = cmd("import-calendar", _import_calendar, "set the plant's holiday overrides (TOML, see rules/calendar_cn.py)")
    p.add_argument("file")
    p = cmd(
        "clear-terminal",
        _clear_terminal,
        "clear a ZK terminal's log (the daemon does it, only if the cloud acknowledged every record) / 清除考勤机记录",
    )
    p.add_argument("name", help="the terminal's name in [[terminals]]")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the daemon (default: %(default)s)")
    cmd(
        "rotate-key",
        _rotate_key,
        "start a rotation of the log-signing key; the daemon records it (signed by both keys) at its next start",
    )
    add_operations_commands(cmd)


# -- operations (issue #8): doctor, backup, restore ------------------------------------------------


def add_operations_commands(cmd) -> None:  # type: ignore[no-untyped-def]
    p = cmd(
        "doctor",
        _doctor,
        "自检 / check the clock, disk, database, keys, registration, broker, terminals and backlog; "
        "says what to do for each failure (exit 1 if any failed)",
    )
    p.add_argument("--min-free-mb", type=int, default=500, help="free space the state directory needs (default: 500)")
    p = cmd(
        "backup",
        _backup,
        "备份 / write the database and the signing key to one file while the daemon runs (keep it secret)",
    )
    p.add_argument("output", help="the archive to write (tar, mode 0600)")
    p = cmd("restore", _restore, "恢复 / put a backup in place; the daemon must be stopped")
    p.add_argument("archive", help="a file written by 'punchproof appliance backup'")


def _backup(args: argparse.Namespace) -> int:
    from appliance.admin.backup import BackupError, backup

    try:
        info = backup(_settings(args), Path(args.output))
    except BackupError as err:
        print(f"未备份 / not backed up: {err}", file=sys.stderr)
        return 1
    print(
        f"已备份 / wrote {info.path}: log up to seq {info.head_seq}, cloud acknowledged up to {info.acked_seq}. "
        "它包含签名密钥，请妥善保管 / it holds the signing key: keep it as secret as the Pi itself."
    )
    return 0


def _restore(args: argparse.Namespace) -> int:
    from appliance.admin.backup import BackupError, restore

    try:
        info = restore(_settings(args), Path(args.archive))
    except BackupError as err:
        print(f"未恢复 / not restored: {err}", file=sys.stderr)
        return 1
    print(
        f"已恢复 / restored the backup of {info.created} (log up to seq {info.head_seq}); the files it replaced are "
        "kept beside it (*.before-restore-*). Start the daemon: sudo systemctl start punchproof-appliance. "
        "若云端已收到更新的记录，同步会停止并提示“从旧备份恢复”，请联系支持 / if the cloud holds newer records, the "
        "sync halts saying so: call support (docs/operations.md)."
    )
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from appliance.admin.doctor import ApplianceDoctor, Limits
    from opskit.doctor import report

    limits = Limits(min_free_bytes=args.min_free_mb * 2**20)
    text, code = report(ApplianceDoctor(_settings(args), limits=limits).run())
    print(text)
    return code


def _settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from appliance.config import Settings

    return Settings.load(args.config)


def _init(args: argparse.Namespace) -> int:
    from appliance.admin.init_wizard import Aborted, InitWizard
    from appliance.config import Settings
    from appliance.identity import load_or_create_key, write_identity
    from appliance.store import open_db

    output = Path(args.output)
    if output.exists():
        print(f"{output} exists already; not overwriting it.", file=sys.stderr)
        return 1
    wizard = None
    missing = [flag for flag in ("plant", "appliance", "cloud_key") if not getattr(args, flag)]
    if missing:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            names = ", ".join("--" + flag.replace("_", "-") for flag in missing)
            print(f"appliance init: {names} required (run it on a terminal to be asked instead)", file=sys.stderr)
            return 2
        wizard = InitWizard(input, sys.stdout)
        try:
            wizard.fill(args)
        except Aborted as err:
            print(f"\n{err}", file=sys.stderr)
            return 1
    if args.mqtt_password is not None:
        print(
            "注意：--mqtt-password 会留在 ps 和命令历史中，宜改用提示输入或 --mqtt-password-stdin。\n"
            "note: --mqtt-password stays in ps and the shell's history; let init ask for it, or use "
            "--mqtt-password-stdin.",
            file=sys.stderr,
        )
    elif args.mqtt_password_stdin:
        args.mqtt_password = sys.stdin.readline().rstrip("\n")
    elif args.mqtt_username and sys.stdin.isatty():
        args.mqtt_password = getpass.getpass(f"MQTT 密码（总部提供）/ MQTT password for {args.mqtt_username}: ")
    for name, default in (
        ("plant_name", ""),
        ("timezone", "Asia/Shanghai"),
        ("mqtt_host", "127.0.0.1"),
        ("mqtt_password", ""),
    ):
        if getattr(args, name) is None:
            setattr(args, name, default)
    terminals = ""
    for spec in args.terminal:
        name, _, address = spec.partition("=")
        host, _, port = address.partition(":")
        if not name or not host:
            print(f"--terminal {spec!r}: use NAME=HOST or NAME=HOST:PORT", file=sys.stderr)
            return 2
        terminals += TERMINAL_TEMPLATE.format(
            name=toml_str(name), host=toml_str(host), port=port or 4370, poll=args.poll_seconds
        )
    text = CONFIG_TEMPLATE.format(
        path=output,
        plant=toml_str(args.plant),
        plant_name=toml_str(args.plant_name),
        timezone=toml_str(args.timezone),
        appliance=toml_str(args.appliance),
        state_dir=toml_str(args.state_dir),
        mqtt_host=toml_str(args.mqtt_host),
        mqtt_port=args.mqtt_port,
        mqtt_username=toml_str(args.mqtt_username),
        mqtt_password=toml_str(args.mqtt_password),
        mqtt_tls=str(args.mqtt_tls).lower(),
        cloud_key=toml_str(Path(args.cloud_key).resolve()),
        web_bind=toml_str(args.web_bind),
        terminals=terminals,
    )
    import tomllib

    settings = Settings.from_dict(tomllib.loads(text), source=str(output))  # refuse to write a bad file
    output.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    key = load_or_create_key(settings.key_path)
    open_db(settings.db_path).close()
    print(f"wrote {output}; log-signing key {key.kid}; database {settings.db_path}")
    if args.identity:
        write_identity(settings, key, Path(args.identity))
        print(f"wrote {args.identity}: register it with 'punchproof cloud register-appliance {args.identity}'")
    if wizard is not None:
        try:
            wizard.offer_join(output, args.identity)
        except Aborted:
            print(f"\nlater: punchproof appliance join -c {output} FILE", file=sys.stderr)
    return 0


def _join(args: argparse.Namespace) -> int:
    from appliance.sync.join import JoinError, join

    settings = _settings(args)
    try:
        registration = json.loads(Path(args.registration).read_text(encoding="utf-8"))
        print(join(settings, registration))
    except (OSError, ValueError, JoinError) as err:
        print(f"未加入 / not joined: {err}", file=sys.stderr)
        return 1
    print(f"delete {args.registration} now: it holds the password / 请删除注册文件（含密码）")
    return 0


def _identity(args: argparse.Namespace) -> int:
    from appliance.identity import identity, load_or_create_key

    settings = _settings(args)
    text = json.dumps(identity(settings, load_or_create_key(settings.key_path)), ensure_ascii=False, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def _rotate_key(args: argparse.Namespace) -> int:
    from appliance.identity import start_rotation

    settings = _settings(args)
    try:
        key = start_rotation(settings.key_path)
    except FileExistsError as err:
        print(f"not rotated: {err}", file=sys.stderr)
        return 1
    print(
        f"the next key is {key.kid}. Restart the appliance to record the rotation in the signed log "
        "(sudo systemctl restart punchproof-appliance); the cloud learns the new key from the log itself."
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from appliance.capture.logcheck import LogDamaged
    from appliance.capture.punchlog import KeyMismatch
    from appliance.runtime.daemon import run

    settings = _settings(args)
    try:
        run(settings, service=getattr(args, "service", None))  # the launcher's systemd link
    except LogDamaged as err:
        print(
            f"签名日志与其最新检查点不符，守护进程拒绝在其上继续追加记录。\n"
            f"the signed log does not match its latest checkpoint; the daemon will not extend it: {err}\n"
            f"请停止服务（sudo systemctl stop punchproof-appliance），保留 {settings.db_path}，"
            "用最近的备份恢复（punchproof appliance restore）并联系支持；云端保有已确认的记录。\n"
            "stop the service, keep the database file, restore the latest backup ('punchproof appliance "
            "restore') and call support: the cloud holds every acknowledged record.",
            file=sys.stderr,
        )
        return EXIT_LOG_DAMAGED
    except KeyMismatch as err:
        print(f"签名密钥与日志不符 / {err}", file=sys.stderr)
        return EXIT_LOG_DAMAGED
    return 0


def _web(args: argparse.Namespace) -> int:
    """gunicorn with thread workers: live pages hold a stream each (see appliance/web/serving.py)."""
    from appliance.web import serving

    settings = _settings(args)
    threads = args.threads or serving.THREADS
    os.environ["PUNCHPROOF_CONFIG"] = str(Path(args.config).resolve())
    os.environ["PUNCHPROOF_WEB_STREAMS"] = str(serving.streams_for(threads))
    # glibc gives each busy thread its own malloc arena; with 40 threads a worker's resident size
    # grows several-fold from fragments. Two arenas keep it near what a sync worker needs.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    os.environ.setdefault("TMPDIR", str(_scratch_dir(settings.state_dir)))
    argv = gunicorn_argv(
        "appliance.web:create_app()",
        config="python:appliance.web.serving",  # the hook that ends live streams when a worker stops
        bind=args.bind or settings.web.bind,
        workers=settings.web.workers,
        options=(
            "--worker-class",
            serving.WORKER_CLASS,
            "--threads",
            str(threads),
            "--keep-alive",
            "5",  # a board's page requests reuse their connection; idle ones wait without a thread
        ),
    )
    os.execv(sys.executable, argv)
    return 0  # not reached


def _scratch_dir(state_dir: Path) -> Path:
    """The pages' temporary files (an XLSX export's, SQLite's sorts): on the state directory's disk, which
    the pages watch for space, because a Pi's /tmp may be a tmpfs and a month's XLSX export writes some
    130 MB there (appliance/web/export_xlsx.py). Emptied first: no worker runs yet, so whatever is there
    was left by a worker that died during an export."""
    scratch = state_dir / "tmp"
    scratch.mkdir(mode=0o700, exist_ok=True)
    for left in scratch.iterdir():
        if left.is_file():
            left.unlink(missing_ok=True)
    return scratch


def _create_user(args: argparse.Namespace) -> int:
    from appliance.clock import SystemClock, to_ms
    from appliance.store import open_db
    from appliance.web import accounts

    settings = _settings(args)
    password = read_password(args.password_stdin)
    db = open_db(settings.db_path)
    with db.connection_context():
        try:
            accounts.create(args.username, password, args.role, to_ms(SystemClock().now()))
        except accounts.AccountError as err:
            print(account_refused(err), file=sys.stderr)
            return 1
    print(account_made(args.role, args.username))
    return 0


def _status(args: argparse.Namespace) -> int:
    from appliance.store import LogRecord, SyncState, TerminalHealth, open_db

    settings = _settings(args)
    db = open_db(settings.db_path)
    with db.connection_context():
        head = LogRecord.select(LogRecord.seq).order_by(LogRecord.seq.desc()).scalar()
        sync = SyncState.get_by_id(1)
        print(
            json.dumps(
                {
                    "log": settings.log_origin,
                    "head_seq": -1 if head is None else head,
                    "acked_seq": sync.acked_seq,
                    "broker_connected": sync.connected,
                    "sync_error": sync.last_error,
                    "terminals": [
                        {
                            "name": t.name,
                            "serial": t.serial,
                            "available": t.available,
                            "cursor": t.cursor,
                            "clock_offset_ms": t.clock_offset_ms,
                            "error": t.last_error,
                        }
                        for t in TerminalHealth.select()
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    return 0


def _clear_terminal(args: argparse.Namespace) -> int:
    """Queue the command for the daemon (the log's one writer, the terminal's one client) and wait."""
    from appliance.capture import terminal_admin
    from appliance.clock import SystemClock, to_ms
    from appliance.config import TerminalSettings
    from appliance.store import open_db

    settings = _settings(args)
    names = [t.name for t in settings.terminals_of(TerminalSettings)]
    if args.name not in names:
        print(
            f"{args.name!r} 不是已配置的 ZK 考勤机 / is not a configured 'zk' terminal "
            f"(known: {', '.join(names) or 'none'})",
            file=sys.stderr,
        )
        return 2
    if not (settings.state_dir / "running").exists():
        print(
            "守护进程未运行，未清除 / the appliance daemon is not running (sudo systemctl start punchproof-appliance); "
            "nothing cleared",
            file=sys.stderr,
        )
        return 1
    db = open_db(settings.db_path)
    with db.connection_context():
        request = terminal_admin.request_clear(args.name, f"cli:{getpass.getuser()}", to_ms(SystemClock().now()))
        print(f"waiting for the daemon to clear {args.name} (request {request}) ...", file=sys.stderr)
        try:
            outcome = terminal_admin.wait_outcome(request, args.timeout)
        except KeyboardInterrupt:
            terminal_admin.withdraw(request)
            raise
    if outcome.status == "expired":
        print(
            f"守护进程 {args.timeout:g} 秒内未响应，未清除 / the daemon did not take the request within "
            f"{args.timeout:g} s (is it running? is the terminal answering?); nothing cleared",
            file=sys.stderr,
        )
        return 1
    print(outcome.message, file=sys.stdout if outcome.status == "done" else sys.stderr)
    return 0 if outcome.status == "done" else 1


class _TooManyRemovals(Exception):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"{count} > {limit}")
        self.count, self.limit = count, limit


def _import_roster(args: argparse.Namespace) -> int:
    from appliance.capture import enrolment
    from appliance.clock import SystemClock, to_ms
    from appliance.roster.importer import ImportError_, import_file
    from appliance.store import open_db

    settings = _settings(args)
    now = SystemClock().now()
    today = now.astimezone(settings.plant.tz).date()
    rule = enrolment.brake_rule(settings.enrolment)
    db = open_db(settings.db_path)
    with db.connection_context():
        before = frozenset(enrolment.roster_today(today).current)  # if the daemon never accepted a roster
        confirmed = []

        def brake() -> None:  # in the import's transaction, the rows written: raising undoes them
            pending = enrolment.pending_removals(today, rule, accepted=before)
            if not pending.held:
                return
            if not args.allow_removals:
                raise _TooManyRemovals(len(pending.held), pending.limit)
            by = f"cli:{getpass.getuser()} import-roster --allow-removals"
            enrolment.confirm_removals(pending.held, by=by, now_ms=to_ms(now))
            confirmed.extend(pending.held)

        try:
            report = import_file(Path(args.file), settings.plant.tz, to_ms(now), kind=args.kind, then=brake)
        except ImportError_ as err:
            print(f"nothing imported: {err}", file=sys.stderr)
            return 1
        except _TooManyRemovals as err:
            print(
                f"未导入：此名单将使 {err.count} 人离开名单并从考勤机删除（含指纹），超过上限 {err.limit} 人。"
                "请核对名单是否完整；确认无误后加 --allow-removals 重新导入。\n"
                f"nothing imported: {args.file} would make {err.count} workers leave the roster and remove them "
                f"from the terminals with their fingers, more than the limit of {err.limit} ([enrolment] in "
                f"{settings.source}). Check that the sheet is complete; if it is right, import it again with "
                "--allow-removals.",
                file=sys.stderr,
            )
            return 2
    counts = ", ".join(f"{n} {kind}" for kind, n in report.counts.items())
    again = f"; past days to evaluate again: {', '.join(report.reevaluate)}" if report.reevaluate else ""
    print(f"imported {counts} from {args.file}{again}")
    if confirmed:
        print(
            f"已确认删除 {len(confirmed)} 人，考勤机下次轮询时删除 / removal of {len(confirmed)} workers confirmed: "
            "each terminal removes them at its next poll"
        )
    return 0


def _confirm_removals(args: argparse.Namespace) -> int:
    from appliance.capture import enrolment
    from appliance.clock import SystemClock, to_ms
    from appliance.store import Employee, open_db

    settings = _settings(args)
    db = open_db(settings.db_path)
    with db.connection_context():
        hold = enrolment.held_removals()
        if hold is None:
            print("没有暂停的删除 / no removal from the terminals is held")
            return 0
        names = dict(Employee.select(Employee.user_id, Employee.name).where(Employee.user_id.in_(hold.badges)).tuples())
        print(
            f"名单变更将从考勤机删除以下 {len(hold.badges)} 人（含指纹），超过上限 {hold.limit} 人 / the roster "
            f"would remove these {len(hold.badges)} workers from the terminals with their fingers (limit {hold.limit}):"
        )
        for badge in hold.badges:
            print(f"  {badge}\t{names.get(badge, '')}")
        if not args.yes:
            if not sys.stdin.isatty():
                print("未确认 / not confirmed: answer on a terminal, or add --yes", file=sys.stderr)
                return 2
            answer = input("确认删除？/ remove them? [y/N] ").strip().lower()
            if answer not in ("y", "yes", "是"):
                print("未确认，仍暂停删除 / not confirmed: they stay on the terminals")
                return 1
        by = f"cli:{getpass.getuser()}"
        enrolment.confirm_removals(hold.badges, by=by, now_ms=to_ms(SystemClock().now()))
    print(
        f"已确认删除 {len(hold.badges)} 人，考勤机下次轮询时删除（签名记录）/ confirmed by {by}: each terminal "
        "removes them at its next poll, and the appliance signs the confirmation"
    )
    return 0


def _import_calendar(args: argparse.Namespace) -> int:
    from appliance.clock import SystemClock, to_ms
    from appliance.rules import RulesError, parse_overrides
    from appliance.store import CalendarFile, open_db

    settings = _settings(args)
    text = Path(args.file).read_text(encoding="utf-8")
    try:
        overrides = parse_overrides(text, source=args.file)
    except RulesError as err:
        print(f"not imported: {err}", file=sys.stderr)
        return 1
    db = open_db(settings.db_path)
    with db.connection_context():
        CalendarFile.replace(
            id=1, text=text, source=f"import:{Path(args.file).name}", updated_ms=to_ms(SystemClock().now())
        ).execute()
    print(
        f"calendar overrides {overrides.version}: {len(overrides.holidays)} holiday(s), "
        f"{len(overrides.workdays)} workday(s)"
    )
    return 0

"""``punchproof``: every process and tool of the system behind one command."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from punchproof import __version__


def build_parser() -> argparse.ArgumentParser:
    from appliance.admin.cli import add_commands as appliance_commands
    from cloud.admin.cli import add_commands as cloud_commands
    from firmware_bridge.cli import add_commands as emulate_commands
    from firmware_bridge.zk.commands import add_commands as bridge_commands

    parser = argparse.ArgumentParser(prog="punchproof", description="Attendance evidence for factories.")
    parser.add_argument("--version", action="version", version=f"punchproof {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="area", required=True)
    appliance_commands(sub)
    cloud_commands(sub)
    _add_policy_preset(sub.choices["cloud"])
    emulate_commands(sub)
    bridge_commands(sub)
    verify = sub.add_parser(
        "verify",
        help="check an evidence bundle offline, without trusting us",
        description="Check an evidence bundle offline: every file's hash, every signature, chain and Merkle proof, "
        "the cloud's witness log and its RFC 3161 timestamps.",
        epilog="exit status / 退出码: 0 every check passed and a third-party (RFC 3161) timestamp covers every "
        "checkpoint / 全部校验通过且有第三方时间戳; 1 a check failed / 校验未通过; 4 every check passed but the "
        "bundle has no third-party timestamp for all its records: its times are the employer's word alone / "
        "签名与哈希无误，但没有第三方时间戳，记录时间仅为用人单位一方的证明; 5 every check passed and a timestamp "
        "covers every checkpoint, but the keys were taken from the bundle itself (no --witness-key) / "
        "公钥未经独立核对; 6 every check passed, but a punch's earliest third-party timestamp came later than "
        "--max-stamp-delay after it (it could have been made in between) / 有打卡记录晚于允许的时限才取得时间戳. "
        "When several apply: 1, then 4, then 6, then 5; all are said.",
    )
    verify.set_defaults(func=_verify)
    verify.add_argument("bundle", help="the ZIP written by 'punchproof cloud export-evidence'")
    verify.add_argument("--witness-key", help="the cloud's witness public key (PEM) to pin, obtained separately")
    verify.add_argument(
        "--appliance-key",
        action="append",
        metavar="FILE|FINGERPRINT",
        help="an appliance's public key (PEM file) or its fingerprint (kid, or SHA-256 hex), obtained separately; "
        "repeat for each key: every key that signs an appliance log in the bundle, rotations included, must be one",
    )
    verify.add_argument(
        "--evidence-key",
        action="append",
        metavar="FILE|FINGERPRINT",
        help="the cloud's evidence public key (cloud-evidence.pub) or its fingerprint, obtained separately",
    )
    verify.add_argument("--tsa-ca", help="the timestamp authority's root certificate (PEM) to pin")
    verify.add_argument(
        "--max-stamp-delay",
        type=float,
        default=24.0,
        metavar="HOURS",
        help="打卡后多少小时内须取得第三方时间戳，超过即标记（默认 %(default)s）/ how soon after a punch a third-party "
        "timestamp must cover it; later ones are flagged (exit 6; default %(default)s hours)",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    demo = sub.add_parser("demo", help="run the whole system on this machine with emulated terminals")
    demo.set_defaults(func=_demo)
    demo.add_argument("--dir", default=".demo", help="working directory, wiped at start (default: %(default)s)")
    demo.add_argument("--zk-port", type=int, default=4370)
    demo.add_argument("--mqtt-port", type=int, default=18830)
    demo.add_argument("--appliance-port", type=int, default=8080)
    demo.add_argument("--cloud-port", type=int, default=8000)
    demo.add_argument(
        "--fast",
        action="store_true",
        help="班次压缩为 1 分钟，约 2 分钟后立案（测试用；默认 2 分钟班次，约 5 分钟内立案）/ a one-minute shift: the "
        "absence cases open about 2 minutes after start (for tests); by default the shift lasts 2 minutes and "
        "they open within about 5 minutes",
    )
    demo.add_argument(
        "--story",
        action="store_true",
        help="故事模式：虚拟时钟快进，一周的缺勤案件（提醒→预警→催告函→旷工→解除草稿）几分钟内演完；"
        "各天考勤结论由模拟设备签名 / story mode: a week of an absence case in a few minutes on a virtual clock; "
        "the days' conclusions are signed by a simulated appliance (docs/walkthrough.md)",
    )
    demo.add_argument(
        "--story-days",
        type=int,
        default=0,
        help="故事模式演到第几天后停止（0：直到解除草稿）/ story mode: stop after this many absent days "
        "(0: until the termination draft)",
    )
    demo.add_argument(
        "--day-seconds",
        type=float,
        default=30.0,
        help="故事模式：每个虚拟日停留的秒数 / story mode: real seconds each virtual day lasts (default: %(default)s)",
    )
    return parser


def _add_policy_preset(cloud: argparse.ArgumentParser) -> None:
    """``punchproof cloud policy-preset``: the named policy presets (cloud.escalation.presets), printed or published."""
    cmds = next(a for a in cloud._actions if isinstance(a, argparse._SubParsersAction))
    p = cmds.add_parser(
        "policy-preset",
        help="政策模板：列出、打印或发布（如“休假到期未归岗（参考流程）”）/ policy presets: list, print or publish one",
    )
    p.set_defaults(func=_policy_preset)
    p.add_argument("name", nargs="?", help="模板名称 / the preset's name (none: list them)")
    p.add_argument("--publish", action="store_true", help="发布为新版本 / publish it as the scope's next version")
    p.add_argument(
        "--handbook", help="员工手册条款（JSON 文件：version, article, adoption_ref, publication_ref, published_on）"
    )
    p.add_argument("--scope", default="*", help="工厂编号，或 * 表示全部工厂 / a plant id, or * (default)")
    p.add_argument("--by", default="", help="发布人 / who publishes (default: the login name)")
    p.add_argument("-c", "--config", default=None, help="cloud.toml (needed with --publish)")


def _policy_preset(args: argparse.Namespace) -> int:
    import getpass
    import json
    from pathlib import Path

    from cloud.escalation import presets

    if not args.name:
        for preset in presets.PRESETS.values():
            print(f"{preset.name} / {preset.name_en}\n  {preset.note}")
        return 0
    preset = presets.find(args.name)
    if preset is None:
        names = "、".join(presets.PRESETS)
        print(f"没有这个模板 / no such preset: {args.name}（可选 / choose: {names}）", file=sys.stderr)
        return 1
    body = preset.policy_body()
    if args.handbook:
        try:
            body["handbook"] = {**body["handbook"], **json.loads(Path(args.handbook).read_text(encoding="utf-8"))}
        except (OSError, ValueError) as err:
            print(f"员工手册文件不可用 / the handbook file is unusable: {err}", file=sys.stderr)
            return 1
    if not args.publish:
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    return _publish_preset(args, preset, body, by=args.by or getpass.getuser())


def _publish_preset(args: argparse.Namespace, preset, body: dict, *, by: str) -> int:  # type: ignore[no-untyped-def]
    from cloud.admin.cli import DEFAULT_CONFIG
    from cloud.clock import SystemClock, to_ms
    from cloud.config import CloudSettings
    from cloud.escalation.policy import PolicyError, publish
    from cloud.store import open_db

    settings = CloudSettings.load(args.config or DEFAULT_CONFIG)
    db = open_db(settings.database_url)
    kinds = settings.channels.kinds() if settings.channels.configured else None
    with db.connection_context():
        try:
            row = publish(args.scope, body, by=by, now_ms=to_ms(SystemClock().now()), note=preset.name, channels=kinds)
        except PolicyError as err:  # ChannelsMissing is one
            print(f"未发布 / not published: {err}", file=sys.stderr)
            return 1
    print(f"已发布 / published: {preset.name} → {row.scope} 第{row.number}版 / v{row.number}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import json
    from datetime import timedelta
    from pathlib import Path

    from ledger import VerifyKey
    from ledger.errors import LedgerError
    from ledger.evidence import (
        PIN_HOWTO_EN,
        PIN_HOWTO_ZH,
        THIRD_PARTY_TIME_FIX_EN,
        THIRD_PARTY_TIME_FIX_ZH,
        verify_bundle,
    )

    try:
        pinned = VerifyKey.from_pem(Path(args.witness_key).read_bytes()) if args.witness_key else None
        appliance_keys = _pins(args.appliance_key)
        evidence_keys = _pins(args.evidence_key)
    except OSError as err:
        print(
            f"无法读取公钥文件 {err.filename}：{err.strerror} / cannot read the key file {err.filename}: "
            f"{err.strerror}",
            file=sys.stderr,
        )
        return 2
    except (ValueError, LedgerError) as err:
        zh, sep, en = str(err).partition(" / ")
        if not sep:
            zh, en = "不是可用的 Ed25519 公钥（PEM 文件）", "not a usable Ed25519 public key (PEM file)"
        print(f"公钥不可用：{zh} / unusable key: {en}", file=sys.stderr)
        return 2
    try:
        tsa_roots = Path(args.tsa_ca).read_bytes() if args.tsa_ca else None
    except OSError as err:
        print(
            f"无法读取 --tsa-ca {args.tsa_ca}：{err.strerror} / cannot read --tsa-ca {args.tsa_ca}: {err.strerror}",
            file=sys.stderr,
        )
        return 2
    if not args.max_stamp_delay > 0:
        print("--max-stamp-delay 须为正数（小时）/ must be a positive number of hours", file=sys.stderr)
        return 2
    try:
        data = Path(args.bundle).read_bytes()
    except OSError as err:
        print(
            f"无法读取证据包 {args.bundle}：{err.strerror} / cannot read {args.bundle}: {err.strerror}", file=sys.stderr
        )
        return 2
    report = verify_bundle(
        data,
        witness_key=pinned,
        tsa_roots=tsa_roots,
        appliance_keys=appliance_keys,
        evidence_keys=evidence_keys,
        stamp_delay=timedelta(hours=args.max_stamp_delay),
    )
    code = EXIT_CODES[report.result]
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
        return code
    width = max((len(c.name) for c in report.checks), default=10)
    for check in report.checks:
        print(f"{check.name:<{width}}  {'OK  ' if check.ok else 'FAIL'}  {check.detail}")
    print("\n记录缺口 / gaps:" if report.gaps else "\n无记录缺口 / no gaps")
    for gap in report.gap_lines():
        print(f"  - {gap}")
    print(f"\n已核验本人记录 {len(report.disclosed)} 条 / {len(report.disclosed)} record(s) of the employee verified")
    if report.untimed and report.ok:
        zh, en = report.untimed
        print("\n第三方时间 / third-party time:")
        for line in (zh, en, THIRD_PARTY_TIME_FIX_ZH, THIRD_PARTY_TIME_FIX_EN):
            print(f"  {line}")
    if report.late and report.ok:
        print("\n打卡记录晚于允许的时限才取得时间戳 / punches stamped later than the policy allows:")
        for zh, en in report.late:
            print(f"  {zh}\n  {en}")
    if report.unpinned and report.ok:
        zh, en = report.unpinned
        print("\n公钥未经独立核对 / the public keys were not checked against copies obtained independently:")
        for line in (zh, en, PIN_HOWTO_ZH, PIN_HOWTO_EN):
            print(f"  {line}")
    print(RESULT_LINES[report.result])
    return code


def _pins(values: list[str] | None) -> list[str] | None:
    """Each ``--appliance-key``/``--evidence-key``: a PEM file's key id, or the fingerprint given."""
    from pathlib import Path

    from ledger.evidence import key_pin

    if values is None:
        return None
    return [key_pin(Path(v).read_bytes()) if Path(v).is_file() else key_pin(v) for v in values]


FILE_ERRORS_ZH = {
    errno.ENOENT: "不存在",
    errno.ENOTDIR: "路径中有一项不是目录",
    errno.EISDIR: "是目录，不是文件",
    errno.EACCES: "无权限",
    errno.EPERM: "不允许的操作",
    errno.EROFS: "所在磁盘只读",
    errno.ENOSPC: "磁盘已满",
}
# 2 and 3: configuration and database errors (main); the order when several apply: ledger.evidence.Report.result
EXIT_CODES = {"verified": 0, "failed": 1, "untimed": 4, "unpinned": 5, "late": 6}
RESULT_LINES = {  # Chinese first, as every line verify prints; the English after " / "
    "verified": "结论：全部校验通过 / RESULT: every check passed",
    "failed": "结论：校验未通过 / RESULT: FAILED",
    "untimed": "结论：签名与哈希无误，但没有第三方时间戳：记录时间仅为用人单位一方的证明（退出码 4） / "
    "RESULT: signatures and hashes OK, but no third-party time: not a full pass (exit 4)",
    "late": "结论：签名与哈希无误，但有打卡记录晚于允许的时限才取得时间戳（退出码 6） / "
    "RESULT: signatures and hashes OK, but punches were stamped later than allowed: not a full pass (exit 6)",
    "unpinned": "结论：各项校验无误，但公钥未经独立核对（退出码 5） / "
    "RESULT: every check passed, but the public keys were not checked against copies obtained independently: "
    "not a full pass (exit 5)",
}


def _demo(args: argparse.Namespace) -> int:
    from punchproof.demo import Demo, DemoPorts

    ports = DemoPorts(args.zk_port, args.mqtt_port, args.appliance_port, args.cloud_port)
    return Demo(
        args.dir, ports, fast=args.fast, story=args.story, story_days=args.story_days, day_seconds=args.day_seconds
    ).run()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        # journald stamps each line itself; a terminal gets the time from us
        format=("%(asctime)s " if sys.stderr.isatty() or "INVOCATION_ID" not in os.environ else "")
        + "%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import peewee

    from appliance.config import ConfigError as ApplianceConfigError
    from cloud.config import ConfigError as CloudConfigError
    from cloud.witness import WitnessKeyMissing
    from opskit.cli import NoPassword
    from opskit.migrations import SchemaTooNew
    from punchproof.sdnotify import ServiceNotifier

    args.service = ServiceNotifier.from_environ()  # systemd's Type=notify link, for the long-running commands
    try:
        return int(args.func(args) or 0)
    except (ApplianceConfigError, CloudConfigError, WitnessKeyMissing) as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    except NoPassword as err:
        print(err, file=sys.stderr)
        return 2
    except SchemaTooNew as err:
        print(f"database error: {err}", file=sys.stderr)
        return 2
    except peewee.OperationalError as err:
        logging.getLogger("punchproof").debug("database error", exc_info=True)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(
            f"数据库错误 / database error: {first}\n"
            "请检查数据库设置（云端为配置文件中的 [database] url）以及数据库是否在运行；\n"
            "若为“database is locked”，请稍后重试。\n"
            "Check the database setting (on the cloud, [database] url) and that the database is running; "
            "if it says 'database is locked', another program held it too long: try again.",
            file=sys.stderr,
        )
        return 3
    except OSError as err:
        if err.filename is None:  # not a file the settings name (a socket, a pipe): not ours to word
            raise
        logging.getLogger("punchproof").debug("file error", exc_info=True)
        why = FILE_ERRORS_ZH.get(err.errno or 0, err.strerror)
        print(
            f"无法使用文件或目录 {err.filename}：{why} / cannot use {err.filename}: {err.strerror}\n"
            "请检查配置文件中的路径（工厂设备为 [appliance] state_dir，总部为 [cloud] state_dir 与 [database] url）"
            "是否存在、是目录且本程序的用户可写。\n"
            "Check the paths in the configuration file ([appliance] state_dir on a Pi; [cloud] state_dir and "
            "[database] url at head office): that they exist, are directories where one is expected, and that this "
            "program's user may write there.",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        return 130

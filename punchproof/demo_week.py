"""``punchproof demo --story``: a week of one absence case in a few minutes, on a virtual clock.

The case is the seed article's (休假到期未归岗): 马艳's sick leave ended yesterday and she does not come back. HR
has published the seed's timeline (``cloud.escalation.presets``, "休假到期未归岗（参考流程）"), and the story plays
it day by day: day 1 the reminder SMS to her, day 2 the warning to HR, day 3 the 催告函 to her and to her emergency
contact (with the return deadline), then 旷工 and, after the seventh day, the termination draft waiting for HR.

What is real and what is not, said plainly (the banner and docs/walkthrough.md say it too):

- **Time is virtual.** ``cloud.clock.VirtualClock``: real time plus an offset the story keeps in
  ``virtual-clock.json`` in the demo's directory. The escalation runner (``python -m punchproof.demo_week runner``,
  the same ``EscalationService`` as ``punchproof cloud escalate``, a separate process) and the channels' stand-ins
  read it; each virtual day lasts ``--day-seconds`` of real time. The runner logs that its time is virtual, and
  refuses a clock file outside a demo directory. Head office's pages run on real time: what HR does on them (the
  story closes the welfare check on the case page) is recorded at the real time it was done.
- **The days' attendance is simulated.** The appliance cannot run on fast time, so each virtual day's conclusion
  for 马艳 (absent, no punch) is evaluated by the appliance's own rules engine and signed by a simulated appliance,
  ``pi-sim`` of the demo plant, with its own key and log, cosigned by the cloud's witness key and stored by the
  cloud's real ingest code, as the escalation tests feed a plant. The real appliance (``pi-01``) and its terminal
  keep running; HR's roster starts on the story's first day, so the real appliance records no day of the story.
- **Messages are real** over the demo's SMTP sink and SMS provider (``messages/``); the notices' links open on head
  office's pages; the case's evidence bundle is exported at the end and checked with ``punchproof verify``.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from cloud.clock import VirtualClock
from ledger.ownertags import TagKeys, appliance_owner

log = logging.getLogger(__name__)
CLOCK_FILE = "virtual-clock.json"
TICKED_FILE = "runner-ticked.json"  # the runner's last tick: the virtual moment it began, written when it is done
SIM_APPLIANCE = "pi-sim"
SEAL_EVERY = timedelta(minutes=1)  # as the appliance's daemon seals its log
BATCH = 500  # records per batch the simulated appliance sends
WEEKDAYS_ZH = "一二三四五六日"
SHIFT = ("08:00", "17:00")  # the story's day shift, plant time
CHECKOUT_AFTER_MIN = 30  # the day is confirmed at 17:30
EVENING = "18:30"  # when the story's day is evaluated (confirmed from 18:00) and the runner sends what it decided


def first_day(today: date) -> date:
    """The story's day 1: the next Tuesday after ``today``, so that days 1-3 are working days (formal notices go
    out on working days only) and the 催告函's four days to return end on the seventh day, a Monday, as the seed's
    week does."""
    ahead = (1 - today.weekday()) % 7 or 7
    return today + timedelta(days=ahead)


def local(day: date, hhmm: str, tz: ZoneInfo) -> datetime:
    hours, minutes = hhmm.split(":")
    return datetime(day.year, day.month, day.day, int(hours), int(minutes), tzinfo=tz).astimezone(UTC)


# -- the runner: ``punchproof cloud escalate`` on the virtual clock ----------------------------------------------


def runner_main(argv: list[str]) -> int:
    """``python -m punchproof.demo_week runner -c cloud.toml --clock FILE --interval S``: the escalation runner on
    the story's virtual clock. After each tick it writes the virtual moment the tick began to ``runner-ticked.json``
    beside the clock file, so the story knows the runner has seen a moment."""
    from cloud import witness
    from cloud.channels.dispatch import Dispatcher
    from cloud.config import CloudSettings
    from cloud.escalation.engine import Engine, Runner
    from cloud.escalation.outbound import OutboundSender
    from cloud.evidence.log import EvidenceLog, create_key
    from cloud.store import open_db
    from cloud.workers.escalate import EscalationService

    parser = argparse.ArgumentParser(prog="punchproof.demo_week runner")
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("--clock", required=True)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    clock = VirtualClock(Path(args.clock)).check()
    log.warning(
        "时间为虚拟时间（演示故事模式）：本进程的时钟比真实时间快 %s / time is VIRTUAL (the demo's story mode): this "
        "runner's clock is ahead of real time by %s, read from %s",
        clock.offset(),
        clock.offset(),
        args.clock,
    )
    settings = CloudSettings.load(args.config)
    open_db(settings.database_url)
    channels = settings.channels.build(clock)
    sender = OutboundSender(Dispatcher(channels, clock=clock), settings.notices, clock, font=settings.report_font)
    engine = Engine(clock, sender, runner_id="demo-story")
    evidence = EvidenceLog(create_key(settings), witness.load(settings), clock)
    service = EscalationService(
        engine, clock, channels=channels, pull_every_s=0, evidence=evidence, settings=settings
    )  # receipts pulled at every tick: a virtual day passes in seconds
    ticked = Path(args.clock).with_name(TICKED_FILE)

    class Ticking:
        def tick(self):  # type: ignore[no-untyped-def]
            began, started = clock.now(), time.monotonic()
            report = service.tick()
            log.debug("tick at %s took %.2f s", began, time.monotonic() - started)
            ticked.with_suffix(".tmp").write_text(json.dumps({"virtual_ms": int(began.timestamp() * 1000)}))
            ticked.with_suffix(".tmp").replace(ticked)
            return report

    runner = Runner(Ticking(), args.interval)  # type: ignore[arg-type]
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        runner.run()
    except KeyboardInterrupt:
        runner.stop()
    return 0


# -- the simulated appliance: each virtual day's conclusion, signed --------------------------------------------


class SimulatedAppliance:
    """``pi-sim`` of the demo plant: the appliance's rules engine decides each story day for the named workers
    (no punch: absent), and the facts are signed into its own log with checkpoints and stored by the cloud's
    ingest code, cosigned by the witness key, as a real appliance's batches are."""

    def __init__(self, settings, clock: VirtualClock, plant_id: str, tz: ZoneInfo) -> None:  # type: ignore[no-untyped-def]
        self.settings = settings
        self.clock = clock
        self.plant_id = plant_id
        self.tz = tz
        self.seq = 0
        self.sealed: datetime | None = None  # the last seal's time
        self.facts: dict[str, dict] = {}  # type: ignore[type-arg]
        self.tag_keys = TagKeys(appliance_owner)  # owner tags, as the appliance's LogWriter gives them

    @property
    def log_origin(self) -> str:
        return f"punchproof/{self.plant_id}/{SIM_APPLIANCE}/1"

    def start(self, directory: Path) -> SimulatedAppliance:
        from appliance import rules
        from cloud import witness
        from cloud.appliances import registry
        from cloud.ingest.verifier import BatchIngest
        from ledger import GENESIS_PREV, SigningKey
        from ledger.merkle import CompactRange

        self.key = SigningKey.generate()
        (directory / f"{SIM_APPLIANCE}.pub").write_text(self.key.verify_key.pem(), encoding="utf-8")
        registry.register(
            {
                "plant": self.plant_id,
                "appliance": SIM_APPLIANCE,
                "log": self.log_origin,
                "public_key": self.key.verify_key.pem(),
                "kid": self.key.kid,
            },
            self.clock,
        )
        self.ingest = BatchIngest(self.clock, witness_key=witness.load(self.settings))
        self.tree = CompactRange()
        self.prev = GENESIS_PREV
        shift = rules.make_shift("D", f"{SHIFT[0]}-{SHIFT[1]}", checkout_after=timedelta(minutes=CHECKOUT_AFTER_MIN))
        self.plant = rules.Plant(self.tz, rules.package_calendar(), {"D": shift}, ("ZK-SIM",))
        self.roster = rules.WeeklyRoster("day", (("D",),) * 7)  # the demo's roster: every day a working day
        return self

    def day(self, day: date, badges: tuple[str, ...]) -> int:
        """Evaluate ``day`` for ``badges`` now (no punches) and sign the confirmed facts, after the minute seals up
        to now; how many facts were signed."""
        from appliance import rules

        now = self.clock.now()
        records = self._seals(now)
        for badge in badges:
            roster = rules.EmployeeRoster(badge, self.roster)
            for ev in rules.evaluate_day(
                self.plant, roster, day, punches=[], leaves=[], now=now, watermarks={"ZK-SIM": now}
            ):
                if ev.confirmation is not rules.Confirmation.CONFIRMED or ev.status is rules.Status.NOT_SCHEDULED:
                    continue
                fact = rules.supersede(self.facts.get(f"{badge}/{day}/{ev.shift_id}"), ev, self.plant)
                if fact is not None:
                    self.facts[str(fact["key"])] = fact
                    records.append(("dayfact", {"fact": fact}, now))
        self._append(records)
        signed = sum(1 for r in records if r[0] == "dayfact")
        log.info(
            "%s: day %s evaluated at %s: %d fact(s) signed, %d record(s)", SIM_APPLIANCE, day, now, signed, len(records)
        )
        return signed

    def seal(self) -> None:
        """The log sealed every minute up to now, as the appliance's daemon does (``seal`` records, "minute"): a
        bundle shows a silence of more than 3 minutes as the appliance off."""
        self._append(self._seals(self.clock.now()))

    def _seals(self, until: datetime) -> list[tuple[str, dict[str, object], datetime]]:
        if self.sealed is None:  # the log's first seal
            self.sealed = until
            return [("seal", {"why": "minute"}, until)]
        out: list[tuple[str, dict[str, object], datetime]] = []
        while self.sealed + SEAL_EVERY <= until:
            self.sealed += SEAL_EVERY
            out.append(("seal", {"why": "minute"}, self.sealed))
        return out

    def _owner_tag(self, body: dict[str, object]) -> dict[str, object]:
        """The owner tag the appliance's writer gives a record (format version 2), and in a worker's first record
        of the log the worker's tag key, so that a bundle proves no record of the worker was withheld."""
        from ledger.ownertags import new_key
        from ledger.record import b64

        owner, extra = appliance_owner(body), {}
        if owner is not None and owner not in self.tag_keys:
            self.tag_keys.add(owner, new_key())
            extra["tagkey"] = b64(self.tag_keys.key(owner))
        return {**extra, "tag": self.tag_keys.tag(self.log_origin, self.seq, owner)}

    def _append(self, records: list[tuple[str, dict[str, object], datetime]]) -> None:
        """Sign ``records`` into the log, in batches of up to ``BATCH`` each with its checkpoint, and store them
        through the cloud's ingest."""
        from ledger import make_record, note, topics
        from ledger.messages import Batch

        for first in range(0, len(records), BATCH):
            signed_records = []
            start = self.seq
            for type_, body, at in records[first : first + BATCH]:
                record = make_record(
                    key=self.key,
                    log=self.log_origin,
                    seq=self.seq,
                    type=type_,
                    prev=self.prev,
                    t_wall_ms=int(at.timestamp() * 1000),
                    **body,
                    **self._owner_tag(body),
                )
                self.tree.append(record.leaf)
                signed_records.append(record)
                self.seq, self.prev = self.seq + 1, record.leaf
            checkpoint = note.Checkpoint(self.log_origin, self.seq, self.tree.root())
            signed = note.render(checkpoint, [note.sign(checkpoint, self.key)])
            outcome = self.ingest.handle(
                topics.batch(self.plant_id, SIM_APPLIANCE),
                Batch(self.log_origin, start, tuple(signed_records), signed).encode(),
            )
            if outcome is None or outcome.ack.status != "ok":
                raise RuntimeError(f"the simulated appliance's records were not stored: {outcome}")


# -- the story ------------------------------------------------------------------------------------------------


@dataclass
class DayReport:
    number: int
    day: date
    messages: list[str]
    level: int
    state: str


class Week:
    """Plays the case day by day: the clock to the morning (what waited goes out), then to the evening, the day's
    fact signed, the runner's ticks awaited, the day's messages printed; HR's one task on the page done as HR
    would (the welfare check closed: 紧急联系人电话无法接通), and the termination draft left for HR to confirm."""

    def __init__(
        self,
        *,
        directory: Path,
        settings,  # type: ignore[no-untyped-def]
        clock: VirtualClock,
        tz: ZoneInfo,
        plant_id: str,
        cloud_url: str,
        badge: str,
        day1: date,
        day_seconds: float,
        hr_site: Callable[[], object],
        stopping: Callable[[], bool],
        say: Callable[[str], None],
    ) -> None:
        self.dir = directory
        self.settings = settings
        self.clock = clock
        self.tz = tz
        self.plant_id = plant_id
        self.cloud_url = cloud_url
        self.badge = badge
        self.day1 = day1
        self.day_seconds = day_seconds
        self.hr_site = hr_site
        self.stopping = stopping
        self.say = say
        self.sim = SimulatedAppliance(settings, clock, plant_id, tz)
        self.index_seen = 0
        self.case_id: int | None = None

    def start(self) -> Week:
        self.clock.advance_to(local(self.day1 - timedelta(days=1), "20:00", self.tz))
        self.sim.start(self.dir).seal()
        return self

    def play(self, days: int = 0, limit: int = 12) -> list[DayReport]:
        """Day by day until the termination draft waits for HR (or ``days`` days have passed)."""
        reports = []
        for number in range(1, (days or limit) + 1):
            if self.stopping():
                break
            began = time.monotonic()
            report = self.one_day(number, self.day1 + timedelta(days=number - 1))
            reports.append(report)
            self.say(self.describe(report))
            if report.level >= 5:
                break
            while not self.stopping() and time.monotonic() - began < self.day_seconds:
                time.sleep(0.2)
        return reports

    def one_day(self, number: int, day: date) -> DayReport:
        from cloud.escalation.models import AbsenceCase

        # the morning: what waited for a working day goes out (the appliance seals its log every minute: once here)
        self.at(local(day, "08:30", self.tz), before=self.sim.seal)
        self.at(local(day, EVENING, self.tz), before=lambda: self.sim.day(day, (self.badge,)))
        case = AbsenceCase.get_or_none(AbsenceCase.user_id == self.badge)
        if case is not None:
            self.case_id = case.id
            if case.welfare == "open" and number > 3:
                self.close_welfare(case.id)
                self.at(self.clock.now() + timedelta(minutes=5))
                case = AbsenceCase.get_by_id(case.id)
        return DayReport(number, day, self.new_messages(), case.level if case else 0, case.state if case else "")

    def at(self, moment: datetime, before: Callable[[], object] | None = None, timeout: float = 60.0) -> None:
        """Virtual time to ``moment``; ``before`` done; then two of the runner's ticks that began at or after it
        (the first decides and sends, the second pulls the receipts and writes the evidence log)."""
        self.clock.advance_to(moment)
        if before is not None:
            before()
        for _ in range(2):
            seen = self.clock.now()
            deadline = time.monotonic() + timeout
            while self._ticked() < seen:
                if self.stopping():
                    return  # Ctrl-C: the story ends where it is
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"故事模式：案件流程没有运行 / the story's runner did not tick; see {self.dir}/logs"
                    )
                time.sleep(0.05)

    def _ticked(self) -> datetime:
        try:
            ms = json.loads((self.dir / TICKED_FILE).read_text())["virtual_ms"]
        except (FileNotFoundError, ValueError, KeyError):
            return datetime.min.replace(tzinfo=UTC)
        return datetime.fromtimestamp(ms / 1000, UTC)

    def close_welfare(self, case_id: int) -> None:
        """HR on the case page: the welfare check closed, nobody found (the seed: 紧急联系人电话无法接通)."""
        site = self.hr_site()
        status, _page = site.post(  # type: ignore[attr-defined]
            f"/cases/{case_id}/welfare/close",
            {"finding": "none_found", "note": "紧急联系人电话无法接通；已按催告函地址邮寄（故事模式）"},
            form_page=f"/cases/{case_id}",
        )
        if status != 200:
            raise SystemExit(f"故事模式：人事在案件页的操作失败 / HR's action on the case page failed (HTTP {status})")

    def new_messages(self) -> list[str]:
        lines = (self.dir / "messages" / "index.txt").read_text(encoding="utf-8").splitlines()
        new, self.index_seen = lines[self.index_seen :], len(lines)
        return new

    def describe(self, report: DayReport) -> str:
        weekday = WEEKDAYS_ZH[report.day.weekday()]
        head = f"—— 第{report.number}天 {report.day.isoformat()}（周{weekday}，虚拟时间）/ day {report.number} ——"
        lines = [head] + [f"  {line}" for line in report.messages]
        if not report.messages:
            lines.append("  （当天没有发出消息 / no message today）")
        if report.level >= 5 and self.case_id is not None:
            lines.append(
                f"  解除劳动合同通知书草稿待人事确认：打开 {self.cloud_url}/cases/{self.case_id}，"
                "点击“确认解除劳动合同” / the termination draft waits for HR: open the case, click "
                "确认解除劳动合同 (confirm the termination)"
            )
        return "\n".join(lines)

    def export_and_verify(self, last_day: date) -> tuple[Path, int, str]:
        """The case's evidence bundle up to ``last_day`` (as ``cloud export-evidence --case``, on the story's
        clock) and what ``punchproof verify`` says of it. First the night after it: the simulated appliance
        seals its log past the day's end, so the bundle shows it was recording to the end of the period."""
        import subprocess

        from cloud.evidence.export import case_scope, export_configured

        assert self.case_id is not None
        self.at(local(last_day + timedelta(days=1), "00:05", self.tz), before=self.sim.seal)
        case = case_scope(self.case_id)
        data = export_configured(
            self.settings,
            case.employee,
            case.first_day,
            last_day,
            clock=self.clock,
            plant_id=case.plant,
            case=case,
        )
        path = self.dir / f"case-{self.case_id}-evidence.zip"
        path.write_bytes(data)
        result = subprocess.run(
            [sys.executable, "-m", "punchproof", "verify", str(path)], capture_output=True, text=True, check=False
        )
        return path, result.returncode, result.stdout + result.stderr


if __name__ == "__main__":
    if sys.argv[1:2] != ["runner"]:
        raise SystemExit("usage: python -m punchproof.demo_week runner -c cloud.toml --clock FILE")
    raise SystemExit(runner_main(sys.argv[2:]))

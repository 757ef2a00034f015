"""The cloud's witness log: its entry format, and its checks inside an evidence bundle.

Each entry is one appliance checkpoint the cloud cosigned, as canonical JSON::

    {"cosig": "<the cosignature line>", "log": "<origin>", "root": "<base64>", "size": n, "t": <unix s>}

The entries are the leaves (``SHA-256(0x00 || bytes)``) of an RFC 9162 tree whose checkpoints the
cloud signs with its witness key (origin ``punchproof-cloud/checkpoints``), and which an RFC 3161
timestamp authority stamps over ``SHA-256(note text)``.

Per-log heads (``heads/1``, ledger/FORMAT.md "Per-log heads"): an entry also carries ``"prev"``, the position in the
witness log of the previous entry of the same log (-1 for its first), and each witness checkpoint's note carries the
extension line ``heads/1 <n> <base64 root>``: the RFC 9162 root over the ``n`` sorted lines
``<hex SHA-256(origin)> <position of the log's latest entry>``, one per log the witness log holds. The TSA's stamp over
the note covers that line, so "this is the latest entry of the log at witness size W" and "no entry of the log lies
between these two" are the cloud's stamped word, no longer the exporter's pick.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ledger import canonical, note
from ledger.errors import LedgerError
from ledger.keys import VerifyKey
from ledger.merkle import root as merkle_root
from ledger.merkle import verify_consistency, verify_inclusion
from ledger.record import leaf_hash

TIME_TOLERANCE_S = 120  # the cloud's clock against the TSA's


HEADS = "heads/1"  # the witness checkpoint's extension line that commits the per-log heads


def entry_bytes(
    origin: str, size: int, root: bytes, cosigned_at: int, cosignature: str, prev: int | None = None
) -> bytes:
    """A witness entry's bytes; ``prev`` (heads/1 on) the position of the log's previous entry, -1 for its first."""
    fields: dict[str, Any] = {
        "log": origin,
        "size": size,
        "root": base64.b64encode(root).decode(),
        "t": cosigned_at,
        "cosig": cosignature,
    }
    if prev is not None:
        fields["prev"] = prev
    return canonical.encode(fields)


def head_line(origin: str, seq: int) -> bytes:
    """One line of the per-log heads: ``<hex SHA-256(origin)> <seq>``, ``seq`` the position of its latest entry."""
    return f"{hashlib.sha256(origin.encode()).hexdigest()} {seq}".encode()


def head_leaves(heads: dict[str, int]) -> list[bytes]:
    """The heads' tree leaves, in the order of their lines (sorted as bytes): origin -> position of its latest entry."""
    return [leaf_hash(line) for line in sorted(head_line(origin, seq) for origin, seq in heads.items())]


def heads_extension(heads: dict[str, int]) -> str:
    """The witness checkpoint's extension line ``heads/1 <n> <base64 root>`` for these heads."""
    return f"{HEADS} {len(heads)} {base64.b64encode(merkle_root(head_leaves(heads))).decode()}"


def committed_heads(checkpoint: note.Checkpoint) -> tuple[int, bytes] | None:
    """The number of lines and the root of the heads a witness checkpoint commits; None for one from before."""
    for line in checkpoint.extensions:
        name, _, rest = line.partition(" ")
        if name != HEADS:
            continue
        count, _, encoded = rest.partition(" ")
        try:
            root = base64.b64decode(encoded, validate=True)
        except ValueError as err:
            raise LedgerError(
                f"会签日志检查点 {checkpoint.size} 的 heads 行不是 base64 / witness checkpoint {checkpoint.size}: its "
                "heads line is not base64"
            ) from err
        if not count.isdigit() or len(root) != 32:
            raise LedgerError(
                f"会签日志检查点 {checkpoint.size} 的 heads 行格式不符 / witness checkpoint {checkpoint.size}: "
                "malformed heads line"
            )
        return int(count), root
    return None


def note_digest(text: str) -> bytes:
    """What the timestamp authority stamps: SHA-256 of the witness checkpoint's note as stored."""
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass
class WitnessResult:
    """What ``verify_witness`` found: whether ``witness/*`` holds, and what its stamps and heads prove."""

    ok: bool
    detail: str
    times: list[datetime] = field(default_factory=list)  # every stamp that verified
    unstamped: int = 0  # how many of the bundle's checkpoints no verified stamp covers
    # each appliance checkpoint (origin, size) proven in the witness log: the earliest verified stamp covering it
    covered: dict[tuple[str, int], datetime | None] = field(default_factory=dict)
    # per log and role: "latest", the largest checkpoint the witness log had recorded of it at export, and "next",
    # the first one past the bundle's range; each {"size", "t" (cosigned at), "seq" (in the witness log)}
    heads: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    committed: bool = False  # the latest witness checkpoint commits per-log heads (heads/1): the heads are not a pick
    head_faults: dict[str, str] = field(default_factory=dict)  # per log: how its heads contradict what was committed
    # per log: both its heads proven from the commitments ("next" may be an entry from before heads/1: no "prev")
    head_proven: dict[str, bool] = field(default_factory=dict)


def verify_witness(
    files: dict[str, bytes],
    appliance_checkpoints: dict[tuple[str, int], str],
    witness: VerifyKey,
    tsa_roots: bytes | None,
    *,
    linked: bool = False,
) -> WitnessResult:
    """Check ``witness/*`` against the bundle's cosigned appliance checkpoints ((origin, size) -> note).

    Every appliance checkpoint must be an entry of the cloud's signed log; every stamp must verify, and no
    cosignature may claim a time after the TSA stamped the witness checkpoint that holds it. With ``linked`` (a
    bundle of format 4 on), every witness checkpoint the bundle uses must be proven consistent with the latest one
    (``witness/consistency.jsonl``): they are then one history, and a stamp over any of them that is larger than an
    entry's position covers that entry; and ``witness/heads.jsonl`` gives, per log, the latest checkpoint the
    witness log recorded for it and the first past the bundle's range, proven in it. Without ``linked`` an entry is
    covered only by the stamps of the witness checkpoint its inclusion proof leads to.
    """
    if "witness/entries.jsonl" not in files:
        return WitnessResult(
            False,
            "本证据包不含公司服务器的会签日志：其中的检查点未在公司服务器的签名日志中得到证明 / the bundle has no "
            "witness log: its checkpoints are not in the cloud's signed log",
        )
    problems: list[str] = []  # each "zh / en"
    roots: dict[int, bytes] = {}
    commits: dict[int, tuple[int, bytes] | None] = {}  # per witness checkpoint, the heads it commits (heads/1)
    ends: dict[str, tuple[int, int]] = {}  # per log, its largest checkpoint in the bundle: (size, witness position)
    stamped: dict[int, list[datetime]] = {}
    for line in files["witness/checkpoints.jsonl"].decode().splitlines():
        item = json.loads(line)
        try:
            checkpoint = note.verify(item["note"], witness)
        except LedgerError:
            problems.append(
                f"会签日志检查点 {item.get('size')} 的签名不是公司服务器会签公钥所签或格式不符 / witness checkpoint "
                f"{item.get('size')}: its signature does not verify under the witness key"
            )
            continue
        if checkpoint.size != item["size"]:
            problems.append(
                f"会签日志检查点所列长度为 {item['size']}，签名所载却为 {checkpoint.size} / witness checkpoint listed "
                f"as {item['size']} is signed as {checkpoint.size}"
            )
            continue
        roots[checkpoint.size] = checkpoint.root
        try:
            commits[checkpoint.size] = committed_heads(checkpoint)
        except LedgerError as err:
            problems.append(str(err))
        for stamp in item.get("stamps", []):
            try:
                stamped.setdefault(checkpoint.size, []).append(_check_stamp(files, stamp, item["note"], tsa_roots))
            except LedgerError as err:
                zh, _, en = str(err).partition(" / ")
                problems.append(f"时间戳 {stamp.get('file')}：{zh} / timestamp {stamp.get('file')}: {en}")
    one_history = _consistent(files, roots, problems) if linked else set()
    result = WitnessResult(False, "")
    for line in files["witness/entries.jsonl"].decode().splitlines():
        item = json.loads(line)
        fields = _proven(item, roots, problems)
        if fields is None:
            continue
        key = (fields.get("log"), fields.get("size"))
        appliance_note = appliance_checkpoints.get(key)  # type: ignore[arg-type]
        if appliance_note is None or not _matches(fields, appliance_note):
            problems.append(
                f"会签日志第 {item['seq']} 项与本证据包中 {key[0]} 的检查点 {key[1]} 不符 / witness entry"
                f" {item['seq']}: "
                f"does not match the bundle's checkpoint {key[1]} of {key[0]}"
            )
            continue
        if fields["size"] > ends.get(fields["log"], (-1, -1))[0]:
            ends[fields["log"]] = (fields["size"], item["seq"])
        size = item["size"]
        late = [t for t in stamped.get(size, []) if fields["t"] > t.timestamp() + TIME_TOLERANCE_S]
        if late:
            problems.append(
                f"{key[0]} 的检查点 {key[1]} 所载会签时间 {_utc(fields['t'])} 晚于时间戳机构为其盖章的时间 "
                f"{late[0]:%Y-%m-%d %H:%M:%S} UTC / checkpoint {key[1]} of {key[0]}: cosigned at {_utc(fields['t'])}, "
                f"after the TSA stamped it at {late[0]:%Y-%m-%d %H:%M:%S} UTC"
            )
        # the witness checkpoints that hold this entry: the one its proof leads to, and (one history) any larger
        holding = [w for w in one_history if w > item["seq"]] if size in one_history else [size]
        times = [t for w in holding for t in stamped.get(w, [])]
        result.covered[key] = min(times, default=None)  # type: ignore[index]
    if linked:
        for line in files.get("witness/heads.jsonl", b"").decode().splitlines():
            item = json.loads(line)
            fields = _proven(item, roots, problems)
            if fields is None:
                continue
            if fields.get("log") != item.get("log"):
                problems.append(
                    f"会签日志第 {item['seq']} 项不是 {item.get('log')} 的条目 / witness entry {item['seq']}: is not "
                    f"an entry of {item.get('log')}"
                )
                continue
            role = "next" if item.get("role") == "next" else "latest"
            head = {"size": fields["size"], "t": fields["t"], "seq": item["seq"]}
            if isinstance(fields.get("prev"), int):
                head["prev"] = fields["prev"]
            result.heads.setdefault(item["log"], {})[role] = head
        _check_heads(files, result, commits, ends, problems)
    missing = sorted(set(appliance_checkpoints) - set(result.covered))
    if missing:
        problems.append(
            f"{len(missing)} 个检查点不在公司服务器的会签日志中（如 {missing[0][0]} 的检查点 {missing[0][1]}） / "
            f"{len(missing)} checkpoints are not in the cloud's witness log, e.g. {missing[0][1]} of {missing[0][0]}"
        )
    result.times = sorted(t for ts in stamped.values() for t in ts)
    result.unstamped = sum(1 for t in result.covered.values() if t is None)
    if problems:
        said = [p.partition(" / ") for p in problems[:5]]
        result.detail = "；".join(zh for zh, _, _en in said) + " / " + "; ".join(en for _zh, _, en in said)
        return result
    times = result.times
    zh = f"{len(result.covered)} 个检查点均在公司服务器的签名会签日志中"
    en = f"{len(result.covered)} checkpoints in the cloud's signed log"
    if times:
        zh += f"；时间戳机构（第三方）盖章 {len(times)} 次，最近一次 {times[-1]:%Y-%m-%d %H:%M:%S} UTC"
        en += f"; timestamped by a TSA ({len(times)} stamps, latest {times[-1]:%Y-%m-%d %H:%M:%S} UTC)"
    else:
        zh, en = zh + "；没有第三方时间戳", en + "; no TSA timestamp"
    if linked:
        zh += f"；所用 {len(roots)} 个会签日志检查点经证明属于同一份日志历史"
        en += f"; the {len(roots)} witness checkpoints used proven one history"
    if times and result.unstamped:
        zh += f"；其中 {result.unstamped} 个没有时间戳覆盖"
        en += f"; {result.unstamped} of them under no stamp"
    result.ok, result.detail = True, f"{zh} / {en}"
    return result


def _utc(seconds: int) -> str:
    return f"{datetime.fromtimestamp(seconds, UTC):%Y-%m-%d %H:%M:%S} UTC"


def _check_heads(
    files: dict[str, bytes],
    result: WitnessResult,
    commits: dict[int, tuple[int, bytes] | None],
    ends: dict[str, tuple[int, int]],
    problems: list[str],
) -> None:
    """Hold each log's heads against the per-log heads the witness checkpoints commit (heads/1), proven by
    ``witness/log-heads.jsonl``; a contradiction goes in ``result.head_faults`` (the log's length check fails)."""
    if not commits:
        return
    latest = max(commits)
    if commits[latest] is None:
        if any(commits.values()):
            problems.append(
                f"最新的会签日志检查点 {latest} 没有承诺各日志的最新条目，而更早的检查点有（heads/1） / witness c"
                f"heckpoint "
                f"{latest}, the latest, commits no per-log heads while earlier ones do (heads/1)"
            )
        return
    result.committed = True
    lines: dict[tuple[str, int], int] = {}
    for line in files.get("witness/log-heads.jsonl", b"").decode().splitlines():
        item = json.loads(line)
        commit = commits.get(item.get("size"))  # type: ignore[arg-type]
        if commit is None:
            continue  # a witness checkpoint the bundle does not list (or one from before heads/1): nothing to hold
        try:
            leaf = leaf_hash(head_line(item["log"], item["seq"]))
            proven = verify_inclusion(
                leaf, item["index"], commit[0], [bytes.fromhex(h) for h in item["proof"]], commit[1]
            )
        except (KeyError, TypeError, ValueError):
            proven = False
        if not proven:
            problems.append(
                f"会签日志检查点 {item.get('size')} 中 {item.get('log')} 的最新条目证明不成立 / witness checkpoint "
                f"{item.get('size')}: the head of {item.get('log')} does not verify"
            )
            continue
        lines[item["log"], item["size"]] = item["seq"]
    for log, given in result.heads.items():
        fault = _heads_fault(log, given, lines, commits, ends.get(log))
        if fault is not None:
            result.head_faults[log] = fault
        after = given.get("next")
        result.head_proven[log] = fault is None and (after is None or "prev" in after)


def _heads_fault(
    log: str,
    given: dict[str, dict[str, int]],
    lines: dict[tuple[str, int], int],
    commits: dict[int, tuple[int, bytes] | None],
    end: tuple[int, int] | None,
) -> str | None:
    """Why a log's heads contradict the witness checkpoints' commitments (zh / en), or None. ``end``: the bundle's
    last checkpoint of the log, (size, position in the witness log)."""
    head, after = given.get("latest"), given.get("next")
    if head is None:
        return None  # the log's length check says so
    latest = max(commits)
    committed = lines.get((log, latest))
    if committed is None:
        return (
            f"本证据包未给出最新会签日志检查点（{latest}）所承诺的该日志最新条目及其证明 / "
            f"the bundle does not give the head of this log that the latest witness checkpoint ({latest}) commits, "
            "with its proof"
        )
    if committed != head["seq"]:
        return (
            f"最新会签日志检查点（{latest}）承诺该日志的最新条目为会签日志第 {committed} 项，本证据包给出的却是第 "
            f"{head['seq']} 项 / the latest witness checkpoint ({latest}) commits witness entry {committed} as this "
            f"log's latest; the bundle gives entry {head['seq']}"
        )
    if end is None:
        return None
    end_seq = end[1]
    if after is not None and "prev" in after and after["prev"] != end_seq:
        return (
            f"本证据包给出的其后第一个检查点（会签日志第 {after['seq']} 项）的前一项为第 {after['prev']} 项，"
            f"而非本包范围末尾的第 {end_seq} 项：其间该日志的条目被略去 / "
            f"the entry given as the first past the range (witness entry {after['seq']}) follows entry "
            f"{after['prev']} of this log, not the range's last ({end_seq}): entries of the log between them were "
            "left out"
        )
    if after is None and head["seq"] != end_seq:
        return None  # a later head without the entry past the range: the log's length check fails it
    bound = after["seq"] if after is not None else None
    for size in sorted(commits):
        if commits[size] is None or size <= end_seq:
            continue
        seen = lines.get((log, size))
        if seen is None:
            return (
                f"本证据包未给出会签日志检查点 {size} 所承诺的该日志最新条目 / the bundle does not give the head "
                f"of this "
                f"log that witness checkpoint {size} commits"
            )
        if (seen != end_seq) if bound is None or size <= bound else (seen < bound):
            return (
                f"会签日志检查点 {size} 承诺该日志当时的最新条目为会签日志第 {seen} 项，"
                f"与本证据包的范围末尾（第 {end_seq} 项）及其后第一个检查点不符：其间该日志的条目被略去 / "
                f"witness checkpoint {size} committed entry {seen} as this log's latest then, which the range's end "
                f"(entry {end_seq}) and the entry given past it contradict: entries of the log were left out"
            )
    return None


def _proven(item: dict[str, Any], roots: dict[int, bytes], problems: list[str]) -> dict[str, Any] | None:
    """A witness entry's fields, once its inclusion proof into the listed witness checkpoint verified."""
    data = item["data"].encode()
    size = item["size"]
    if size not in roots or not verify_inclusion(
        leaf_hash(data), item["seq"], size, [bytes.fromhex(h) for h in item["proof"]], roots[size]
    ):
        problems.append(
            f"会签日志第 {item['seq']} 项的包含证明不成立 / witness entry {item['seq']}: its inclusion proof does not "
            "verify"
        )
        return None
    return canonical.decode(data)


def _consistent(files: dict[str, bytes], roots: dict[int, bytes], problems: list[str]) -> set[int]:
    """The witness checkpoints proven to be one history: the largest, and each one with a consistency proof
    (RFC 9162) into it in ``witness/consistency.jsonl``. One without is a problem: a fork could hide behind it."""
    if not roots:
        return set()
    latest = max(roots)
    proofs = {}
    for line in files.get("witness/consistency.jsonl", b"").decode().splitlines():
        item = json.loads(line)
        proofs[item["from"]] = item
    linked = {latest}
    for size in sorted(roots):
        if size == latest:
            continue
        item = proofs.get(size)
        if (
            item is None
            or item.get("to") != latest
            or not verify_consistency(
                size, latest, roots[size], roots[latest], [bytes.fromhex(h) for h in item.get("proof", [])]
            )
        ):
            problems.append(
                f"会签日志检查点 {size} 未经证明与检查点 {latest} 属于同一份日志历史（可能存在分叉） / witness ch"
                f"eckpoint "
                f"{size}: not proven consistent with witness checkpoint {latest} (a fork?)"
            )
            continue
        linked.add(size)
    return linked


def _matches(fields: dict[str, Any], appliance_note: str) -> bool:
    checkpoint, _signatures = note.parse(appliance_note)
    cosignature = appliance_note.rstrip("\n").rsplit("\n", 1)[-1]
    return fields.get("root") == base64.b64encode(checkpoint.root).decode() and fields.get("cosig") == cosignature


def _check_stamp(files: dict[str, bytes], stamp: dict[str, Any], text: str, tsa_roots: bytes | None) -> datetime:
    from ledger.timestamp import verify_timestamp

    roots = tsa_roots if tsa_roots is not None else files.get("witness/tsa-ca.pem")
    if roots is None:
        raise LedgerError(
            "没有可用于核对时间戳的时间戳机构根证书（请用 --tsa-ca 指定） / no TSA certificate to check it with ("
            "pin one "
            "with --tsa-ca)"
        )
    reply = files.get(stamp.get("file", ""))
    if reply is None:
        raise LedgerError("证据包中缺少该时间戳文件 / the stamp file is missing")
    try:
        return verify_timestamp(reply, note_digest(text), roots)
    except LedgerError as err:
        raise LedgerError(
            "时间戳与会签日志检查点不符，或不能以时间戳机构的根证书验证 / the stamp does not cover this witness "
            "checkpoint, or does not verify under the TSA's root certificate"
        ) from err

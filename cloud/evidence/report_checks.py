"""The exporter's self-check as the report shows it: each check's detail in Chinese first, English second, and never a
Python exception or repr.

The details come from ``ledger.evidence`` (and ``ledger.witnesslog``), where some are English only and some carry an
exception's text or a list's repr. Each known English detail is matched here and said in Chinese; a detail already
written "中文 / English" is split at its " / "; anything else keeps a Chinese line saying the verifier's words follow,
and its English is cleaned of reprs and of what follows an exception's colon. The employer's own server is never
called a witness (见证): ``no_witness`` says 公司服务器会签 instead, and 第三方 stays for the timestamp authority.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# what the employer's own server is called wherever the verifier's Chinese says 见证
_WITNESS_WORDS = (
    ("见证服务器", "公司服务器的会签日志"),
    ("云端见证", "公司服务器会签"),
    ("见证", "会签"),
)


def no_witness(text: str) -> str:
    """``text`` with the employer's own server named for what it is: its cosignature is 会签, not 见证."""
    for old, new in _WITNESS_WORDS:
        text = text.replace(old, new)
    return text


def _plain_list(text: str) -> str:
    """A Python list's repr as words: ``['a', 'b']`` -> ``a, b``, ``[]`` -> ``无``."""
    items = re.findall(r"'([^']*)'|\"([^\"]*)\"", text)
    return ", ".join(a or b for a, b in items) or "无"


def _seq_problem(part: str) -> str:
    match = re.match(r"seq (\d+):? (.*)$", part)
    if match is None:
        return ""
    seq, what = match.groups()
    if what.startswith("its time ") and "lies outside what the cloud witnessed" in what:
        return f"第 {seq} 条记录的时间超出公司服务器会签所界定的范围：设备时钟曾设置错误"
    if what.startswith("the key rotation is invalid"):
        return f"第 {seq} 条记录（密钥轮换）无效"
    words = {
        "is not this log's record at this position": "不是本日志该位置的记录",
        "its owner tag differs from the one leaves.txt lists": "归属标记与 leaves.txt 所列不符",
        "differs from the log's leaf at its position": "与日志该位置的叶哈希不符",
        "does not link to the previous record": "未链接到前一条记录",
        "is not signed by a key valid for its position": "签名不是该位置有效密钥所签",
        "its inclusion proof does not verify": "包含证明不成立",
        "record has no place in the cloud's evidence log": "不应出现在云端证据日志中",
        "is not the one sent": "所附文件与发出的不符",
        "is not what the record says went on the wire": "所附原始请求与记录所载发出的内容不符",
        "the receipt does not follow a disclosed contact": "回执没有对应的已披露联络记录",
        "record:": "不符合记录格式",
        "unknown record type": "记录类型未知",
    }
    said = [zh for en, zh in words.items() if en in what]
    return f"第 {seq} 条记录" + ("、".join(said) if said else "有问题（见英文说明）")


# (pattern over the whole English detail, what to say in Chinese, the English to show: None keeps the detail)
Rule = tuple[re.Pattern[str], Callable[[re.Match[str]], str], Callable[[re.Match[str]], str] | None]
_RULES: list[Rule] = [
    (re.compile(r"(\d+) files"), lambda m: "SHA256SUMS 所列的文件均未改动（文件数见英文）", None),
    (
        re.compile(r"altered or unlisted: (\[.*?\]); missing: (\[.*?\])"),
        lambda m: f"以下文件被改动或未列入 SHA256SUMS：{_plain_list(m[1])}；列出而缺少的文件：{_plain_list(m[2])}",
        lambda m: f"altered or unlisted: {_plain_list(m[1])}; missing: {_plain_list(m[2])}".replace("无", "none"),
    ),
    (re.compile(r"the bundle has no SHA256SUMS"), lambda m: "证据包缺少 SHA256SUMS", None),
    (
        re.compile(r"not a ZIP file: .*", re.S),
        lambda m: "不是 ZIP 文件（文件损坏或不完整）",
        lambda m: "not a ZIP file",
    ),
    (
        re.compile(r"manifest or witness key unusable: .*", re.S),
        lambda m: "证据包说明 manifest.json 或公司服务器会签公钥无法读取",
        lambda m: "manifest or witness key unusable",
    ),
    (
        re.compile(r"bundle's witness key (\S+), pinned (\S+)"),
        lambda m: f"证据包中的公司服务器会签公钥为 {m[1]}，核验时指定的为 {m[2]}",
        None,
    ),
    (
        re.compile(r"taken from the bundle \((\S+)\); pin it with --witness-key"),
        lambda m: f"取自证据包本身（{m[1]}），未经独立核对：请用 --witness-key 指定另行取得的公钥",
        None,
    ),
    (re.compile(r"(\d+) leaf hashes for (\d+) records"), lambda m: f"{m[1]} 个叶哈希，范围内共 {m[2]} 条记录", None),
    (re.compile(r"leaves\.txt is unreadable: .*", re.S), lambda m: "leaves.txt 无法读取", lambda m: "unreadable"),
    (
        re.compile(
            r"(\d+) signed and cosigned; the leaves reproduce every root"
            r"(?:; none covers the end of the range \((\d+)\))?"
        ),
        lambda m: (
            f"{m[1]} 个检查点经设备签名、由公司服务器会签，叶哈希重算的树根与每个检查点一致"
            + (f"；没有检查点覆盖范围末尾（第 {m[2]} 条）" if m[2] else "")
        ),
        None,
    ),
    (
        re.compile(r"every disclosed record is exact, signed, chained and included"),
        lambda m: "每条披露记录的原文、签名、哈希链接与包含证明均无误",
        None,
    ),
    (
        re.compile(
            r"(\d+) key registration\(s\) in the cloud's signed evidence log match the keys listed"
            r"(?:; no registration record for (.*))?"
        ),
        lambda m: (
            f"云端签名证据日志中 {m[1]} 条设备公钥登记记录与所列公钥一致"
            + (f"；以下日志没有登记记录：{m[2]}" if m[2] else "")
        ),
        None,
    ),
    (
        re.compile(
            r"(\d+) contact attempts, (\d+) receipts, (\d+) actions by people; (\d+) sent files match their hashes"
        ),
        lambda m: f"联络 {m[1]} 次、回执 {m[2]} 份、人事操作 {m[3]} 项；{m[4]} 个所发文件与记录中的哈希一致",
        None,
    ),
    (re.compile(r"(\d+) key\(s\), each one pinned"), lambda m: f"{m[1]} 把密钥，均为核验时指定的公钥", None),
    (
        re.compile(
            r"(\d+) checkpoints in the cloud's signed log"
            r"(?:; timestamped by a TSA \((\d+) stamps, latest ([^)]+)\)|(; no TSA timestamp))"
            r"(?:; the (\d+) witness checkpoints used proven one history)?"
            r"(?:; (\d+) of them under no stamp)?"
            r"(?:; the TSA certificate was taken from the bundle: pin it with --tsa-ca)?"
        ),
        lambda m: (
            f"{m[1]} 个检查点均在公司服务器的签名会签日志中"
            + (f"；时间戳机构（第三方）盖章 {m[2]} 次，最近一次 {m[3]}" if m[2] else "；没有第三方时间戳")
            + (f"；所用 {m[5]} 个会签日志检查点经证明属于同一份日志历史" if m[5] else "")
            + (f"；其中 {m[6]} 个没有时间戳覆盖" if m[6] else "")
            + ("；时间戳机构根证书取自证据包本身，宜用 --tsa-ca 指定" if m[0].endswith("--tsa-ca") else "")
        ),
        None,
    ),
    (
        re.compile(r"(\d+) checkpoints are not in the cloud's witness log, e\.g\. (.*)"),
        lambda m: f"{m[1]} 个检查点不在公司服务器的会签日志中",
        None,
    ),
    (
        re.compile(r"evidence log seq (\d+): registers another key under (\S+)"),
        lambda m: f"证据日志第 {m[1]} 条以指纹 {m[2]} 登记的是另一把密钥",
        None,
    ),
    (
        re.compile(r"checkpoint (\S+): the records do not hash to its root"),
        lambda m: f"检查点 {m[1]}：记录重算的树根与之不符",
        None,
    ),
    (
        re.compile(r"checkpoint (\S+): .*", re.S),
        lambda m: f"检查点 {m[1]} 的签名或会签无效",
        lambda m: m[0].split(": ")[0] + ": invalid",
    ),
]
_PYTHON = re.compile(r"Traceback|\b\w*(?:Error|Exception)\b|<[\w.]+ object at|\w\(['\"]|[\[{(]['\"]|\bb'")
UNTRANSLATED = "核验程序的说明（原文为英文，见下）"


def _english(text: str) -> str:
    """The verifier's English without Python's reprs: lists as words, an exception's text after its colon dropped."""
    text = re.sub(r"\[[^\[\]]*\]", lambda m: _plain_list(m[0]).replace("无", "none"), text)
    if _PYTHON.search(text):
        head = text.split(":")[0].strip()
        return head if head and not _PYTHON.search(head) else "(details withheld: an internal error)"
    return text


def _one(part: str) -> tuple[str, str]:
    """One English statement of a detail, in Chinese and English."""
    part = part.strip()
    for pattern, zh, en in _RULES:
        match = pattern.fullmatch(part)
        if match is not None:
            return zh(match), _english(en(match) if en is not None else part)
    seq = _seq_problem(part)
    if seq:
        return seq, _english(part)
    return "", _english(part)


def detail_text(detail: str) -> tuple[str, str]:
    """A check's detail as the report shows it: (Chinese, English). Chinese is never empty; neither shows a Python
    exception or repr."""
    if re.search(r"[\u4e00-\u9fff]", detail):
        zh, sep, en = detail.partition(" / ")
        if not sep:  # Chinese only, or Chinese with English words inside
            return no_witness(_english(zh) if _PYTHON.search(zh) else zh), ""
        return no_witness(_chinese_clean(zh)), _english(en)
    parts = [_one(p) for p in re.split(r"; (?=seq \d|checkpoint )", detail)] if detail else [("", "")]
    zh = "；".join(z for z, _e in parts if z) or UNTRANSLATED
    return zh, "; ".join(e for _z, e in parts if e)


def _chinese_clean(zh: str) -> str:
    """Chinese text from the verifier that may quote an exception after a colon (清单的时间戳 … 不可信：<error>)."""
    if not _PYTHON.search(zh):
        return zh
    head, sep, _rest = zh.rpartition("：")
    return head if sep and not _PYTHON.search(head) else zh.split("：")[0]

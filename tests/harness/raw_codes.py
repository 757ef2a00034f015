"""What a Chinese page or notice must not show a person: the program's own identifiers.

``raw_codes(text)`` takes the text a person sees (``visible_text(html)`` gives it for a page: no tags, no
attribute values, nothing inside ``<script>``/``<style>``, nothing inside an element marked ``lang="en"``, nor
inside one marked ``translate="no"``, HTML's mark for literal data that is never translated: a hash, a browser's
user-agent string, a provider's message id, the policy's JSON in its advanced view) and
returns the tokens that give the code away, in the order they appear:

- snake_case words (``approve_cuigao``, ``deadline_passed``, ``accepted_reason``);
- words in Latin letters, two or more of them (``missing``, ``sms``, ``wecom``, ``warning``, ``None``): a
  Chinese page says 缺勤, 短信, 企业微信, 警告. Where a page says a thing in both languages, the English half
  is either inside ``lang="en"`` or after " / " on a line whose first half is Chinese ("页面不存在 / Page not
  found"); that half is not read;
- codes that hold a digit: a ladder level (``L3``, ``L3:welfare``), a policy reference (``*/v1``), a
  template with its version (``reminder@1``);
- Python's own text: a traceback, ``SomethingError:``, a repr (``{'``, ``['``, ``<object at 0x``).

What is not a code and passes:

- the people's and the sites' data as typed: a token holding a digit (工号 2001, 文号 BJ-2025-031, plant
  p1, a file's SHA-256), an e-mail address, a web address, and whatever the caller passes as ``data`` (user
  names such as "staff" are what a person typed);
- single letters (a shift named A);
- ``ALLOWED``: names Chinese users read in Latin letters because there is no other: file formats (PDF,
  Excel, ZIP, CSV), the units KiB/MB, EMS (China Post's service is called that), the product's name, HR's
  own term HR, and "English", the language switch's label in its own language. SMS and WeCom are not among
  them: Chinese pages say 短信 and 企业微信.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

ALLOWED = frozenset(
    {
        "PDF",
        "Excel",
        "ZIP",
        "CSV",
        "KiB",
        "MiB",
        "KB",
        "MB",
        "GB",
        "EMS",
        "Punchproof",
        "English",
        "HR",
        "SHA",  # SHA-256, the hash a person compares
        "UTC",
        "IP",  # IP 地址
        "XLSX",
        "xlsx",
        "csv",
    }
)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_RUN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:/\-+]*")
_SNAKE = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)+")
_WORD = re.compile(r"[A-Za-z]{2,}")
_PYTHON = re.compile(r"Traceback \(most recent call last\)|\b\w+(?:Error|Exception)\b|\{'|\['|<\w+ object at 0x")
# codes that hold a digit and so would pass as data: a ladder level (L3, L3:welfare), a policy reference
# (*/v1, p1/v12), a template and its version (reminder@1)
_CODED = re.compile(r"L\d+(?::\w+)?|[A-Za-z_]+@\d+")
_URL = re.compile(r"\S+://\S+")
_POLICY_REF = re.compile(r"[\w*]*/v\d+\b")
_BILINGUAL = re.compile(r"^(?P<zh>.*[\u3400-\u9fff].*?)\s+/\s+(?P<en>[^\u3400-\u9fff]*)$")


def raw_codes(text: str, data: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The tokens of ``text`` that are the program's identifiers rather than words for a person."""
    found: list[str] = []
    for line in text.splitlines():
        bilingual = _BILINGUAL.match(line.strip())
        if bilingual:
            line = bilingual.group("zh")
        line = _URL.sub(" ", line)  # a web address is data
        found += _PYTHON.findall(line) + _POLICY_REF.findall(line)
        line = _POLICY_REF.sub(" ", _PYTHON.sub(" ", line))
        for run in _RUN.findall(line):
            run = run.rstrip(".:/-+")
            if _CODED.fullmatch(run):
                found.append(run)
                continue
            if "@" in run or "://" in run or run in data:
                continue
            if _SNAKE.fullmatch(run) or "_" in run:
                found.append(run)
                continue
            if any(c.isdigit() for c in run):
                continue  # a number, an employee's 工号, a 文号, a plant id, a hash
            for word in _WORD.findall(run):
                if word not in ALLOWED and word not in data:
                    found.append(word)
    return found


class _Visible(HTMLParser):
    """Text nodes outside <script>, <style>, <head> and ``lang="en"`` elements; block elements end a line."""

    SKIP = {"script", "style", "head", "title", "template"}
    BLOCK = {"p", "div", "li", "tr", "br", "h1", "h2", "h3", "h4", "section", "table", "ul", "ol", "dt", "dd"}
    BLOCK |= {"td", "th", "option", "label", "header", "footer", "nav", "form", "details", "summary", "pre"}
    VOID = {"br", "img", "input", "meta", "link", "hr", "col", "area", "base", "wbr", "source"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # per open element: its tag, does it hide its text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCK:
            self.parts.append("\n")
        if tag in self.VOID:
            return
        lang = dict(attrs).get("lang") or ""
        marks = dict(attrs)
        hidden = tag in self.SKIP or lang.startswith("en") or "hidden" in marks or marks.get("translate") == "no"
        self.stack.append((tag, hidden or self._hidden()))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if any(open_tag == tag for open_tag, _ in self.stack):  # an end tag closes what HTML left open inside
            while self.stack.pop()[0] != tag:
                pass
        if tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.parts.append(data)

    def _hidden(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]


def visible_text(html: str) -> str:
    """What a person reads on the page ``html``, one line per block."""
    parser = _Visible()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def has_chinese(text: str) -> bool:
    return bool(_CJK.search(text))

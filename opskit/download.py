"""The ``Content-Disposition`` of a download whose name holds what people typed.

``evidence-p1-<employee>-....zip``: the employee field is free text. Copied raw into the header, a
quote ends the file name early and a CR/LF is refused by the server (a 500) or, with a laxer one,
starts a header of the attacker's. So the value is built here and nothing of the name reaches it
unencoded: ``filename="..."`` holds only ASCII letters, digits, ``.``, ``_`` and ``-`` (anything
else becomes ``_``), for old clients; ``filename*=UTF-8''...`` (RFC 5987/6266) holds the whole
name percent-encoded, which every current browser prefers, so ``张三`` downloads as ``张三``.
Control characters (CR, LF, NUL, ...) are dropped from both.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_NOT_PLAIN = re.compile(r"[^A-Za-z0-9._-]+")


def content_disposition(name: str, *, inline: bool = False) -> str:
    """``attachment`` (or ``inline``) with ``name`` as the file name, safe whatever ``name`` holds."""
    shown = "".join(ch for ch in name if ch.isprintable())
    plain = _NOT_PLAIN.sub("_", shown).strip("._") or "download"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{plain}\"; filename*=UTF-8''{quote(shown, safe='')}"

"""The cloud's own signing keys on disk (the witness key, the evidence key): made once, then loaded.

Each key's private half stays in a 0700 folder as a 0600 file; its public half is written beside it
every time, so a lost or edited public file is put right by the next start.
"""

from __future__ import annotations

from pathlib import Path

from ledger import SigningKey


def load_or_generate(private: Path, public: Path) -> tuple[SigningKey, bool]:
    """The key at ``private`` (made there if there is none) and whether it was made now; ``public`` rewritten."""
    if private.exists():
        key, made = SigningKey.load(private), False
    else:
        private.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key, made = SigningKey.generate(), True
        key.save(private)
    public.write_text(key.verify_key.pem(), encoding="ascii")
    return key, made

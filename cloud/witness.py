"""The cloud's witness key: it signs every acknowledgement (and, later, every cosignature).

Its public half (``cloud-witness.pub``) is copied to every appliance, which believes an
acknowledgement only when this key signed it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cloud.config import CloudSettings
from cloud.keyfile import load_or_generate
from ledger import Malformed, SigningKey

log = logging.getLogger(__name__)


class WitnessKeyMissing(Exception):
    pass


def create(settings: CloudSettings) -> tuple[SigningKey, Path]:
    """Generate the witness key if there is none; return it and the public key file to distribute."""
    key, made = load_or_generate(settings.witness_key_path, settings.witness_public_path)
    if made:
        log.info("generated the cloud witness key %s", key.kid)
    return key, settings.witness_public_path


def load(settings: CloudSettings) -> SigningKey:
    try:
        return SigningKey.load(settings.witness_key_path)
    except FileNotFoundError as err:
        raise WitnessKeyMissing(
            f"the cloud's witness key {settings.witness_key_path} is missing: 'punchproof cloud init' creates it; "
            "every ingest host needs the same file"
        ) from err
    except Malformed as err:
        raise WitnessKeyMissing(f"the cloud's witness key is unusable: {err}") from err

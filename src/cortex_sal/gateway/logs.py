"""Logs that never name a sensor: every ``MODEL/SERIAL`` becomes its 16-hex pseudonym.

Error messages of the layers below name the sensor for the person at the command line (the
registry says which id it refuses). In a gateway's logs that would be a raw identifier, so the
gateway installs :class:`PseudonymFilter` on its log handlers: any ``MODEL/SERIAL`` of a known
model in a record's message is replaced by ``subject:<pseudonym>`` (the shield's and the store's
16-hex subject id) before the record is written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from ..store.base import subject_of

__all__ = ["PseudonymFilter"]


class PseudonymFilter(logging.Filter):
    def __init__(self, models: Iterable[str]) -> None:
        super().__init__()
        names = sorted({m for m in models if m}, key=len, reverse=True)
        self._pattern = (
            re.compile("(?:" + "|".join(re.escape(m) for m in names) + r")/[^\s'\",;:)]+") if names else None
        )

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: f"subject:{subject_of(m.group(0))}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True

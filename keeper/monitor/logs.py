"""Log output that never carries an RPC URL's key.

Every line a node writes, library lines and tracebacks included, passes through one formatter
that redacts the URLs in it (keeper.core.redact): a provider's error quoting the request URL
with its API key cannot reach a log file.
"""

from __future__ import annotations

import logging

from keeper.core.redact import redact_urls

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RedactingFormatter(logging.Formatter):
    """A Formatter whose whole output (message and traceback) has its URLs redacted."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_urls(super().format(record))


def install_redaction(root: logging.Logger | None = None) -> None:
    """Gives every handler of `root` (default: the root logger) the redacting formatter,
    keeping each handler's format string."""
    logger = root or logging.getLogger()
    for handler in logger.handlers:
        fmt = handler.formatter._fmt if handler.formatter is not None else LOG_FORMAT
        handler.setFormatter(RedactingFormatter(fmt))

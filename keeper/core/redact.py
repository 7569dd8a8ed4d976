"""Keeping RPC URLs' secrets out of every text a node shows.

Hosted providers put the API key in the URL (`https://host/v3/KEY`, `?apikey=KEY`, or
`https://user:KEY@host`). Transport errors quote the URL they failed on, and those messages
reach logs, `/healthz` and `/v1/status`, which anyone who can reach the port reads. Every URL in
such a text keeps its scheme, host and port and loses the rest.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

REDACTED = "***"

# A URL as error messages quote it: up to whitespace, a quote, a comma or a closing bracket.
_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>,)\]]+", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`scheme://host[:port]`, plus `/***` when the URL had a path, query, fragment or user
    info (where keys live); a URL with none of them is returned as it was."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    if ":" in host:
        host = f"[{host}]"  # IPv6
    base = f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
    hidden = parts.username or parts.password or parts.query or parts.fragment
    if hidden or parts.path not in ("", "/"):
        return f"{base}/{REDACTED}"
    return base + parts.path


def redact_urls(text: str) -> str:
    """`text` with every URL in it redacted by `redact_url` (punctuation that ends a sentence
    or a clause after a URL, `connect to http://host:1: ...`, is not part of it)."""

    def redact(match: re.Match[str]) -> str:
        url = match.group(0)
        trail = len(url) - len(url.rstrip(".:;!?"))
        return redact_url(url[: len(url) - trail]) + url[len(url) - trail :]

    return _URL.sub(redact, text)

"""No RPC URL's key in anything a node shows: logs, errors, /healthz, /v1/status."""

from __future__ import annotations

import io
import logging

import pytest

from keeper.core.redact import redact_url, redact_urls
from keeper.monitor.logs import install_redaction

KEY = "a1b2c3d4e5f60718"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://mainnet.infura.io/v3/{KEY}", "https://mainnet.infura.io/***"),
        (f"https://eth.example/rpc?apikey={KEY}", "https://eth.example/***"),
        (f"https://user:{KEY}@rpc.example:8443", "https://rpc.example:8443/***"),
        (f"wss://rpc.example/ws/{KEY}#x", "wss://rpc.example/***"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("http://127.0.0.1:8545/", "http://127.0.0.1:8545/"),
        (f"http://[::1]:8545/{KEY}", "http://[::1]:8545/***"),
    ],
)
def test_a_url_keeps_its_scheme_host_and_port_only(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert KEY not in redact_url(url)


def test_every_url_in_an_error_message_is_redacted() -> None:
    # aiohttp's wording for a rate-limited request, and web3's for a failed one
    message = (
        f"429, message='Too Many Requests', url='https://eth.example/v2/{KEY}' "
        f"(while calling https://eth.example/v2/{KEY}, then wss://eth.example/v2/{KEY})"
    )
    redacted = redact_urls(message)
    assert KEY not in redacted
    assert "429, message='Too Many Requests', url='https://eth.example/***'" in redacted
    assert redacted.count("/***") == 3
    assert redact_urls("no url here") == "no url here"
    # a URL before a colon or a full stop keeps its host and port, and the punctuation
    assert (
        redact_urls("connect to http://127.0.0.1:8545: RPC unreachable.")
        == "connect to http://127.0.0.1:8545: RPC unreachable."
    )
    assert redact_urls(f"see https://eth.example/v3/{KEY}.") == "see https://eth.example/***."


def test_log_lines_and_tracebacks_carry_no_url_key() -> None:
    logger = logging.getLogger("tests.redact")
    logger.propagate = False
    stream = io.StringIO()
    logger.addHandler(logging.StreamHandler(stream))
    install_redaction(logger)
    try:
        logger.warning("node.rpc_unavailable url=%s", f"https://eth.example/v3/{KEY}")
        try:
            raise ConnectionError(f"cannot reach https://eth.example/v3/{KEY}")
        except ConnectionError:
            logger.exception("node.tick_crashed")
    finally:
        logger.handlers.clear()
    out = stream.getvalue()
    assert "node.rpc_unavailable url=https://eth.example/***" in out
    assert "ConnectionError" in out
    assert KEY not in out

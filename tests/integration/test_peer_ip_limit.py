"""The peer port caps each client address before it does any work for a request (issue 13,
item 5): a flood of unsigned or badly signed bodies from one address is answered 429
IpRateLimited with Retry-After once past the address's burst, without reading a signature,
while another address is still served. Real sockets on loopback (127.0.0.1 and 127.0.0.2);
the limiter's clock is driven by the test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

import keeper.peers.server as server_module
from keeper.core.messages import SIGNATURE_HEADER, encode_batch
from keeper.core.ratelimit import RateLimit, compute_client_key
from keeper.monitor.metrics import NodeMetrics
from keeper.peers.server import PeerServer
from tests.integration.test_peer_server import (
    JSON,
    STRANGER_KEY,
    RecordingHandler,
    a_request,
    signed,
)

BURST = 3


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Port:
    url: str
    clock: Clock
    handler: RecordingHandler
    recoveries: list[bytes] = field(default_factory=list)


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Port]:
    clock = Clock()
    handler = RecordingHandler(NodeMetrics())
    server = PeerServer(
        handler,
        rate_limit=RateLimit(100, 100),
        ip_rate_limit=RateLimit(1, BURST),
        clock=clock,
    )
    listening = await server.start("127.0.0.1", 0)
    built = Port(f"http://127.0.0.1:{listening}", clock, handler)
    recover = server_module.recover_body_signer

    def counting(body: bytes, signature: bytes) -> str:
        built.recoveries.append(body)
        return recover(body, signature)

    monkeypatch.setattr(server_module, "recover_body_signer", counting)
    yield built
    await server.stop()


async def post_from(
    source: str, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any], str | None]:
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as http,
        http.post(url + "/v1/reports/batch", data=body, headers=headers) as resp,
    ):
        return resp.status, json.loads(await resp.text()), resp.headers.get("Retry-After")


async def test_an_unsigned_flood_from_one_address_is_capped_before_any_work(port: Port) -> None:
    body = encode_batch(a_request())
    # given one address posting unsigned bodies, then bodies signed by a stranger's key
    answers = [await post_from("127.0.0.1", port.url, body, JSON) for _ in range(BURST)]
    assert [(s, a["error"]) for s, a, _ in answers] == [(401, "Unsigned")] * BURST
    # when it posts past its burst, with or without a signature
    for headers in (JSON, signed(body, STRANGER_KEY)):
        status, answer, retry_after = await post_from("127.0.0.1", port.url, body, headers)
        # then it is answered 429 IpRateLimited with Retry-After, and nothing is recovered
        assert (status, answer["error"]) == (429, "IpRateLimited")
        assert retry_after is not None and int(retry_after) >= 1
    assert port.recoveries == [] and port.handler.calls == []


async def test_another_address_is_served_and_the_cap_refills(port: Port) -> None:
    body = encode_batch(a_request())
    headers = signed(body)
    for _ in range(BURST):
        await post_from("127.0.0.1", port.url, body, {**JSON, SIGNATURE_HEADER: "0x00"})
    assert (await post_from("127.0.0.1", port.url, body, headers))[0] == 429
    # when another address posts an honest request, then it is signed
    status, answer, _ = await post_from("127.0.0.2", port.url, body, headers)
    assert status == 200, answer
    assert len(port.handler.calls) == 1
    # and once a second has passed, the first address has one request again
    port.clock.now += 1.0
    status, answer, _ = await post_from("127.0.0.1", port.url, body, headers)
    assert status == 200, answer
    assert (await post_from("127.0.0.1", port.url, body, headers))[0] == 429


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        (None, "unknown"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_a_client_is_charged_by_its_address_and_ipv6_by_its_64(
    remote: str | None, key: str
) -> None:
    assert compute_client_key(remote) == key

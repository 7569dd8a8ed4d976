"""The peer API over real sockets: a PeerServer on 127.0.0.1, a PeerClient and raw requests.

Every server-level rejection must answer its own 4xx with a JSON error and never reach the
handler (protocol step 6: malformed or unsigned messages change nothing).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeper.core.messages import (
    SIGNATURE_HEADER,
    BatchRequest,
    BatchResponse,
    encode_batch,
    sign_body,
)
from keeper.core.report import Batch, Domain, Report, recover_batch_signer, sign_batch
from keeper.errors import PeerError, PeerRejected
from keeper.monitor.metrics import NodeMetrics
from keeper.peers.client import PeerClient
from keeper.peers.server import DEFAULT_MAX_BODY, AdminServer, PeerServer

LEADER_KEY = bytes([1]) * 32
MEMBER_KEY = bytes([2]) * 32
STRANGER_KEY = bytes([3]) * 32
LEADER = Account.from_key(LEADER_KEY).address
MEMBER = Account.from_key(MEMBER_KEY).address
DOMAIN = Domain(chain_id=1337, verifying_contract="0x" + "ab" * 20)
JSON = {"Content-Type": "application/json"}


def a_request(payload: bytes = b"\xca\xfe") -> BatchRequest:
    """A leader's batch of one item, signed by it."""
    report = Report(
        jobId=1,
        round=0,
        epoch=1,
        cursor=17,
        checkBlock=100,
        checkBlockHash=b"\x11" * 32,
        payloadHash=keccak(payload),
        executor=LEADER,
        deadline=140,
    )
    batch = Batch.of([report])
    return BatchRequest.of(LEADER, 123, batch, [payload], sign_batch(LEADER_KEY, batch, DOMAIN))


class RecordingHandler:
    """A member that signs whatever it is asked, records calls, and can refuse or crash."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.calls: list[BatchRequest] = []
        self.rejection: PeerRejected | None = None
        self.crash = False
        self.healthy = True
        self.node_metrics = metrics

    async def handle_batch(self, req: BatchRequest) -> BatchResponse:
        self.calls.append(req)
        if self.crash:
            raise RuntimeError("secret internal detail")
        if self.rejection is not None:
            raise self.rejection
        self.node_metrics.reports_signed.inc()
        signature = sign_batch(MEMBER_KEY, req.batch, DOMAIN)
        return BatchResponse(MEMBER, False, (True,) * len(req.items), signature)

    async def status(self) -> dict[str, Any]:
        return {"epoch": 1, "signed": len(self.calls)}

    async def health(self) -> tuple[bool, dict[str, Any]]:
        if self.healthy:
            return True, {"head": 42}
        return False, {"reason": "rpc 30 blocks behind"}

    def metrics(self) -> bytes:
        return self.node_metrics.render()


@pytest.fixture
async def handler() -> RecordingHandler:
    return RecordingHandler(NodeMetrics())


@pytest.fixture
async def endpoint(handler: RecordingHandler) -> AsyncIterator[str]:
    server = PeerServer(handler)
    port = await server.start("127.0.0.1", 0)
    assert port > 0
    yield f"http://127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def admin(handler: RecordingHandler) -> AsyncIterator[str]:
    """The admin listener (status, health, metrics) over the same handler."""
    server = AdminServer(handler)
    port = await server.start("127.0.0.1", 0)
    yield f"http://127.0.0.1:{port}"
    await server.stop()


@pytest.fixture
async def client() -> AsyncIterator[PeerClient]:
    peer = PeerClient(LEADER_KEY, LEADER, timeout=5.0)
    yield peer
    await peer.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def signed(body: bytes, key: bytes = LEADER_KEY) -> dict[str, str]:
    return {**JSON, SIGNATURE_HEADER: "0x" + sign_body(key, body).hex()}


async def post(
    http: aiohttp.ClientSession, endpoint: str, body: Any, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    async with http.post(endpoint + "/v1/reports/batch", data=body, headers=headers) as resp:
        assert resp.content_type == "application/json"
        text = await resp.text()
        assert "Traceback" not in text
        return resp.status, json.loads(text)


# ---------------------------------------------------------------------------- happy path


async def test_given_a_signed_request_then_the_member_signs_the_report(
    endpoint: str, client: PeerClient, handler: RecordingHandler
) -> None:
    req = a_request()

    resp = await client.request_signatures(endpoint, req)

    assert handler.calls == [req]
    assert resp.signer == MEMBER
    assert not resp.overloaded
    assert resp.results == (True,) and resp.signature is not None
    assert recover_batch_signer(req.batch, DOMAIN, resp.signature) == MEMBER


async def test_status_is_served_on_the_admin_listener(
    admin: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(admin + "/v1/status") as resp:
        assert resp.status == 200
        assert await resp.json() == {"epoch": 1, "signed": 0}


@pytest.mark.parametrize("path", ["/v1/status", "/healthz", "/metrics"])
async def test_the_peer_port_shows_nothing_of_the_node(
    endpoint: str, http: aiohttp.ClientSession, path: str
) -> None:
    # when a peer (or anyone on its network) asks the peer port for the node's view
    async with http.get(endpoint + path) as resp:
        # then there is no such thing there
        assert resp.status == 404
        assert (await resp.json())["error"] == "NotFound"


async def test_the_admin_listener_serves_no_peer_api(
    admin: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = encode_batch(a_request())
    async with http.post(admin + "/v1/reports/batch", data=body, headers=signed(body)) as resp:
        assert resp.status == 404
    assert handler.calls == []


async def test_a_maximal_payload_fits_the_default_body_limit(
    endpoint: str, client: PeerClient, handler: RecordingHandler
) -> None:
    req = a_request(payload=b"\xff" * 4096)

    await client.request_signatures(endpoint, req)

    assert handler.calls == [req]


# ---------------------------------------------------------------------------- server rejections


async def test_given_another_content_type_then_415(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = encode_batch(a_request())
    headers = {**signed(body), "Content-Type": "text/plain"}

    status, error = await post(http, endpoint, body, headers)

    assert (status, error["error"]) == (415, "UnsupportedMediaType")
    assert handler.calls == []


async def test_given_json_with_another_charset_then_415_and_utf8_is_fine(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = encode_batch(a_request())
    latin1 = {**signed(body), "Content-Type": "application/json; charset=latin-1"}
    utf8 = {**signed(body), "Content-Type": "application/json; charset=UTF-8"}

    status, error = await post(http, endpoint, body, latin1)
    assert (status, error["error"]) == (415, "UnsupportedMediaType")
    assert handler.calls == []

    status, _ = await post(http, endpoint, body, utf8)
    assert status == 200
    assert len(handler.calls) == 1


async def test_given_a_declared_length_over_the_limit_then_413(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = b" " * (DEFAULT_MAX_BODY + 1)

    status, error = await post(http, endpoint, body, signed(body))

    assert (status, error["error"]) == (413, "BodyTooLarge")
    assert handler.calls == []


async def test_given_a_chunked_body_over_the_limit_then_413(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    chunk = b" " * 16384

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(DEFAULT_MAX_BODY // len(chunk) + 1):
            yield chunk

    # An async generator has no length, so aiohttp sends it chunked, without Content-Length.
    status, error = await post(http, endpoint, chunks(), {**JSON, SIGNATURE_HEADER: "0x00"})

    assert (status, error["error"]) == (413, "BodyTooLarge")
    assert handler.calls == []


async def test_given_no_signature_then_401_unsigned(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    status, error = await post(http, endpoint, encode_batch(a_request()), JSON)

    assert (status, error["error"]) == (401, "Unsigned")
    assert handler.calls == []


@pytest.mark.parametrize(
    "header",
    ["", "0x1234", "0x" + "zz" * 65, "0x" + "00" * 65, "not a signature"],
)
async def test_given_a_malformed_signature_then_401_bad_signature(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler, header: str
) -> None:
    headers = {**JSON, SIGNATURE_HEADER: header}

    status, error = await post(http, endpoint, encode_batch(a_request()), headers)

    assert (status, error["error"]) == (401, "BadSignature")
    assert handler.calls == []


async def test_given_a_signature_by_someone_else_then_401_bad_signature(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = encode_batch(a_request())

    status, error = await post(http, endpoint, body, signed(body, STRANGER_KEY))

    assert (status, error["error"]) == (401, "BadSignature")
    assert "sender" in error["reason"]
    assert handler.calls == []


async def test_given_a_signature_of_another_body_then_401_bad_signature(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = encode_batch(a_request())
    tampered = body.replace(b'"sentBlock":123', b'"sentBlock":124')

    status, error = await post(http, endpoint, tampered, signed(body))

    assert (status, error["error"]) == (401, "BadSignature")
    assert handler.calls == []


async def test_given_a_body_that_is_not_json_then_400_malformed(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = b"{not json"

    status, error = await post(http, endpoint, body, signed(body))

    assert (status, error["error"]) == (400, "Malformed")
    assert "not valid JSON" in error["reason"]
    assert handler.calls == []


async def test_given_a_field_of_the_wrong_type_then_400_malformed(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    obj = json.loads(encode_batch(a_request()))
    obj["sentBlock"] = "123"
    obj["items"][0]["round"] = True
    body = json.dumps(obj).encode()

    status, error = await post(http, endpoint, body, signed(body))

    assert (status, error["error"]) == (400, "Malformed")
    assert handler.calls == []


async def test_given_deeply_nested_json_then_400_and_the_node_survives(
    endpoint: str, client: PeerClient, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    body = b"[" * 60000

    status, error = await post(http, endpoint, body, signed(body))

    assert (status, error["error"]) == (400, "Malformed")
    await client.request_signatures(endpoint, a_request())
    assert len(handler.calls) == 1


async def test_unknown_routes_are_404_and_wrong_methods_405(
    endpoint: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    async with http.get(endpoint + "/v1/nothing") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"] == "NotFound"
    async with http.get(endpoint + "/v1/reports/batch") as resp:
        assert resp.status == 405
        assert (await resp.json())["error"] == "MethodNotAllowed"
        assert "POST" in resp.headers["Allow"]
    async with http.post(endpoint + "/v1/status", data=b"{}", headers=JSON) as resp:
        assert resp.status == 404
    assert handler.calls == []


# ---------------------------------------------------------------------------- handler outcomes


async def test_given_the_handler_refuses_then_its_status_and_code_reach_the_client(
    endpoint: str, client: PeerClient, handler: RecordingHandler
) -> None:
    handler.rejection = PeerRejected(403, "sender is not in quorum 0\nof epoch 1", "NotInQuorum")

    with pytest.raises(PeerRejected) as info:
        await client.request_signatures(endpoint, a_request())

    assert (info.value.status, info.value.code) == (403, "NotInQuorum")
    assert info.value.reason == "sender is not in quorum 0 of epoch 1"
    assert len(handler.calls) == 1


async def test_given_the_handler_crashes_then_500_without_a_traceback(
    endpoint: str,
    client: PeerClient,
    http: aiohttp.ClientSession,
    handler: RecordingHandler,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler.crash = True
    body = encode_batch(a_request())

    with caplog.at_level(logging.ERROR, logger="keeper.peers.server"):
        async with http.post(
            endpoint + "/v1/reports/batch", data=body, headers=signed(body)
        ) as resp:
            text = await resp.text()
            assert resp.status == 500
    with pytest.raises(PeerError) as info:
        await client.request_signatures(endpoint, a_request())

    assert json.loads(text) == {"error": "InternalError", "reason": "internal error"}
    assert "secret" not in text
    assert "Traceback" not in text
    assert not isinstance(info.value, PeerRejected)
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


async def test_given_a_response_that_does_not_decode_then_peer_error(
    client: PeerClient, handler: RecordingHandler
) -> None:
    class Broken(RecordingHandler):
        async def handle_batch(self, req: BatchRequest) -> BatchResponse:
            return BatchResponse(MEMBER, False, (True,), b"\x00" * 3)

    server = PeerServer(Broken(NodeMetrics()))
    port = await server.start("127.0.0.1", 0)
    try:
        with pytest.raises(PeerError, match="invalid response"):
            await client.request_signatures(f"http://127.0.0.1:{port}", a_request())
    finally:
        await server.stop()


async def test_given_nobody_listens_then_peer_error(client: PeerClient) -> None:
    server = PeerServer(RecordingHandler(NodeMetrics()))
    port = await server.start("127.0.0.1", 0)
    await server.stop()

    with pytest.raises(PeerError) as info:
        await client.request_signatures(f"http://127.0.0.1:{port}", a_request())

    assert not isinstance(info.value, PeerRejected)


# ---------------------------------------------------------------------------- health, metrics


async def test_healthz_is_200_when_healthy_and_503_when_not(
    admin: str, http: aiohttp.ClientSession, handler: RecordingHandler
) -> None:
    async with http.post(admin + "/healthz", data=b"{}", headers=JSON) as resp:
        assert resp.status == 405
    async with http.get(admin + "/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"ok": True, "head": 42}

    handler.healthy = False

    async with http.get(admin + "/healthz") as resp:
        assert resp.status == 503
        assert await resp.json() == {"ok": False, "reason": "rpc 30 blocks behind"}


async def test_metrics_are_prometheus_text_of_the_node_registry(
    endpoint: str, admin: str, client: PeerClient, http: aiohttp.ClientSession
) -> None:
    await client.request_signatures(endpoint, a_request())

    async with http.get(admin + "/metrics") as resp:
        text = await resp.text()
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"

    assert "keeper_reports_signed_total 1.0" in text
    assert "keeper_rounds_started_total 0.0" in text
    assert "keeper_overloaded" in text


# ---------------------------------------------------------------------------- property


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=10,
)


@given(
    body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
    sign=st.booleans(),
)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_property_random_bodies_get_a_4xx_and_never_reach_the_handler(
    endpoint: str,
    http: aiohttp.ClientSession,
    handler: RecordingHandler,
    body: bytes,
    sign: bool,
) -> None:
    headers = signed(body) if sign else JSON

    status, error = await post(http, endpoint, body, headers)

    assert 400 <= status <= 499
    assert error["error"] in {"Malformed", "Unsigned", "BadSignature"}
    assert handler.calls == []

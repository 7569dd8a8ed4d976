"""Calls other members' peer APIs: ask for batch signatures, read a node's status.

aiohttp errors never leave this module: a peer that answered with a 4xx is `PeerRejected`
(status, reason and code from its JSON error), everything else that went wrong between us and
the peer (connection, timeout, 5xx, an answer that does not decode) is `PeerError`.

The response's batch signature is returned unchecked: verifying it needs the EIP-712 domain
and the expected member, which the agree loop has and this transport does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from eth_account import Account

from keeper.core.addresses import checksum_address
from keeper.core.messages import (
    SIGNATURE_HEADER,
    BatchRequest,
    BatchResponse,
    MessageError,
    decode_batch_response,
    encode_batch,
    format_signature_header,
    load_untrusted_json,
    sign_body,
)
from keeper.errors import PeerError, PeerRejected

DEFAULT_TIMEOUT = 2.0
MAX_RESPONSE_BYTES = 65536


@dataclass(frozen=True)
class SignedRequest:
    """A request body and its signature header, ready to send to any number of members."""

    body: bytes
    signature_header: str


class PeerClient:
    """One HTTP session for all peers, signing every request body with the operator key."""

    def __init__(
        self, private_key: bytes, sender: str, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self._sender = checksum_address(sender)
        if Account.from_key(private_key).address != self._sender:
            raise ValueError("sender is not the address of private_key")
        self._key = private_key
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    @property
    def sender(self) -> str:
        return self._sender

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use: a ClientSession belongs to the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def sign_batch(self, req: BatchRequest) -> SignedRequest:
        """Encodes and signs `req` once, to be posted to every member it is for."""
        if checksum_address(req.sender) != self._sender:
            raise ValueError("batch sender is not this client's sender")
        body = encode_batch(req)
        return SignedRequest(body, format_signature_header(sign_body(self._key, body)))

    async def request_signatures(
        self, endpoint: str, signed: BatchRequest | SignedRequest, items: int | None = None
    ) -> BatchResponse:
        """POST a (signed) batch of `items` items to the member at `endpoint` and return its
        answers, one per item, and its batch signature (unverified)."""
        if isinstance(signed, BatchRequest):
            items = len(signed.items)
            signed = self.sign_batch(signed)
        if items is None:
            raise ValueError("a signed body needs its item count")
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signed.signature_header}
        data = await self._call("POST", _url(endpoint, "/v1/reports/batch"), signed.body, headers)
        try:
            return decode_batch_response(data, items)
        except MessageError as exc:
            raise PeerError(f"peer {endpoint} sent an invalid response: {exc.reason}") from exc

    async def _call(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> bytes:
        """The body of a 200 answer; raises PeerRejected for a 4xx, PeerError otherwise."""
        try:
            async with self._get_session().request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                data = await _read_limited(resp)
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PeerError(f"{method} {url} failed: {type(exc).__name__}") from exc
        if 400 <= status <= 499:
            raise _rejection(status, data)
        if status != 200:
            raise PeerError(f"{method} {url} answered {status}")
        return data


def _url(endpoint: str, path: str) -> str:
    return endpoint.rstrip("/") + path


async def _read_limited(resp: aiohttp.ClientResponse) -> bytes:
    # A peer is untrusted: never buffer more than a sane answer, whatever it claims.
    if resp.content_length is not None and resp.content_length > MAX_RESPONSE_BYTES:
        raise PeerError(f"response exceeds {MAX_RESPONSE_BYTES} bytes")
    data = bytearray()
    async for chunk in resp.content.iter_chunked(8192):
        data.extend(chunk)
        if len(data) > MAX_RESPONSE_BYTES:
            raise PeerError(f"response exceeds {MAX_RESPONSE_BYTES} bytes")
    return bytes(data)


def _rejection(status: int, data: bytes) -> PeerRejected:
    """The peer's JSON error as PeerRejected; a non-JSON error body still is a rejection."""
    try:
        obj = load_untrusted_json(data, "error")
    except MessageError:
        obj = None
    if isinstance(obj, dict):
        code, reason = obj.get("error"), obj.get("reason")
        if isinstance(code, str) and isinstance(reason, str):
            return PeerRejected(status, " ".join(reason.split())[:300], code[:64])
    return PeerRejected(status, f"HTTP {status}")

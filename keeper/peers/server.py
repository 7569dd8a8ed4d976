"""The node's two HTTP listeners. The peer port serves only the peer API, `POST /v1/reports/batch`
(a leader's batch of the rounds it leads at one head, answered item by item and signed once);
status, health, metrics, the job views (`GET /v1/jobs`, `/v1/jobs/{id}`, `/v1/network`) and
the read-only dashboard (`/dashboard/`) are on the admin port (loopback by default), so nothing
the node shows about itself reaches the network the peers are on.

The server does everything that needs no node state before the handler sees a request: the
client address's request rate (a token bucket per IP address, IPv6 per /64, charged before the
body is read: `429 IpRateLimited` with `Retry-After`, so unsigned or malformed floods cost a
bucket lookup each, never a signature recovery), media type, size, body signature, decoding,
signer == sender and the sender's request rate (a token bucket per signer: `429 RateLimited`
with `Retry-After`). Each failure is its own 4xx with a
JSON body `{"error": code, "reason": one line}`, and the handler is never called, so a
malformed or unsigned message changes nothing (protocol step 6). Whether the sender belongs to
the quorum, and whether to sign, is the handler's decision; it refuses with `PeerRejected`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Protocol, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler

from keeper.core.messages import (
    BAD_SIGNATURE,
    MAX_REASON_CHARS,
    SIGNATURE_HEADER,
    BatchRequest,
    BatchResponse,
    MessageError,
    decode_batch,
    encode_batch_response,
    parse_signature_header,
    recover_body_signer,
)
from keeper.core.ratelimit import RateLimit, TokenBuckets, compute_client_key
from keeper.errors import PeerRejected

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 65536
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_ERROR_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "BodyTooLarge"}
# The dashboard's files (package data, no build step) and the media type each is served with.
DASHBOARD_FILES = {
    "index.html": "text/html",
    "job.html": "text/html",
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
}
MAX_JOB_ID = (1 << 256) - 1


class _Sent(Protocol):
    """A peer message: its body must be signed by its sender."""

    @property
    def sender(self) -> str: ...


_Message = TypeVar("_Message", bound=_Sent)
_Answer = TypeVar("_Answer")


class PeerHandler(Protocol):
    """What the node provides behind the API; the server owns HTTP, the handler the protocol."""

    async def handle_batch(self, req: BatchRequest) -> BatchResponse:
        """Answer each item (accepted, or a `Refusal`) and sign the accepted ones once, or raise
        `PeerRejected(status, reason, code)` to refuse the whole batch."""
        ...

    async def status(self) -> dict[str, Any]:
        """The node's view (epoch, quorums, jobs, rounds, load) as JSON-safe values."""
        ...

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details); details of an unhealthy node should include a `reason`."""
        ...

    def metrics(self) -> bytes:
        """The Prometheus text exposition."""
        ...


class AdminHandler(PeerHandler, Protocol):
    """What the admin listener reads besides status, health and metrics."""

    async def jobs(self) -> list[dict[str, Any]]:
        """Every job with its state and reason (docs/protocol.md, Node interfaces)."""
        ...

    async def job(self, job_id: int) -> dict[str, Any] | None:
        """One job with its history and reasons, or None if the node knows no such job."""
        ...

    async def network(self) -> dict[str, Any]:
        """Epoch, quorums and keepers with stake and load."""
        ...


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_REASON_CHARS]


def error_response(
    status: int, code: str, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    """The API's one error shape."""
    body = {"error": code, "reason": _one_line(reason)}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Routing errors as JSON, and no traceback ever reaching a peer."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _ERROR_CODES.get(exc.status, "".join(exc.reason.split()))
        allow = exc.headers.get("Allow")
        headers = {"Allow": allow} if allow is not None else None
        return error_response(exc.status, code, exc.reason, headers)
    except Exception:
        log.exception("peer_api.internal_error method=%s path=%s", request.method, request.path)
        return error_response(500, "InternalError", "internal error")


class _Routes:
    def __init__(
        self,
        handler: PeerHandler,
        max_body: int,
        rate_limit: RateLimit | None,
        clock: Callable[[], float],
        ip_rate_limit: RateLimit | None = None,
    ) -> None:
        self._handler = handler
        self._max_body = max_body
        self._buckets = TokenBuckets(rate_limit) if rate_limit is not None else None
        self._ip_buckets = TokenBuckets(ip_rate_limit) if ip_rate_limit is not None else None
        self._clock = clock

    def _ip_limited(self, request: web.Request) -> web.Response | None:
        """429 IpRateLimited when the client's address is past its rate, before anything else
        is done for the request; None while it is within it."""
        if self._ip_buckets is None:
            return None
        client = compute_client_key(request.remote)
        wait = self._ip_buckets.acquire(client, self._clock())
        if wait <= 0:
            return None
        log.info("peer_api.ip_rate_limited from=%s retry_after=%.2f", client, wait)
        return error_response(
            429,
            "IpRateLimited",
            f"more than {self._ip_buckets.limit.per_second:g} requests/s from one address",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )

    async def _signed_body(self, request: web.Request) -> tuple[bytes, str] | web.Response:
        """The body and the address that signed it, or the error response that ends the
        request: media type, size and body signature are checked alike on every POST."""
        charset = (request.charset or "utf-8").lower()
        if request.content_type != "application/json" or charset != "utf-8":
            return error_response(415, "UnsupportedMediaType", "content type must be JSON")
        too_large = f"body exceeds {self._max_body} bytes"
        length = request.content_length
        if length is not None and length > self._max_body:
            return error_response(413, "BodyTooLarge", too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error_response(413, "BodyTooLarge", too_large)
        if len(body) > self._max_body:
            return error_response(413, "BodyTooLarge", too_large)

        headers = request.headers.getall(SIGNATURE_HEADER, [])
        if not headers:
            return error_response(401, "Unsigned", f"missing {SIGNATURE_HEADER} header")
        if len(headers) > 1:
            return error_response(401, BAD_SIGNATURE, f"more than one {SIGNATURE_HEADER}")
        # Recover before decoding (both are pure and bounded) so a body that does not decode
        # still gets its own 400, and a decoded one is trusted only if its sender signed it.
        try:
            signer = recover_body_signer(body, parse_signature_header(headers[0]))
        except MessageError as exc:
            return error_response(401, BAD_SIGNATURE, exc.reason)
        return body, signer

    async def post_batch(self, request: web.Request) -> web.Response:
        return await self._post(
            request, decode_batch, self._handler.handle_batch, encode_batch_response
        )

    async def _post(
        self,
        request: web.Request,
        decode: Callable[[bytes], _Message],
        handle: Callable[[_Message], Awaitable[_Answer]],
        encode: Callable[[_Answer], bytes],
    ) -> web.Response:
        """A signed POST: the client's rate, the envelope checks, then decode, signer ==
        sender, the signer's rate, the handler."""
        limited = self._ip_limited(request)
        if limited is not None:
            return limited
        checked = await self._signed_body(request)
        if isinstance(checked, web.Response):
            return checked
        body, signer = checked
        try:
            message = decode(body)
        except MessageError as exc:
            return error_response(400, exc.code, exc.reason)
        if signer != message.sender:
            return error_response(401, BAD_SIGNATURE, "body is not signed by its sender")
        if self._buckets is not None:
            # Keyed by the signer, known only now: an unsigned request names no one to charge.
            wait = self._buckets.acquire(signer.lower(), self._clock())
            if wait > 0:
                log.info("peer_api.rate_limited from=%s retry_after=%.2f", signer, wait)
                return error_response(
                    429,
                    "RateLimited",
                    f"more than {self._buckets.limit.per_second:g} requests/s",
                    {"Retry-After": str(max(1, math.ceil(wait)))},
                )
        try:
            answer = await handle(message)
        except PeerRejected as exc:
            status = exc.status if 400 <= exc.status <= 599 else 500
            return error_response(status, exc.code, exc.reason)
        return web.Response(body=encode(answer), content_type="application/json")

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(await self._handler.status())

    async def health(self, request: web.Request) -> web.Response:
        ok, details = await self._handler.health()
        body = {**details, "ok": ok}
        if not ok:
            body.setdefault("reason", "unhealthy")
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._handler.metrics(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )


def create_app(
    handler: PeerHandler,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    rate_limit: RateLimit | None = None,
    clock: Callable[[], float] = time.monotonic,
    ip_rate_limit: RateLimit | None = None,
) -> web.Application:
    """The aiohttp application; `client_max_size` backs the size check while reading,
    `ip_rate_limit` bounds each client address's POSTs and `rate_limit` each signer's (None:
    unlimited)."""
    app = web.Application(client_max_size=max_body, middlewares=[_json_errors])
    routes = _Routes(handler, max_body, rate_limit, clock, ip_rate_limit)
    app.router.add_post("/v1/reports/batch", routes.post_batch)
    return app


class _AdminRoutes:
    """The job views and the dashboard's files; read-only, GET only."""

    def __init__(self, handler: AdminHandler) -> None:
        self._handler = handler

    async def _answer(self, read: Callable[[], Awaitable[Any]]) -> web.Response:
        try:
            return web.json_response(await read())
        except PeerRejected as exc:
            return error_response(exc.status, exc.code, exc.reason)

    async def jobs(self, request: web.Request) -> web.Response:
        return await self._answer(self._handler.jobs)

    async def job(self, request: web.Request) -> web.Response:
        text = request.match_info["job_id"]
        if not text.isdigit() or int(text) > MAX_JOB_ID:
            return error_response(400, "InvalidJobId", f"job id must be a number, not {text!r}")
        job_id = int(text)
        try:
            view = await self._handler.job(job_id)
        except PeerRejected as exc:
            return error_response(exc.status, exc.code, exc.reason)
        if view is None:
            return error_response(404, "UnknownJob", f"no job {job_id} on this network")
        return web.json_response(view)

    async def network(self, request: web.Request) -> web.Response:
        return await self._answer(self._handler.network)

    async def dashboard_file(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        media = DASHBOARD_FILES.get(name)
        if media is None:
            return error_response(404, "NotFound", f"no dashboard file {name!r}")
        body = resources.files("keeper.peers").joinpath("dashboard", name).read_bytes()
        return web.Response(body=body, content_type=media, charset="utf-8")

    async def to_dashboard(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard/")


def create_admin_app(handler: AdminHandler) -> web.Application:
    """The operator's application: `GET /v1/status`, `/healthz`, `/metrics`, the job views
    `/v1/jobs`, `/v1/jobs/{id}`, `/v1/network`, and the dashboard under `/dashboard/`."""
    app = web.Application(client_max_size=DEFAULT_MAX_BODY, middlewares=[_json_errors])
    routes = _Routes(handler, DEFAULT_MAX_BODY, None, time.monotonic)
    app.router.add_get("/v1/status", routes.status)
    app.router.add_get("/healthz", routes.health)
    app.router.add_get("/metrics", routes.metrics)
    views = _AdminRoutes(handler)
    app.router.add_get("/v1/jobs", views.jobs)
    app.router.add_get("/v1/jobs/{job_id}", views.job)
    app.router.add_get("/v1/network", views.network)
    app.router.add_get("/", views.to_dashboard)
    app.router.add_get("/dashboard", views.to_dashboard)
    app.router.add_get("/dashboard/", views.dashboard_file)
    app.router.add_get("/dashboard/{name}", views.dashboard_file)
    return app


class _Listener:
    """Runs one aiohttp application on one TCP address until `stop`."""

    _name = "listener"

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (port 0 picks a free one) and return the bound port."""
        if self._runner is not None:
            raise RuntimeError(f"{self._name} already started")
        runner = web.AppRunner(self._app)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("%s.listening host=%s port=%d", self._name, host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and finish in-flight requests; harmless if not started."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class PeerServer(_Listener):
    """The peer API (`create_app`): the only listener peers reach."""

    _name = "peer_api"

    def __init__(
        self,
        handler: PeerHandler,
        *,
        max_body: int = DEFAULT_MAX_BODY,
        rate_limit: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        ip_rate_limit: RateLimit | None = None,
    ) -> None:
        super().__init__(
            create_app(
                handler,
                max_body=max_body,
                rate_limit=rate_limit,
                clock=clock,
                ip_rate_limit=ip_rate_limit,
            )
        )


class AdminServer(_Listener):
    """Status, health and metrics (`create_admin_app`), for the operator and its monitoring."""

    _name = "admin_api"

    def __init__(self, handler: AdminHandler) -> None:
        super().__init__(create_admin_app(handler))

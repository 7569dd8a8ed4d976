"""One frozen settings model: defaults < .env < environment < command-line flags.

Every variable is listed, with a comment, in `.env.example`. Secrets are read from the
environment or a keystore; the key itself never appears in a log line or an error.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dotenv import dotenv_values
from eth_account import Account
from eth_account.signers.local import LocalAccount

from keeper.core.fees import GWEI, FeePolicy
from keeper.core.redact import redact_url
from keeper.core.types import Wei
from keeper.errors import ConfigError

ENV_PREFIX = "KEEPER_"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    """Everything a command may read. Field names map to KEEPER_<NAME> variables."""

    # One JSON-RPC URL, or several separated by commas (`--rpc-url` repeated): the first is
    # preferred, the next ones take over when it fails or lags.
    rpc_url: str = "http://127.0.0.1:8545"
    # Per URL, within a hosted plan's limits: requests a second, bursts, requests in flight.
    rpc_requests_per_second: float = 50.0
    rpc_burst: int = 100
    rpc_concurrency: int = 8
    # Condition resolver calls per JSON-RPC batch: hosted providers refuse larger batches
    # (100 is the common cap; keeper.chain.reader.MAX_RPC_BATCH).
    max_rpc_batch: int = 100
    ws_url: str = "auto"  # newHeads over WebSocket: "auto" (the RPC's host:port), "off", a URL
    private_key: str | None = None
    keystore: str | None = None
    password_file: str | None = None
    deployment: str = "deployment.json"
    db: str = "keeper.db"
    listen: str = "127.0.0.1:8700"
    # status, health and metrics: host:port, or "" for loopback on the peer port + 1
    admin_listen: str = ""
    log_level: str = "INFO"
    poll_interval: float = 1.0
    reorg_depth: int = 12
    max_cpu_percent: float = 90.0
    max_memory_percent: float = 90.0
    gas_price_cap_gwei: float = 100.0
    # The tip: this percentile of recent blocks' tips, within [floor, ceiling] (and never above
    # the TaskManager's maxPriorityFee, nor the max fee above its gasPriceCap).
    priority_fee_floor_gwei: float = 0.001
    priority_fee_ceiling_gwei: float = 100.0
    priority_fee_percentile: float = 50.0
    max_in_flight: int = 16  # pending transactions before new sends are refused
    # Gas limit of one execute transaction: a leader splits the rounds it leads at a head into
    # batches that each fit (and never above half the latest block's gas limit)
    max_batch_gas: int = 15_000_000

    @property
    def heads_url(self) -> str | None:
        """The WebSocket URL to subscribe to new heads on, or None to poll only."""
        if self.ws_url == "off":
            return None
        if self.ws_url == "auto":
            return derive_ws_url(self.rpc_urls[0])
        return self.ws_url

    @property
    def rpc_urls(self) -> list[str]:
        """The RPC URLs in order of preference."""
        return [u.strip() for u in self.rpc_url.split(",") if u.strip()]

    def fee_policy(self) -> FeePolicy:
        """The fee settings as the sender's policy; ConfigError if they contradict each other."""
        return FeePolicy(
            max_fee_cap=gwei_to_wei(self.gas_price_cap_gwei),
            priority_fee_floor=gwei_to_wei(self.priority_fee_floor_gwei),
            priority_fee_ceiling=gwei_to_wei(self.priority_fee_ceiling_gwei),
            priority_fee_percentile=self.priority_fee_percentile,
        )

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def admin_address(self) -> str:
        """Where status, health and metrics listen: `admin_listen`, else 127.0.0.1 on the peer
        port + 1 (port 0, any free port, when the peer port is 0)."""
        if self.admin_listen:
            return self.admin_listen
        port = self.listen_port
        return f"127.0.0.1:{port + 1 if port else 0}"

    @property
    def admin_host(self) -> str:
        return self.admin_address.rsplit(":", 1)[0]

    @property
    def admin_port(self) -> int:
        return int(self.admin_address.rsplit(":", 1)[1])


def gwei_to_wei(gwei: float) -> Wei:
    """Exact for the decimals an operator writes (0.001 gwei is 1,000,000 wei)."""
    return Wei(int(Decimal(str(gwei)) * GWEI))


def derive_ws_url(rpc_url: str) -> str | None:
    """The WebSocket URL on the HTTP endpoint's own host and port (anvil, Hardhat and most
    hosted RPCs serve both there); None for a URL that is not http(s)."""
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme)
    if scheme is None:
        return None
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    if raw is None:
        return None
    if isinstance(raw, list | tuple):  # a flag given more than once (--rpc-url)
        raw = ",".join(str(item) for item in raw)
    text = str(raw).strip()
    try:
        if kind in ("int", int):
            return int(text)
        if kind in ("float", float):
            return float(text)
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be a number, got {text!r}") from exc
    return text


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    dotenv_path: str | Path | None = ".env",
) -> Settings:
    """Merges the sources in precedence order and validates the result."""
    values: dict[str, Any] = {}
    names = {f.name: f.type for f in fields(Settings)}
    sources: list[Mapping[str, Any]] = []
    if dotenv_path is not None and Path(dotenv_path).is_file():
        warn_if_exposed(dotenv_path, "dotenv file")
        sources.append({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    sources.append(environ or {})
    for source in sources:
        for name, kind in names.items():
            key = ENV_PREFIX + name.upper()
            if key in source and str(source[key]) != "":
                values[name] = _coerce(name, kind, source[key])
    for name, raw in (flags or {}).items():
        if name in names and raw is not None:
            values[name] = _coerce(name, names[name], raw)
    settings = replace(Settings(), **values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    _validate_address("listen", s.listen)
    if s.admin_listen:
        _validate_address("admin listen", s.admin_listen)
    if s.admin_port > 65535:
        raise ConfigError(f"admin listen port out of range: {s.admin_port} (set --admin-listen)")
    if s.admin_port != 0 and s.admin_port == s.listen_port and s.admin_host == s.listen_host:
        raise ConfigError(f"admin listen address {s.admin_address} is the peer listen address")
    if s.poll_interval <= 0 or s.reorg_depth < 0:
        raise ConfigError("poll interval must be positive, reorg depth >= 0")
    if s.ws_url not in ("auto", "off") and not s.ws_url.startswith(("ws://", "wss://")):
        raise ConfigError(f"ws url must be auto, off or a ws:// or wss:// URL, got {s.ws_url!r}")
    _validate_rpc(s)
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"unknown log level {s.log_level!r}")
    if s.max_in_flight < 1:
        raise ConfigError(f"max in flight must be at least 1, got {s.max_in_flight}")
    if s.max_batch_gas < 1:
        raise ConfigError(f"max batch gas must be positive, got {s.max_batch_gas}")
    if s.max_rpc_batch < 1:
        raise ConfigError(f"max rpc batch must be at least 1, got {s.max_rpc_batch}")
    s.fee_policy()  # the fee settings' own consistency rules


def _validate_rpc(s: Settings) -> None:
    if not s.rpc_urls:
        raise ConfigError("no RPC URL: pass --rpc-url or set KEEPER_RPC_URL")
    for url in s.rpc_urls:
        if not url.lower().startswith(("http://", "https://")):
            # Never echo the URL itself: its path may hold the provider's API key.
            raise ConfigError(f"rpc url must be http:// or https://, got {redact_url(url)}")
    if s.rpc_requests_per_second <= 0 or s.rpc_burst < 1 or s.rpc_concurrency < 1:
        raise ConfigError(
            "rpc requests per second must be positive, rpc burst and concurrency at least 1"
        )


def _validate_address(what: str, address: str) -> None:
    if ":" not in address:
        raise ConfigError(f"{what} address must be host:port, got {address!r}")
    try:
        port = int(address.rsplit(":", 1)[1])
    except ValueError as exc:
        raise ConfigError(f"{what} port must be a number, got {address!r}") from exc
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what} port out of range: {port}")


def load_account(settings: Settings) -> LocalAccount:
    """The operator key, from a keystore (with its password file) or a raw private key."""
    if settings.keystore:
        if not settings.password_file:
            raise ConfigError("--keystore needs --password-file")
        warn_if_exposed(settings.keystore, "keystore")
        warn_if_exposed(settings.password_file, "password file")
        try:
            keystore = json.loads(Path(settings.keystore).read_text())
            password = Path(settings.password_file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ConfigError(f"keystore {settings.keystore} is not valid JSON") from exc
        try:
            key = Account.decrypt(keystore, password)
        except ValueError as exc:
            raise ConfigError(
                f"cannot decrypt keystore {settings.keystore}: wrong password"
            ) from exc
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"keystore {settings.keystore} is malformed") from exc
        account: LocalAccount = Account.from_key(key)
        return account
    if settings.private_key:
        # Exactly 64 hex digits: eth-account pads a shorter one, so a key missing a digit would
        # silently be another key (and another account).
        raw = settings.private_key.strip()
        digits = raw[2:] if raw[:2] in ("0x", "0X") else raw
        if len(digits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            # Never echo the key itself.
            raise ConfigError(
                f"the private key is malformed: expected 64 hex digits, got {len(digits)} "
                "characters"
            )
        try:
            from_key: LocalAccount = Account.from_key(raw)
            return from_key
        except (ValueError, TypeError) as exc:
            raise ConfigError("the private key is not a valid secp256k1 key") from exc
    raise ConfigError("no key: pass --keystore with --password-file, or set KEEPER_PRIVATE_KEY")


def warn_if_exposed(path: str | Path, what: str) -> None:
    """One warning line when a file holding a secret is open to group or others. Not an error:
    the operator may have reasons (a shared service group), but should know."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return  # reading it will report what is wrong
    if mode & 0o077:
        log.warning(
            "%s %s is open to group/others (mode %04o): chmod 600 %s", what, path, mode, path
        )

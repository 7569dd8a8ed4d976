"""`keeper status`: an operator's keeper as the chain and its node see it, for a person or
(`--json`) a machine.

The chain says what is at stake: registration, stake, earnings, the wallet and how many
executions it can front, the epoch and this keeper's quorums. The node's admin listener, when
it answers, says how the node is doing: health and its reason, sync, jobs, pending sends.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import aiohttp
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3

from keeper.chain.contracts import Deployment, bind, call, get_logs_paged
from keeper.cli.chain_io import chain_step, load_deployment, reading_web3
from keeper.cli.formatting import format_date, format_when
from keeper.cli.jobspec import DEFAULT_GAS_LIMIT, parse_address
from keeper.config import Settings, load_account
from keeper.core.quorum import unpack_member
from keeper.core.units import format_ether
from keeper.errors import ConfigError

# KeeperRegistry.Status, in order.
REGISTRATION = ("not registered", "active", "exiting", "slashed", "withdrawn")
ACTIVE, EXITING = 1, 2
NODE_TIMEOUT = 5


async def fetch_node(url: str) -> dict[str, Any]:
    """The node's /v1/status and /healthz; `reachable: False` and the error when it does not
    answer (a status from the chain alone is still worth printing)."""
    base = url.rstrip("/")
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=NODE_TIMEOUT)
        ) as session:
            async with session.get(base + "/v1/status") as response:
                if response.status != 200:
                    return {"url": url, "reachable": False, "error": f"HTTP {response.status}"}
                status = await response.json()
            async with session.get(base + "/healthz") as response:
                health = await response.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"url": url, "reachable": False, "error": type(exc).__name__}
    jobs = status.get("jobs") or []
    return {
        "url": url,
        "reachable": True,
        "address": status.get("address"),
        "chain_id": status.get("chain_id"),
        "registry": status.get("registry"),
        "task_manager": status.get("task_manager"),
        "healthy": bool(health.get("ok")),
        "reason": health.get("reason"),
        "head": status.get("head"),
        "chain_head": status.get("chain_head"),
        "jobs_in_my_quorums": sum(1 for job in jobs if job.get("mine")),
        "pending_txs": status.get("pending_txs"),
        "last_error": status.get("last_error"),
    }


def _address(settings: Settings, args: argparse.Namespace, node: dict[str, Any]) -> str:
    if args.address:
        return parse_address(args.address, "--address")
    if settings.private_key or settings.keystore:
        return str(load_account(settings).address)
    if node.get("address"):
        return str(node["address"])
    raise ConfigError(
        f"whose status? give --address ADDR or a key (--keystore), or run the node "
        f"(nothing answers at {node['url']})"
    )


async def _deployment(settings: Settings, w3: AsyncWeb3[Any], node: dict[str, Any]) -> Deployment:
    """The deployment file; without one, the contracts the running node names."""
    if Path(settings.deployment).exists() or not node.get("registry"):
        return await load_deployment(settings, w3)
    chain_id = int(await w3.eth.chain_id)
    if chain_id != node["chain_id"]:
        raise ConfigError(
            f"the node at {node['url']} runs on chain {node['chain_id']}, "
            f"but the RPC is chain {chain_id}"
        )
    return Deployment(chain_id, str(node["registry"]), str(node["task_manager"]), 0)


async def read_chain(w3: AsyncWeb3[Any], deployment: Deployment, address: str) -> dict[str, Any]:
    """What the contracts hold for `address`, and the epoch it serves in."""
    contracts = bind(w3, deployment)
    registry, tm = contracts.registry, contracts.task_manager
    block = await w3.eth.get_block("latest")
    stake, reg_status, exit_epoch, unbond_at, endpoint = await call(
        registry.functions.keeperInfo(address)
    )
    epoch, start_block, start_time, count, _changed, due_at = await call(
        registry.functions.epochState()
    )
    members: list[int] = []
    if epoch:
        logs = await get_logs_paged(
            registry.events.QuorumFormed(),
            int(start_block),
            {"epoch": int(epoch)},
            to_block=int(start_block),
        )
        for log in logs:
            words = log["args"]["members"]
            if any(unpack_member(bytes(w)).address.lower() == address.lower() for w in words):
                members.append(int(log["args"]["quorum"]))
    base_fee = int(block.get("baseFeePerGas", 0))
    price = min(
        base_fee + int(await call(tm.functions.maxPriorityFee())),
        int(await call(tm.functions.gasPriceCap())),
    )
    overhead = int(await call(tm.functions.MAX_EXECUTION_OVERHEAD_GAS()))
    return {
        "block": int(block["number"]),
        "time": int(block["timestamp"]),
        "registration": int(reg_status),
        "stake": int(stake),
        "exit_epoch": int(exit_epoch),
        "unbond_at": int(unbond_at),
        "endpoint": str(endpoint),
        "earnings": int(await call(tm.functions.earnings(address))),
        "balance": int(await w3.eth.get_balance(to_checksum_address(address))),
        "execution_gas": DEFAULT_GAS_LIMIT + overhead,
        "gas_price": price,
        "epoch": int(epoch),
        "epoch_start": int(start_time),
        "rotation_due": int(due_at),
        "quorum_count": int(count),
        "my_quorums": sorted(members),
    }


def compute_status(address: str, chain: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The view `--json` prints: wei as decimal strings, times as unix seconds."""
    registration = REGISTRATION[chain["registration"]]
    execution_cost = chain["execution_gas"] * chain["gas_price"]
    exiting = chain["registration"] == EXITING
    withdrawable = (
        exiting and chain["epoch"] > chain["exit_epoch"] and chain["time"] >= chain["unbond_at"]
    )
    return {
        "address": address,
        "block": chain["block"],
        "chain_time": chain["time"],
        "keeper": {
            "registration": registration,
            "stake_wei": str(chain["stake"]),
            "endpoint": chain["endpoint"] or None,
            "exit_epoch": chain["exit_epoch"] if exiting else None,
            "unbond_at": chain["unbond_at"] if exiting else None,
            "stake_withdrawable": withdrawable,
        },
        "earnings_wei": str(chain["earnings"]),
        "wallet": {
            "balance_wei": str(chain["balance"]),
            "execution_cost_wei": str(execution_cost),
            "executions_paid": chain["balance"] // execution_cost if execution_cost else None,
        },
        "network": {
            "epoch": chain["epoch"],
            "epoch_start": chain["epoch_start"] if chain["epoch"] else None,
            "rotation_due": chain["rotation_due"] if chain["epoch"] else None,
            "quorum_count": chain["quorum_count"],
            "my_quorums": chain["my_quorums"],
        },
        "node": {k: v for k, v in node.items() if k not in ("registry", "task_manager")},
    }


def render_status(view: dict[str, Any]) -> list[str]:
    """The view as a person reads it."""
    now = view["chain_time"]
    k, wallet, net, node = view["keeper"], view["wallet"], view["network"], view["node"]
    registration = k["registration"]
    if registration == "exiting":
        registration += f": serves through epoch {k['exit_epoch']}; stake " + (
            "withdrawable now (`keeper exit --withdraw`)"
            if k["stake_withdrawable"]
            else f"unbonding until {format_when(k['unbond_at'], now)}"
        )
    lines = [f"keeper {view['address']}", f"  {'registration':<14}{registration}"]
    if k["endpoint"]:
        lines.append(f"  {'endpoint':<14}{k['endpoint']}")
    lines.append(f"  {'stake':<14}{format_ether(int(k['stake_wei']))}")
    earnings = int(view["earnings_wei"])
    lines.append(
        f"  {'earnings':<14}{format_ether(earnings)}"
        + (" (`keeper withdraw` pays them out)" if earnings else "")
    )
    paid = wallet["executions_paid"]
    lines.append(
        f"  {'wallet':<14}{format_ether(int(wallet['balance_wei']))}, fronts the gas of "
        f"{paid if paid is not None else 'any number of'} execution(s) at "
        f"{format_ether(int(wallet['execution_cost_wei']))} each (a 200000-gas job, today)"
    )
    lines.append(f"network at block {view['block']}, {format_date(now)}")
    if net["epoch"]:
        lines.append(
            f"  {'epoch':<14}{net['epoch']}, started {format_when(net['epoch_start'], now)}; "
            f"next rotation due {format_when(net['rotation_due'], now)}"
        )
        mine = ", ".join(str(q) for q in net["my_quorums"]) or "none"
        lines.append(f"  {'quorums':<14}{net['quorum_count']}; this keeper serves in: {mine}")
    else:
        lines.append(f"  {'epoch':<14}none yet (no rotation since the deployment)")
    lines.append(f"node {node['url']}")
    if not node["reachable"]:
        lines.append(f"  {'health':<14}not reachable ({node['error']})")
        return lines
    health = "healthy" if node["healthy"] else f"UNHEALTHY: {node.get('reason') or 'unhealthy'}"
    lines.append(f"  {'health':<14}{health}")
    if node.get("address") and str(node["address"]).lower() != view["address"].lower():
        lines.append(f"  {'key':<14}the node runs as {node['address']}, not this keeper")
    lines.append(f"  {'synced to':<14}block {node.get('head')} of {node.get('chain_head')}")
    lines.append(
        f"  {'jobs':<14}{node.get('jobs_in_my_quorums')} in its quorums; "
        f"{node.get('pending_txs')} transaction(s) pending"
    )
    return lines


async def status(settings: Settings, args: argparse.Namespace) -> int:
    node = await fetch_node(args.url)
    address = _address(settings, args, node)
    w3 = await reading_web3(settings)
    deployment = await _deployment(settings, w3, node)
    async with chain_step("status"):
        chain = await read_chain(w3, deployment, address)
    view = compute_status(address, chain, node)
    if args.json:
        print(json.dumps(view, indent=2, sort_keys=True))
    else:
        print("\n".join(render_status(view)))
    return 0

"""Command line entry point: flags -> Settings -> the command; errors -> one line, exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from keeper import __version__
from keeper.errors import KeeperError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rpc-url", dest="rpc_url", help="JSON-RPC URL (env KEEPER_RPC_URL)")
    p.add_argument("--private-key", dest="private_key", help="hex key (prefer --keystore)")
    p.add_argument("--keystore", help="encrypted JSON keystore file")
    p.add_argument("--password-file", dest="password_file", help="file with the keystore password")
    p.add_argument("--deployment", help="deployment JSON written by `keeper deploy`")
    p.add_argument("--env-file", dest="env_file", default=".env", help="dotenv file (.env)")
    p.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keeper", description="Decentralized keeper network.")
    parser.add_argument("--version", action="version", version=f"keeper {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    devnet = commands.add_parser("devnet", help="run a keeper network live on an embedded chain")
    devnet.add_argument("--keepers", type=int, default=4)
    devnet.add_argument("--duration", type=float, default=None)
    devnet.add_argument("--summary-json", dest="summary_json")
    devnet.add_argument("--chain", choices=["embedded", "anvil"], default="embedded")

    deploy = commands.add_parser("deploy", help="deploy KeeperRegistry and TaskManager")
    _common(deploy)
    deploy.add_argument("--out", required=True, help="where to write the deployment JSON")
    deploy.add_argument("--min-stake", dest="min_stake", default="1ether")
    deploy.add_argument("--unbonding-period", dest="unbonding_period", type=int, default=3600)
    deploy.add_argument("--epoch-length", dest="epoch_length", type=int, default=3600)
    deploy.add_argument("--quorum-size", dest="quorum_size", type=int, default=4)
    deploy.add_argument("--gas-price-cap", dest="gas_price_cap", default="100gwei")
    deploy.add_argument("--premium", default="0.0001ether")

    register = commands.add_parser("register", help="stake and register this keeper")
    _common(register)
    register.add_argument("--stake", required=True, help="e.g. 1ether")
    register.add_argument("--endpoint", required=True, help="http://host:port of the peer API")

    run = commands.add_parser("run", help="run the keeper node")
    _common(run)
    run.add_argument("--listen", help="host:port for the peer API (env KEEPER_LISTEN)")
    run.add_argument("--db", help="SQLite store (env KEEPER_DB)")
    run.add_argument("--poll-interval", dest="poll_interval", type=float)
    run.add_argument("--turn-blocks", dest="turn_blocks", type=int)

    status = commands.add_parser("status", help="the node's view, from its peer API")
    status.add_argument("--url", default="http://127.0.0.1:8700", help="the node's peer API")
    return parser


def _settings(args: argparse.Namespace) -> Any:
    from keeper.config import load_settings

    return load_settings(vars(args), os.environ, getattr(args, "env_file", ".env"))


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # Their INFO lines are per request / per job run: noise next to the node's own events.
    for noisy in ("apscheduler", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def cmd_run(args: argparse.Namespace) -> int:
    from keeper.app import run_node

    settings = _settings(args)
    _configure_logging(settings.log_level)
    return await run_node(settings)


async def cmd_deploy(args: argparse.Namespace) -> int:
    from keeper.commands import deploy

    return await deploy(_settings(args), args)


async def cmd_register(args: argparse.Namespace) -> int:
    from keeper.commands import register

    return await register(_settings(args), args)


async def cmd_status(args: argparse.Namespace) -> int:
    from keeper.commands import status

    return await status(args.url)


async def cmd_devnet(args: argparse.Namespace) -> int:
    from keeper.chain.devnet import run_devnet_demo

    await asyncio.to_thread(run_devnet_demo)
    return 0


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "deploy": cmd_deploy,
    "register": cmd_register,
    "status": cmd_status,
    "devnet": cmd_devnet,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except KeeperError as exc:
        print(f"keeper: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

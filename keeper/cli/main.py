"""Command line entry point: flags -> Settings -> the command; errors -> one line, exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

from keeper import __version__
from keeper.errors import KeeperError

T = TypeVar("T")

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _common(p: argparse.ArgumentParser, title: str | None = None) -> None:
    g: Any = p.add_argument_group(title) if title else p
    g.add_argument(
        "--rpc-url",
        dest="rpc_url",
        action="append",
        help="JSON-RPC URL; more than once for failover, first preferred (env KEEPER_RPC_URL, "
        "comma-separated)",
    )
    g.add_argument("--private-key", dest="private_key", help="hex key (prefer --keystore)")
    g.add_argument("--keystore", help="encrypted JSON keystore file")
    g.add_argument("--password-file", dest="password_file", help="file with the keystore password")
    g.add_argument("--deployment", help="deployment JSON written by `keeper deploy`")
    g.add_argument("--env-file", dest="env_file", default=".env", help="dotenv file (.env)")
    g.add_argument("--log-level", dest="log_level", help="DEBUG, INFO, WARNING or ERROR")


class OneLineParser(argparse.ArgumentParser):
    """argparse prints usage plus an error; the CLI promises one line and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"keeper: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="keeper", description="Decentralized keeper network.")
    parser.add_argument("--version", action="version", version=f"keeper {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    devnet = commands.add_parser("devnet", help="run a keeper network live on an embedded chain")
    devnet.add_argument("--keepers", type=int, default=4)
    devnet.add_argument("--duration", type=float, default=None)
    devnet.add_argument("--summary-json", dest="summary_json")
    devnet.add_argument("--chain", choices=["embedded", "anvil"], default="embedded")
    devnet.add_argument(
        "--workdir", help="keep the deployment file and the keepers' stores here (default: temp)"
    )

    decode = commands.add_parser(
        "decode-error",
        help="name a revert's custom error from its data (what cast shows as 0x...)",
        description="Names a revert of the network's contracts from its raw data, e.g. the "
        "`custom error 0x109a6d73...` cast prints.",
    )
    decode.add_argument("data", metavar="HEX", help="the revert data, 0x and the selector first")

    deploy = commands.add_parser("deploy", help="deploy KeeperRegistry and TaskManager")
    _common(deploy)
    deploy.add_argument("--out", required=True, help="where to write the deployment JSON")
    deploy.add_argument(
        "--force", action="store_true", help="overwrite --out if it exists (refused otherwise)"
    )
    deploy.add_argument("--min-stake", dest="min_stake", default="1ether")
    deploy.add_argument("--unbonding-period", dest="unbonding_period", type=int, default=3600)
    deploy.add_argument("--epoch-length", dest="epoch_length", type=int, default=3600)
    deploy.add_argument("--quorum-size", dest="quorum_size", type=int, default=4)
    deploy.add_argument(
        "--turn-blocks",
        dest="turn_blocks",
        type=int,
        default=5,
        help="blocks each ranked leader has before the next may take over (every keeper reads it)",
    )
    deploy.add_argument("--gas-price-cap", dest="gas_price_cap", default="100gwei")
    deploy.add_argument(
        "--max-priority-fee",
        dest="max_priority_fee",
        default="2gwei",
        help="highest tip over the base fee an execution is billed at (default 2gwei)",
    )
    deploy.add_argument("--premium", default="0.0001ether")

    register = commands.add_parser("register", help="stake and register this keeper")
    _common(register)
    register.add_argument("--stake", required=True, help="e.g. 1ether")
    register.add_argument("--endpoint", required=True, help="http://host:port of the peer API")

    run = commands.add_parser("run", help="run the keeper node")
    _common(run)
    run.add_argument("--listen", help="host:port for the peer API (env KEEPER_LISTEN)")
    run.add_argument(
        "--admin-listen",
        dest="admin_listen",
        help="host:port for status, /healthz and /metrics (default 127.0.0.1 on the --listen "
        "port + 1; env KEEPER_ADMIN_LISTEN)",
    )
    run.add_argument("--db", help="SQLite store (env KEEPER_DB)")
    run.add_argument("--poll-interval", dest="poll_interval", type=float)
    run.add_argument(
        "--ws-url",
        dest="ws_url",
        help="new heads over WebSocket: auto (the RPC's host:port, default), off, or a ws:// URL",
    )
    run.add_argument(
        "--max-rpc-batch",
        dest="max_rpc_batch",
        type=int,
        help="Condition resolver calls per JSON-RPC batch (default 100, a common provider cap; "
        "env KEEPER_MAX_RPC_BATCH)",
    )
    _fee_flags(run)

    _add_operator_parsers(commands)

    _add_job_parsers(commands)
    _add_account_parsers(commands)
    return parser


def _add_operator_parsers(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="this keeper as the chain and its node see it: stake, earnings, wallet, epoch, "
        "quorums, health",
        description="Registration, stake, earnings, the wallet and how many executions it "
        "fronts, the epoch and this keeper's quorums (from the chain), and the node's health "
        "(from its admin listener, when it answers).",
    )
    status.add_argument(
        "--url",
        default="http://127.0.0.1:8701",
        help="the node's admin listener (its --admin-listen; default the peer port 8700 + 1)",
    )
    status.add_argument(
        "--address", metavar="ADDR", help="whose status (default: the key's, else the node's)"
    )
    status.add_argument("--json", action="store_true", help="one JSON object, wei and unix times")
    _common(status, CONNECTION)

    withdraw = commands.add_parser(
        "withdraw",
        help="pay this keeper's execution earnings out of the TaskManager",
        description="Pays this keeper's execution earnings out of the TaskManager.",
    )
    _common(withdraw, CONNECTION)

    stake = commands.add_parser("stake", help="add to this keeper's stake")
    stake_actions = stake.add_subparsers(dest="stake_command", required=True, metavar="ACTION")
    add = stake_actions.add_parser(
        "add",
        help="add AMOUNT to the stake (at least a tenth of the minimum); counts from the next "
        "epoch",
        description="Adds AMOUNT to this keeper's stake; it counts from the next epoch.",
    )
    add.add_argument("amount", metavar="AMOUNT", help=AMOUNT[1])
    _common(add, CONNECTION)

    endpoint = commands.add_parser("endpoint", help="change the URL peers reach this keeper at")
    endpoint_actions = endpoint.add_subparsers(
        dest="endpoint_command", required=True, metavar="ACTION"
    )
    set_ = endpoint_actions.add_parser(
        "set",
        help="register a new peer API URL",
        description="Registers URL as this keeper's peer API endpoint.",
    )
    set_.add_argument("url", metavar="URL", help="http(s)://host:port of the peer API")
    _common(set_, CONNECTION)

    exit_ = commands.add_parser(
        "exit",
        help="leave the keeper set (unbonding starts); --withdraw takes the stake back after",
        description="Asks to leave the keeper set: the keeper serves to the end of the next "
        "epoch and its stake unbonds. Once unbonded, `keeper exit --withdraw` pays it back.",
    )
    exit_.add_argument(
        "--withdraw", action="store_true", help="take the stake back (after unbonding)"
    )
    _common(exit_, CONNECTION)


def _fee_flags(run: argparse.ArgumentParser) -> None:
    fees = run.add_argument_group("fees (README, Fees)")
    fees.add_argument(
        "--gas-price-cap-gwei",
        dest="gas_price_cap_gwei",
        type=float,
        help="never offer a max fee above this (default 100; also held to the contract's cap)",
    )
    fees.add_argument(
        "--priority-fee-floor-gwei",
        dest="priority_fee_floor_gwei",
        type=float,
        help="least tip offered (default 0.001)",
    )
    fees.add_argument(
        "--priority-fee-ceiling-gwei",
        dest="priority_fee_ceiling_gwei",
        type=float,
        help="most tip offered (default 100; also held to the contract's maxPriorityFee)",
    )
    fees.add_argument(
        "--priority-fee-percentile",
        dest="priority_fee_percentile",
        type=float,
        help="tip = this percentile of recent blocks' tips (default 50)",
    )
    fees.add_argument(
        "--max-in-flight",
        dest="max_in_flight",
        type=int,
        help="pending transactions before new sends are refused (default 16)",
    )
    fees.add_argument(
        "--max-batch-gas",
        dest="max_batch_gas",
        type=int,
        help="gas limit of one execute transaction; a head's rounds are split into batches "
        "within it and within half the block gas limit (default 15000000; env "
        "KEEPER_MAX_BATCH_GAS)",
    )


JOB_CREATE_USAGE = (
    "keeper job create --target ADDR --calldata HEX\n"
    "         (--every DURATION | --cron EXPR | --on-event ADDR:TOPIC0[:CONFIRMATIONS] |\n"
    "          --when RESOLVER:CALLDATA[:MODE]) [options]"
)
JOB_CREATE_EPILOG = """\
triggers (give exactly one):
  --every 60s                  Time: one round per DURATION (30s, 5m, 1h, 1d or bare seconds;
                               the contract's minimum is 10s), on the grid start + k*interval
  --cron "*/5 * * * *"         Cron: five crontab fields with classic cron's meaning, in UTC
                               (0 and 7 = Sunday; day of month OR day of week when both set)
  --on-event ADDR:TOPIC0[:N]   Event: each log of ADDR whose topic0 is TOPIC0 (32 bytes of hex,
                               or a signature such as "DemoEvent(address,uint256,uint256)"),
                               once N blocks confirm it (default 0, at most 64)
  --when RESOLVER:CALLDATA[:MODE]
                               Condition, checked every block (--min-interval apart):
                 mode 0        (default) eth_call RESOLVER with CALLDATA (hex, or a no-argument
                               signature such as "checker()"); it returns (bool canExec, bytes
                               payload) and the payload is the whole calldata sent to --target
                 mode 1        Automation-compatible: RESOLVER is the target itself and CALLDATA
                               is its checkData; keepers call checkUpkeep(checkData) and execute
                               performUpkeep(performData). --target defaults to RESOLVER and
                               --calldata may be omitted; ADDR::1 means empty checkData

--calldata takes hex (0x optional) or a no-argument signature such as "onTime()"; --when jobs
take their calldata from the resolver, so for them it is optional and only recorded.

examples:
  keeper job create --target 0xTarget --calldata "onTime()" --every 60s
  keeper job create --target 0xTarget --calldata "onCron()" --cron "*/5 * * * *" --fund 0.1ether
  keeper job create --target 0xTarget --calldata "onEvent()" \\
                    --on-event "0xTarget:DemoEvent(address,uint256,uint256):2"
  keeper job create --target 0xTarget --when "0xTarget:checker()" --min-interval 5
  keeper job create --when 0xTarget::1
"""


CONNECTION = "chain, key and deployment"
JOB_ID = ("id", "the job's id (as `job create` printed it)")
AMOUNT = ("amount", "e.g. 0.1ether, 500gwei or a number of wei")
NEW_OWNER = ("new_owner", "the proposed owner's address (0x0 withdraws an offer)")


def _add_job_parsers(commands: Any) -> None:
    job = commands.add_parser(
        "job",
        help="create and manage jobs (job owners)",
        description="Create, inspect and manage jobs on the TaskManager of --deployment.",
    )
    actions = job.add_subparsers(dest="job_command", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="register and fund a job; prints its id",
        usage=JOB_CREATE_USAGE,
        description="Registers a job with TaskManager.createJob, funds it and prints its id.\n"
        "Every flag is checked before anything is sent; a revert is reported by its custom error.",
        epilog=JOB_CREATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = create.add_argument_group("what each execution calls")
    what.add_argument("--target", metavar="ADDR", help="contract to call")
    what.add_argument("--calldata", metavar="HEX", help="calldata for the target (see below)")
    trigger = create.add_argument_group("trigger (exactly one; see below)")
    trigger.add_argument("--every", metavar="DURATION", help="Time job: 30s, 5m, 1h, 1d, 60")
    trigger.add_argument("--cron", metavar="EXPR", help='Cron job: e.g. "*/5 * * * *" (UTC)')
    trigger.add_argument(
        "--on-event", dest="on_event", metavar="ADDR:TOPIC0[:CONFIRMATIONS]", help="Event job"
    )
    trigger.add_argument("--when", metavar="RESOLVER:CALLDATA[:MODE]", help="Condition job")
    settings = create.add_argument_group("job settings")
    settings.add_argument(
        "--gas-limit", dest="gas_limit", metavar="N", help="gas forwarded to the target (200000)"
    )
    settings.add_argument(
        "--threshold",
        metavar="SHARE",
        help="share of the quorum's stake that must sign: 0.67 (default), 67%% or 6667bps; "
        "above 0.5, at most 1",
    )
    settings.add_argument(
        "--fund",
        metavar="AMOUNT",
        help="deposit, e.g. 0.1ether (default: 10 x requiredDeposit(gas limit), ten "
        "worst-case executions)",
    )
    settings.add_argument("--start", metavar="UNIX", help="first slot / start time (default: now)")
    settings.add_argument("--end", metavar="UNIX", help="no execution after this time")
    settings.add_argument(
        "--max-executions", dest="max_executions", metavar="N", help="stop after N rounds"
    )
    settings.add_argument(
        "--min-interval",
        dest="min_interval",
        metavar="BLOCKS",
        help="--when jobs: blocks between executions (default 1)",
    )
    settings.add_argument(
        "--max-gas-price",
        dest="max_gas_price",
        metavar="PRICE",
        help="most the job pays per gas, e.g. 50gwei; keepers wait while the chain's price "
        "is above it (default: no cap of its own)",
    )
    checks = create.add_argument_group(
        "checked before it is sent: the target called from the job's own caller with its gas "
        "limit, the resolver as keepers call it, the event among the emitter's recent logs"
    )
    checks.add_argument(
        "--emitter-abi",
        dest="emitter_abi",
        metavar="FILE",
        help="--on-event jobs: the emitter's ABI (JSON list or artifact); topic0 must be one of "
        "its events",
    )
    checks.add_argument(
        "--force", action="store_true", help="create the job even if a check refuses it"
    )
    _common(create, CONNECTION)

    _add_watch_parser(actions)

    simple: list[tuple[str, str, list[tuple[str, str]]]] = [
        (
            "list",
            "every job: id, kind, status, state (never Active for a job that cannot run), round, "
            "last cursor, balance, target",
            [],
        ),
        (
            "show",
            "one job: spec, state and why, next run, deposited, spent, average cost, runway, "
            "executions",
            [JOB_ID],
        ),
        ("fund", "add AMOUNT to a job's balance (anyone may fund)", [JOB_ID, AMOUNT]),
        ("pause", "stop a job's executions until resume (owner only)", [JOB_ID]),
        ("resume", "let a paused job execute again (owner only)", [JOB_ID]),
        (
            "cancel",
            "end a job for good; its balance can be withdrawn 128 blocks later (owner only)",
            [JOB_ID],
        ),
        ("withdraw", "pay a cancelled job's balance back to its owner (owner only)", [JOB_ID]),
        (
            "transfer",
            "offer a job to a new owner, who takes it with `job accept` (owner only)",
            [JOB_ID, NEW_OWNER],
        ),
        ("accept", "take over a job offered to this account", [JOB_ID]),
        (
            "max-failures",
            "set how many failed executions in a row pause the job (default 3; 0 = never; "
            "owner only)",
            [JOB_ID, ("count", "failures in a row, 0-254 (0: never pause)")],
        ),
    ]
    for name, text, positionals in simple:
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        for dest, helptext in positionals:
            action.add_argument(dest, metavar=dest.upper(), help=helptext)
        if name == "list":
            action.add_argument("--owner", metavar="ADDR", help="only this owner's jobs")
        if name in ("list", "show"):
            action.add_argument(
                "--admin-url",
                dest="admin_url",
                metavar="URL",
                help="a node's admin listener: its own evaluation of the job (why it waits) "
                "beside the chain's",
            )
        if name == "show":
            action.add_argument(
                "--limit",
                type=int,
                metavar="N",
                help="the newest N executions (default 20; with --csv: all)",
            )
            action.add_argument(
                "--csv", action="store_true", help="only the executions, as CSV (time, reason...)"
            )
        _common(action, CONNECTION)


def _add_watch_parser(actions: Any) -> None:
    watch = actions.add_parser(
        "watch",
        help="follow jobs: executions, failures, pauses, underfunding, low runway; lines and a "
        "webhook",
        description="Follows jobs (the IDs given, or every job of --owner, by default the key's "
        "account) and prints what happens to them: executions, failures with their reason, "
        "pauses (auto-pauses after failures), top-ups, underfunding and low runway. With "
        '--webhook each is also POSTed as JSON, a Slack-compatible {"text": ...}.',
    )
    watch.add_argument("ids", nargs="*", metavar="ID", help="the jobs to follow")
    watch.add_argument("--owner", metavar="ADDR", help="follow every job of ADDR, new ones too")
    watch.add_argument("--webhook", metavar="URL", help="POST each report here as JSON")
    watch.add_argument(
        "--low-runway",
        dest="low_runway",
        default="10",
        metavar="N|TIME",
        help="report a runway below N executions (default 10) or below a time: 12h, 2d",
    )
    watch.add_argument(
        "--from-block",
        dest="from_block",
        type=int,
        metavar="B",
        help="start at block B (default: the next block)",
    )
    watch.add_argument(
        "--to-block", dest="to_block", type=int, metavar="B", help="stop after block B"
    )
    watch.add_argument(
        "--poll-interval",
        dest="poll_interval",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds between looks at the chain (default 2)",
    )
    _common(watch, CONNECTION)


def _add_account_parsers(commands: Any) -> None:
    account = commands.add_parser(
        "account",
        help="create or inspect an encrypted keystore",
        description="Encrypted JSON keystores (eth-account, scrypt) for --keystore.",
    )
    actions = account.add_subparsers(dest="account_command", required=True, metavar="ACTION")
    for name, text in (
        (
            "new",
            "create a key, write it encrypted to --keystore and print its address "
            "(never overwrites a file)",
        ),
        ("show", "decrypt --keystore and print its address"),
    ):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("--keystore", metavar="FILE", help="the keystore file")
        action.add_argument(
            "--password-file", dest="password_file", metavar="FILE", help="file with the password"
        )
        action.add_argument("--env-file", dest="env_file", default=".env", help="dotenv file")


def _settings(args: argparse.Namespace) -> Any:
    from keeper.config import load_settings

    return load_settings(vars(args), os.environ, getattr(args, "env_file", ".env"))


def _configure_logging(level: str) -> None:
    from keeper.monitor.logs import LOG_FORMAT, install_redaction

    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    install_redaction()  # no log line carries an RPC URL's path, query or user info
    # Their INFO lines are per request / per job run: noise next to the node's own events.
    # web3's WebSocket provider also names the whole URL (a hosted RPC's API key) on every
    # connect; keeper.chain.heads says what matters without it.
    for noisy in ("apscheduler", "aiohttp.access", "web3.providers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def cmd_run(args: argparse.Namespace) -> int:
    from keeper.app import run_node

    settings = _settings(args)
    _configure_logging(settings.log_level)
    return await run_node(settings)


async def cmd_deploy(args: argparse.Namespace) -> int:
    from keeper.cli.deploy import deploy

    return await deploy(_settings(args), args)


async def cmd_register(args: argparse.Namespace) -> int:
    from keeper.cli.operator import register

    return await register(_settings(args), args)


async def cmd_decode_error(args: argparse.Namespace) -> int:
    from keeper.chain.contracts import decode_revert_data
    from keeper.errors import ValidationError

    text = args.data.strip()
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        data = bytes.fromhex(digits)
    except ValueError as exc:
        raise ValidationError(f"invalid revert data {text!r}: expected hex") from exc
    if len(data) < 4:
        raise ValidationError(f"invalid revert data {text!r}: shorter than a 4-byte selector")
    revert = decode_revert_data(data)
    if revert.error_name == "Unknown":
        raise ValidationError(f"0x{data[:4].hex()} is no error of the network's contracts")
    print(revert)
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    from keeper.cli.status import status

    return await status(_settings(args), args)


async def cmd_operator(args: argparse.Namespace) -> int:
    from keeper.cli import operator

    settings = _settings(args)
    command = {
        "withdraw": operator.withdraw_earnings,
        "stake": operator.stake_add,
        "endpoint": operator.endpoint_set,
        "exit": operator.exit_network,
    }[args.command]
    return await command(settings, args)


async def cmd_devnet(args: argparse.Namespace) -> int:
    from keeper.devnet import DevnetOptions, run_devnet

    _configure_logging("WARNING")
    options = DevnetOptions(
        keepers=args.keepers,
        duration=args.duration,
        summary_json=args.summary_json,
        chain=args.chain,
        workdir=args.workdir,
    )
    return await run_devnet(options, lambda line: print(line, flush=True))


async def cmd_job(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.job_command == "create":
        from keeper.cli.jobspec import draft_from_flags

        # Checked again inside; here it fails fast, before web3 takes a second or two to import.
        draft_from_flags(args)
    from keeper.cli.job import JOB_COMMANDS
    from keeper.cli.job_view import VIEW_COMMANDS

    if args.job_command == "watch":
        from keeper.cli.watch import job_watch

        return await job_watch(settings, args)
    command = VIEW_COMMANDS.get(args.job_command) or JOB_COMMANDS[args.job_command]
    return await command(settings, args)


async def cmd_account(args: argparse.Namespace) -> int:
    from keeper.cli.account import account_new, account_show

    settings = _settings(args)
    if args.account_command == "new":
        return await account_new(settings)
    return await account_show(settings)


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "deploy": cmd_deploy,
    "decode-error": cmd_decode_error,
    "register": cmd_register,
    "status": cmd_status,
    "withdraw": cmd_operator,
    "stake": cmd_operator,
    "endpoint": cmd_operator,
    "exit": cmd_operator,
    "devnet": cmd_devnet,
    "job": cmd_job,
    "account": cmd_account,
}


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Runs a command on uvloop (libuv's event loop) where it is installed, on asyncio's own loop
    elsewhere (uvloop has no Windows build). A node is event-loop work: socket reads and writes,
    callbacks, and a wake-up from the database thread for every statement; on asyncio's loop
    that machinery was about a sixth of a keeper's CPU (docs/benchmarks.md, batch section)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_loop(COMMANDS[args.command](args))
    except KeeperError as exc:
        from keeper.core.redact import redact_urls

        print(f"keeper: error: {redact_urls(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

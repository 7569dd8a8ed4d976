"""Command line entry point: parse flags, run the command, turn errors into exit codes."""

from __future__ import annotations

import argparse
import sys

from keeper import __version__
from keeper.errors import KeeperError

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keeper", description="Decentralized keeper network.")
    parser.add_argument("--version", action="version", version=f"keeper {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("devnet", help="run a keeper network live on an embedded chain (demo)")
    return parser


def run_devnet() -> int:
    # Imported here so `keeper --help` stays fast and does not load web3.
    from keeper.chain.devnet import run_devnet_demo

    run_devnet_demo()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "devnet":
            return run_devnet()
        raise AssertionError(f"unhandled command {args.command!r}")
    except KeeperError as exc:
        print(f"keeper: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

"""The command line: `main` is the `keeper` entry point (keeper.cli.main holds the parser).

One module per command group (deploy, operator, account, job); chain_io holds what the
chain-touching commands share, jobspec the pure checks of `job create`'s flags.
"""

from keeper.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

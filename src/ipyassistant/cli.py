"""The ``ipyassistant`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    from .server.cli import add_serve_parser
    from .server.cli_db import add_db_parser
    from .server.cli_keys import add_keys_parser

    parser = argparse.ArgumentParser(
        prog="ipyassistant", description="Stateful LLM assistants for Jupyter."
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    add_serve_parser(commands)
    add_keys_parser(commands)
    add_db_parser(commands)
    demo = commands.add_parser(
        "demo", help="talk to an assistant on the embedded server, in the terminal"
    )
    demo.add_argument(
        "--model", default=None, help="the model (default: IPYASSISTANT_MODEL, else test)"
    )
    demo.add_argument(
        "message", nargs="*", help="what to say (default: a short scripted conversation)"
    )
    demo.set_defaults(handler=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.model, " ".join(args.message) or None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

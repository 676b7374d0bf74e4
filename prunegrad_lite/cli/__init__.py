"""Command-line interface: ``prunegrad-lite <command>`` (or ``python -m prunegrad_lite <command>``).

Each subcommand is a :class:`Command` in ``COMMANDS``, one module each in this package
(:mod:`.info`, :mod:`.train`, :mod:`.explain`, :mod:`.reproduce`): a function that adds its
arguments and a function that runs it and returns the exit code. Adding one is a small module
and one line. Every error ends the command with one readable line on stderr and a non-zero
exit code (1; 2 for bad arguments, 130 when interrupted); an unexpected one (a bug, or an input
nothing checked) says so. ``--debug`` (before or after the command) or
``PRUNEGRAD_LITE_DEBUG=1`` prints the traceback as well. Output paths (``--out``) are checked
for writability before any work (:mod:`.common`).

Example
-------
$ prunegrad-lite info
$ prunegrad-lite train --dataset fashion_mnist --full --epochs 4 --seed 0 --out runs/model.pt
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prunegrad_lite.cli import explain, info, reproduce, train
from prunegrad_lite.cli.common import DEBUG_ENV, PROG

__all__ = ["COMMANDS", "Command", "build_parser", "main"]


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # returns the exit code


COMMANDS: dict[str, Command] = {
    "info": Command(info.HELP, info.add_arguments, info.run),
    "train": Command(train.HELP, train.add_arguments, train.run),
    "explain": Command(explain.HELP, explain.add_arguments, explain.run),
    "reproduce": Command(reproduce.HELP, reproduce.add_arguments, reproduce.run),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subparser per entry of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="PruneGrad attribution and its benchmarks, for teaching."
    )
    debug_help = f"print the traceback of an error too (or set {DEBUG_ENV}=1)"
    parser.add_argument("--debug", action="store_true", help=debug_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub_parser)
        sub_parser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=debug_help
        )
    return parser


def _one_line(err: BaseException) -> str:
    """The error as one readable line: its message (whitespace collapsed), else its type."""
    text = " ".join(str(err).split())
    if isinstance(err, KeyError) and len(err.args) == 1:
        text = repr(err.args[0])
    expected = isinstance(err, (ValueError, TypeError, OSError, ImportError, RuntimeError))
    if not text or not expected:
        text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if not expected:
        text += f" (unexpected; rerun with --debug or {DEBUG_ENV}=1 for the traceback)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 success, 1 failed, 2 bad arguments)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse has printed usage and the message (or the help)
        return stop.code if isinstance(stop.code, int) else 2
    args.argv = None if argv is None else list(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every error: one line (the traceback too with --debug)
        if debug:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1

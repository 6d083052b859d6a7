"""The ``av-link`` entry point: builds the parser from the registered subcommands and runs one of them."""

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from . import BUILTIN_MODULES, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, PROG, SUBCOMMAND_MODULES, SUBCOMMANDS, CLIError
from .helpers import _one_line


class _UsageError(CLIError):
    def __init__(self, message: str):
        super().__init__(message, EXIT_USAGE)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse prints the usage block and calls sys.exit on bad arguments; we want one line and a return code."""

    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def build_parser() -> argparse.ArgumentParser:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    for module in SUBCOMMAND_MODULES:  # after the built-ins, so they may replace one
        importlib.import_module(module)
    from .. import __version__

    parser = _ArgumentParser(
        prog=PROG,
        description="AV-Link: video-to-audio and audio-to-video generation with Fusion Blocks between frozen DiTs.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for user errors too")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    for name, command in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.description or command.help)
        command.add_arguments(child)
        # accepted after the subcommand too; `main` looks for it in argv before parsing
        child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        child.set_defaults(_run=command.run)
    return parser


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return _one_line(err) or type(err).__name__


def _print_error(message: str) -> None:
    sys.stderr.flush()
    print(f"{PROG}: error: {_one_line(message) or 'unknown error'}", file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = bool(os.environ.get("AV_LINK_DEBUG")) or "--debug" in argv
    try:
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help / --version
            return stop.code if isinstance(stop.code, int) else 0
        if args.command is None:
            _print_error(f"choose a command: {', '.join(SUBCOMMANDS)} (see '{PROG} --help')")
            return EXIT_USAGE
        args.seed_used = getattr(args, "seed", None)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except CLIError as err:
        if debug:
            raise
        _print_error(str(err))
        return err.exit_code
    except (ValueError, OSError) as err:  # MediaError is a ValueError; FileNotFoundError/EnvironmentError are OSErrors
        if debug:
            raise
        _print_error(_describe(err))
        return EXIT_FAILURE



if __name__ == "__main__":
    sys.exit(main())

"""The ``av-link`` command line, one module per subcommand (as diffusers' ``commands/``).

    av-link v2a --model DIR --video in.mp4 --out out.mp4 [--wav] [--prompt ...]
    av-link a2v --model DIR --audio in.wav --out out.mp4 [--height H --width W] [--prompt ...]
    av-link v2a --model DIR --video clips/ --out outs/     # every clip of a folder (a2v too; see :mod:`.batch`)
    av-link t2a --model DIR --prompt ... --out out.wav [--seconds S]
    av-link t2v --model DIR --prompt ... --out out.mp4 [--seconds S]
    av-link t2av --model DIR --audio-prompt ... --video-prompt ... --out out.mp4   # a joint model: both together

The entry point is :func:`av_link.commands.av_link_cli.main` (``av-link`` and ``python -m av_link.cli``). It takes
an argv list and returns the exit code, so tests and other programs can call it in-process.

User errors (missing or unreadable inputs, a file without the needed stream, a directory that is not an av-link
checkpoint, bad option values, ...) end with one line ``av-link: error: <message>`` on stderr and a non-zero exit
code (2 for command lines argparse rejects, 1 otherwise); nothing is left at ``--out``. Set ``AV_LINK_DEBUG=1`` (or pass
``--debug``) to get the full traceback instead.

Nothing here or in a subcommand module imports torch, diffusers or transformers at import time: ``av-link --help``
builds every subcommand's parser, and must answer at once. Import them inside the ``run`` function.

Adding a subcommand
-------------------
Every subcommand is one entry of :data:`SUBCOMMANDS`, made by the :func:`subcommand` decorator::

    def _add_make_synthetic_arguments(parser):           # fills the subcommand's argparse parser
        parser.add_argument("--out", required=True)
        add_device_arguments(parser)                     # shared option groups are available

    @subcommand("make-synthetic", help="write a SynthHits dataset", arguments=_add_make_synthetic_arguments)
    def run_make_synthetic(args) -> int:                 # gets the parsed namespace, returns the exit code
        ...
        if bad:
            raise CLIError("one-line message")          # -> "av-link: error: one-line message", exit 1
        return 0

Built-in subcommands live in this package and are listed in :data:`BUILTIN_MODULES` (in ``--help`` order). A
module elsewhere calls :func:`register_subcommand` and adds its name to :data:`SUBCOMMAND_MODULES`, which the parser
imports first. Raise :class:`CLIError`, ``ValueError`` or ``OSError`` (``MediaError`` is a ``ValueError``) for user
errors; anything else is treated as a bug and shows its traceback. Helpers for the common chores are in
:mod:`.arguments` (option types and groups), :mod:`.helpers` (:func:`check_output_path`, :func:`check_input_file`,
:func:`resolve_device`, :func:`make_generator`) and :mod:`.loading` (:func:`load_pipeline`).
"""

import argparse
from dataclasses import dataclass
from typing import Callable, Dict, Optional

PROG = "av-link"

# Exit codes: 2 for command lines argparse rejects, 1 for every other error.
EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """A user error: printed as one line ``av-link: error: <message>``, never with a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: Optional[str] = None


SUBCOMMANDS: Dict[str, Subcommand] = {}

# This package's subcommand modules, imported by the parser in this order (the order of `av-link --help`).
BUILTIN_MODULES = ("v2a", "a2v", "text_only", "text_to_audio_video", "make_synthetic", "evaluate", "demo")

# Modules that register subcommands with `register_subcommand` when imported (e.g. "av_link.data.cli").
SUBCOMMAND_MODULES: list = []


def register_subcommand(name: str, *, help: str, arguments: Callable, run: Callable, description: str = None):
    """Add (or replace) the subcommand `name`: `arguments(parser)` declares its options, `run(args) -> int` runs it."""
    SUBCOMMANDS[name] = Subcommand(name, help, arguments, run, description)
    return run


def subcommand(name: str, *, help: str, arguments: Callable, description: str = None):
    """Decorator form of :func:`register_subcommand`."""

    def decorate(run):
        return register_subcommand(name, help=help, arguments=arguments, run=run, description=description)

    return decorate

"""The ``av-link`` command line (``python -m av_link.cli``). The commands live in :mod:`av_link.commands`, one module
each; this module is the console-script entry point and keeps the names it used to define importable from here."""

import sys

from .commands import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    SUBCOMMAND_MODULES,
    SUBCOMMANDS,
    CLIError,
    Subcommand,
    register_subcommand,
    subcommand,
)
from .commands.arguments import (
    AUDIO_EXTENSIONS,
    DTYPES,
    VIDEO_EXTENSIONS,
    add_device_arguments,
    add_model_argument,
    add_output_argument,
    add_sampling_arguments,
    non_negative_float,
    positive_float,
    positive_int,
    seed_int,
    unit_interval,
)
from .commands.av_link_cli import build_parser, main
from .commands.helpers import check_input_file, check_output_path, dtype_name, make_generator, resolve_device, resolve_dtype
from .commands.loading import check_pipeline_dir, load_pipeline

if __name__ == "__main__":
    sys.exit(main())

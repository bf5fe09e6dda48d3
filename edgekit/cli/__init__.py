"""The `edgekit` command: one module per verb (predict, convert, inspect, val, benchmark, devices, profile),
each parsing its arguments, calling the API and printing; `main` turns errors into one line and an exit code."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from edgekit import __version__
from edgekit.cli import benchmark, convert, devices, inspect, predict, profile, val
from edgekit.errors import EdgekitError, first_line

VERBS = (predict, convert, inspect, val, benchmark, devices, profile)
# torch's OpenMP worker threads (a checkpoint run in torch by `val`, the INT8 budget's reference, conversions)
# sleep when idle instead of spin-waiting, as ONNX Runtime's do in runtimes/ort.py: read once, when torch is
# first imported. On the 2-core build machine under load (average 28), a yolo26n forward pass at 640 on 2
# threads took a median 776 ms sleeping against 13.1 s spinning (1 thread: 681 and 875 ms; one process per
# setting, alternating 1 and 2 threads): a spinning thread holds a core the other thread of the run waits for.
TORCH_IDLE_THREADS = ("OMP_WAIT_POLICY", "PASSIVE")


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a one-line usage error (``edgekit VERB: error: MESSAGE (see edgekit VERB --help)``,
    exit 2) instead of the usage block; the verbs' parsers are of this class too (add_subparsers' default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `edgekit` and all its verbs."""
    parser = _Parser(
        prog="edgekit", description="Deploy real-time object detectors to CPUs, phones and the Raspberry Pi."
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    parser.add_argument("--verbose", action="store_true", help="let other libraries' messages through")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.add_parser(verbs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run `edgekit` with `argv` (default: the command line); returns the exit code: 0 done, 1 an error (one
    `edgekit: error:` line on stderr), 2 a usage error, 130 interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from edgekit.logs import VERBOSE_ENV, shown

    if args.verbose:
        os.environ[VERBOSE_ENV] = "1"
    os.environ.setdefault(*TORCH_IDLE_THREADS)  # a user's own OMP_WAIT_POLICY wins
    try:
        # a conversion's progress lines go to stdout; a benchmark's to stderr (its table is the output)
        info_stream = sys.stderr if args.verb == "benchmark" else None
        with shown(info=args.verb in ("convert", "benchmark"), info_stream=info_stream):
            return args.func(args)
    except EdgekitError as exc:
        print(f"edgekit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("edgekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an unforeseen input: one line, the traceback on request
        if args.debug:
            raise
        print(f"edgekit: error: unexpected {first_line(exc, typed=True)} (run with --debug for the traceback)",
              file=sys.stderr)
        return 1

"""What every benchmark shares about the machine it measures on: competing load (``--load N`` starts N busy
worker processes), the regimes a run reports (the machine to itself, then loaded), a one-line description of
the machine, and side-by-side runs that take turns in separate processes.

A device runs one detector with its cores to itself; a build machine runs it beside other jobs. The two
favour different engine settings (idle workers spinning or sleeping), so each benchmark prints both when
asked. Side-by-side runs never keep two engines alive at once: each runs in its own process, in turn, so a
spinning engine's workers cannot slow the next one's frames.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence

SPIN = "import time\nwhile True:\n    time.perf_counter()\n"  # one busy core per worker, no memory traffic


def add_load_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--load N`` option of every benchmark."""
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="also measure with N busy worker processes competing for the cores (default: only the "
                             "machine as it is)")


def add_child_arguments(parser: argparse.ArgumentParser) -> None:
    """The hidden options a benchmark starts its own measuring processes with: the model file, its engine, and
    whether the machine counts as shared (EngineSettings.shared: --shared, --no-shared, or neither: decided
    from the machine's load when the engine opens, as edgekit's default does)."""
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    parser.add_argument("--shared", action="store_const", const=True, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-shared", dest="shared", action="store_const", const=False, help=argparse.SUPPRESS)


@contextlib.contextmanager
def busy_workers(count: int) -> Iterator[None]:
    """`count` processes that each keep one core busy until the block ends (none for 0)."""
    workers = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield
    finally:
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.wait()


def regimes(load: int) -> list[int]:
    """Busy-worker counts to measure under: the machine as it is (0), then `load` workers if asked."""
    return [0] + ([load] if load > 0 else [])


def regime_label(workers: int) -> str:
    """How a table names a regime."""
    return "machine as it is (no competing load)" if not workers else f"{workers} busy worker processes competing"


def machine_line() -> str:
    """Architecture, cores, Python and the load average when the run started (a shared machine's figures differ
    from a quiet one's: say which it was)."""
    try:
        load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    return (f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}, "
            f"load average {load}")


def run_child(command: Sequence[str], timeout: float = 600) -> dict:
    """Run one measurement in its own process; it prints one JSON object as its last stdout line. Raises
    RuntimeError when it fails or runs longer than `timeout` seconds."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out after {timeout:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        errors = [line for line in said if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b.*:", line)]
        why = (errors or said or [f"exited with {done.returncode} and printed nothing"])[-1]
        raise RuntimeError(why[:300])
    return json.loads(lines[-1])


def in_turns(commands: dict[str, Sequence[str]], rounds: int) -> dict[str, list[dict]]:
    """Run every command once per round, in turn, each in a fresh process (never two alive at once); the
    order rotates each round so no command always follows the same one. Returns each command's results; a
    command that failed once is not run again, and its list ends with ``{"error": why}``."""
    results: dict[str, list[dict]] = {label: [] for label in commands}
    labels = list(commands)
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[: r % len(labels)]:
            if results[label] and "error" in results[label][-1]:
                continue
            try:
                results[label].append(run_child(commands[label]))
            except RuntimeError as exc:
                results[label].append({"error": str(exc)})
    return results


def medians(runs: list[dict], keys: Sequence[str]) -> dict[str, float] | str:
    """Median of each key over a command's successful runs (from :func:`in_turns`; a value may be one number per
    run or a list per run), or why it failed when none succeeded."""
    done = [r for r in runs if "error" not in r]
    if not done:
        return runs[-1]["error"] if runs else "not run"
    flat = {key: [v for r in done for v in (r[key] if isinstance(r[key], list) else [r[key]])] for key in keys}
    return {key: statistics.median(values) for key, values in flat.items()}


def print_json_line(data: dict) -> None:
    """What a child measurement prints last (see :func:`run_child`)."""
    print(json.dumps(data), flush=True)

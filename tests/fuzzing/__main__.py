"""Run one fuzz target with atheris (libFuzzer): ``python -m fuzzing TARGET SECONDS [--work DIR]``, or
``python -m fuzzing seeds --work DIR`` to build the seed corpus only. scripts/fuzz.sh is the way in.

A finding is any input on which the target raises (see fuzzing.targets), runs over TIMEOUT_S, or makes the
process's peak virtual memory grow by over MEMORY_MB; libFuzzer writes it to DIR/findings/ and the run exits
non-zero. The corpus grown in DIR/corpus/TARGET is kept for the next run. The last line printed gives the run's
figures: executions, coverage (libFuzzer's edge count), corpus size and findings.
"""

from __future__ import annotations

import argparse
import logging
import random
import resource
import sys
import tempfile
from pathlib import Path

TIMEOUT_S = 2
MEMORY_MB = 256
HEADROOM_MB = 1024  # address space a run may take beyond its start (so one allocation cannot take the machine)


def _vm_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmPeak:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def replay(target: str, path: Path) -> int:
    """Run `target` once on the file `path`, timing the call alone; 0 when it returns within TIMEOUT_S, 1 when
    it does not (a finding raises)."""
    import time

    from fuzzing import targets

    targets.run(target, b"")  # imports and first-use set-up, not timed
    start = time.perf_counter()
    targets.run(target, path.read_bytes())
    elapsed = time.perf_counter() - start
    print(f"{target} {path.name}: {elapsed:.2f} s")
    return 0 if elapsed <= TIMEOUT_S else 1


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzzing")
    parser.add_argument("target")
    parser.add_argument("seconds", nargs="?", type=int, default=60)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgekit-fuzz")
    parser.add_argument("--replay", type=Path, help="run the target once on this file instead of fuzzing")
    args, libfuzzer = parser.parse_known_args(argv)
    if args.replay:
        return replay(args.target, args.replay)
    if args.target == "seeds":
        from fuzzing.seeds import BUILDERS, build

        for name in BUILDERS:
            print(build(name, args.work / "seeds"))
        return 0

    import importlib

    import atheris

    with atheris.instrument_imports(include=["edgekit"]):
        from fuzzing import targets

        for module in targets.MODULES.get(args.target, []):
            importlib.import_module(module)

    from fuzzing.seeds import MAX_LEN, build

    if args.target not in targets.TARGETS:
        parser.error(f"unknown target {args.target}; one of: {', '.join(targets.TARGETS)}")
    seeds = build(args.target, args.work / "seeds")
    corpus = args.work / "corpus" / args.target
    findings = args.work / "findings" / args.target
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)

    logging.getLogger("edgekit").setLevel(logging.CRITICAL)  # the coco target's warnings, once per input
    for seed in sorted(seeds.iterdir()):  # warm up: imports and lazy initialisation happen before measuring
        targets.run(args.target, seed.read_bytes())
    baseline = _vm_peak_mb()
    limit = _vm_size() + HEADROOM_MB * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def one_input(data: bytes) -> None:
        targets.run(args.target, data)
        grown = _vm_peak_mb() - baseline
        if grown > MEMORY_MB:
            raise MemoryError(f"peak memory grew by {grown:.0f} MB on a {len(data)}-byte input")

    custom = {}
    if args.target == "checkpoint":
        from fuzzing.boundary import mutate_checkpoint

        def mutator(data: bytes, max_size: int, seed: int) -> bytes:
            rng = random.Random(seed)
            out = mutate_checkpoint(data, rng, rng.randint(1, 3))
            return out if len(out) <= max_size else data

        custom = {"custom_mutator": mutator}

    print(f"fuzzing {args.target} for {args.seconds} s: seeds {seeds}, corpus {corpus}, findings {findings}",
          flush=True)
    sys.argv = [
        sys.argv[0], str(corpus), str(seeds),
        f"-max_total_time={args.seconds}", f"-timeout={TIMEOUT_S}", f"-max_len={MAX_LEN}",
        "-rss_limit_mb=0", "-print_final_stats=1", "-print_pcs=0",
        f"-artifact_prefix={findings}/", *libfuzzer,
    ]
    atheris.Setup(sys.argv, one_input, **custom)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

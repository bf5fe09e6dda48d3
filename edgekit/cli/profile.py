"""`edgekit profile`: latency, stages, threads, operators and memory of a model file on this machine."""

from __future__ import annotations

import argparse
import sys

from edgekit.cli.argtypes import add_shared, positive, thread_list


def run(args: argparse.Namespace) -> int:
    """Profile a model file on this machine: latency percentiles and FPS, the pre / infer / post split, a threads
    sweep with idle engine threads spinning and sleeping (--shared) side by side, the file on each engine that
    opens it, per-operator times, load time, peak memory, and temperature, clock and throttling on a
    Raspberry Pi."""
    from edgekit import assets
    from edgekit.fileio import check_output_file
    from edgekit.runtimes.profile import format_report, profile_model, save_runs_csv
    from edgekit.runtimes.settings import EngineSettings

    for flag, target in (("--csv", args.csv), ("--plot", args.plot)):
        if target:  # checked before the runs, not after them
            check_output_file(target, flag)
    model = args.model if args.model else assets.default_model()  # a path that is no model is an error, not a source
    report = profile_model(
        model,
        image=args.image,
        runs=args.runs,
        warmup=args.warmup,
        threads=args.threads,
        settings=EngineSettings(shared=args.shared),
        device=args.device,
        backend=args.backend,
        sweep=[] if args.no_sweep else args.sweep,
        operators=not args.no_ops,
        engines=not args.no_engines,
        progress=None if args.quiet else progress_bars(),
    )
    if args.csv:
        save_runs_csv(report, args.csv)
    if args.plot:
        from edgekit.runtimes.profile_plot import save_plot

        save_plot(report, args.plot)
    if args.json:
        print(report.to_json())
    else:
        print(format_report(report))
        for what, path in (("csv", args.csv), ("plot", args.plot)):
            if path:
                print(f"{what:<10} {path}")
    return 0


def progress_bars():
    """A `Progress` callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="run", file=sys.stderr, leave=False)
        bars[stage].update(done - bars[stage].n)
        if done == total:
            bars.pop(stage).close()

    return progress


def add_parser(verbs) -> None:
    """Add `profile` and its options to the verbs of the `edgekit` parser."""
    p = verbs.add_parser("profile", help="measure a model's latency, stages, threads, operators and memory here",
                         description=run.__doc__)
    p.add_argument("model", nargs="?", help="model file (default: the embedded demo model)")
    p.add_argument("--image", help="image to run on (default: the bundled sample image)")
    p.add_argument("--runs", type=positive, default=100, help="timed runs (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs first (default 10)")
    p.add_argument("--threads", type=positive, help="inference threads (default: the device profile's or engine's)")
    add_shared(p)
    p.add_argument("--device", help="take threads and engine from a device profile (see: edgekit devices)")
    p.add_argument("--backend", help="force a backend (default: by file type)")
    p.add_argument("--sweep", type=thread_list, default=None,
                   help="thread counts to compare, each with --shared off and on (default 1,2,4..cores)")
    p.add_argument("--no-sweep", action="store_true", help="skip the threads sweep")
    p.add_argument("--no-ops", action="store_true", help="skip the per-operator profile")
    p.add_argument("--no-engines", action="store_true",
                   help="skip timing the file on every installed engine that opens it (an .onnx file: ONNX Runtime "
                        "and OpenVINO); done only without --backend")
    p.add_argument("--json", action="store_true", help="print the whole report (every run and sample) as JSON")
    p.add_argument("--csv", metavar="FILE", help="write one row per run (times, temperature, clock) to FILE")
    p.add_argument("--plot", metavar="PNG", help="write latency over time with temperature and clock as a PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")
    p.set_defaults(func=run)

"""Fail when a block of six or more lines stands twice in edgekit/ (one owner for every rule).

Lines are compared after folding white space; blank lines, comments, docstring-free punctuation-only lines and
import lines are passed over (as they carry no rule). A block that repeats is reported once per pair of places:

    python scripts/check_duplicates.py            # exit 1 and a line per repeated block; 0 when there is none
    python scripts/check_duplicates.py --min 8    # longer blocks only

Allowed: the architecture tables that mirror the reference repositories' configs file for file (ALLOWED below);
a repeat inside them is how the references write them, not a rule written twice.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALLOWED = (  # (glob under edgekit/, why)
    ("models/*_configs.py", "architecture tables mirroring the reference repositories' yaml/config files"),
)
_SKIP = re.compile(r"^(#.*|[\]\)\}\[\(\{,:;]*|from \S+ import .*|import .*|\"\"\"|''')$")


def _lines(path: Path) -> list[tuple[int, str]]:
    """(line number, folded text) of the lines that can carry a rule."""
    kept = []
    for number, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        text = " ".join(raw.split())
        if text and not _SKIP.match(text):
            kept.append((number, text))
    return kept


def _allowed(rel: str) -> bool:
    return any(Path(rel).match(pattern) for pattern, _ in ALLOWED)


def find_duplicates(package: Path, min_lines: int = 6) -> list[tuple[str, int, str, int, int]]:
    """Pairs of places sharing `min_lines` or more consecutive kept lines: (file a, first line a, file b,
    first line b, length in kept lines); files relative to `package`, allowed files left out."""
    files = {str(p.relative_to(package)): _lines(p) for p in sorted(package.rglob("*.py"))}
    files = {rel: lines for rel, lines in files.items() if not _allowed(rel)}
    seen: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for rel, lines in files.items():
        texts = [t for _, t in lines]
        for i in range(len(texts) - min_lines + 1):
            seen[tuple(texts[i : i + min_lines])].append((rel, i))
    pairs: dict[tuple[str, str], tuple[str, int, str, int, int]] = {}
    covered: set[tuple[str, int, str, int]] = set()
    for places in seen.values():
        if len(places) < 2:
            continue
        for a in range(len(places)):
            for b in range(a + 1, len(places)):
                (fa, ia), (fb, ib) = places[a], places[b]
                if fa == fb and abs(ia - ib) < min_lines:
                    continue  # overlapping windows of one repetitive run
                if (fa, ia - 1, fb, ib - 1) in covered:
                    covered.add((fa, ia, fb, ib))
                    continue  # the continuation of a pair already reported
                covered.add((fa, ia, fb, ib))
                length = min_lines
                la, lb = files[fa], files[fb]
                while ia + length < len(la) and ib + length < len(lb) and la[ia + length][1] == lb[ib + length][1]:
                    length += 1
                key = (f"{fa}:{la[ia][0]}", f"{fb}:{lb[ib][0]}")
                pairs[key] = (fa, la[ia][0], fb, lb[ib][0], length)
    return sorted(pairs.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=int, default=6, help="shared lines that make a repeat (default 6)")
    parser.add_argument("--package", type=Path, default=ROOT / "edgekit", help="the tree to check")
    args = parser.parse_args(argv)
    found = find_duplicates(args.package, args.min)
    for fa, la, fb, lb, length in found:
        print(f"duplicate: {fa}:{la} ~ {fb}:{lb} ({length} lines)")
    print(f"{len(found)} repeated block(s) of {args.min}+ lines in {args.package.name}/ "
          f"(allowed: {', '.join(p for p, _ in ALLOWED)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""The checkpoint boundary under mutation: real checkpoints' pickles rewritten at the opcode level (GLOBAL names,
nested REDUCE chains, memo tricks, replaced opcodes) are loaded under a tracer that records every import and
every call outside the loader's allow-list. Nothing may be imported or called, and no load may take long."""

from __future__ import annotations

import pickle
import random
import time
from pathlib import Path

import pytest

from edgekit.errors import EdgekitError
from edgekit.models.checkpoint import ALLOCATION_LIMIT, find_types, load_checkpoint, state_dict

from fuzzing.boundary import Tracer, mutate_checkpoint, pickle_member, repack
from fuzzing.seeds import tiny_checkpoints

FIXTURE = Path(__file__).parent / "fixtures" / "families" / "yolo26n.pt"
LOAD_SECONDS = 2.0  # the most one load of a mutated small checkpoint may take


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return tiny_checkpoints(tmp_path_factory.mktemp("tiny"))


def _load_traced(path: Path) -> tuple[object, list[str], float]:
    start = time.perf_counter()
    with Tracer(allowed_open=str(path)) as tracer:
        try:
            result = load_checkpoint(path)
        except EdgekitError as exc:
            result = exc
    return result, tracer.findings, time.perf_counter() - start


def test_the_tracer_sees_code_run_by_a_pickle():
    class Payload:
        def __reduce__(self):
            return (eval, ("len('x')",))

    data = pickle.dumps(Payload(), protocol=2)
    with Tracer() as tracer:
        pickle.loads(data)
    assert any("eval" in f for f in tracer.findings), tracer.findings
    with Tracer() as tracer:
        eval("len('x')")
    assert "call builtins.eval" in tracer.findings


def test_clean_checkpoints_load_inside_the_allow_list(checkpoints):
    for path in [*checkpoints, FIXTURE]:
        load_checkpoint(path)  # torch imports what it imports lazily on a first load
        result, findings, _ = _load_traced(path)
        assert not isinstance(result, EdgekitError), result
        assert findings == []


@pytest.mark.parametrize("seed", range(3))
def test_mutated_checkpoints_import_and_call_nothing(checkpoints, tmp_path, seed):
    rng = random.Random(seed)
    for path in checkpoints:
        load_checkpoint(path)
    outcomes = {"loaded": 0, "refused": 0}
    slowest = 0.0
    for n in range(50):
        source = checkpoints[n % len(checkpoints)]
        mutant = tmp_path / f"mutant{n}.pt"
        mutant.write_bytes(mutate_checkpoint(source.read_bytes(), rng, rng.randint(1, 4)))
        result, findings, elapsed = _load_traced(mutant)
        assert findings == [], f"{mutant}: {findings[:5]}"
        slowest = max(slowest, elapsed)
        if isinstance(result, EdgekitError):
            outcomes["refused"] += 1
            assert "\n" not in str(result)
            continue
        outcomes["loaded"] += 1
        try:
            record = result.model_record()
            find_types(record), state_dict(record)
        except EdgekitError:
            pass
    assert slowest < LOAD_SECONDS, f"a mutated checkpoint took {slowest:.2f} s to load"
    assert outcomes["refused"] and outcomes["loaded"], outcomes  # the mutations reach both outcomes


def test_mutated_real_checkpoint_imports_and_calls_nothing(tmp_path):
    rng = random.Random(7)
    load_checkpoint(FIXTURE)
    for n in range(2):  # each load of the 5 MB fixture under the profile hook takes seconds
        mutant = tmp_path / f"mutant{n}.pt"
        mutant.write_bytes(mutate_checkpoint(FIXTURE.read_bytes(), rng, 3))
        _, findings, _ = _load_traced(mutant)
        assert findings == [], findings[:5]


def _with_pickle(source: Path, pickle_bytes: bytes, target: Path) -> Path:
    name, members = pickle_member(source.read_bytes())
    target.write_bytes(repack({**members, name: pickle_bytes}))
    return target


@pytest.mark.parametrize(
    "call",
    [
        b"cbuiltins\nbytearray\nJ\x00\x00\x00\x40\x85R",  # bytearray(2**30)
        b"cbuiltins\nset\ncbuiltins\nbytearray\nJ\x00\x00\x00\x10\x85R\x85R",  # set(bytearray(2**28)): minutes
        b"ctorch\nFloatTensor\nJ\x00\x00\x00\x40\x85R",  # 4 GB, uninitialised
        b"ctorch\nHalfStorage\nq\x01h\x01J\x00\x00\x00\x40\x85R",  # via the memo
        b"ctorch._tensor\n_rebuild_from_type_v2\n(ctorch\nTensor\nctorch\nTensor\n(J\x00\x00\x01\x00J\x00\x00\x01\x00t"
        b"}tR",  # torch.Tensor(65536, 65536) through a rebuild
    ],
    ids=["bytearray", "set-of-bytearray", "FloatTensor", "storage-via-memo", "rebuild-from-type"],
)
def test_size_taking_constructors_are_refused_before_unpickling(checkpoints, tmp_path, call):
    path = _with_pickle(checkpoints[0], b"\x80\x02" + call + b".", tmp_path / "bomb.pt")
    result, findings, elapsed = _load_traced(path)
    assert isinstance(result, EdgekitError) and "asks a constructor for" in str(result), result
    assert findings == [] and elapsed < LOAD_SECONDS


def test_small_sizes_still_load(checkpoints, tmp_path):
    size = ALLOCATION_LIMIT.to_bytes(4, "little")
    path = _with_pickle(checkpoints[0], b"\x80\x02cbuiltins\nbytearray\nJ" + size + b"\x85R.", tmp_path / "small.pt")
    assert load_checkpoint(path).data == bytearray(ALLOCATION_LIMIT)


def test_records_in_a_circle_or_shared_a_million_times_are_refused():
    from edgekit.models.checkpoint import Record

    ring = Record()
    ring.__dict__["_modules"] = {"self": ring}
    with pytest.raises(EdgekitError, match="levels deep"):
        state_dict(ring)
    node = Record()
    for _ in range(40):  # 2**40 paths through 40 records
        parent = Record()
        parent.__dict__["_modules"] = {"a": node, "b": node}
        node = parent
    start = time.perf_counter()
    with pytest.raises(EdgekitError, match="more than"):
        find_types(node)
    assert time.perf_counter() - start < LOAD_SECONDS

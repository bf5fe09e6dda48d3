"""The checkpoint boundary, watched: what a checkpoint's pickle makes the process import and call while
edgekit loads it, and mutations of real checkpoints' pickles to try it with.

:class:`Tracer` records, while active, every import, every audited action outside reading the checkpoint
(process, exec, network, file writes...) and every call into a module outside the loader's own allow-list
(a profile hook on Python and C calls). :func:`mutate_pickle` rewrites a pickle at the opcode level: GLOBAL
names swapped for dangerous or allow-listed ones, REDUCE chains nested into it, memo slots redirected,
opcodes replaced, spans deleted or repeated.
"""

from __future__ import annotations

import importlib
import io
import pickletools
import random
import sys
import zipfile
from dataclasses import dataclass, field

# Modules whose code the loader runs: torch's weights-only unpickler and zip reader, edgekit, and the
# standard library pieces they use. A call into any other module during a load is a finding.
ALLOWED_MODULES = (
    "torch", "edgekit", "zipfile", "collections", "_collections", "io", "_io", "typing", "contextlib",
    "functools", "_functools", "pickle", "_pickle", "struct", "_struct", "enum", "abc", "_abc", "copyreg",
    "warnings", "_warnings", "re", "_sre", "sre_", "weakref", "_weakref", "_weakrefset", "codecs", "_codecs",
    "encodings", "posixpath", "genericpath", "pathlib", "fnmatch", "threading", "_thread", "dataclasses",
    "types", "copy", "math", "numbers", "operator", "_operator", "itertools", "builtins", "binascii", "zlib",
    "inspect", "dis", "linecache", "tokenize", "traceback", "textwrap", "string", "logging", "_contextvars",
    "_collections_abc", "stat", "_stat", "numpy", "atheris", "fuzzing",
)
# functions of otherwise unlisted modules that a load calls: a path's facts, torch reading its environment
# variables, `from x import y` of modules already imported, the tracer switching itself off
ALLOWED_CALLS = {
    "posix.fspath", "posix.stat", "os.getenv", "os.__getitem__", "os.encode", "sys.intern", "sys.setprofile",
    "importlib._bootstrap._handle_fromlist",
}
# Calls that are never part of loading, whatever module they live in.
FORBIDDEN_CALLS = {
    "builtins.eval", "builtins.exec", "builtins.compile", "builtins.__import__", "builtins.breakpoint",
    "builtins.input", "posix.system", "os.system", "posix.fork", "posix.execv", "posix.execve", "posix.kill",
    "posix.posix_spawn", "posix.remove", "posix.unlink", "posix.rename", "posix.rmdir", "posix.chmod",
    "shutil.rmtree", "importlib.import_module", "os.popen", "os.execv", "os.execl", "os.spawnv",
}
# torch's own modules that a failing load imports on first use
TORCH_LAZY = ("torch.utils.serialization", "torch.serialization", "torch._weights_only_unpickler")
AUDIT_FORBIDDEN = (
    "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.kill", "os.remove", "os.rename",
    "os.rmdir", "os.chmod", "os.symlink", "os.link", "os.truncate", "os.putenv", "subprocess.Popen", "exec",
    "compile", "ctypes.", "socket.", "shutil.", "pty.", "webbrowser.", "urllib.", "http.", "code.",
    "import", "marshal.load", "pickle.find_class", "sys.settrace", "cpython.run_",
)


@dataclass
class Tracer:
    """While active, every import, forbidden audit event and call outside ALLOWED_MODULES (or into
    FORBIDDEN_CALLS) is recorded in `findings`; `allowed_open` is the one file the load may open (besides
    reading the source of a module already imported, as a warning does)."""

    allowed_open: str = ""
    findings: list[str] = field(default_factory=list)
    active: bool = False
    _installed = False

    def install(self) -> None:
        """Add the audit hook (once per process: audit hooks cannot be removed) and import what torch imports
        lazily on its error paths, so that only imports a pickle caused are left to be seen."""
        if not Tracer._installed:
            for module in TORCH_LAZY:
                importlib.import_module(module)
            sys.addaudithook(_dispatch)
            Tracer._installed = True

    def __enter__(self) -> Tracer:
        self.install()
        _current.append(self)
        self.active = True
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc) -> None:
        sys.setprofile(None)
        self.active = False
        _current.remove(self)

    def audit(self, event: str, args: tuple) -> None:
        if event == "open":
            target, mode = str(args[0]), str(args[1]) if len(args) > 1 else "r"
            writes = any(c in mode for c in "wax+")
            if writes or (target != self.allowed_open and target not in _loaded_sources()):
                self.findings.append(f"open {target} {mode}")
        elif event.startswith(AUDIT_FORBIDDEN):
            self.findings.append(f"audit {event} {str(args)[:120]}")

    def _profile(self, frame, event: str, arg) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "?")
            name = f"{module}.{frame.f_code.co_name}"
        elif event == "c_call":
            module = getattr(arg, "__module__", None) or type(getattr(arg, "__self__", None)).__module__
            name = f"{module}.{getattr(arg, '__name__', '?')}"
        else:
            return
        if name in FORBIDDEN_CALLS or not (name in ALLOWED_CALLS or str(module).startswith(ALLOWED_MODULES)):
            self.findings.append(f"call {name}")


_current: list[Tracer] = []


def _loaded_sources() -> set[str]:
    """Source files of modules already imported: what a warning's traceback reads (linecache), not new code."""
    return {str(getattr(m, "__file__", "")) for m in list(sys.modules.values())}


def _dispatch(event: str, args: tuple) -> None:
    for tracer in _current:
        if tracer.active:
            tracer.audit(event, args)


# ----------------------------------------------------------------------------------------------------
# pickle mutations

DANGEROUS = [
    ("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"),
    ("builtins", "__import__"), ("subprocess", "Popen"), ("importlib", "import_module"), ("runpy", "run_path"),
    ("torch", "load"), ("torch.serialization", "load"), ("pickle", "loads"), ("ctypes", "CDLL"),
    ("shutil", "rmtree"), ("builtins", "open"), ("torch._C", "_set_print_stack_traces_on_fatal_signal"),
    ("code", "InteractiveInterpreter"), ("types", "FunctionType"), ("builtins", "setattr"), ("sys", "exit"),
]
ALLOWED = [
    ("models.common", "Conv"), ("ultralytics.nn.tasks", "DetectionModel"), ("torch.nn.modules.conv", "Conv2d"),
    ("__main__", "Payload"), ("models.os", "system"), ("utils.general", "check_version"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"), ("collections", "OrderedDict"),
    ("builtins", "bytearray"), ("builtins", "set"), ("collections", "Counter"), ("_codecs", "encode"),
    ("torch", "Size"), ("torch", "device"), ("torch", "HalfStorage"), ("torch", "FloatStorage"),
    ("torch.nn.parameter", "Parameter"), ("numpy.core.multiarray", "_reconstruct"), ("numpy", "dtype"),
    ("pathlib", "PosixPath"), ("argparse", "Namespace"), ("types", "SimpleNamespace"), ("datetime", "datetime"),
    ("collections", "defaultdict"), ("torch._tensor", "_rebuild_from_type_v2"), ("torch", "Tensor"),
    ("torch.storage", "UntypedStorage"), ("torch._utils", "_rebuild_qtensor"), ("torch", "FloatTensor"),
]
_ARGS = [b")", b"K\x05\x85", b"J\x00\x00\x00\x40\x85", b"X\x02\x00\x00\x00id\x85", b"X\x04\x00\x00\x00true\x85",
         b"N\x85", b"}\x85", b"]\x85", b"K\x01K\x02\x86", b"J\xff\xff\xff\x7f\x85"]
# opcodes a mutated pickle may say instead of the original: the dangerous ones (INST, OBJ, EXT*, STACK_GLOBAL,
# PERSID) among the ordinary ones
_OPCODES = b"cio\x82\x83\x84\x93PQRb\x81\x92sueat0(12.)]}NKJ"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _call(rng: random.Random, depth: int) -> bytes:
    """A REDUCE chain: f(g(h(args))) with callables drawn from both lists, `depth` levels deep."""
    module, name = rng.choice(DANGEROUS + ALLOWED)
    inner = _call(rng, depth - 1) + b"\x85" if depth > 1 else rng.choice(_ARGS)
    return _global(module, name) + inner + b"R"


def _ops(data: bytes) -> list[tuple[int, int, str, object]]:
    """(start, end, opcode name, argument) of each op, or [] when the pickle does not parse."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return []
    spans = []
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        spans.append((pos, end, op.name, arg))
    return spans


def mutate_pickle(data: bytes, rng: random.Random) -> bytes:
    """One structured mutation of a pickle (see the module docstring); byte flips where it does not parse."""
    ops = _ops(data)
    if len(ops) < 2:
        out = bytearray(data or b".")
        out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    start, end, name, arg = ops[rng.randrange(len(ops) - 1)]  # never the final STOP
    kind = rng.randrange(6)
    if kind == 0:  # a GLOBAL renamed
        globals_ = [o for o in ops if o[2] == "GLOBAL"] or [ops[0]]
        start, end, _, _ = rng.choice(globals_)
        return data[:start] + _global(*rng.choice(DANGEROUS + ALLOWED)) + data[end:]
    if kind == 1:  # a call chain inserted where a value is expected
        return data[:start] + _call(rng, rng.randint(1, 4)) + data[start:]
    if kind == 2:  # a memo slot read from elsewhere, or overwritten with a callable
        gets = [o for o in ops if o[2] in ("BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT")]
        if gets:
            start, end, name, arg = rng.choice(gets)
            slot = rng.choice([0, 1, 2, int(arg) + 1, 255, 2**31 - 1])
            code = {"BINGET": b"h", "LONG_BINGET": b"j", "BINPUT": b"q", "LONG_BINPUT": b"r"}[name]
            packed = bytes([slot & 0xFF]) if code in b"hq" else slot.to_bytes(4, "little")
            trick = rng.choice([code + packed, _global(*rng.choice(DANGEROUS + ALLOWED)) + b"q" + packed + b"0"])
            return data[:start] + trick + data[end:]
        return data[:start] + _global(*rng.choice(DANGEROUS)) + b"q\x00" + data[start:]
    if kind == 3:  # an opcode replaced
        return data[:start] + bytes([rng.choice(_OPCODES)]) + data[start + 1 :]
    if kind == 4:  # a span of ops deleted
        stop = min(len(ops) - 1, ops.index((start, end, name, arg)) + rng.randint(1, 8))
        return data[:start] + data[ops[stop][0] :]
    return data[:end] + data[start:end] * rng.randint(1, 64) + data[end:]  # an op repeated


def pickle_member(archive: bytes) -> tuple[str, dict[str, bytes]] | None:
    """The name of a checkpoint zip's ``data.pkl`` and all its members, or None when it is not such a zip."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            members = {info.filename: z.read(info) for info in z.infolist()}
    except Exception:
        return None
    name = next((n for n in members if n.endswith("data.pkl")), None)
    return (name, members) if name else None


def repack(members: dict[str, bytes]) -> bytes:
    """A checkpoint zip of `members`, stored uncompressed as torch.save stores them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def mutate_checkpoint(archive: bytes, rng: random.Random, rounds: int = 1) -> bytes:
    """A checkpoint zip whose pickle got `rounds` structured mutations (tensor storages kept as they were)."""
    found = pickle_member(archive)
    if found is None:
        return archive
    name, members = found
    data = members[name]
    for _ in range(rounds):
        data = mutate_pickle(data, rng)
    return repack({**members, name: data})

"""Atomic file writing and hashing: an interrupted run never leaves a half-written file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` only if the block succeeds.

    The temporary name keeps the target's suffix, so tools that dispatch on the extension still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes) or ""
    fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".part{suffix}", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    if directory:
        tmp.unlink()
    try:
        yield tmp
        _default_permissions(tmp)
        if directory and target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _default_permissions(path: Path) -> None:
    """Give a finished temporary file the permissions a plain open() would have (mkstemp makes it 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    if path.is_file():
        path.chmod(0o666 & ~umask)
    elif path.is_dir():
        path.chmod(0o777 & ~umask)


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `target` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def size_bytes(path: str | os.PathLike) -> int:
    """The size of a file, or of every file under a folder (an OpenVINO IR or NCNN artifact), in bytes."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file (or of every file under a directory, in sorted order)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def check_output_folder(folder: str | os.PathLike, what: str = "output folder") -> Path:
    """Raise EdgekitError now, before any work, when `folder` cannot be created or written: it is a file,
    lies under a file, or its nearest existing parent is not writable. Creates nothing."""
    from edgekit.errors import EdgekitError

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise EdgekitError(f"{what} {folder} is a file, not a folder")
    parent = folder
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise EdgekitError(f"{what} {folder} cannot be created: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise EdgekitError(f"{what} {folder} cannot be written: no permission in {parent}")
    return folder


def check_checkpoint_file(path: str | os.PathLike) -> Path:
    """Raise EdgekitError unless `path` is a file in torch.save's zip format (checked without importing
    torch, so an obviously wrong file is refused at once)."""
    import zipfile

    from edgekit.errors import EdgekitError

    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise EdgekitError(
            f"{path.name}: not a torch checkpoint (expected the zip format torch.save has written since torch 1.6;"
            " the file may be truncated)"
        )
    return path


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """Raise EdgekitError now, before any work, when the file `path` cannot be written: it is a folder, or its
    folder cannot be created or written (see check_output_folder). `what` names it in the message (a flag)."""
    from edgekit.errors import EdgekitError

    path = Path(path)
    if path.is_dir():
        raise EdgekitError(f"{what} {path} is a folder; give a file name")
    check_output_folder(path.parent, f"{what} {path}: the folder")
    return path


def write_json(target: str | os.PathLike, data: object) -> Path:
    """Write `data` as a JSON document (indent 2, newline-terminated) to `target` atomically; returns the path."""
    import json

    return atomic_write_bytes(target, (json.dumps(data, indent=2) + "\n").encode())

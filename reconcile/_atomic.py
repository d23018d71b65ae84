"""Atomic output: every file is written to a temporary name beside it, then renamed.

A crash or a full disk leaves either the previous file or nothing, never half a file.
`OutputBatch` writes several outputs and renames them only once all are written. It
holds a lock on each output folder (``flock`` on the folder itself: no file is left
behind, and the system releases it when a process dies), so that two runs writing to
one folder never remove each other's temporary files: the second fails clearly, or
waits. Under the lock, what a killed run left is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from reconcile.errors import OutputError

__all__ = [
    "OutputBatch",
    "current_umask",
    "hold_folder",
    "sync_data",
]

WRITE_BUFFER = 1 << 20
# folders this process holds for a longer job (a run's folder): its batches write there
_HELD: set[Path] = set()


def _flock(folder: Path, wait: float) -> int | None:
    """A descriptor of ``folder`` holding its flock, or None when another holds it."""
    descriptor = os.open(folder, os.O_RDONLY)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return descriptor
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(descriptor)
                return None
            time.sleep(0.1)


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux's
    /proc): setting it to 0 for a moment, the only portable way, would give files another
    thread creates meanwhile no protection at all."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o077)  # the strictest for the moment it is changed
    os.umask(umask)
    return umask


@contextlib.contextmanager
def hold_folder(folder: Path) -> Iterator[bool]:
    """Hold ``folder`` for this process (its batches write there without locking it
    again); yields False when another process holds it."""
    descriptor = _flock(folder, 0.0)
    if descriptor is None:
        yield False
        return
    key = folder.resolve()
    _HELD.add(key)
    try:
        yield True
    finally:
        _HELD.discard(key)
        os.close(descriptor)


def sync_data(descriptor: int) -> None:
    """Send a file's data to disk: fdatasync where the system has it (not macOS), else fsync."""
    sync = getattr(os, "fdatasync", os.fsync)
    sync(descriptor)


class OutputBatch:
    """Collect outputs as temporary files; `commit` renames them all into place."""

    def __init__(self, wait: float = 0.0) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._last: list[tuple[Path, Path]] = []
        self._locks: dict[Path, int] = {}
        self._wait = wait

    def lock(self, folder: Path) -> None:
        """Hold ``folder`` for this batch until it commits or is discarded; OutputError
        when another run holds it longer than the batch's wait."""
        key = folder.resolve()
        if key in self._locks or key in _HELD:
            return
        try:
            descriptor = _flock(folder, self._wait)
        except OSError as error:
            raise OutputError(f"{folder}: cannot write there ({error.strerror}).") from None
        if descriptor is None:
            raise OutputError(
                f"{folder}: another reconcile run is writing its outputs there; wait "
                "for it to finish, or choose another folder with --out-dir."
            )
        self._locks[key] = descriptor

    def _release(self) -> None:
        for descriptor in self._locks.values():
            with contextlib.suppress(OSError):
                os.close(descriptor)  # closing releases the flock
        self._locks.clear()

    def _reserve(self, target: Path, last: bool) -> Path:
        self.lock(target.parent)
        # a run killed before it renamed leaves its temporary files; the next one removes
        # them (under the folder's lock, so never another live run's)
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            with contextlib.suppress(OSError):
                if stale.is_dir():
                    shutil.rmtree(stale)
                else:
                    stale.unlink()
        try:
            handle, name = tempfile.mkstemp(
                prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
            )
        except OSError as error:
            self.discard()
            raise OutputError(
                f"{target.parent}: cannot write there ({error.strerror}); "
                "choose another folder with --out-dir."
            ) from None
        os.close(handle)
        temporary = Path(name)
        (self._last if last else self._pending).append((temporary, target))
        return temporary

    @contextlib.contextmanager
    def _guarded(self, target: Path) -> Iterator[None]:
        # any failure while writing discards the whole batch; OS errors become one line
        try:
            yield
        except OSError as error:
            self.discard()
            raise OutputError(f"{target}: cannot be written ({error.strerror}).") from None
        except BaseException:
            self.discard()
            raise

    @contextlib.contextmanager
    def writing(self, target: Path, *, last: bool = False) -> Iterator[BinaryIO]:
        """Stream ``target``'s content into the yielded file (see `add`)."""
        temporary = self._reserve(target, last)
        # A large buffer: kept rows are copied as many short runs of bytes.
        with self._guarded(target), temporary.open("wb", buffering=WRITE_BUFFER) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())

    def add(
        self,
        target: Path,
        write: Callable[[Path], None],
        *,
        last: bool = False,
        scratch: bool = False,
    ) -> None:
        """Write ``target``'s content with ``write(temporary_path)``.

        Outputs are renamed in the order they were added, those added with ``last``
        after all others. With ``scratch``, the writer's own temporary files go to a
        folder beside the target (see `scratch`), not to the system's.
        """
        temporary = self._reserve(target, last)
        with self._guarded(target):
            if scratch:
                with self.scratch(target):
                    write(temporary)
            else:
                write(temporary)
            with temporary.open("rb+") as stream:
                os.fsync(stream.fileno())

    def add_bytes(self, target: Path, content: bytes) -> None:
        """Write ``content`` as ``target``."""

        def write(temporary: Path) -> None:
            temporary.write_bytes(content)

        self.add(target, write)

    def commit(self) -> list[Path]:
        """Rename every temporary file onto its target; return the targets."""
        done: list[Path] = []
        try:
            for temporary, target in [*self._pending, *self._last]:
                # mkstemp creates 0600 files; outputs get the user's usual permissions.
                temporary.chmod(0o666 & ~current_umask())
                temporary.replace(target)
                done.append(target)
        except OSError as error:
            self.discard()
            raise OutputError(f"cannot move outputs into place ({error.strerror}).") from None
        self._pending.clear()
        self._last.clear()
        self._release()
        return done

    def discard(self) -> None:
        """Delete every temporary file not yet renamed."""
        for temporary, _target in [*self._pending, *self._last]:
            with contextlib.suppress(OSError):
                temporary.unlink()
        self._pending.clear()
        self._last.clear()
        self._release()

    @contextlib.contextmanager
    def scratch(self, target: Path) -> Iterator[Path]:
        """A folder for a writer's own temporary files (openpyxl's), beside ``target``
        and named so that a later run removes it if this one is killed."""
        self.lock(target.parent)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        previous = tempfile.tempdir
        tempfile.tempdir = str(folder)  # openpyxl names its files through tempfile
        try:
            yield folder
        finally:
            tempfile.tempdir = previous
            shutil.rmtree(folder, ignore_errors=True)

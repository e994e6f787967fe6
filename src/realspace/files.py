"""Files written whole: every file realspace writes (a piece of the store, a checkpoint
aside, the report and its figures) goes through ``atomic_write``, and every folder it
creates for them through ``private_dir``.

A file is written into a temporary sibling of its own, then renamed into place, so a
reader, or a sweep resumed after a crash, never sees half a file, and two writers of one
file (a driver and the one that took its lease over) never tear it. Files and folders are
their owner's alone (0o600 and 0o700, whatever the umask grants others).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["NO_SPACE", "REFUSED", "NoSpace", "Writer", "atomic_write", "private_dir", "hopeless"]

# a file's content, as a function that writes it into an open binary file
Writer = Callable[[BinaryIO], None]

# the disk is full, a quota is reached, or a file-size limit (RLIMIT_FSIZE) is hit
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


# the write was refused: a folder not writable, or a tracking server that refused the
# credentials (``tracking.artifacts.refused``)
REFUSED = frozenset({errno.EACCES, errno.EPERM})


def hopeless(err: BaseException) -> bool:
    """Whether a failed write would fail again however often it is retried: no space, or
    no permission. Retrying one costs a whole shard's training each time."""
    return isinstance(err, OSError) and err.errno in NO_SPACE | REFUSED


class NoSpace(OSError):
    """A file of the store could not be written for lack of space; its half is removed.
    Constructed as OSError(errno, message), so that it crosses process boundaries (Ray)
    as it is."""


def private_dir(path: Path) -> Path:
    """``path`` as a folder, created with any missing parents as folders only their owner
    may enter (0o700, whatever the umask grants others). A folder that exists keeps its
    mode: it is not realspace's to change."""
    path = Path(path)
    missing = []
    folder = path
    while not folder.is_dir() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:  # another writer made it in the meantime
            if not folder.is_dir():
                raise
    return path


def atomic_write(path: Path, write: Writer) -> None:
    """``write(file)`` into a temporary sibling, then rename: a reader (or a crash) never
    sees half a file. The sibling's name is unique (``<name>.<random>.tmp``), so two
    writers of one file each rename a whole file into place and the last rename wins. The
    file is its owner's alone (0o600, as the sibling is created). When the write fails the
    temporary file is removed (it would hold space on a full disk); a full disk raises
    NoSpace naming the file and what to do."""
    path = Path(path)
    tmp = None
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
        tmp = Path(name)
        with open(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.errno in NO_SPACE and not isinstance(e, NoSpace):
            raise NoSpace(
                e.errno,
                f"no space to write {path} ({e.strerror}): free space (or raise the limit) "
                "and rerun the sweep; it resumes, and nothing without its data was marked "
                "FINISHED",
            ) from e
        raise

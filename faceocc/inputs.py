"""What a user pointed at, entry by entry: files, folders (recursive), quoted glob patterns.

Every entry comes back with an outcome, so a command can give each one a line: a regular file to decode (by its
content, whatever its name), or the reason it cannot be read (missing, a dangling link, a FIFO, a folder with
nothing in it, a folder reached again through a symlink loop). Nothing is skipped without a word.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


@dataclass(frozen=True)
class Entry:
    """One thing a user pointed at. `root`: the folder it was found under (to mirror the tree in outputs);
    `problem`: why it cannot be read, or None for a regular file."""
    path: Path
    root: Path
    problem: str | None = None


def not_regular(mode: int) -> str | None:
    """Why a file of this st_mode cannot be opened as a picture (opening a FIFO blocks forever), or None."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"not a regular file ({kind})" if kind != "not a regular file" else kind


def list_inputs(raw_inputs: Iterable[str | os.PathLike]) -> Iterator[Entry]:
    """Entries for files, folders and glob patterns, in a stable order; a file reached twice (a pattern that
    loops through a symlink, a path given twice) comes once."""
    seen: set[tuple[str, bool]] = set()
    for raw in raw_inputs:
        path = Path(raw)
        if os.path.lexists(path):
            yield from _unseen(_entries_at(path, path if path.is_dir() else path.parent), seen)
        elif glob.has_magic(str(raw)):
            matches = sorted(glob.glob(str(raw), recursive=True))
            if not matches:
                yield Entry(path, path.parent, "no file matches this pattern")
            root = _glob_root(str(raw))
            for match in matches:
                yield from _unseen(_entries_at(Path(match), root), seen)
        else:
            yield Entry(path, path.parent, "no such file or folder")


def _unseen(entries: Iterator[Entry], seen: set[tuple[str, bool]]) -> Iterator[Entry]:
    """Entries whose real path (symlinks resolved) has not come before, among files and among problems."""
    for entry in entries:
        key = (os.path.realpath(entry.path), entry.problem is None)
        if key not in seen:
            seen.add(key)
            yield entry


def _entries_at(path: Path, root: Path) -> Iterator[Entry]:
    try:
        st = path.stat()
    except OSError as err:
        if err.errno == errno.ELOOP:
            yield Entry(path, root, "symlink loop (too many levels of links)")
        elif path.is_symlink():
            yield Entry(path, root, f"dangling symlink (to {os.readlink(path)})")
        else:
            yield Entry(path, root, f"unreadable: {err.strerror or err}")
        return
    if stat.S_ISDIR(st.st_mode):
        yield from _walk(path, root, set())
    else:
        yield Entry(path, root, not_regular(st.st_mode))


def _walk(folder: Path, root: Path, visited: set[tuple[int, int]]) -> Iterator[Entry]:
    """Depth first, names sorted; symlinks to folders are followed once, a loop back is reported, not walked."""
    st = folder.stat()
    if (st.st_dev, st.st_ino) in visited:
        yield Entry(folder, root, "symlink loop (a folder already being listed), not walked again")
        return
    visited = visited | {(st.st_dev, st.st_ino)}
    try:
        children = sorted(folder.iterdir())
    except OSError as err:
        yield Entry(folder, root, f"unreadable folder: {err.strerror or err}")
        return
    if not children:
        yield Entry(folder, root, "empty folder")
    for child in children:
        try:
            child_st = child.stat()
        except OSError:
            yield from _entries_at(child, root)
            continue
        if stat.S_ISDIR(child_st.st_mode):
            yield from _walk(child, root, visited)
        else:
            yield Entry(child, root, not_regular(child_st.st_mode))


def _glob_root(pattern: str) -> Path:
    """The folder part of a pattern before its first wildcard: `photos/**/*.jpg` -> `photos`."""
    parts = Path(pattern).parts
    fixed = parts[: next((i for i, p in enumerate(parts) if glob.has_magic(p)), len(parts))]
    return Path(*fixed) if fixed else Path(".")

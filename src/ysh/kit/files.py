"""Files: written all or nothing, listed under folders, found in the repository's data."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: Path | str, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None,
                 suffix: str = ".tmp", permissions: int | None = None) -> Iterator[IO]:
    """Write ``path`` all or nothing: yields the handle of a temporary file beside it (a
    hidden name, ``.<name>.XXXX<suffix>``); when the block ends without error the file is
    flushed to disk (fsync) and renamed over ``path`` (:func:`os.replace`). On any error
    the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : path
        the destination; its folder is created if needed.
    mode : str
        ``"w"`` (text, with ``encoding`` and ``newline`` as in :func:`open`) or ``"wb"``.
    suffix : str
        of the temporary file's name.
    permissions : int, optional
        mode bits given to the file before the rename (e.g. ``0o644``; the temporary file
        is created ``0o600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    text = "b" not in mode
    try:
        with os.fdopen(fd, mode, encoding=encoding if text else None, newline=newline if text else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if permissions is not None:
            os.chmod(tmp, permissions)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def files_under(paths: list[Path]) -> list[Path]:
    """The files under ``paths`` (files, or folders read recursively; hidden names
    skipped), each once even when given twice, sorted.

    Raises
    ------
    FileNotFoundError
        a path does not exist, or there is no file at all.
    """
    found: dict[Path, None] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"path does not exist: {path}")
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*")
                                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            candidates = [path]
        for candidate in candidates:
            found.setdefault(candidate.resolve(), None)
    if not found:
        raise FileNotFoundError(f"no files in {[str(p) for p in paths]}")
    return sorted(found)


def data_path(*parts: str) -> Path:
    """A path inside the repository's ``data/`` folder (sample feeds and fixtures)."""
    return Path(__file__).resolve().parents[3].joinpath("data", *parts)

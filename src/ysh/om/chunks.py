"""Telemetry files read in chunks of whole lines, for the static O&M graph
(:func:`ysh.om.pipeline.build_om_graph` with ``packed=True``, what ``ysh om detect`` /
``ysh om run`` run).

One engine row per chunk instead of one per line: the lines of a chunk are validated in
one Python call and grouped there by window, so an event no longer crosses the engine's
operators on its own (the per-row cost of Pathway's operators was most of a file
replay's time). A line is what Pathway's plaintext reader makes of it — the bytes
between two ``\\n``, trimmed of white space at both ends — except that a line that is
not UTF-8 is returned marked (:func:`undecodable`, to be quarantined) where the plaintext
reader logs an error and drops it.
"""

from __future__ import annotations

import json
import logging
import time

from collections.abc import Iterator, Sequence
from pathlib import Path

import pathway as pw

log = logging.getLogger(__name__)

#: Rust's ``char::is_whitespace`` (Unicode White_Space), what Pathway's plaintext reader
#: trims; Python's ``str.strip()`` also takes U+001C–U+001F, which Rust keeps
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
              "\u2028\u2029\u202f\u205f\u3000")


#: the start of a line that was not UTF-8 (:func:`undecodable`): no line holds a line
#: break, so no input line can start so, and the NUL makes it JSON no parser accepts
NOT_UTF8 = "\n\x00"


def undecodable(raw: bytes) -> str:
    """A line that is not UTF-8 as text the graph carries and quarantines (``malformed``):
    :data:`NOT_UTF8`, then the line with its invalid bytes written ``\\xNN``."""
    return NOT_UTF8 + raw.decode("utf-8", "backslashreplace")


def message_lines(data: bytes | str) -> list[str]:
    """The lines of a bus message (a datalogger may send several) as Pathway's plaintext
    format gave them — the message trimmed at both ends, then split at ``\\n`` — read
    from its raw bytes, so that a message that is not UTF-8 is not dropped by the reader:
    its lines are then trimmed one by one, those that are not UTF-8 marked
    (:func:`undecodable`, ASCII white space trimmed). A ``str`` (a row of
    state persisted by the plaintext reader, replayed) is split as it is."""
    if isinstance(data, str):
        return data.split("\n")
    try:
        return data.decode("utf-8").strip(WHITESPACE).split("\n")
    except UnicodeDecodeError:
        lines = []
        for raw in data.split(b"\n"):  # each line trimmed (the message as a whole was, when UTF-8)
            try:
                lines.append(raw.decode("utf-8").strip(WHITESPACE))
            except UnicodeDecodeError:
                lines.append(undecodable(raw.strip()))
        return lines


class TelemetryChunkSchema(pw.Schema):
    data: bytes  # whole lines of one file
    path: str
    offset: int  # of the chunk's first byte in its file


def lines_of(data: bytes) -> Iterator[str]:
    """The lines of a chunk as Pathway's plaintext reader gives them (split at ``\\n``,
    trimmed); a line that is not UTF-8 comes marked (:func:`undecodable`). Blank lines
    come too (empty)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for raw in data.split(b"\n"):
            try:
                yield raw.decode("utf-8").strip(WHITESPACE)
            except UnicodeDecodeError:
                yield undecodable(raw.strip())  # its ASCII white space trimmed: CRLF reads as LF
        return
    for line in text.split("\n"):
        yield line.strip(WHITESPACE)


def chunks_of(path: Path, chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
    """``(offset, data)``: the file in pieces of about ``chunk_bytes`` that end at a line
    break (or at the end of the file), read as it goes (never the whole file in memory)."""
    offset, carry = 0, []  # the pieces read since the last line break (a long line: several)
    with path.open("rb") as f:
        while True:
            block = f.read(chunk_bytes)
            if not block:
                break
            cut = block.rfind(b"\n") + 1  # only the new block is searched: linear in the file
            if cut == 0:  # inside a line longer than the chunk: read on
                carry.append(block)
                continue
            data = b"".join([*carry, block[:cut]])
            yield offset, data
            offset += len(data)
            carry = [block[cut:]] if cut < len(block) else []
    if carry:
        yield offset, b"".join(carry)


class TelemetryChunksSubject(pw.io.python.ConnectorSubject):
    """Every line of ``files``, in chunks of about ``chunk_bytes`` (a static source: it
    ends when the last file is read)."""

    def __init__(self, files: Sequence[Path], chunk_bytes: int = 4 << 20):
        super().__init__(datasource_name="om_telemetry_chunks")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be ≥ 1, got {chunk_bytes}")
        self._files, self._chunk_bytes = list(files), chunk_bytes

    def run(self) -> None:
        for path in self._files:
            for offset, data in chunks_of(Path(path), self._chunk_bytes):
                self.next(data=data, path=str(path), offset=offset)


class RawLineSchema(pw.Schema):
    data: bytes  # one line of a telemetry file, as written (not decoded)


class FolderTailSubject(pw.io.python.ConnectorSubject):
    """The lines of every file under ``folder``, as raw bytes, streaming: each file is
    followed from where it was last read (loggers append), new files are picked up, and a
    line that is not UTF-8 reaches the graph (which quarantines it) instead of being
    dropped by Pathway's plaintext reader.

    A line is emitted once its ``\\n`` is written; a last line without one once its file
    has not changed for ``settle_s``. A file that shrinks was replaced: it is read again
    from its start. With persistence, the byte offset reached in each file is reported
    after its rows (Pathway's connector offsets, as its Airbyte connector does): a restart
    replays the persisted rows and goes on reading from the last persisted offset (rows
    read after it come again: at least once, as from a bus).
    """

    def __init__(self, folder: Path, *, poll_s: float = 0.2, settle_s: float = 1.0):
        super().__init__(datasource_name="om_telemetry_folder")
        self._folder, self._poll_s, self._settle_s = Path(folder), poll_s, settle_s
        self._offsets: dict[str, int] = {}
        self._stopped = False

    def _is_finite(self) -> bool:
        return False

    def _seek(self, state: bytes) -> None:
        self._offsets = {str(k): int(v) for k, v in json.loads(state.decode("utf-8")).items()}

    def on_stop(self) -> None:
        self._stopped = True

    def _files(self) -> list[Path]:
        """The folder's files, its subfolders' included (as Pathway's folder reader read them)."""
        try:
            return sorted(p for p in self._folder.rglob("*") if p.is_file())
        except FileNotFoundError:
            return []

    def _read_new(self, path: Path) -> list[bytes]:
        """The complete lines of ``path`` after its saved offset (and the offset moved)."""
        name = path.relative_to(self._folder).as_posix()
        try:
            stat = path.stat()
        except FileNotFoundError:
            return []
        offset = self._offsets.get(name, 0)
        if stat.st_size < offset:
            log.warning("om: %s shrank (%d < %d bytes): read again from its start", path, stat.st_size, offset)
            offset = 0
        if stat.st_size == offset:
            return []
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read(stat.st_size - offset)
        end = data.rfind(b"\n") + 1  # up to the last complete line
        if end < len(data) and time.time() - stat.st_mtime >= self._settle_s:
            end = len(data)  # the file's last line, without its newline, no longer growing
        if end == 0:
            return []  # a line still being written
        self._offsets[name] = offset + end
        return [line for line in data[:end].split(b"\n") if line.strip()]

    def run(self) -> None:
        while not self._stopped:
            before = dict(self._offsets)
            for path in self._files():
                for line in self._read_new(path):
                    self.next(data=line)
            if self._offsets != before:
                # after the rows: a commit between them and this offset replays them once
                # more after a restart, and the graph keeps one sample per event id
                self._report_offset(json.dumps(self._offsets, sort_keys=True).encode("utf-8"))
            time.sleep(self._poll_s)

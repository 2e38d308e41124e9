"""Decoder for the ``pgoutput`` logical replication protocol, version 1.

``pgoutput`` is the output plugin built into PostgreSQL (10+); no server extension is
needed. Each XLogData payload (from the streaming replication protocol, or one ``data``
row of ``pg_logical_slot_{get,peek}_binary_changes``) is exactly one message, decoded
here by :func:`decode`. Reference: PostgreSQL docs, "Logical Replication Message
Formats". All integers are big-endian; strings are NUL-terminated (in the server
encoding, UTF-8 here); timestamps are microseconds since 2000-01-01 UTC.

Only protocol version 1 is negotiated by our connector, so:
  * no message carries the leading Xid of streamed in-progress transactions (v2+),
  * tuple columns are never ``'b'`` (binary, only with the ``binary`` option),
  * two-phase / stream messages (``'S' 'E' 'c' 'A' 'K' 'P' 'r' 'b'``) never appear.
Anything outside of that raises :class:`ProtocolError` instead of mis-decoding.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Union

__all__ = [
    "UNCHANGED_TOAST", "ProtocolError", "Column", "Relation", "Begin", "Commit", "Origin",
    "TypeInfo", "Insert", "Update", "Delete", "Truncate", "LogicalMessage", "Message",
    "decode", "format_lsn", "parse_lsn",
]


class ProtocolError(ValueError):
    """A payload that is not a valid pgoutput v1 message."""


class _UnchangedToast:
    """Marker for a ``'u'`` column: an unchanged TOASTed value the server did not send."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED_TOAST"

    def __reduce__(self):
        return (_UnchangedToast, ())


UNCHANGED_TOAST = _UnchangedToast()

#: One decoded column value: None (SQL NULL), UNCHANGED_TOAST, or the text representation.
Value = Union[str, None, _UnchangedToast]
TupleData = tuple  # tuple[Value, ...], in the Relation's column order

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_mod: int
    is_key: bool  # flag bit 1: part of the replica identity (the primary key by default)


@dataclass(frozen=True)
class Relation:
    rel_id: int  # the table's OID
    namespace: str  # '' means pg_catalog
    name: str
    replica_identity: str  # relreplident: 'd' default (pk), 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]  # generated columns are not sent (unless published)


@dataclass(frozen=True)
class Begin:
    final_lsn: int  # LSN of the commit record
    commit_ts: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int  # LSN of the commit record
    end_lsn: int  # end of the commit record: the position to confirm / resume from
    commit_ts: datetime


@dataclass(frozen=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True)
class TypeInfo:  # sent before a Relation that uses a non-built-in type (enum, domain...)
    type_oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    rel_id: int
    new: TupleData


@dataclass(frozen=True)
class Update:
    rel_id: int
    new: TupleData
    key: TupleData | None = None  # 'K': replica-identity columns changed (others are None)
    old: TupleData | None = None  # 'O': REPLICA IDENTITY FULL, the whole old row


@dataclass(frozen=True)
class Delete:
    rel_id: int
    key: TupleData | None = None  # 'K': identity columns only (others are None)
    old: TupleData | None = None  # 'O': REPLICA IDENTITY FULL


@dataclass(frozen=True)
class Truncate:
    options: int  # bit 1: CASCADE, bit 2: RESTART IDENTITY
    rel_ids: tuple[int, ...]


@dataclass(frozen=True)
class LogicalMessage:  # pg_logical_emit_message(), only with the 'messages' option
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Message = Union[Begin, Commit, Origin, TypeInfo, Relation, Insert, Update, Delete, Truncate,
                LogicalMessage]


class _Reader:
    __slots__ = ("buf", "pos", "kind")

    def __init__(self, buf: bytes, kind: str):
        self.buf = buf
        self.pos = 1
        self.kind = kind

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.buf):
            raise ProtocolError(f"truncated {self.kind!r} message: need {n} bytes at {self.pos}")
        chunk = self.buf[self.pos:end]
        self.pos = end
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def char(self) -> str:
        return chr(self.take(1)[0])

    def u16(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def i32(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def ts(self) -> datetime:
        return _PG_EPOCH + timedelta(microseconds=struct.unpack(">q", self.take(8))[0])

    def cstr(self) -> str:
        end = self.buf.find(b"\x00", self.pos)
        if end < 0:
            raise ProtocolError(f"unterminated string in {self.kind!r} message at {self.pos}")
        text = self.buf[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return text

    def tuple_data(self) -> TupleData:
        values: list[Value] = []
        for _ in range(self.u16()):
            kind = self.char()
            if kind == "t":
                values.append(self.take(self.i32()).decode("utf-8"))
            elif kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED_TOAST)
            else:  # 'b' needs the binary option (protocol >= 2 on the wire for us)
                raise ProtocolError(f"unexpected tuple column kind {kind!r} in {self.kind!r}")
        return tuple(values)

    def expect(self, want: str, got: str) -> None:
        if got != want:
            raise ProtocolError(f"expected {want!r} in {self.kind!r} message, got {got!r}")

    def done(self, msg):
        if self.pos != len(self.buf):
            raise ProtocolError(f"{len(self.buf) - self.pos} trailing bytes in {self.kind!r}")
        return msg


def _begin(r: _Reader) -> Begin:
    return Begin(final_lsn=r.u64(), commit_ts=r.ts(), xid=r.u32())


def _commit(r: _Reader) -> Commit:
    return Commit(flags=r.u8(), commit_lsn=r.u64(), end_lsn=r.u64(), commit_ts=r.ts())


def _origin(r: _Reader) -> Origin:
    return Origin(commit_lsn=r.u64(), name=r.cstr())


def _type(r: _Reader) -> TypeInfo:
    return TypeInfo(type_oid=r.u32(), namespace=r.cstr(), name=r.cstr())


def _relation(r: _Reader) -> Relation:
    rel_id, namespace, name, ident = r.u32(), r.cstr(), r.cstr(), r.char()
    columns = []
    for _ in range(r.u16()):
        flags, col = r.u8(), r.cstr()
        columns.append(Column(name=col, type_oid=r.u32(), type_mod=r.i32(), is_key=bool(flags & 1)))
    return Relation(rel_id, namespace, name, ident, tuple(columns))


def _insert(r: _Reader) -> Insert:
    rel_id = r.u32()
    r.expect("N", r.char())
    return Insert(rel_id, r.tuple_data())


def _update(r: _Reader) -> Update:
    rel_id = r.u32()
    key = old = None
    tag = r.char()
    if tag == "K":
        key, tag = r.tuple_data(), r.char()
    elif tag == "O":
        old, tag = r.tuple_data(), r.char()
    r.expect("N", tag)
    return Update(rel_id, new=r.tuple_data(), key=key, old=old)


def _delete(r: _Reader) -> Delete:
    rel_id, tag = r.u32(), r.char()
    if tag == "K":
        return Delete(rel_id, key=r.tuple_data())
    r.expect("O", tag)
    return Delete(rel_id, old=r.tuple_data())


def _truncate(r: _Reader) -> Truncate:
    count, options = r.u32(), r.u8()
    return Truncate(options, tuple(r.u32() for _ in range(count)))


def _message(r: _Reader) -> LogicalMessage:
    flags, lsn, prefix = r.u8(), r.u64(), r.cstr()
    return LogicalMessage(bool(flags & 1), lsn, prefix, bytes(r.take(r.u32())))


_DECODERS = {
    "B": _begin, "C": _commit, "O": _origin, "Y": _type, "R": _relation, "I": _insert,
    "U": _update, "D": _delete, "T": _truncate, "M": _message,
}


def decode(payload: bytes | memoryview) -> Message:
    """Decode one pgoutput v1 message (one XLogData payload)."""
    buf = bytes(payload)
    if not buf:
        raise ProtocolError("empty pgoutput message")
    kind = chr(buf[0])
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ProtocolError(f"unknown or unsupported pgoutput message type {kind!r}")
    reader = _Reader(buf, kind)
    return reader.done(decoder(reader))

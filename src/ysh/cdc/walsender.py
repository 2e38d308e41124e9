"""Logical replication client on psycopg 3's libpq wrapper (``psycopg.pq``).

psycopg 3 has no replication API (psycopg/psycopg#71), but its public low-level ``pq``
module exposes what the protocol needs: a ``replication=database`` connection, simple
queries (``exec_``), and COPY BOTH (``get_copy_data`` / ``put_copy_data``). libpq does
the framing, authentication and TLS; this module only speaks the three CopyData
messages of the streaming replication protocol:

  server -> client  'w' XLogData:        Int64 dataStart, Int64 walEnd, Int64 sendTime, payload
  server -> client  'k' keepalive:       Int64 walEnd, Int64 sendTime, Byte1 replyRequested
  client -> server  'r' status update:   Int64 write, Int64 flush, Int64 apply, Int64 clock,
                                         Byte1 replyRequested

Unlike psycopg2, nothing here moves the flush position by itself: the slot's
``confirmed_flush_lsn`` only ever becomes a value passed to :meth:`confirm`. (psycopg2
advances it to the ``walEnd`` of keepalives once the last data message is confirmed,
which a consumer whose durability lags behind its reads cannot allow.)
"""

from __future__ import annotations

import select
import struct
import time
from dataclasses import dataclass
from typing import Iterator

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo

from .pgoutput import format_lsn, parse_lsn
from .values import SESSION_OPTIONS

_PG_EPOCH_UNIX = 946_684_800  # 2000-01-01 in Unix seconds


class ReplicationError(RuntimeError):
    """The replication connection failed or the server ended the stream."""


@dataclass(frozen=True)
class CreatedSlot:
    name: str
    consistent_point: int  # stream from here; the exported snapshot shows everything before
    snapshot_name: str | None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class ReplicationStream:
    def __init__(self, dsn: str, *, status_interval: float = 10.0):
        conninfo = make_conninfo(dsn, replication="database", options=SESSION_OPTIONS)
        self.pgconn = pq.PGconn.connect(conninfo.encode())
        if self.pgconn.status != pq.ConnStatus.OK:
            message = self.pgconn.get_error_message()
            self.pgconn.finish()
            raise ReplicationError(f"replication connection failed: {message}")
        self.status_interval = status_interval
        self.received_lsn = 0  # end of the last XLogData
        self.server_wal_end = 0  # walEnd of the last keepalive
        self.flush_lsn = 0  # what we confirmed
        self._last_status = 0.0
        self._streaming = False

    # -- commands (before START_REPLICATION) ------------------------------------------------
    def command(self, sql: str) -> list[tuple[str | None, ...]]:
        """Run one replication command (simple query protocol only on a walsender)."""
        res = self.pgconn.exec_(sql.encode())
        if res.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            raise ReplicationError(f"{sql.split()[0]} failed: {res.get_error_message()}")
        return [
            tuple(None if (v := res.get_value(i, j)) is None else v.decode() for j in range(res.nfields))
            for i in range(res.ntuples)
        ]

    def create_slot(self, slot: str, *, temporary: bool, export_snapshot: bool) -> CreatedSlot:
        """The exported snapshot stays importable (SET TRANSACTION SNAPSHOT, from another
        connection) until the next command on this one, i.e. until :meth:`start`."""
        snapshot = "export" if export_snapshot else "nothing"
        ((name, consistent_point, snapshot_name, _plugin),) = self.command(
            f"CREATE_REPLICATION_SLOT {quote_ident(slot)} {'TEMPORARY ' if temporary else ''}"
            f"LOGICAL pgoutput (SNAPSHOT {quote_literal(snapshot)})"
        )
        return CreatedSlot(name, parse_lsn(consistent_point), snapshot_name)

    def start(self, slot: str, publication: str, start_lsn: int) -> None:
        """START_REPLICATION: the server streams from max(start_lsn, confirmed_flush_lsn)."""
        self.pgconn.send_query(
            f"START_REPLICATION SLOT {quote_ident(slot)} LOGICAL {format_lsn(start_lsn)} "
            f"(proto_version '1', publication_names {quote_literal(quote_ident(publication))})"
            .encode()
        )
        res = self.pgconn.get_result()
        if res is None or res.status != pq.ExecStatus.COPY_BOTH:
            raise ReplicationError(
                "START_REPLICATION failed: "
                + (res.get_error_message() if res is not None else self.pgconn.get_error_message())
            )
        self.flush_lsn = max(self.flush_lsn, start_lsn)
        self.received_lsn = max(self.received_lsn, start_lsn)
        self._streaming = True

    # -- streaming -------------------------------------------------------------------------
    def messages(self, idle_timeout: float = 0.5) -> Iterator[tuple[int, bytes] | None]:
        """Yield ``(data_start, payload)`` per XLogData; ``None`` whenever nothing complete is
        buffered (then wait up to ``idle_timeout`` for the socket). Sends status updates
        every ``status_interval`` and when the server asks. Raises ReplicationError."""
        pgconn = self.pgconn
        while True:
            nbytes, data = pgconn.get_copy_data(1)
            if nbytes > 0:
                kind = data[0]
                if kind == 0x77:  # 'w'
                    start, end, _sent = struct.unpack_from(">QQq", data, 1)
                    self.received_lsn = max(self.received_lsn, end)
                    yield start, bytes(data[25:])
                elif kind == 0x6B:  # 'k'
                    wal_end, _sent, reply = struct.unpack_from(">QqB", data, 1)
                    self.server_wal_end = max(self.server_wal_end, wal_end)
                    if reply:
                        self.send_status()
                if time.monotonic() - self._last_status >= self.status_interval:
                    self.send_status()  # also under sustained load, not only when idle
                continue
            if nbytes == -1:  # the server ended COPY: fetch its error
                res = pgconn.get_result()
                raise ReplicationError(
                    "replication stream ended: "
                    + (res.get_error_message() if res is not None else "no result")
                )
            if nbytes < -1:
                raise ReplicationError(f"replication stream failed: {pgconn.get_error_message()}")
            if time.monotonic() - self._last_status >= self.status_interval:
                self.send_status()
            yield None
            readable, _, _ = select.select([pgconn.socket], [], [], idle_timeout)
            if readable:
                try:
                    pgconn.consume_input()
                except psycopg.OperationalError as exc:
                    raise ReplicationError(f"replication stream failed: {exc}") from exc

    def confirm(self, lsn: int, *, force: bool = False) -> None:
        """Let the server recycle WAL before ``lsn`` (slot's confirmed_flush_lsn)."""
        if lsn > self.flush_lsn:
            self.flush_lsn = lsn
        if force:
            self.send_status()

    def send_status(self) -> None:
        clock = int((time.time() - _PG_EPOCH_UNIX) * 1_000_000)
        message = b"r" + struct.pack(
            ">QQQqB", max(self.received_lsn, self.flush_lsn), self.flush_lsn, self.flush_lsn, clock, 0
        )
        if self.pgconn.put_copy_data(message) != 1 or self.pgconn.flush() != 0:
            raise ReplicationError(f"sending status failed: {self.pgconn.get_error_message()}")
        self._last_status = time.monotonic()

    def close(self) -> None:
        self.pgconn.finish()  # idempotent; the server drops a TEMPORARY slot with the session

"""Decoding text files whose encoding nobody declared (shared by every job's readers)."""

from __future__ import annotations


class NotTextError(ValueError):
    """The bytes are not a text file (a spreadsheet, an archive, binary content)."""


def decode_text(data: bytes) -> tuple[str, str]:
    """Text and encoding name.

    UTF-16 when the file starts with its BOM (Excel's "Unicode text"); else UTF-8 when the
    bytes are valid UTF-8 (a BOM is stripped); else cp1252, else latin-1 (a stray UTF-8
    BOM before latin-1 bytes is dropped first). Brazilian open data mixes all of these.

    Raises
    ------
    NotTextError
        a binary file (a spreadsheet, an archive, NUL bytes).
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise NotTextError(f"broken UTF-16: {exc}") from exc
    if data.startswith(b"PK\x03\x04") or data.startswith(b"\xd0\xcf\x11\xe0"):
        raise NotTextError("a spreadsheet or archive (xlsx/xls/zip), not a text file: export it as CSV")
    if b"\x00" in data[:65536]:
        raise NotTextError("binary content (NUL bytes), not a text file")
    bom = data.startswith(b"\xef\xbb\xbf")
    body = data[3:] if bom else data
    try:
        return body.decode("utf-8"), "utf-8-sig" if bom else "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return body.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return body.decode("latin-1"), "latin-1"

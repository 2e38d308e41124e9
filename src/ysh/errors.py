"""Bad input, said in one line.

:class:`InputError` is what a command raises when what it was given (an argument, an
option, a file) cannot be used; the top-level ``ysh`` app turns it into one line on
stderr, ``error: <message>``, and exit code 2, in one place (:mod:`ysh.cli`), so no
command catches and prints it itself.

The readers here turn every way a user's file can be unusable into an :class:`InputError`
naming the file and the problem: missing, a folder, unreadable, not UTF-8 text, empty,
not JSON, JSON nested beyond what the parser can take, an integer of more digits than
Python converts (CVE-2020-10735's 4,300-digit limit). A UTF-8 byte-order mark (what
Windows tools write) is accepted and dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["InputError", "check_json_line", "loads_json", "read_json", "read_text", "scan_jsonl"]

_BOM = b"\xef\xbb\xbf"
#: a JSON text longer than this is checked for hostile nesting/digits before a parser sees it
_SHORT = 800
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[{]|[\]}]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')
#: nesting a JSON parser in a worker thread is sure to take (CPython's recursion limit is 1,000)
MAX_DEPTH = 512
#: CPython refuses to convert an integer of more digits (sys.get_int_max_str_digits())
MAX_INT_DIGITS = 4300


class InputError(Exception):
    """Input a command cannot use; the message names the input and the problem, in one line."""


def read_bytes(path: Path | str, what: str = "file") -> bytes:
    """The bytes of ``path``; :class:`InputError` when it is missing, a folder or unreadable."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, expected a {what}") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (cannot read the {what})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


def read_text(path: Path | str, what: str = "file", *, allow_empty: bool = False) -> str:
    """``path`` as UTF-8 text (a leading byte-order mark dropped).

    Raises
    ------
    InputError
        missing, a folder, unreadable, not UTF-8, or empty (blank) unless ``allow_empty``.
    """
    data = read_bytes(path, what)
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"{path}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                         "save it as UTF-8") from None
    if not allow_empty and not text.strip():
        raise InputError(f"{path}: the {what} is empty")
    return text


def loads_json(text: str, source: str) -> Any:
    """Decode one JSON document; :class:`InputError` naming ``source`` on any problem
    (syntax, nesting too deep, an integer with too many digits)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply") from None
    except ValueError as exc:  # int('9' * 5000): beyond sys.get_int_max_str_digits()
        if "integer string conversion" in str(exc):
            raise InputError(f"{source}: an integer of more than {MAX_INT_DIGITS} digits") from None
        raise InputError(f"{source}: not usable JSON: {exc}") from None


def read_json(path: Path | str, what: str = "JSON file") -> Any:
    """Read and decode a JSON file (UTF-8, an optional BOM); :class:`InputError` on any problem."""
    return loads_json(read_text(path, what), str(path))


def check_json_line(line: bytes) -> str | None:
    """Why a JSON parser would fail on ``line`` instead of rejecting it (nesting deeper
    than :data:`MAX_DEPTH`, an integer of more than :data:`MAX_INT_DIGITS` digits), or
    None. Cheap for short lines (no parse at all)."""
    if len(line) <= _SHORT or (line.count(b"[") + line.count(b"{") < MAX_DEPTH
                               and not re.search(rb"\d{%d}" % (MAX_INT_DIGITS + 1), line)):
        return None
    depth = 0
    for match in _TOKENS.finditer(line):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                return f"JSON nested more than {MAX_DEPTH} levels deep"
        elif token in (b"]", b"}"):
            depth -= 1
        elif token[:1] != b'"' and b"." not in token and b"e" not in token.lower():
            digits = len(token) - token.startswith(b"-")
            if digits > MAX_INT_DIGITS:
                return f"an integer of {digits} digits (more than {MAX_INT_DIGITS})"
    return None


def scan_jsonl(paths: Iterable[Path], what: str = "file") -> Iterator[str]:
    """For each line of the JSONL files ``paths`` that a JSON parser would fail on
    (:func:`check_json_line`), ``"FILE:LINE: problem"``. Reads the files once, in
    binary; only long lines are looked at closely."""
    for path in paths:
        data = read_bytes(path, what)
        for number, line in enumerate(data.split(b"\n"), start=1):
            if len(line) > _SHORT:
                problem = check_json_line(line)
                if problem:
                    yield f"{path}:{number}: {problem}"

"""Hardening rules of the Hélio service, as small pure functions (no Pathway, no aiohttp).

* :func:`exposure_problem`: refuse to listen beyond loopback without a long API key.
* :func:`host_header_is_local`, :func:`origin_is_local`: DNS-rebinding and cross-site
  guards for a service bound to loopback.
* :func:`check_question`, :func:`check_metadata_filter`, :func:`check_globpattern`: caps
  and validation before a request reaches the engine (a reason string, or ``None``).
* :func:`is_inside_docs_root`: a document path (symlinks followed) inside the documents
  folder; :func:`keep_inside_docs_root` applies it to the folder source's table (Pathway
  follows symlinks, files and folders alike, and reports the link's path).
* :func:`relativize_paths`: no absolute server paths in responses.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

MIN_API_KEY_CHARS = 32
MAX_QUESTION_CHARS = 2000
MAX_FILTER_CHARS = 1000
MAX_GLOB_CHARS = 256
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})

# JMESPath built-ins plus Pathway's engine extension ``globmatch``; anything else fails at
# query time inside the engine, so it is refused before.
JMESPATH_FUNCTIONS = frozenset({
    "abs", "avg", "ceil", "contains", "ends_with", "floor", "join", "keys", "length", "map", "max", "max_by",
    "merge", "min", "min_by", "not_null", "reverse", "sort", "sort_by", "starts_with", "sum", "to_array",
    "to_number", "to_string", "type", "values", "globmatch",
})
# what a glob over document paths needs (letters of any script, digits, separators, glob
# syntax); no quote, backslash or control character: Pathway pastes the glob into a JMESPath
# string literal ``globmatch('<glob>', path)``
_GLOB_RE = re.compile(r"^[\w\-. /*?\[\]{},!~:@+()]+$")


# --------------------------------------------------------------------------------------
# exposure and request origin
# --------------------------------------------------------------------------------------


def is_loopback_host(host: str | None) -> bool:
    """``127.0.0.0/8``, ``::1`` or ``localhost`` (brackets allowed around IPv6)."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, api_key: str | None, *, insecure: bool = False) -> str | None:
    """Why serving on ``host`` with ``api_key`` is refused, or ``None`` when it is fine."""
    if insecure or is_loopback_host(host):
        return None
    if not api_key:
        return (f"refusing to listen on {host} (not loopback) without an API key: set YSH_RAG_API_KEY to a "
                f"random key of at least {MIN_API_KEY_CHARS} characters, or pass --insecure")
    if len(api_key) < MIN_API_KEY_CHARS:
        return (f"refusing to listen on {host} (not loopback) with an API key of {len(api_key)} characters: "
                f"YSH_RAG_API_KEY must have at least {MIN_API_KEY_CHARS}, or pass --insecure")
    return None


def _split_host_port(value: str) -> str:
    value = value.strip()
    if value.startswith("["):  # [::1]:8765
        return value[1:value.find("]")] if "]" in value else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # a bare IPv6 address or a plain name


def host_header_is_local(host_header: str | None) -> bool:
    """The ``Host`` header names a loopback host (any port): a DNS-rebound page sends its own name."""
    return bool(host_header) and is_loopback_host(_split_host_port(host_header))


def origin_is_local(origin: str | None) -> bool:
    """No ``Origin`` header (not a browser's cross-origin request), or an ``http(s)`` origin on
    a loopback host. ``null`` (sandboxed frames, ``file://``) is not local."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and is_loopback_host(parts.hostname)


# --------------------------------------------------------------------------------------
# request fields
# --------------------------------------------------------------------------------------


def check_question(text: str, name: str = "prompt") -> str | None:
    if len(text) > MAX_QUESTION_CHARS:
        return f"`{name}` has {len(text)} characters; at most {MAX_QUESTION_CHARS} are accepted"
    return None


def _functions(node) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            if current.get("type") == "function_expression":
                found.add(str(current.get("value")))
            stack.extend(current.get("children") or [])
        elif isinstance(current, list | tuple):
            stack.extend(current)
    return found


def check_metadata_filter(expression: str) -> str | None:
    """A JMESPath expression that compiles (as Pathway rewrites it: backticks become quotes)
    and calls only known functions."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    if len(expression) > MAX_FILTER_CHARS:
        return f"`metadata_filter` has {len(expression)} characters; at most {MAX_FILTER_CHARS}"
    if any(ord(c) < 32 for c in expression):
        return "`metadata_filter` must not contain control characters"
    rewritten = expression.replace("'", r"\'").replace("`", "'").replace('"', "")  # DocumentStore's rewrite
    try:
        parsed = jmespath.compile(rewritten).parsed
    except (JMESPathError, ValueError, TypeError, RecursionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = message.encode("ascii", "replace").decode()[:200]  # goes into an HTTP reason phrase
        return f"`metadata_filter` is not a valid JMESPath expression ({message})"
    unknown = sorted(_functions(parsed) - JMESPATH_FUNCTIONS)
    if unknown:
        names = ", ".join(unknown).encode("ascii", "replace").decode()[:200]
        return f"`metadata_filter` calls unknown function(s): {names}"
    return None


def check_globpattern(pattern: str) -> str | None:
    if len(pattern) > MAX_GLOB_CHARS:
        return f"`filepath_globpattern` has {len(pattern)} characters; at most {MAX_GLOB_CHARS}"
    if not _GLOB_RE.match(pattern):
        return ("`filepath_globpattern` may hold only letters, digits, spaces and / . - _ * ? [ ] { } , ! ~ : @ + "
                "( ) (no quotes, backslashes or control characters)")
    if pattern.count("[") != pattern.count("]") or pattern.count("{") != pattern.count("}"):
        return "`filepath_globpattern` has unbalanced brackets or braces"
    return None


def anchor_glob(pattern: str, root: str | None) -> str:
    """A glob relative to the documents root (as the responses' paths are) → the absolute
    glob the engine matches against the stored paths. Absolute globs, ``*``-led globs and
    URIs (``catalog://…``) are left as they are."""
    if not root or pattern.startswith(("/", "*")) or "://" in pattern or any(c in root for c in "*?[]{}"):
        return pattern
    return root.rstrip("/") + "/" + pattern


# --------------------------------------------------------------------------------------
# documents and responses
# --------------------------------------------------------------------------------------


def is_inside_docs_root(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """``path`` resolves (every symlink followed, ``..`` collapsed) to ``root`` itself or to
    something below it. A symlink in the documents folder that points outside it → False.
    Reads the file system only to resolve links; a path that does not exist is judged
    by its resolved spelling."""
    try:
        real_root = Path(os.path.realpath(root))
        real_path = Path(os.path.realpath(path))
    except (OSError, ValueError):
        return False
    return real_path == real_root or real_root in real_path.parents


def keep_inside_docs_root(documents, root: str | os.PathLike):
    """The rows of a ``pw.io.fs.read(root, …, with_metadata=True)`` table whose
    ``_metadata["path"]`` resolves inside ``root``: a symlink (or a linked folder) pointing
    outside is never indexed. The check runs once per row version; Pathway memoizes it
    (``deterministic=False``), so a deletion retracts exactly what was admitted."""
    import pathway as pw

    real_root = os.path.realpath(root)

    @pw.udf(deterministic=False)
    def inside(path: str | None) -> bool:
        return bool(path) and is_inside_docs_root(path, real_root)

    return documents.filter(inside(documents._metadata["path"].as_str()))


def relativize_paths(value, root: str | None):
    """Every string in a JSON value loses the ``root/`` prefix wherever it occurs (a path
    becomes relative to the documents root, an error reason or an answer names
    ``sub/file.pdf``); a string equal to ``root`` → ``.``. URIs of live records and paths
    elsewhere (``root_old/…``) are untouched."""
    if not root:
        return value
    prefix = root.rstrip("/") + "/"
    if isinstance(value, str):
        if value == root.rstrip("/"):
            return "."
        return value.replace(prefix, "") if prefix in value else value
    if isinstance(value, list):
        return [relativize_paths(v, root) for v in value]
    if isinstance(value, dict):
        return {k: relativize_paths(v, root) for k, v in value.items()}
    return value


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; the folder itself 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path

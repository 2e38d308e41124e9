"""The landing area of distributor feeds: what is there, and putting feeds there.

The landing area is a folder (default ``YSH_HOME/landing/catalog``) or an S3 prefix.
A feed directly in it belongs to the distributor named by its stem; a feed in a
sub-folder belongs to the distributor named by the sub-folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

FEED_SUFFIXES = (".csv", ".txt", ".json", ".jsonl", ".ndjson")


def is_feed_path(path: str, root: str | None = None) -> bool:
    """Hidden files and folders (``.name``) inside the landing area, editor/office lock
    files (``~$x``, ``.~lock.x#``) and temporary files (``x.tmp``, ``x.part``, ``x~``) are
    not feeds; any other file is read (a spreadsheet or binary file is then quarantined as
    ``unparseable_file``, never silently skipped). Only the part of ``path`` below ``root``
    is judged: the landing area itself may live under a hidden folder (``.ysh/``)."""
    path = path.replace("\\", "/")
    if root:
        root = root.replace("\\", "/").rstrip("/") + "/"
        path = path[len(root):] if path.startswith(root) else path.rsplit("/", 1)[-1]
    else:
        path = path.rsplit("/", 1)[-1]
    parts = [part for part in path.split("/") if part]
    if any(part.startswith(".") for part in parts):
        return False
    name = parts[-1] if parts else ""
    return bool(name) and not (name.startswith("~") or name.endswith(("~", ".tmp", ".part", ".swp")))


@dataclass(frozen=True)
class LandedFile:
    path: str
    size_bytes: int
    modified_at: float
    sha256: str | None = None


def manifest(landing: Path, *, with_hash: bool = False) -> list[LandedFile]:
    """Feed files under ``landing`` (recursively), sorted by path."""
    if not landing.is_dir():
        return []
    files = []
    for path in sorted(landing.rglob("*")):
        if not path.is_file() or not is_feed_path(str(path), str(landing)):
            continue
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if with_hash else None
        files.append(LandedFile(str(path.resolve()), stat.st_size, stat.st_mtime, digest))
    return files


def manifest_s3(client, bucket: str, prefix: str) -> list[LandedFile]:
    """Objects under ``s3://bucket/prefix`` (the ETag stands in for the content hash)."""
    files = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not is_feed_path(obj["Key"], prefix):
                continue
            files.append(LandedFile(obj["Key"], obj["Size"], obj["LastModified"].timestamp(),
                                    obj["ETag"].strip('"')))
    return sorted(files, key=lambda f: f.path)


def fingerprint(files: list[LandedFile]) -> str:
    """A short hash that changes when any file is added, removed or changed."""
    payload = json.dumps([asdict(f) for f in files], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def land(sources: list[Path], landing: Path, distributor: str | None = None) -> list[Path]:
    """Copy feed files (or every feed in the given folders) into the landing area, or into
    its ``<distributor>/`` sub-folder, atomically (written beside the landing folder, then
    renamed into it) so a watching pipeline never reads half a file."""
    if distributor is not None:
        if not distributor.strip() or "/" in distributor or distributor.startswith("."):
            raise ValueError(f"not a distributor folder name: {distributor!r}")
        landing = landing / distributor.strip()
    landing.mkdir(parents=True, exist_ok=True)
    incoming = landing.parent / f".{landing.name}.incoming"
    incoming.mkdir(exist_ok=True)
    landed = []
    for source in sources:
        candidates = sorted(source.iterdir()) if source.is_dir() else [source]
        for path in candidates:
            if not path.is_file() or path.suffix.lower() not in FEED_SUFFIXES:
                continue
            target = landing / path.name
            tmp = incoming / path.name
            shutil.copyfile(path, tmp)
            tmp.replace(target)
            landed.append(target)
    if not landed:
        raise FileNotFoundError(f"no feed files ({', '.join(FEED_SUFFIXES)}) in {sources}")
    return landed

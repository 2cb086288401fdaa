"""What a mirror folder of a hub repo holds, so that a load reads exactly that and the manifest can say so.

``datasets.load_dataset(<folder>)`` caches its Arrow files by builder name, config and file layout: two mirrors of
one repo with the same layout (a new snapshot with more rows, another machine's copy) shared one cache entry, and
the second silently got the first one's rows. Each snapshot here gets its own cache folder, keyed by what it
holds: per file the etag ``huggingface-cli download --local-dir`` recorded (``.cache/huggingface/download/
<file>.metadata``: commit, etag — the sha256 of an LFS file — and download time), or its size and modification
time where there is no metadata or the file changed after the download.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

DOWNLOAD_METADATA = Path(".cache") / "huggingface" / "download"
CACHE_ENV = "HF_DATASETS_CACHE"


@dataclass(frozen=True)
class Snapshot:
    folder: str
    commit: str | None  # the repo commit the download recorded (None: not a huggingface-cli download, or mixed)
    files: dict[str, str]  # path in the repo -> etag, or "size:mtime_ns" without download metadata

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.files, sort_keys=True).encode()).hexdigest()[:16]

    def origin(self) -> dict:
        """What the manifest records of it."""
        return {"commit": self.commit, "snapshot": self.key, "files": len(self.files)}


def snapshot_of(folder: Path) -> Snapshot:
    folder = Path(folder)
    files: dict[str, str] = {}
    commits: set[str] = set()
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != ".cache")
        for name in sorted(names):
            path = Path(root) / name
            rel = path.relative_to(folder).as_posix()
            stat = path.stat()
            recorded = _download_record(folder / DOWNLOAD_METADATA / f"{rel}.metadata", stat.st_mtime)
            if recorded is not None:
                commits.add(recorded[0])
                files[rel] = recorded[1]
            else:
                files[rel] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return Snapshot(str(folder), commits.pop() if len(commits) == 1 else None, files)


def _download_record(metadata: Path, mtime: float) -> tuple[str, str] | None:
    """(commit, etag) of a file as downloaded, unless it changed since (huggingface_hub's own rule: modified
    more than a second after the recorded time)."""
    try:
        commit, etag, timestamp = metadata.read_text().splitlines()[:3]
        return (commit, etag) if mtime - 1 <= float(timestamp) else None
    except (OSError, ValueError):
        return None


def cache_dir_for(snapshot: Snapshot) -> str:
    """A datasets cache folder of this snapshot's own, under the usual datasets cache."""
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "huggingface" / "datasets")
    return str(base / "ray_xt_mirrors" / snapshot.key)

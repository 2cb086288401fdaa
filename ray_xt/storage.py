"""Study storage: a folder (local, or a shared mount every node sees) or a URI ``pyarrow.fs`` understands
(``s3://``, ``gs://``, ``hdfs://``, ``file://``; Ray Tune's own storage takes the same).

With a folder, everything is read and written in place. With a URI, what the study driver writes (stage records,
features, predictions, reports) is written to a node-local working copy and published to the URI as soon as it is
whole; Ray Tune writes checkpoints to the URI itself; whoever reads a URI (a trial loading its upstream checkpoint
or features, an evaluation, a driver on another node) works on a node-local copy fetched once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

PUBLISHED = ".published"
# the filesystems pyarrow.fs (and so Ray Tune's storage) has for a URI's scheme
URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def is_uri(location: str) -> bool:
    return "://" in str(location)


def storage_problem(location: str) -> str | None:
    """Why ``location`` cannot be a study's storage (None: it can), checked before anything runs."""
    if not is_uri(location):
        return None
    scheme, rest = str(location).split("://", 1)
    if scheme not in URI_SCHEMES:
        return (f"storage: {location!r}: pyarrow.fs (Ray Tune's storage) has no filesystem for {scheme}://; valid: "
                f"a folder, or a URI of {', '.join(s + '://' for s in URI_SCHEMES)}")
    if scheme == "file" and not rest.startswith("/"):
        return f"storage: {location!r}: a file:// URI needs an absolute path, e.g. file:///mnt/shared/results"
    if not rest.strip("/"):
        return f"storage: {location!r} names no bucket or folder, e.g. {scheme}://my-bucket/ray_xt"
    return None


def node_cache() -> Path:
    """Node-local copies of URI storage (never the shared cache: every node fetches its own)."""
    return Path(os.environ.get("RAY_XT_NODE_CACHE", "~/.cache/ray_xt/node")).expanduser()


def join(location: str, *parts: str) -> str:
    if is_uri(location):
        return "/".join([str(location).rstrip("/"), *(p.strip("/") for p in parts)])
    return str(Path(location).joinpath(*parts))


def _filesystem(location: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(location)


def exists(location: str) -> bool:
    if not is_uri(location):
        return Path(location).exists()
    import pyarrow.fs

    fs, path = _filesystem(location)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def remove(location: str) -> None:
    """Delete a file or folder (with everything in it); nothing where there is none."""
    if not is_uri(location):
        path = Path(location)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        return
    import pyarrow.fs

    fs, path = _filesystem(location)
    kind = fs.get_file_info(path).type
    if kind == pyarrow.fs.FileType.Directory:
        fs.delete_dir(path)
    elif kind == pyarrow.fs.FileType.File:
        fs.delete_file(path)


def subfolders(location: str) -> list[str]:
    """The folders directly inside ``location`` (none where it does not exist), sorted."""
    if not is_uri(location):
        path = Path(location)
        return sorted(str(p) for p in path.iterdir() if p.is_dir()) if path.is_dir() else []
    import pyarrow.fs

    fs, path = _filesystem(location)
    infos = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return sorted(join(location, info.base_name) for info in infos if info.type == pyarrow.fs.FileType.Directory)


def read_text(location: str) -> str | None:
    """The file's text, or None where there is none."""
    if not is_uri(location):
        path = Path(location)
        return path.read_text(encoding="utf-8") if path.is_file() else None
    fs, path = _filesystem(location)
    try:  # one round trip: a missing object is the error, not a separate existence check
        with fs.open_input_stream(path) as stream:
            return stream.read().decode("utf-8")
    except FileNotFoundError:
        return None


def write_text(location: str, text: str, unique: bool = False) -> None:
    """Whole or absent: written beside its place, then moved there. ``unique``: the partial file is this writer's
    own (writers racing for one place each move a whole file there; the last one stays)."""
    suffix = f".{uuid.uuid4().hex}.partial" if unique else ".partial"
    if not is_uri(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + suffix)
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        return
    fs, path = _filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path + suffix) as stream:
        stream.write(text.encode("utf-8"))
    fs.move(path + suffix, path)


def materialize(location: str) -> Path:
    """A local path holding ``location``: itself for a folder; for a URI a node-local copy, fetched once per node
    (concurrent readers each fetch into their own folder; the first to finish publishes it)."""
    if not is_uri(location):
        return Path(location)
    import pyarrow.fs

    local = node_cache() / "copies" / hashlib.sha256(location.encode()).hexdigest()[:24]
    if local.exists():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    partial = local.with_name(f"{local.name}.partial-{os.getpid()}")
    fs, path = _filesystem(location)
    if fs.get_file_info(path).type == pyarrow.fs.FileType.Directory:
        partial.mkdir()
        pyarrow.fs.copy_files(path, str(partial), source_filesystem=fs,
                              destination_filesystem=pyarrow.fs.LocalFileSystem())
    else:
        raise FileNotFoundError(f"{location}: no such folder in the study's storage")
    try:
        partial.rename(local)
    except OSError:  # another reader on this node published it first
        shutil.rmtree(partial, ignore_errors=True)
    return local


class StudyStorage:
    """Where a study's files live (``location``) and where this process writes them first (``local``)."""

    def __init__(self, storage: str, study: str):
        self.root = storage if is_uri(storage) else str(Path(storage).expanduser().resolve())
        if is_uri(storage):
            self.location = join(storage, study)
            digest = hashlib.sha256(self.location.encode()).hexdigest()[:16]
            self.local = node_cache() / "work" / digest / study
        else:
            self.local = Path(storage).expanduser().resolve() / study
            self.location = str(self.local)
        self.remote = is_uri(storage)

    def location_of(self, local: Path) -> str:
        """Where a file or folder written under ``local`` lives for every other process."""
        if not self.remote:
            return str(local)
        return join(self.location, *Path(local).relative_to(self.local).parts)

    def publish(self, local: Path) -> str:
        """Copy a whole file or folder written under ``local`` to the storage; its location. A folder gets a
        ``.published`` marker last, so a reader on another node never takes a half-copied one for whole."""
        target = self.location_of(local)
        if self.remote:
            import pyarrow.fs

            fs, path = _filesystem(target)
            folder = Path(local).is_dir()
            fs.create_dir(path if folder else path.rsplit("/", 1)[0], recursive=True)
            pyarrow.fs.copy_files(str(local), path, source_filesystem=pyarrow.fs.LocalFileSystem(),
                                  destination_filesystem=fs)
            if folder:
                write_text(join(target, PUBLISHED), "")
        return target

    def published(self, local: Path) -> bool:
        """Whether the folder written under ``local`` is whole on the storage."""
        return exists(join(self.location_of(local), PUBLISHED))

    def local_of(self, location: str) -> Path:
        """The working copy of a location this process published (it may be absent: published by another node)."""
        if not self.remote:
            return Path(location)
        return self.local.joinpath(*location[len(self.location):].strip("/").split("/"))

    def checkpoint_location(self, path: str) -> str:
        """A checkpoint path as Ray Tune reports it (inside the storage's filesystem, without a scheme) as a
        location other processes can read."""
        if not self.remote or is_uri(path):
            return path
        return f"{self.location.split('://', 1)[0]}://{path}"


def default_cache_dir() -> Path:
    """Where micro worlds, their models and the hub models' local copies are cached on this machine
    (``$RAY_XT_CACHE``, else ``~/.cache/ray_xt``)."""
    return Path(os.environ.get("RAY_XT_CACHE", Path.home() / ".cache" / "ray_xt"))

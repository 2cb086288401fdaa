"""Where a study keeps things: its folders, its finished stages' records, and the parts every stage and the
driver share (storage, paths, records, MLflow experiment, feature cache), built once from the config."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ray_xt import storage
from ray_xt.config import StudyConfig
from ray_xt.data import FeatureCache
from ray_xt.records import StageRecord
from ray_xt.stages import Stage
from ray_xt.storage import StudyStorage
from ray_xt.tracking import Tracker


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        rev = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return (rev + ("-dirty" if dirty else "")) if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class StudyPaths:
    root: Path  # <storage>/<study>

    @property
    def tune(self) -> Path:
        return self.root / "tune"

    @property
    def stages(self) -> Path:
        return self.root / "stages"

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def predictions(self) -> Path:
        """XTREME submissions, one per target/retrieval stage: <stage name>/<task>/test-<lang>.{tsv,json}."""
        return self.root / "predictions"


def node_local_storage(storage: str, alive_nodes: int) -> str | None:
    """Why ``storage`` cannot serve a cluster of ``alive_nodes`` nodes, or None: a relative path is a different
    folder on every node (and Ray Tune does not sync a worker's checkpoints to the head), so the next stage on
    another node would not find them."""
    if alive_nodes <= 1 or "://" in storage or Path(storage).expanduser().is_absolute():
        return None
    return (f"storage: {storage!r} is a relative, node-local path, but this cluster has {alive_nodes} nodes: a "
            "checkpoint a worker writes would not be there for the next stage on another node. Use a folder every "
            "node mounts (storage: /mnt/shared/results, or --storage /mnt/shared/results; the Makefile's cluster "
            "targets pass it) or a URI Ray Tune accepts. Nothing was run.")


class StageStore:
    """Finished stages as JSON files: survives the driver, read before anything is scheduled."""

    def __init__(self, directory: str | Path):
        self.directory = str(directory)  # a folder or a URI (ray_xt.storage)

    def _location(self, stage: Stage) -> str:
        return storage.join(self.directory, f"{stage.key}.json")

    def get(self, stage: Stage) -> StageRecord | None:
        text = storage.read_text(self._location(stage))
        return json.loads(text) if text is not None else None

    def put(self, stage: Stage, record: StageRecord) -> None:  # whole or absent
        storage.write_text(self._location(stage), json.dumps(record, indent=1, default=str) + "\n")


def absolute_uri(uri: str) -> str:
    """A SQLite store made absolute (stage drivers run as Ray tasks in other working directories) and
    patient: concurrent stage drivers write to it, so a writer waits for the lock instead of failing."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = uri[len(prefix):]
    if not path.startswith("/"):
        path = str(Path(path).resolve())
    if "timeout=" not in path:
        path += ("&" if "?" in path else "?") + "timeout=60"
    return prefix + path


def recordable(cfg: StudyConfig) -> dict:
    """The resolved study as stage records and checkpoints keep it: no password of the tracking URI."""
    from ray_xt.tracking import without_password

    dumped = cfg.model_dump(mode="json")
    dumped["tracking"]["uri"] = without_password(dumped["tracking"]["uri"])
    return dumped


def stage_store(cfg: StudyConfig) -> StageStore:
    """A study's finished-stage records where its storage keeps them (nothing else of the study is opened)."""
    return StageStore(storage.join(StudyStorage(cfg.storage, cfg.name).location, "stages"))


@dataclass
class StudyParts:
    """A study's storage, paths, stage records, MLflow experiment and feature cache (each built from the config)."""

    storage: StudyStorage
    paths: StudyPaths
    store: StageStore
    tracker: Tracker
    features: FeatureCache

    @classmethod
    def of(cls, cfg: StudyConfig, tracking_uri: str, features: FeatureCache | None = None) -> StudyParts:
        """``features``: a cache to share (the driver's, which counts what it tokenised), else a new one."""
        where = StudyStorage(cfg.storage, cfg.name)
        paths = StudyPaths(where.local)  # written here first; the storage publishes them
        return cls(where, paths, StageStore(where.location_of(paths.stages)),
                   Tracker(tracking_uri, cfg.tracking.experiment or f"ray_xt/{cfg.name}"),
                   features or FeatureCache(paths.features, storage=where))

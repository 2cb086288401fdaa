"""MLflow tracking URIs checked before anything starts, and printed, recorded and logged without their password."""

from __future__ import annotations

import re

# MLflow's tracking stores: a file store (a path, file:), a database (SQLAlchemy URIs), a server, Databricks
TRACKING_SCHEMES = ("http", "https", "file", "sqlite", "postgresql", "mysql", "mssql", "databricks")


def without_password(uri: str) -> str:
    """The URI as it may be printed, recorded or logged: a password in it replaced by ***."""
    return re.sub(r"(://[^/@:]*):[^/@]*@", r"\1:***@", str(uri))


def tracking_problem(uri: str) -> str | None:
    """Why MLflow cannot use ``uri`` as its tracking store (None: it can), decided without connecting."""
    scheme = _scheme(uri)
    if scheme is not None and scheme not in TRACKING_SCHEMES:
        return (f"tracking URI {without_password(uri)!r}: MLflow has no tracking store for {scheme}://; valid: "
                "sqlite:///mlruns.db, http(s)://server:5000, a folder, postgresql://..., mysql://..., databricks")
    return None


def store_problem(uri: str) -> str | None:
    """Why a file-backed tracking store cannot be opened here (None: it can): a sqlite database in a folder that
    does not exist. Checked before a study runs (not when a study file is read: a benchmark or test may create the
    folder after building its study)."""
    scheme = _scheme(uri)
    if scheme == "sqlite":
        from pathlib import Path

        # SQLAlchemy's form: sqlite:///relative/x.db (three slashes), sqlite:////absolute/x.db (four)
        database = str(uri).split("://", 1)[1].split("?", 1)[0][1:]
        folder = Path(database).parent
        if database and database != ":memory:" and not folder.is_dir():
            return (f"tracking URI {uri!r}: the folder {folder} of its database does not exist; create it or give "
                    "sqlite:///mlruns.db (a file in this folder)")
    return None


def _scheme(uri: str) -> str | None:
    """A URI's scheme without its driver (postgresql+psycopg2 -> postgresql); None for a plain path."""
    return str(uri).split("://", 1)[0].split("+", 1)[0] if "://" in str(uri) else None

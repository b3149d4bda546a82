"""Where Optuna keeps the tuning trials: a SQLite file beside the variant's tuning outputs, or a database
that several machines share.

The environment variable OPTUNA_STORAGE, when set, names the shared database as a SQLAlchemy URL
(`postgresql://user:password@host/db`, or `sqlite:///path/optuna.db`); it is not in params.yaml because
it is where results are kept, not what the study is, and it may hold a password. The URL is checked
before anything is trained, so that a typo costs a second, not a search: its scheme (SQLite and
PostgreSQL), its driver (installed?) and, for SQLite, the file's folder. A password never appears in a
message: URLs are shown with it masked.

Several workers (study/worker.py) may share one database. `exclusive` lets one of them at a time change
what the others decide from (which trials a grid has), and `open_storage` takes Optuna's heartbeat
settings, by which a worker's trials are known to be alive.
"""

import fcntl
import hashlib
import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import optuna
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError, SQLAlchemyError

from study.errors import StudyError

ENVIRONMENT = "OPTUNA_STORAGE"
DATABASE_FILE = "optuna.db"
SUPPORTED = ("sqlite", "postgresql")
# The package that provides each database driver, for the message when it is not installed.
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000"}
# Workers started together on a fresh database all create Optuna's tables at once, and all but one
# can fail on it (a duplicate table or type); opening again finds the tables made.
OPEN_TRIES = 3


def resolve(folder: str | Path) -> URL:
    """The checked storage URL: OPTUNA_STORAGE when set, else sqlite:///<folder>/optuna.db, `folder`
    (the variant's own tuning folder) created when missing, as for a variant's first search.

    A URL object, not a string: printing it shows `***` for the password; `connection_string` gives
    what Optuna needs."""
    given = os.environ.get(ENVIRONMENT, "").strip()
    if given:
        return check(given, ENVIRONMENT)
    Path(folder).mkdir(parents=True, exist_ok=True)
    return check(f"sqlite:///{Path(folder) / DATABASE_FILE}", "storage")


def check(text: str, source: str) -> URL:
    """Parse and check a storage URL; one line (StudyError) naming what is wrong, never the password."""
    try:
        url = make_url(text)
    except ArgumentError:
        raise StudyError(
            f"{source} = {mask(text)!r}: not a database URL; use postgresql://user:password@host/database "
            "or sqlite:///path/optuna.db"
        ) from None
    backend = url.get_backend_name()
    if backend not in SUPPORTED:
        hint = " (SQLAlchemy spells it postgresql://)" if backend == "postgres" else ""
        raise StudyError(
            f"{source} = {shown(url)!r}: unsupported database {backend!r}{hint}; "
            f"supported: {', '.join(SUPPORTED)}"
        )
    try:
        url.get_dialect().import_dbapi()
    except ImportError:
        driver = url.get_driver_name()
        raise StudyError(
            f"{source} = {shown(url)!r}: its driver {driver!r} is not installed; "
            f"`pip install {DRIVER_PACKAGES.get(driver, driver)}`, or name another driver "
            f"({backend}+<driver>://...)"
        ) from None
    except ArgumentError:  # a driver SQLAlchemy has no dialect for
        raise StudyError(
            f"{source} = {shown(url)!r}: SQLAlchemy knows no driver {url.get_driver_name()!r} for {backend}"
        ) from None
    if backend == "sqlite":
        _check_sqlite(url, source)
    return url


def _check_sqlite(url: URL, source: str) -> None:
    if url.database in (None, "", ":memory:"):
        # An in-memory database dies with the process: an interrupted search could not resume.
        raise StudyError(
            f"{source} = {shown(url)!r}: an in-memory database keeps no trials; name a file, "
            "sqlite:///path/optuna.db"
        )
    folder = Path(url.database).parent
    if not folder.is_dir():
        raise StudyError(
            f"{source} = {shown(url)!r}: folder {str(folder)!r} does not exist; "
            "create it or name another file"
        )


def open_storage(
    url: URL | str, *, heartbeat: int | None = None, grace: int | None = None
) -> optuna.storages.RDBStorage:
    """Optuna's storage at `url` (checked first when given as text); one line when the database cannot
    be opened (down, refusing, a wrong password), with the password scrubbed from the reason.

    `heartbeat`: seconds between the signs of life a worker records for each trial it trains; `grace`:
    how long a running trial may stay silent before another worker presumes its worker dead (Optuna's
    `heartbeat_interval` and `grace_period`)."""
    url = check(url, "storage") if isinstance(url, str) else url
    for attempt in range(1, OPEN_TRIES + 1):
        try:
            with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna, since 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    connection_string(url), heartbeat_interval=heartbeat, grace_period=grace
                )
        except (IntegrityError, ProgrammingError) as error:
            if attempt == OPEN_TRIES:
                _cannot_open(url, error)
            time.sleep(attempt)  # another worker is creating the tables: they are there in a moment
        except SQLAlchemyError as error:
            _cannot_open(url, error)
    raise AssertionError("the loop returns or raises")


def _cannot_open(url: URL, error: SQLAlchemyError) -> NoReturn:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if url.password:  # as given, and as it stands in a URL
        for secret in (str(url.password), quote(str(url.password), safe="")):
            reason = reason.replace(secret, "***")
    raise StudyError(f"Optuna storage {shown(url)!r} cannot be opened: {mask(reason)}") from None


@contextmanager
def exclusive(rdb: optuna.storages.RDBStorage, name: str) -> Iterator[None]:
    """Hold the lock called `name` in the database `rdb` keeps: one process at a time, on any machine
    that shares it, runs the block. PostgreSQL: an advisory lock, held by a transaction of its own (the
    server releases it when the process dies, killed or not). SQLite: a lock on a file beside the
    database, as every process sharing a SQLite file runs on one machine (the kernel releases it)."""
    engine = rdb.engine
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with engine.begin() as connection:  # committed at the block's end, which releases the lock
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield
        return
    with open(f"{engine.url.database}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def connection_string(url: URL) -> str:
    """What SQLAlchemy (and Optuna) connect with, password included: never print it."""
    return url.render_as_string(hide_password=False)


def shown(url: URL) -> str:
    """The URL as it may appear in a message, a file or a log: its password masked."""
    return url.render_as_string(hide_password=True)


def mask(text: str) -> str:
    """`text` with everything that may hold a password masked: what stands before the last `@` (after
    the scheme's `://`, when there is one). For text SQLAlchemy could not parse, or an error message
    that quotes a URL, where the password ends cannot be known: the user name goes too."""
    if "@" not in text:
        return text
    head, _, host = text.rpartition("@")
    scheme, separator, _ = head.partition("://")
    return f"{scheme}{separator}***@{host}" if separator else f"***@{host}"

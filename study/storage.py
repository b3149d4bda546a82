"""Where Optuna keeps the tuning trials: a SQLite file beside the variant's tuning outputs, or a database
that several machines share.

The environment variable OPTUNA_STORAGE, when set, names the shared database as a SQLAlchemy URL
(`postgresql://user:password@host/db`, or `sqlite:///path/optuna.db`); it is not in params.yaml because
it is where results are kept, not what the study is, and it may hold a password. The URL is checked
before anything is trained, so that a typo costs a second, not a search: its scheme (SQLite and
PostgreSQL), its driver (installed?) and, for SQLite, the file's folder. A password never appears in a
message: URLs are shown with it masked.
"""

import os
from pathlib import Path
from urllib.parse import quote

import optuna
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from study.errors import StudyError

ENVIRONMENT = "OPTUNA_STORAGE"
DATABASE_FILE = "optuna.db"
SUPPORTED = ("sqlite", "postgresql")
# The package that provides each database driver, for the message when it is not installed.
DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pg8000": "pg8000"}


def resolve(folder: str | Path) -> URL:
    """The checked storage URL: OPTUNA_STORAGE when set, else sqlite:///<folder>/optuna.db.

    A URL object, not a string: printing it shows `***` for the password; `connection_string` gives
    what Optuna needs."""
    given = os.environ.get(ENVIRONMENT, "").strip()
    if given:
        return check(given, ENVIRONMENT)
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


def open_storage(url: URL | str) -> optuna.storages.RDBStorage:
    """Optuna's storage at `url` (checked first when given as text); one line when the database cannot
    be opened (down, refusing, a wrong password), with the password scrubbed from the reason."""
    url = check(url, "storage") if isinstance(url, str) else url
    try:
        return optuna.storages.RDBStorage(connection_string(url))
    except SQLAlchemyError as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if url.password:  # as given, and as it stands in a URL
            for secret in (str(url.password), quote(str(url.password), safe="")):
                reason = reason.replace(secret, "***")
        raise StudyError(f"Optuna storage {shown(url)!r} cannot be opened: {mask(reason)}") from None


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

"""Where Optuna keeps the trials: OPTUNA_STORAGE or SQLite beside the outputs; bad URLs are one line,
and a password never shows."""

import sys
import threading
import types

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from study import storage
from study.errors import StudyError
from tests.workspace import ROOT, stage

PASSWORD = "s3cr3t-pw"


@pytest.fixture(autouse=True)
def no_shared_storage(monkeypatch):
    monkeypatch.delenv(storage.ENVIRONMENT, raising=False)


def refusal(url: str) -> str:
    with pytest.raises(StudyError) as error:
        storage.check(url, storage.ENVIRONMENT)
    message = str(error.value)
    assert "\n" not in message and PASSWORD not in message
    return message


def test_the_default_is_a_sqlite_file_beside_the_variants_outputs(tmp_path):
    url = storage.resolve(tmp_path)
    assert url.get_backend_name() == "sqlite"
    assert url.database == str(tmp_path / "optuna.db")


def test_optuna_storage_is_honoured(tmp_path, monkeypatch):
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv(storage.ENVIRONMENT, f"sqlite:///{tmp_path / 'shared' / 'trials.db'}")
    url = storage.resolve(tmp_path / "tuning" / "adam")
    assert url.database == str(tmp_path / "shared" / "trials.db")
    storage.open_storage(url)
    assert (tmp_path / "shared" / "trials.db").exists()


def test_an_empty_optuna_storage_means_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv(storage.ENVIRONMENT, "  ")
    assert storage.resolve(tmp_path).database == str(tmp_path / "optuna.db")


def test_a_postgresql_url_is_accepted_when_its_driver_is_installed(monkeypatch):
    sqlite = storage.check("sqlite:///optuna.db", "storage")  # sqlite3 ships with Python
    assert sqlite.database == "optuna.db"
    monkeypatch.setitem(sys.modules, "psycopg", types.ModuleType("psycopg"))  # installed, as far as it asks
    url = storage.check(f"postgresql+psycopg://study:{PASSWORD}@db.example/optuna", "storage")
    assert PASSWORD not in str(url) and PASSWORD not in storage.shown(url)
    assert PASSWORD in storage.connection_string(url)


def test_an_unparsable_url_is_one_line_without_the_password():
    message = refusal(f"study:{PASSWORD}@db.example/optuna")
    assert "not a database URL" in message and "postgresql://" in message
    message = refusal(f"postgresql:/study:{PASSWORD}@db.example")
    assert "not a database URL" in message


def test_an_unsupported_database_is_named_with_what_is_supported():
    message = refusal(f"mysql://study:{PASSWORD}@db.example/optuna")
    assert "unsupported database 'mysql'" in message and "sqlite, postgresql" in message
    assert "study:***@db.example" in message
    assert "postgresql://" in refusal(f"postgres://study:{PASSWORD}@db.example/optuna")


def test_a_missing_driver_names_the_package_to_install(monkeypatch):
    for module, package in (("psycopg", "psycopg[binary]"), ("psycopg2", "psycopg2-binary")):
        monkeypatch.setitem(sys.modules, module, None)  # an import of it now fails, installed or not
        message = refusal(f"postgresql+{module}://study:{PASSWORD}@db.example/optuna")
        assert f"driver '{module}' is not installed" in message and f"pip install {package}" in message


def test_an_unknown_driver_is_named():
    message = refusal(f"postgresql+nosuchdriver://study:{PASSWORD}@db.example/optuna")
    assert "no driver 'nosuchdriver' for postgresql" in message


def test_a_sqlite_file_needs_an_existing_folder(tmp_path):
    message = refusal(f"sqlite:///{tmp_path / 'missing' / 'optuna.db'}")
    assert "does not exist" in message and str(tmp_path / "missing") in message
    assert "in-memory" in refusal("sqlite://")
    assert "in-memory" in refusal("sqlite:///:memory:")


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path):
    (tmp_path / "optuna.db").write_text("not a database")
    with pytest.raises(StudyError, match="cannot be opened") as error:
        storage.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    assert "\n" not in str(error.value)


def test_a_refusing_database_is_one_line_with_its_password_scrubbed(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", types.ModuleType("psycopg"))
    url = storage.check(f"postgresql://study:{PASSWORD}@db.example/optuna", storage.ENVIRONMENT)

    def refusing(connection_string, **settings):
        quoted = f"connection to {connection_string} failed: password {PASSWORD!r} refused"
        raise OperationalError(
            quoted + "\n(Background on this error at: https://sqlalche.me/e/20/e3q8)", {}, None
        )

    monkeypatch.setattr(storage.optuna.storages, "RDBStorage", refusing)
    with pytest.raises(StudyError, match="cannot be opened") as error:
        storage.open_storage(url)
    assert "\n" not in str(error.value) and PASSWORD not in str(error.value)


def test_workers_creating_the_tables_at_once_open_on_a_retry_and_a_refusal_is_not_retried(monkeypatch):
    """Workers started together on a fresh database all create Optuna's tables: the losers see a
    duplicate table and open again; a refusing server is one line at once."""
    monkeypatch.setitem(sys.modules, "psycopg", types.ModuleType("psycopg"))
    url = storage.check(f"postgresql://study:{PASSWORD}@db.example/optuna", storage.ENVIRONMENT)
    calls = []

    def racing(connection_string, **settings):
        calls.append(settings)
        if len(calls) == 1:
            raise ProgrammingError("CREATE TABLE studies", {}, Exception("relation already exists"))
        return "opened"

    monkeypatch.setattr(storage.optuna.storages, "RDBStorage", racing)
    monkeypatch.setattr(storage.time, "sleep", lambda seconds: None)
    assert storage.open_storage(url, heartbeat=2, grace=5) == "opened"
    assert calls == [{"heartbeat_interval": 2, "grace_period": 5}] * 2

    def refusing(connection_string, **settings):
        calls.append(settings)
        raise OperationalError("connect", {}, Exception("connection refused"))

    calls.clear()
    monkeypatch.setattr(storage.optuna.storages, "RDBStorage", refusing)
    with pytest.raises(StudyError, match="cannot be opened"):
        storage.open_storage(url)
    assert len(calls) == 1


def test_exclusive_lets_one_holder_at_a_time_on_a_sqlite_file(tmp_path):
    rdb = storage.open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    events = []
    holding = threading.Event()

    def second():
        holding.wait()
        with storage.exclusive(rdb, "enqueue"):
            events.append("second holds")

    thread = threading.Thread(target=second)
    thread.start()
    with storage.exclusive(rdb, "enqueue"):
        holding.set()
        thread.join(timeout=0.5)
        assert thread.is_alive()  # it waits for the lock ...
        events.append("first releases")
    thread.join(timeout=10)
    assert events == ["first releases", "second holds"]  # ... and takes it once released


def test_mask_hides_what_stands_in_a_passwords_place():
    assert storage.mask(f"x postgresql://study:{PASSWORD}@host/db y") == "x postgresql://***@host/db y"
    assert storage.mask(f"study:{PASSWORD}/x@host/db") == "***@host/db"
    assert storage.mask("sqlite:///path/optuna.db") == "sqlite:///path/optuna.db"


def test_the_tune_stage_refuses_a_bad_url_before_training_and_never_prints_the_password(
    tmp_path, monkeypatch
):
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())  # no data: refused first
    monkeypatch.setenv(storage.ENVIRONMENT, f"mysql://study:{PASSWORD}@db.example/optuna")
    out = stage(tmp_path, "stages.tune", "adam")
    stdout, stderr = out.communicate(timeout=300)
    assert out.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: OPTUNA_STORAGE = 'mysql://study:***@db.example")
    assert PASSWORD not in stdout + stderr

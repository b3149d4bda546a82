"""Workers sharing one PostgreSQL database (`python -m study.worker`): every rate of the grid trained
once however many workers share it, a killed worker's trial taken over by another, the fine grid
enqueued once by workers that reach it together, and the rate chosen as one worker chooses it.

A real PostgreSQL server runs for these tests: a throwaway cluster (initdb) in a temporary folder,
on 127.0.0.1 at a free port, as the `postgres` user when the tests run as root (PostgreSQL refuses
root). `.ci/run` installs Debian's `postgresql` package; without its programs these tests skip.
"""

import os
import pwd
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

import optuna
import pytest

from study import data, params, storage, tuning
from study.errors import StudyError
from tests.workspace import ROOT, get_params, make_workspace, set_params

VARIANT = "adam"
RATES = 3 + 2  # the workspace's grid: 3 coarse rates, then 1 fine rate on each side of the best
RUNS = RATES * 2  # each on both tuning seeds
CLAIM = re.compile(r"^adam: training (coarse|fine) rates (.+) here$")


def postgres_programs() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl): pg_ctl's on PATH, else Debian's
    newest version's."""
    found = shutil.which("pg_ctl")
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    folders = [Path(found).resolve().parent] if found else []
    folders += sorted(
        (folder for folder in debian if folder.parent.name.isdigit()),
        key=lambda folder: -int(folder.parent.name),
    )
    return next((f for f in folders if (f / "initdb").exists() and (f / "pg_ctl").exists()), None)


class Server:
    """A throwaway PostgreSQL cluster; `database(name)` creates a database and gives its URL."""

    def __init__(self, programs: Path, user: str | None):
        self.programs = programs
        self.as_user = ["runuser", "-u", user, "--"] if user else []
        self.folder = Path(tempfile.mkdtemp(prefix="optuna-postgres-"))
        if user:
            account = pwd.getpwnam(user)
            os.chown(self.folder, account.pw_uid, account.pw_gid)
        self.port = free_port()

    def run(self, program: str, *args: str) -> None:
        command = [*self.as_user, str(self.programs / program), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=self.folder)
        assert done.returncode == 0, f"{program} failed: {done.stdout}{done.stderr}"

    def start(self) -> None:
        data_folder = str(self.folder / "data")
        self.run("initdb", "-D", data_folder, "-U", "study", "--auth=trust", "-E", "UTF8", "--no-sync")
        settings = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        log = str(self.folder / "server.log")
        self.run("pg_ctl", "-D", data_folder, "-l", log, "-w", "-t", "60", "-o", settings, "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres", driver=""), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, name: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver + '://' if driver else 'postgresql://'}study@127.0.0.1:{self.port}/{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    programs = postgres_programs()
    if programs is None:
        pytest.skip(
            "PostgreSQL's programs (initdb, pg_ctl) are not installed: `apt-get install postgresql` "
            "(.ci/run does) to run the shared-storage tests"
        )
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the user Debian's package made
        try:
            user = pwd.getpwnam("postgres").pw_name
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user for PostgreSQL to run as")
    server = Server(programs, user)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    monkeypatch.delenv(storage.ENVIRONMENT, raising=False)
    folder = make_workspace(tmp_path, seeds=(0, 1))
    raw = get_params(folder)
    raw["variants"][VARIANT]["search"] = [1.0e-4, 1.0]  # coarse rates 1e-4, 0.01, 1: one clearly best
    set_params(folder, raw)
    return folder


def start_worker(workspace: Path, url: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "study.worker", VARIANT, "--heartbeat", "1", "--poll", "0.5", *options],
        cwd=workspace,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", storage.ENVIRONMENT: url},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(worker: subprocess.Popen) -> str:
    output, _ = worker.communicate(timeout=240)
    assert worker.returncode == 0, output[-3000:]
    return output


def runs_trained(output: str) -> int:
    found = re.search(r"\((\d+) runs trained by this worker\)", output)
    assert found, output[-3000:]
    return int(found.group(1))


def claims(output: str) -> list[list[float]]:
    return [
        [float(rate) for rate in found.group(2).split(", ")]
        for found in map(CLAIM.match, output.splitlines())
        if found
    ]


def trials(workspace: Path, url: str) -> list[optuna.trial.FrozenTrial]:
    study = params.load(workspace / "params.yaml")
    return optuna.load_study(study_name=tuning.study_name(study, VARIANT), storage=url).trials


def told_once(record: list[optuna.trial.FrozenTrial]) -> Counter:
    """How many told trials each rate has."""
    return Counter(t.params["learning_rate"] for t in record if t.state in tuning._TOLD)


def splits(workspace: Path):
    folder = workspace / "data" / "prepared"
    return data.load_split(folder, "train"), data.load_split(folder, "validation")


def test_two_workers_train_every_rate_once_and_choose_the_rate_one_worker_chooses(
    postgres, workspace, monkeypatch
):
    url, alone_url = postgres.database("two_workers"), postgres.database("one_worker")
    workers = [start_worker(workspace, url, "--workers", "2", "--grace", "30") for _ in range(2)]
    alone_worker = start_worker(workspace, alone_url, "--grace", "30")  # meanwhile, on its own database
    outputs = [finish(worker) for worker in workers]

    trained = [runs_trained(output) for output in outputs]
    assert sum(trained) == RUNS  # every rate on every tuning seed, trained once across the workers ...
    assert all(trained), outputs  # ... by both of them
    claimed = [rate for output in outputs for group in claims(output) for rate in group]
    assert len(claimed) == RATES and len(set(claimed)) == RATES
    assert all(len(group) <= 2 for output in outputs for group in claims(output))  # 1/2 of a grid at most
    record = trials(workspace, url)
    assert len(record) == RATES  # no rate enqueued twice
    assert told_once(record) == dict.fromkeys(claimed, 1)

    # One worker alone trains the whole grid as one group per stage.
    output = finish(alone_worker)
    assert runs_trained(output) == RUNS and [len(group) for group in claims(output)] == [3, 2]

    # The pipeline's search then collects each: every trial told, nothing trained for tuning.
    groups = []
    monkeypatch.setattr(tuning, "train_group", lambda *args, **kwargs: groups.append(args))
    study = params.load(workspace / "params.yaml")
    train, validation = splits(workspace)
    shared, alone = (tuning.search(study, VARIANT, u, train, validation) for u in (url, alone_url))
    assert groups == [] and len(shared) == len(alone) == RUNS

    # The same grids, and the same chosen rate.
    for stage in ("coarse", "fine"):
        assert rates(shared, stage) == rates(alone, stage)
    chosen = tuning.choose(shared)
    assert chosen["learning_rate"] == tuning.choose(alone)["learning_rate"]
    # Its score too, up to the float rounding in which the groups that trained it differ.
    assert chosen["val_accuracy"] == pytest.approx(tuning.choose(alone)["val_accuracy"], abs=0.01)


def rates(rows: list[dict], stage: str) -> list[float]:
    return sorted({row["learning_rate"] for row in rows if row["stage"] == stage})


def test_a_killed_workers_unfinished_trials_are_trained_by_another(postgres, workspace):
    url = postgres.database("killed_worker")
    doomed = start_worker(workspace, url, "--workers", "2", "--grace", "3")
    lines = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line.rstrip("\n")) for line in doomed.stdout], daemon=True
    ).start()
    taken = None
    while taken is None:
        line = lines.get(timeout=120)
        found = CLAIM.match(line)
        taken = [float(rate) for rate in found.group(2).split(", ")] if found else None
    os.kill(doomed.pid, signal.SIGKILL)  # mid-trial: its rates are claimed and training, none told
    doomed.wait(timeout=30)
    survivor = start_worker(workspace, url, "--workers", "2", "--grace", "3")

    output = finish(survivor)
    assert runs_trained(output) == RUNS  # the doomed worker's rates too
    record = trials(workspace, url)
    failed = [t for t in record if t.state == optuna.trial.TrialState.FAIL]
    states = [(t.number, t.state.name, tuning._rate(t)) for t in record]
    assert sorted(tuning._rate(t) for t in failed) == sorted(taken), states  # failed once gone stale ...
    assert not [
        t for t in record if t.state in (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    ]
    counts = told_once(record)
    assert len(counts) == RATES and set(counts.values()) == {1}  # ... and each of its rates told once
    assert set(taken) <= set(counts)


def test_workers_reaching_a_grid_together_enqueue_each_rate_once(postgres, workspace):
    """Eight workers settle the same grid at the same moment (as when two finish the coarse grid
    together): the database's lock lets one enqueue it, the others find it there."""
    url = postgres.database("enqueue_race")
    study = params.load(workspace / "params.yaml")
    fine = [0.005623, 0.01778]
    shared = [tuning._open(study, VARIANT, url, heartbeat=1, grace=3) for _ in range(8)]
    start = threading.Barrier(len(shared))
    errors = []

    def settle(worker):
        try:
            start.wait(timeout=30)
            tuning._settle(worker, "fine", fine)
        except Exception as error:  # reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=settle, args=(worker,)) for worker in shared]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    record = trials(workspace, url)
    assert sorted(tuning._rate(t) for t in record) == fine
    assert {t.state for t in record} == {optuna.trial.TrialState.WAITING}
    assert {t.user_attrs["stage"] for t in record} == {"fine"}


def test_a_worker_refuses_to_start_without_a_shared_storage_or_with_a_grace_shorter_than_a_heartbeat(
    workspace, monkeypatch
):
    from study import worker

    monkeypatch.chdir(workspace)
    with pytest.raises(StudyError, match="OPTUNA_STORAGE is not set: workers share their trials through it"):
        worker.main([VARIANT])  # the default SQLite file is no one else's: nothing would be shared
    with pytest.raises(StudyError, match="--grace = 2 must exceed --heartbeat = 2"):
        worker.parse([VARIANT, "--heartbeat", "2", "--grace", "2"])
    with pytest.raises(StudyError, match="--workers = 0: must be positive"):
        worker.parse([VARIANT, "--workers", "0"])

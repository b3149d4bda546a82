"""User-facing failures: one line that names the bad value and what would be valid."""

import errno
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress

import psutil

from study import timing

# How often a stage checks that the process that started it (DVC, make, a shell) still runs.
PARENT_POLL_S = 0.5
SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "busybox"}
# What to do about the OSErrors a stage can meet, by errno: each becomes one line, never a traceback.
OS_ADVICE = {
    errno.ENOSPC: (
        "the disk is full: free some space (`dvc gc -w` drops cached data the workspace no longer uses)"
    ),
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: "permission denied: make that path writable (or readable) for this user",
    errno.EPERM: "operation not permitted: check that path's owner and permissions",
    errno.EROFS: "the file system is read-only: run the study from a writable copy",
    errno.EMFILE: "too many open files: raise the limit (`ulimit -n`)",
    errno.ENOMEM: "out of memory: close other programs",
}


class StudyError(Exception):
    """A failure the user can act on (bad params, unreachable data, corrupt file).

    Its message is printed alone, without a traceback: it must name what failed and how to fix it.
    """


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(): a StudyError, an OSError or a MemoryError becomes one line on stderr and
    exit status 2.

    - A variant's stage (`variant@adam`) takes its variant from DVC_STAGE, which DVC sets for every
      command it runs: dvc.yaml's commands carry no variant name, so no shell ever reads one. By hand,
      the variant is the argument: `python -m stages.variant adam`.
    - SIGTERM (what `kill` and CI runners send) is raised as KeyboardInterrupt, like Ctrl-C, so that
      the stage's cleanup runs and no temporary output outlives it.
    - The stage dies with the process that started it (`die_with_parent`): if `dvc repro` is killed,
      its stage stops too rather than writing outputs that DVC never records.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    die_with_parent()
    _variant_from_dvc()
    started = time.time()
    try:
        main()
        timing.report(started)
    except StudyError as error:
        _fail(str(error))
    except OSError as error:
        _fail(describe_os_error(error))
    except MemoryError:
        _fail("out of memory: close other programs, or lower model.hidden_units or the batch sizes")
    except KeyboardInterrupt:
        # Outputs are written under temporary names, so an interruption leaves nothing to clean up.
        print("interrupted: no output was written; rerun `dvc repro` to continue", file=sys.stderr)
        sys.exit(130)


def describe_os_error(error: OSError) -> str:
    """`data/prepared/train.npz: No space left on device: the disk is full: free some space (...)`."""
    where = " -> ".join(str(name) for name in (error.filename, error.filename2) if name is not None)
    reason = error.strerror or str(error) or type(error).__name__
    advice = OS_ADVICE.get(error.errno, "fix the cause and rerun `dvc repro`")
    return one_line(f"{where + ': ' if where else ''}{reason}: {advice}")


def one_line(text) -> str:
    return " ".join(str(text).split())


def die_with_parent() -> None:
    """Stop this process (SIGTERM, so that its cleanup runs) when the process it runs for has gone.

    That is its parent, and when the parent is a shell running one command (`sh -c`, as DVC starts a
    stage), the shell's parent too: DVC itself. A thread checks every PARENT_POLL_S seconds; a parent
    that has exited but not yet been reaped (a zombie) counts as gone.
    """
    watched = _starters()
    if not watched:
        return

    def watch():
        while all(_alive(process) for process in watched):
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


def _starters() -> list[psutil.Process]:
    try:
        parent = psutil.Process().parent()
        if parent is None or parent.pid == 1:
            return []
        starters = [parent]
        command = parent.cmdline()
        if command and os.path.basename(command[0]) in SHELLS and "-c" in command:
            grandparent = parent.parent()
            if grandparent is not None and grandparent.pid != 1:
                starters.append(grandparent)
        return starters
    except psutil.Error:
        return []


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _variant_from_dvc() -> None:
    """DVC_STAGE is `variant@adam` for the stage DVC generates from `variant`'s foreach for `adam`."""
    stage = os.environ.get("DVC_STAGE", "")
    if len(sys.argv) == 1 and "@" in stage:
        sys.argv.append(stage.partition("@")[2])


def _fail(message: str) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(2)


def _interrupt(signum, frame):
    with suppress(ValueError):  # restore the default, so that a second SIGTERM ends the process at once
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raise KeyboardInterrupt

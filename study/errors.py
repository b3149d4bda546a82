"""User-facing failures: one line that names the bad value and what would be valid."""

import signal
import sys
import time
from collections.abc import Callable

from study import timing


class StudyError(Exception):
    """A failure the user can act on (bad params, unreachable data, corrupt file).

    Its message is printed alone, without a traceback: it must name what failed and how to fix it.
    """


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(), turning a StudyError into one line on stderr and exit status 2.

    SIGTERM (what `kill` and CI runners send) is raised as KeyboardInterrupt, like Ctrl-C, so that
    the stage's cleanup runs and no temporary output outlives it.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.time()
    try:
        main()
        timing.report(started)
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        # Outputs are written under temporary names, so an interruption leaves nothing to clean up.
        print("interrupted: no output was written; rerun `dvc repro` to continue", file=sys.stderr)
        sys.exit(130)


def _interrupt(signum, frame):
    raise KeyboardInterrupt

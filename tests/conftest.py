"""Set-up every test module shares."""

import signal

import pytest


@pytest.fixture(scope="session", autouse=True)
def interruptible():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt, as in a terminal, even where pytest was started as a
    background job, which a shell starts with SIGINT ignored: the tests that interrupt a download or a
    stage need it, here and in the stages they start (a handled signal reaches a new program as the
    default, which Python turns into KeyboardInterrupt; an ignored one stays ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)

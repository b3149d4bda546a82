"""TensorFlow's start-up notices, kept out of the stages' output.

TensorFlow's C++ side writes notices to the process's stderr before its logging is set up
(`All log messages before absl::InitializeLog() ...`, oneDNN's round-off notice, "Could not find cuda
drivers"), whatever TF_CPP_MIN_LOG_LEVEL says; on a machine without a GPU it then logs a CUDA
`cuInit` failure as an error. They would bury a stage's own few lines. So the first
`import tensorflow` runs with file descriptor 2 sent to a temporary file, and afterwards every line of
it that is not one of those known notices is written to stderr as it was: nothing else is hidden.
TF_CPP_MIN_LOG_LEVEL=3 then drops the C++ log lines after start-up (TensorFlow's real failures reach
Python as exceptions). STUDY_TF_LOGS=1 shows everything again.
"""

import importlib.abc
import importlib.machinery
import os
import re
import sys
import tempfile

NOTICES = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"Could not find cuda drivers|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|This TensorFlow binary is optimized to use available CPU"
)


def install() -> None:
    """Quiet TensorFlow's start-up, unless STUDY_TF_LOGS=1 or TensorFlow is already imported."""
    if os.environ.get("STUDY_TF_LOGS") == "1":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


class _Finder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: for `tensorflow` it wraps the real loader's exec_module, once."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with tempfile.TemporaryFile(mode="w+b") as caught:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(caught.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                kept = [
                    line
                    for line in caught.read().decode(errors="replace").splitlines(True)
                    if not NOTICES.search(line)
                ]
                sys.stderr.write("".join(kept))

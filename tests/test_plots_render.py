"""`dvc plots show` on the committed study draws every plot in headless Chromium, with no console error
(scripts/render_plots.py). Skipped where Chromium is missing, or where the page's scripts can be had
neither from the CDN nor from a local copy (VEGA_SCRIPTS, ~/.cache/vega-scripts)."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import render_plots  # noqa: E402


def cdn_reachable() -> bool:
    try:
        socket.getaddrinfo("cdn.jsdelivr.net", 443)
    except OSError:
        return False
    return True


NO_CHROMIUM = "Chromium is not installed (apt-get install chromium)"
OFFLINE = "offline, and no local copy of vega's scripts: set VEGA_SCRIPTS (see scripts/render_plots.py)"


@pytest.mark.skipif(render_plots.browser() is None, reason=NO_CHROMIUM)
def test_every_plot_draws_in_chromium_without_a_console_error():
    scripts = render_plots.scripts_folder()
    if scripts is None and not cdn_reachable():
        pytest.skip(OFFLINE)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_plots.py"), "--repo", str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    drawn = [line for line in result.stdout.splitlines() if line.endswith(": drawn")]
    assert len(drawn) >= 6, result.stdout  # the curves (3), the batch-size sweep (2), the landscapes


def test_a_broken_plot_is_reported():
    """The checker itself: a plot that never drew, or an error in the console, is a problem."""
    report = {
        "problems": [
            "warn: The input spec uses Vega-Lite v5, but the current version of Vega-Lite is v5.2.0.",
            "uncaught: Uncaught SyntaxError: missing ) after argument list",
        ],
        "plots": [{"id": "#curves", "drawn": True}, {"id": "#empty", "drawn": False}],
    }
    found = render_plots.problems(report, ["curves", "empty", "landscapes"])
    assert found == [
        "uncaught: Uncaught SyntaxError: missing ) after argument list",
        "empty: drew nothing",
        "landscapes: never drawn (its script did not run)",
    ]

"""Refresh the README's pictures in docs/ from the committed results: `python scripts/screenshots.py`.

- docs/report.png: the top of reports/study.html, as a reader first sees it;
- docs/claims.png: the report from its claims table on (its cells before that one left out);
- docs/plots.png: `dvc plots show`, every plot drawn (scripts/render_plots.py, which also checks them).
Needs Chromium; run it after the report is rebuilt.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import render_plots

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "reports" / "study.html"
CLAIMS_HEADING = "The-claims-and-their-verdicts"  # the heading's id, as nbconvert writes it
SIZE = "--window-size=1300,1500"
# Put at the end of a copy of the report: drops every cell before the one that holds the heading.
FROM_HEADING = """<script>
const heading = document.getElementById("{id}");
let cell = heading && heading.closest(".jp-Cell");
while (cell && cell.previousElementSibling) cell.previousElementSibling.remove();
</script>"""


def screenshot(binary: str, page: Path, picture: Path) -> None:
    render_plots.chromium(binary, page.as_uri(), f"--screenshot={picture.resolve()}", SIZE)
    print(f"saved {picture.relative_to(ROOT)}")


def main() -> int:
    binary = render_plots.browser()
    if binary is None:
        print("no Chromium found: install it (`apt-get install chromium`)", file=sys.stderr)
        return 2
    html = REPORT.read_text()
    if f'id="{CLAIMS_HEADING}"' not in html:
        print(f"{REPORT.relative_to(ROOT)} has no heading with id {CLAIMS_HEADING}", file=sys.stderr)
        return 2
    docs = ROOT / "docs"
    screenshot(binary, REPORT, docs / "report.png")
    with tempfile.TemporaryDirectory() as tmp:
        claims = Path(tmp) / "claims.html"
        claims.write_text(html.replace("</body>", FROM_HEADING.replace("{id}", CLAIMS_HEADING) + "</body>"))
        screenshot(binary, claims, docs / "claims.png")
    plots = [sys.executable, str(ROOT / "scripts" / "render_plots.py"), "--repo", str(ROOT)]
    return subprocess.run([*plots, "--screenshot", str(docs / "plots.png")]).returncode


if __name__ == "__main__":
    sys.exit(main())

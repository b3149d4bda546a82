"""Draw every plot of `dvc plots show` in headless Chromium; fail on a console error or an empty plot.

    python scripts/render_plots.py [--scripts DIR] [--screenshot docs/plots.png]

`dvc plots show` writes a page whose plots vega-embed draws, with vega and vega-lite, loaded from a
CDN. Offline, `--scripts DIR` (or VEGA_SCRIPTS, or ~/.cache/vega-scripts when it exists) names a folder
that holds them under the names the page asks for (`vega@5.20.2.js`, `vega-lite@5.2.0.js`,
`vega-embed@6.18.2.js`: `npm pack vega@5.20.2` gives build/vega.min.js, and so on), and the page loads
them from there instead.

A script put first in the page records every console error and warning, every uncaught exception and
every plot that failed or drew nothing; once all plots have settled it writes that record into the
page, which Chromium's `--dump-dom` returns. Prints one line per plot and per problem; exit status 0
when every plot drew without one, 1 otherwise, 2 when Chromium or a script could not be found.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CDN = re.compile(r'<script src="https://cdn\.jsdelivr\.net/npm/([\w.@-]+)"></script>')
CACHE = Path.home() / ".cache" / "vega-scripts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Virtual time Chromium lets the page run before it dumps the DOM: long enough for every plot to draw
# (vega's rendering is timed on the virtual clock, not the wall clock).
BUDGET_MS = 60_000
WIDTH = 1400  # the window's width in pixels: the page's plots wrap to it
# What vega-embed 6.18.2, the version DVC's page loads, warns about every spec: its own version check
# (it finds vega-lite 5.2.0 not to satisfy "v5"). Not a problem of the plots; every other warning is.
KNOWN = re.compile(r"warn: The (input|compiled) spec uses Vega(-Lite)? v5, but (the )?current version")

RECORDER = """<script>
window.__render = {problems: [], plots: [], pending: []};
for (const level of ["error", "warn"]) {
  const original = console[level].bind(console);
  console[level] = (...args) => {
    window.__render.problems.push(level + ": " + args.map(String).join(" "));
    original(...args);
  };
}
window.addEventListener("error", (e) => window.__render.problems.push("uncaught: " + e.message));
window.addEventListener("unhandledrejection",
  (e) => window.__render.problems.push("uncaught (in promise): " + e.reason));
// vega-embed defines window.vegaEmbed; wrap it as soon as it does, so that every plot is followed.
let embed;
Object.defineProperty(window, "vegaEmbed", {
  configurable: true,
  get: () => embed && ((target, spec, options) => {
    const promise = embed(target, spec, options);
    window.__render.pending.push(promise.then(
      () => {
        const node = document.querySelector(target);
        const drawn = node && node.querySelector("canvas, svg");
        window.__render.plots.push({id: target, drawn: Boolean(drawn)});
      },
      (error) => window.__render.plots.push({id: target, drawn: false, error: String(error)}),
    ));
    return promise;
  }),
  set: (value) => { embed = value; },
});
window.addEventListener("load", () => {
  Promise.allSettled(window.__render.pending).then(() => {
    const report = document.createElement("pre");
    report.id = "render-report";
    report.style.display = "none";
    const {problems, plots} = window.__render;
    report.textContent = JSON.stringify({problems, plots, height: document.body.scrollHeight});
    document.body.appendChild(report);
  });
});
</script>"""


def scripts_folder() -> Path | None:
    """Where the page's scripts are kept on this machine, if anywhere: else they come from the CDN."""
    if os.environ.get("VEGA_SCRIPTS"):
        return Path(os.environ["VEGA_SCRIPTS"])
    return CACHE if CACHE.is_dir() else None


def browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def plots_page(repo: Path, out: Path) -> Path:
    """`dvc plots show` into `out`: the page it wrote."""
    dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    subprocess.run([dvc, "plots", "show", "-o", str(out)], cwd=repo, check=True, capture_output=True)
    return out / "index.html"


def localised(page: str, scripts: Path | None) -> str:
    """The page with the recorder first and, given `scripts`, its CDN scripts read from there."""
    if scripts is not None:
        def local(match: re.Match) -> str:
            path = scripts / f"{match[1]}.js"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: the page needs {match[1]}")
            # A CDN says utf-8 in its headers; a file must say it here (vega's minus sign is not ASCII).
            return f'<script charset="utf-8" src="{path.resolve().as_uri()}"></script>'

        page = CDN.sub(local, page)
    return page.replace("<head>", "<head>\n" + RECORDER, 1)


def chromium(binary: str, url: str, *args: str) -> subprocess.CompletedProcess:
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--virtual-time-budget={BUDGET_MS}", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def render(page: Path, binary: str) -> dict:
    """The recorder's report on `page`: {problems, plots, height}."""
    dom = chromium(binary, page.as_uri(), "--dump-dom", f"--window-size={WIDTH},1000").stdout
    match = re.search(r'<pre id="render-report"[^>]*>(.*?)</pre>', dom, re.S)
    if not match:
        return {"problems": ["the page never finished: no plot settled"], "plots": [], "height": 0}
    return json.loads(match[1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))


def problems(report: dict, expected: list[str]) -> list[str]:
    """Every problem the report shows, one line each: nothing when every expected plot drew."""
    lines = [line for line in report["problems"] if not KNOWN.match(line)]
    drawn = {plot["id"].lstrip("#"): plot for plot in report["plots"]}
    for plot_id in expected:
        plot = drawn.get(plot_id)
        if plot is None:
            lines.append(f"{plot_id}: never drawn (its script did not run)")
        elif not plot["drawn"]:
            lines.append(f"{plot_id}: {plot.get('error', 'drew nothing')}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd())
    parser.add_argument("--scripts", type=Path, default=scripts_folder())
    parser.add_argument("--screenshot", type=Path, help="also save a picture of the whole page here")
    args = parser.parse_args()
    binary = browser()
    if binary is None:
        print("no Chromium found: install it (`apt-get install chromium`)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page = plots_page(args.repo, Path(tmp) / "plots")
        html = page.read_text()
        expected = re.findall(r'<div id = "([^"]+)">', html)
        try:
            page.write_text(localised(html, args.scripts))
        except FileNotFoundError as missing:
            print(missing, file=sys.stderr)
            return 2
        report = render(page, binary)
        found = problems(report, expected)
        for plot_id in expected:
            failed = any(line.startswith(f"{plot_id}:") for line in found)
            print(f"{plot_id}: {'FAILED' if failed else 'drawn'}")
        for line in found:
            print(f"problem: {line}")
        if args.screenshot and not found:
            args.screenshot.parent.mkdir(parents=True, exist_ok=True)
            size = f"--window-size={WIDTH},{report['height'] + 40}"
            chromium(binary, page.as_uri(), f"--screenshot={args.screenshot.resolve()}", size)
            print(f"saved {args.screenshot}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

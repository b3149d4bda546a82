"""The 2-D landscapes: their minima are where they say, every variant solves the convex control, the
outcomes are classified as counted by hand, a diverging start leaves the others alone, and the stage
writes what it documents (or refuses bad params with one line and writes nothing)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from reports import landscapes as report
from study import params
from study.landscape_runs import run_variant
from study.landscapes import FUNCTIONS, Landscape, outcomes, starts, summary, trajectory
from study.params import LANDSCAPES, SGDVariant
from tests.workspace import ROOT, get_params, make_workspace, set_params, stage

GRID = 801
H = 1e-5  # central differences in float64: error about H² x the third derivative


def sgd(learning_rate: float, momentum: float = 0.0) -> SGDVariant:
    return SGDVariant(
        optimizer="sgd",
        batch_size=32,
        learning_rate=learning_rate,
        search=[learning_rate, 10 * learning_rate],
        momentum=momentum,
    )


def gradient(landscape: Landscape, x, y) -> np.ndarray:
    f = landscape.value
    return np.array([(f(x + H, y) - f(x - H, y)) / (2 * H), (f(x, y + H) - f(x, y - H)) / (2 * H)])


def hessian(landscape: Landscape, x: float, y: float) -> np.ndarray:
    e = 1e-4
    f = landscape.value
    fxx = (f(x + e, y) - 2 * f(x, y) + f(x - e, y)) / e**2
    fyy = (f(x, y + e) - 2 * f(x, y) + f(x, y - e)) / e**2
    fxy = (f(x + e, y + e) - f(x + e, y - e) - f(x - e, y + e) + f(x - e, y - e)) / (4 * e**2)
    return np.array([[fxx, fxy], [fxy, fyy]])


def grid(landscape: Landscape, points: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """A grid over the domain and every listed minimum (the saddle's lie outside its starts' strip)."""
    corners = list(zip(*landscape.domain, strict=True))
    box = np.array([*landscape.global_minima, *landscape.local_minima, *corners])
    (xmin, ymin), (xmax, ymax) = box.min(axis=0), box.max(axis=0)
    return np.meshgrid(np.linspace(xmin, xmax, points), np.linspace(ymin, ymax, points))


def test_the_registry_holds_exactly_the_functions_params_accepts():
    assert tuple(FUNCTIONS) == LANDSCAPES
    assert all(landscape.name == name for name, landscape in FUNCTIONS.items())


@pytest.mark.parametrize("name", LANDSCAPES)
def test_listed_minima_are_minima_and_the_global_ones_are_lowest(name):
    landscape = FUNCTIONS[name]
    lowest = min(landscape.value(x, y) for x, y in landscape.global_minima)
    for x, y in [*landscape.global_minima, *landscape.local_minima]:
        assert np.abs(gradient(landscape, x, y)).max() < 1e-7, (x, y)
        assert np.linalg.eigvalsh(hessian(landscape, x, y)).min() > 0, (x, y)
    for x, y in landscape.global_minima:
        assert landscape.value(x, y) == pytest.approx(lowest, abs=1e-12)
    for x, y in landscape.local_minima:
        assert landscape.value(x, y) > lowest + 1e-3
    assert landscape.value(*grid(landscape)).min() >= lowest - 1e-12


@pytest.mark.parametrize("name", LANDSCAPES)
def test_each_function_is_scaled_as_the_module_says(name):
    """Gradient norm of order 1 over the domain, and curvature at the minima at which plain SGD at the
    scaled rate 0.1 settles (rate x curvature < 2)."""
    landscape = FUNCTIONS[name]
    (xmin, xmax), (ymin, ymax) = landscape.domain
    x, y = np.meshgrid(np.linspace(xmin, xmax, 201), np.linspace(ymin, ymax, 201))
    norm = np.hypot(*gradient(landscape, x, y))
    assert 1 <= np.median(norm) <= 3
    assert np.percentile(norm, 90) <= 10
    for point in [*landscape.global_minima, *landscape.local_minima]:
        assert np.linalg.eigvalsh(hessian(landscape, *point)).max() <= 12


def test_starts_are_uniform_over_the_domain_and_fixed_by_the_seed():
    landscape = FUNCTIONS["rosenbrock"]
    points = starts(landscape, 500, seed=3)
    (xmin, xmax), (ymin, ymax) = landscape.domain
    assert points.shape == (500, 2)
    assert (points[:, 0] >= xmin).all() and (points[:, 0] <= xmax).all()
    assert (points[:, 1] >= ymin).all() and (points[:, 1] <= ymax).all()
    assert np.array_equal(points, starts(landscape, 500, seed=3))
    assert not np.array_equal(points, starts(landscape, 500, seed=4))


def test_outcomes_of_paths_written_by_hand():
    bowl = FUNCTIONS["bowl"]  # one global minimum, at (1, -0.5)
    m = (1.0, -0.5)
    path = np.array(
        [
            # settles at step 2 | passes through and leaves | diverges | arrives at the last step
            [(0.0, 0.0), (1.0, -0.3), (0.0, 0.0), (3.0, 0.0)],
            [(0.9, -0.5), m, (5.0, 5.0), (2.0, 0.0)],
            [m, (1.2, -0.3), (np.inf, 5.0), (1.5, -0.5)],
            [(1.01, -0.5), (1.2, -0.3), (np.nan, np.nan), (1.02, -0.49)],
        ]
    )
    results = outcomes(bowl, path, tolerance=0.05)
    assert [r.reached_global for r in results] == [True, False, False, True]
    assert [r.steps_to_tolerance for r in results] == [2, None, None, 3]
    assert [r.diverged for r in results] == [False, False, True, False]
    assert (results[3].x0, results[3].y0, results[3].final_x, results[3].final_y) == (3.0, 0.0, 1.02, -0.49)
    assert results[0].final_value == pytest.approx(bowl.value(1.01, -0.5))
    assert summary(results) == {
        "share_global": 0.5,
        "share_diverged": 0.25,
        "median_steps_to_tolerance": 2.5,
        "n_starts": 4,
    }


def test_a_kept_trajectory_is_thinned_and_stops_at_its_last_finite_point():
    path = np.cumsum(np.ones((2001, 2)), axis=0)
    steps, points = trajectory(path)
    assert len(steps) <= 300 and steps[0] == 0 and steps[-1] == 2000
    assert np.array_equal(points, path[steps])
    path[1500:] = np.nan
    steps, points = trajectory(path)
    assert steps[-1] == 1499 and np.isfinite(points).all()
    assert len(trajectory(np.full((10, 2), np.nan))[0]) == 0


def test_every_variant_of_the_study_finds_the_minimum_of_the_bowl():
    study = params.load(ROOT / "params.yaml")
    bowl = FUNCTIONS["bowl"]
    points = np.array([(0.0, 0.0), (2.0, 0.3), (1.8, -1.5), (0.0, -1.3)])  # about 1 from (1, -0.5)
    # Adagrad's steps shrink as its sum of squared gradients grows: at 20x its rate (0.02) it needs
    # about 1,700 steps to settle from these starts; 20x is also as high as the schedules' start (1.0)
    # can go on this bowl, whose curvature is 2, without diverging.
    steps, scale = 3000, 20.0
    for name, variant in study.variants.items():
        faster = variant.model_copy(update={"learning_rate": variant.learning_rate * scale})
        path = run_variant(bowl, faster, points, steps, steps // study.train.epochs, study.train.jit_compile)
        for result in outcomes(bowl, path, tolerance=0.05):
            assert result.reached_global and not result.diverged, (name, result)


def test_plain_sgd_on_two_wells_ends_in_the_well_on_its_side_of_the_barrier():
    two_wells = FUNCTIONS["two_wells"]
    (deep, _), (shallow, _) = two_wells.global_minima[0], two_wells.local_minima[0]
    x = np.linspace(deep, shallow, 100_001)
    barrier = x[np.argmax(two_wells.value(x, 0.0))]
    xs = [-1.8, -0.5, barrier - 0.1, barrier + 0.1, 0.6, 1.8]
    points = np.array([(x0, 0.5 * (-1) ** i) for i, x0 in enumerate(xs)])
    path = run_variant(two_wells, sgd(0.02), points, steps=1500, steps_per_epoch=300, jit_compile=True)
    results = outcomes(two_wells, path, tolerance=0.05)
    assert [r.reached_global for r in results] == [x0 < barrier for x0 in xs]
    assert summary(results)["share_global"] == sum(x0 < barrier for x0 in xs) / len(xs) == 0.5
    assert not any(r.diverged for r in results)
    right = [r for r in results if r.x0 > barrier]
    assert all(abs(r.final_x - shallow) < 0.05 for r in right)  # stuck in the shallow well


def test_a_diverging_start_is_marked_and_leaves_the_others_unchanged():
    rosenbrock = FUNCTIONS["rosenbrock"]
    calm = np.array([(0.0, 0.0), (1.2, 1.4), (-1.0, 1.0)])
    far = np.array([(5.0, -5.0)])  # a gradient of about 300 there: the first step flies off
    variant = sgd(0.05, momentum=0.9)
    together = run_variant(rosenbrock, variant, np.vstack([calm[:2], far, calm[2:]]), 300, 60, True)
    alone = run_variant(rosenbrock, variant, calm, 300, 60, True)
    results = outcomes(rosenbrock, together, tolerance=0.05)
    assert [r.diverged for r in results] == [False, False, True, False]
    assert not np.isfinite(together[:, 2]).all() and not results[2].reached_global
    assert np.array_equal(together[:, [0, 1, 3]], alone)


def test_the_stage_writes_its_documented_outputs(tmp_path):
    folder = make_workspace(tmp_path)  # variants: adam and one that diverges on anything
    raw = get_params(folder)
    raw["landscapes"].update(functions=["two_wells", "rosenbrock"], starts=8, steps=200, trajectories=2)
    set_params(folder, raw)
    process = stage(folder, "stages.landscapes")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    assert "starts ending within 0.05 of a global minimum" in out

    runs = pd.read_csv(folder / "metrics" / "landscapes.csv")
    assert list(runs.columns) == [
        "function", "variant", "start", "x0", "y0", "final_x", "final_y", "final_value",
        "reached_global", "steps_to_tolerance", "diverged", "learning_rate",
    ]  # fmt: skip
    assert len(runs) == 2 * 2 * 8
    # The same starts for every variant.
    firsts = runs.groupby(["function", "start"])[["x0", "y0"]].nunique()
    assert (firsts == 1).all().all()
    assert (runs["steps_to_tolerance"].isna() == ~runs["reached_global"]).all()
    assert runs.loc[runs["variant"] == "exploding", "diverged"].all()

    shares = json.loads((folder / "metrics" / "landscapes.json").read_text())
    assert list(shares) == ["two_wells", "rosenbrock"]
    for function in shares.values():
        assert list(function) == ["adam", "exploding"]
        for result in function.values():
            assert set(result) == {"share_global", "share_diverged", "median_steps_to_tolerance", "n_starts"}
            assert 0 <= result["share_global"] <= 1 and 0 <= result["share_diverged"] <= 1
            assert result["n_starts"] == 8
        assert function["exploding"]["share_diverged"] == 1
        assert function["exploding"]["median_steps_to_tolerance"] is None

    paths = pd.read_csv(folder / "plots" / "landscapes" / "trajectories.csv")
    assert list(paths.columns) == ["function", "variant", "start", "step", "x", "y"]
    assert set(paths["start"]) == {0, 1}
    assert np.isfinite(paths[["x", "y"]]).all().all()
    assert paths.groupby(["function", "variant", "start"]).size().max() <= 300
    adam = paths[(paths["variant"] == "adam") & (paths["start"] == 0)].groupby("function")["step"]
    assert (adam.min() == 0).all() and (adam.max() == 200).all()

    # What the report makes of them.
    table = report.share_table(runs)
    assert len(table) == 4
    assert (table["share_global_low"] <= table["share_global"]).all()
    assert (table["share_global"] <= table["share_global_high"]).all()
    assert "`exploding` on two_wells (100.0%)" in report.landscapes_text(runs)
    figure = report.trajectories_figure(paths, runs)
    assert [ax.get_title().split(":")[0] for ax in figure.axes if ax.get_visible()] == list(shares)


def test_the_report_and_the_functions_load_without_tensorflow():
    check = "import sys, reports.landscapes, study.landscapes; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], cwd=ROOT, timeout=60).returncode == 0


def test_the_stage_refuses_bad_params_in_one_line_and_writes_nothing(tmp_path):
    raw = get_params(ROOT)
    raw["landscapes"]["steps"] = 0
    set_params(tmp_path, raw)
    process = stage(tmp_path, "stages.landscapes")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: params.yaml: landscapes.steps = 0")
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()

"""The 2-D landscapes: their minima and basins are where they say, escape starts lie below a local
minimum's barrier, tuning starts never judge, rates are chosen and matched as documented, bgd, sgd and
mbgd run as one optimizer, runs stacked at many rates equal separate runs, every variant solves the
convex control, outcomes are classified as counted by hand, a diverging start leaves the others alone,
and the stage writes what it documents (or refuses bad params with one line and writes nothing)."""

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from study import params
from study.landscape_runs import run_at_rates, run_variant
from study.landscapes import (
    FUNCTIONS,
    TESTS,
    Landscape,
    barrier,
    basin,
    choose_rate,
    escape_starts,
    evaluation_starts,
    matched_rate,
    optimizers,
    outcomes,
    plain_sgd,
    starts,
    summary,
    trajectory,
    tuning_starts,
    two_wells_critical_x,
)
from study.params import LANDSCAPES, AdamVariant, ExponentialSchedule, SGDVariant
from tests.workspace import ROOT, get_params, set_params, stage

GRID = 801
H = 1e-5  # central differences in float64: error about H² x the third derivative
HALVING = ExponentialSchedule(name="exponential", decay_epochs=1, decay_rate=0.5)
WITH_LOCAL_MINIMA = [name for name in LANDSCAPES if FUNCTIONS[name].local_minima]


def sgd(learning_rate: float, momentum: float = 0.0, batch_size=32, **settings) -> SGDVariant:
    return SGDVariant(
        optimizer="sgd",
        batch_size=batch_size,
        learning_rate=learning_rate,
        search=[learning_rate, 10 * learning_rate],
        momentum=momentum,
        **settings,
    )


def adam(learning_rate: float) -> AdamVariant:
    return AdamVariant(optimizer="adam", batch_size=32, learning_rate=learning_rate, search=[1e-4, 1.0])


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


def descend(landscape: Landscape, points: np.ndarray, rate: float = 0.01, steps: int = 3000) -> np.ndarray:
    """Gradient descent in float64 with small steps: close to the gradient flow that defines basins."""
    x, y = np.asarray(points, dtype=np.float64).T.copy()
    for _ in range(steps):
        gx, gy = gradient(landscape, x, y)
        x, y = x - rate * gx, y - rate * gy
    return np.stack([x, y], axis=1)


def test_the_registry_holds_exactly_the_functions_params_accepts():
    assert tuple(FUNCTIONS) == LANDSCAPES
    for name, landscape in FUNCTIONS.items():
        assert landscape.name == name
        assert set(landscape.tests) <= set(TESTS)
        # An escape test needs minima to escape from and the basins that say whether it did.
        has_escape = "escape" in landscape.tests
        assert has_escape == bool(landscape.local_minima) == (landscape.basin_edges is not None), name


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
    """Gradient norm of order 1 over the domain, and curvature at the minima at most 12, so that plain
    SGD settles there at every rate up to 1/6 (rate x curvature < 2)."""
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


@pytest.mark.parametrize("name", LANDSCAPES)
def test_tuning_starts_come_from_the_next_seed_and_are_never_evaluation_starts(name):
    landscape = FUNCTIONS[name]
    tuning = tuning_starts(landscape, 300, seed=5)
    assert np.array_equal(tuning, starts(landscape, 300, seed=6))
    judged = {tuple(p) for test in landscape.tests for p in evaluation_starts(landscape, test, 300, seed=5)}
    assert len(judged) == 300 * len(landscape.tests)
    assert not judged & {tuple(p) for p in tuning}


@pytest.mark.parametrize("name", WITH_LOCAL_MINIMA)
def test_basins_are_where_gradient_descent_ends(name):
    """The grid of cells `basin` draws is where the gradient flow takes a point: from 400 points over
    the domain, small steps end at a listed minimum in the start's own cell."""
    landscape = FUNCTIONS[name]
    points = starts(landscape, 400, seed=0)
    ends = descend(landscape, points)
    minima = np.array([*landscape.global_minima, *landscape.local_minima])
    nearest = np.linalg.norm(ends[:, None] - minima, axis=-1).min(axis=1)
    assert nearest.max() < 1e-4
    assert np.array_equal(basin(landscape, ends), basin(landscape, points))
    assert len(set(basin(landscape, points))) == len(minima)  # every basin met, each once per minimum


@pytest.mark.parametrize("name", WITH_LOCAL_MINIMA)
def test_a_barrier_is_the_lowest_point_of_its_basins_edge(name):
    """The shortcut `barrier` takes (a sum of a function of x and one of y is lowest on an edge level
    with the minimum) agrees with a search along the whole edge."""
    landscape = FUNCTIONS[name]
    line = np.linspace(0, 1, 20_001)
    for m in landscape.local_minima:
        # The cell's edges on each side of the minimum; an open side is cut 3 units from it.
        (x_low, x_high), (y_low, y_high) = [
            (edges[i - 1] if i > 0 else c - 3, edges[i] if i < len(edges) else c + 3)
            for edges, c in zip(landscape.basin_edges, m, strict=True)
            for i in [int(np.searchsorted(edges, c))]
        ]
        xs = [e for e in (x_low, x_high) if e in landscape.basin_edges[0]]
        ys = [e for e in (y_low, y_high) if e in landscape.basin_edges[1]]
        along = [landscape.value(e, y_low + line * (y_high - y_low)).min() for e in xs]
        along += [landscape.value(x_low + line * (x_high - x_low), e).min() for e in ys]
        assert barrier(landscape, m) == pytest.approx(min(along), abs=1e-7), m
        assert barrier(landscape, m) > landscape.value(*m) + 0.1


def test_the_two_wells_barrier_is_the_saddle_between_the_wells():
    two_wells = FUNCTIONS["two_wells"]
    _, ridge, shallow = two_wells_critical_x()
    assert barrier(two_wells, (shallow, 0.0)) == pytest.approx(two_wells.value(ridge, 0.0), abs=1e-12)


@pytest.mark.parametrize("name", WITH_LOCAL_MINIMA)
def test_escape_starts_lie_in_a_local_minimums_basin_below_its_barrier(name):
    landscape = FUNCTIONS[name]
    points = escape_starts(landscape, 400, seed=0)
    assert np.array_equal(points, escape_starts(landscape, 400, seed=0))
    cells = basin(landscape, points)
    local = {basin(landscape, np.array([m]))[0]: m for m in landscape.local_minima}
    assert not set(cells) & set(basin(landscape, np.array(landscape.global_minima)))
    assert set(cells) <= set(local)
    values = landscape.value(points[:, 0], points[:, 1])
    tops = np.array([barrier(landscape, local[c]) for c in cells])
    assert (values < tops).all()
    (xmin, xmax), (ymin, ymax) = landscape.domain
    assert ((points >= (xmin, ymin)) & (points <= (xmax, ymax))).all()
    # Not huddled at the minima: the region below the barrier is filled (a tenth of the barrier's
    # height above the minimum or more, for most starts), and every local minimum gets starts.
    floors = np.array([landscape.value(*local[c]) for c in cells])
    assert np.median((values - floors) / (tops - floors)) > 0.3
    assert len(set(cells)) == len(local)
    if name == "two_wells":
        assert (points[:, 0] > two_wells_critical_x()[1]).all()  # right of the barrier: the shallow well


def test_gradient_descent_never_leaves_from_an_escape_start():
    """What makes them escape starts: below the barrier, small steps fall back into the same minimum."""
    for name in WITH_LOCAL_MINIMA:
        landscape = FUNCTIONS[name]
        points = escape_starts(landscape, 100, seed=1)
        ends = descend(landscape, points)
        assert np.array_equal(basin(landscape, ends), basin(landscape, points)), name


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
    assert all(r.escaped is None and r.barrier_crossings is None for r in results)  # no escape test here
    assert (results[3].x0, results[3].y0, results[3].final_x, results[3].final_y) == (3.0, 0.0, 1.02, -0.49)
    assert results[0].final_value == pytest.approx(bowl.value(1.01, -0.5))
    assert summary(results) == {
        "share_global": 0.5,
        "share_escaped": None,
        "share_diverged": 0.25,
        "median_steps_to_tolerance": 2.5,
        "median_barrier_crossings": None,
        "n_starts": 4,
    }


def test_escape_outcomes_of_paths_written_by_hand():
    two_wells = FUNCTIONS["two_wells"]
    deep, ridge, shallow = two_wells_critical_x()
    columns = {
        "stays in the shallow well": [0.9, 0.95, 0.96, shallow, shallow],
        "crosses and comes back": [0.5, -0.3, 0.4, 0.9, shallow],
        "crosses and settles in the deep well": [0.5, -0.5, -1.0, -1.03, deep],
        "crosses and is still on its way": [0.5, -0.5, -0.6, -0.7, -0.8],
        "crosses and diverges": [0.5, -5.0, -500.0, -np.inf, np.nan],
    }
    x = np.array(list(columns.values())).T
    path = np.stack([x, np.zeros_like(x)], axis=-1)
    results = outcomes(two_wells, path, tolerance=0.05, test="escape")
    assert [r.barrier_crossings for r in results] == [0, 2, 1, 1, 1]
    assert [r.escaped for r in results] == [False, False, True, True, False]
    assert [r.reached_global for r in results] == [False, False, True, False, False]
    assert [r.diverged for r in results] == [False, False, False, False, True]
    assert x[0].min() > ridge  # all start in the shallow basin
    result = summary(results)
    assert result["share_escaped"] == 0.4 and result["median_barrier_crossings"] == 1

    # Rastrigin: a hop to another local minimum is a crossing but not an escape to the global one.
    rastrigin = FUNCTIONS["rastrigin"]
    xs = sorted({x for x, _ in rastrigin.local_minima})
    one, two = min(x for x in xs if x > 0.5), max(xs)  # the minima next to 1 and 2
    path = np.array(
        [
            # (2, 0) to (1, 0) | (1, 1) to (1, 0) | (1, 1) to (1, 0) and on to the global minimum
            [(two, 0.0), (one, one), (one, one)],
            [(two, 0.0), (one, one), (one, 0.0)],
            [(one, 0.0), (one, 0.0), (one, 0.0)],
            [(one, 0.0), (one, 0.0), (0.0, 0.0)],
        ]
    )
    results = outcomes(rastrigin, path, tolerance=0.05, test="escape")
    assert [r.barrier_crossings for r in results] == [1, 1, 2]
    assert [r.escaped for r in results] == [False, False, True]
    assert [r.reached_global for r in results] == [False, False, True]


def test_a_kept_trajectory_is_thinned_and_stops_at_its_last_finite_point():
    path = np.cumsum(np.ones((2001, 2)), axis=0)
    steps, points = trajectory(path)
    assert len(steps) <= 300 and steps[0] == 0 and steps[-1] == 2000
    assert np.array_equal(points, path[steps])
    path[1500:] = np.nan
    steps, points = trajectory(path)
    assert steps[-1] == 1499 and np.isfinite(points).all()
    assert len(trajectory(np.full((10, 2), np.nan))[0]) == 0


def test_choose_rate_takes_the_highest_share_then_the_lower_value_then_fewer_steps_then_the_lower_rate():
    rates = [0.01, 0.1, 1.0]
    assert choose_rate(rates, [0.5, 0.6, 0.2], [0.0, 0.0, 0.0], [10, 10, 10]) == 0.1
    assert choose_rate(rates, [0.5, 0.5, 0.2], [-0.1, -0.2, -9.0], [5, 50, 1]) == 0.1
    # Final values that differ by float32 rounding are a tie: the faster rate wins it.
    assert choose_rate(rates, [1.0, 1.0, 1.0], [-0.25, -0.25 + 1e-9, -0.25], [300, 20, None]) == 0.1
    assert choose_rate(rates, [1.0, 1.0, 1.0], [-0.25, -0.25, -0.25], [20, 20, 20]) == 0.01
    # A diverged run's mean is infinite (or NaN) and never wins a tie; never-settled steps count last.
    assert choose_rate(rates, [0.5, 0.5, 0.5], [math.inf, math.nan, 0.3], [1, 1, 400]) == 1.0
    assert choose_rate(rates, [0.0, 0.0, 0.0], [0.3, 0.3, 0.3], [math.nan, None, 9]) == 1.0


def test_the_matched_step_is_plain_sgds_best_times_one_minus_beta():
    assert matched_rate(0.1, 0.9) == 0.01  # the grid's 0.01, not 0.009999999999999998
    assert matched_rate(0.316, 0.99) == pytest.approx(0.00316, rel=1e-12)
    for best, beta in [(1.0, 0.5), (0.0316, 0.9), (0.003, 0.0)]:
        assert matched_rate(best, beta) == pytest.approx(best * (1 - beta), rel=1e-11)


def test_bgd_sgd_and_mbgd_collapse_to_one_optimizer():
    variants = {
        "bgd": sgd(0.01, batch_size="full"),
        "sgd": sgd(0.001, batch_size=1),
        "mbgd": sgd(0.05, batch_size=32),
        "momentum": sgd(0.01, momentum=0.9),
        "momentum_big_batch": sgd(0.1, momentum=0.9, batch_size=256),  # only batch and rate differ
        "momentum_half": sgd(0.01, momentum=0.5),
        "nesterov": sgd(0.01, momentum=0.9, nesterov=True),
        "adam": adam(0.001),
        "mbgd_exponential": sgd(0.05, schedule=HALVING),
    }  # fmt: skip
    found = optimizers(variants)
    assert list(found) == ["bgd", "momentum", "momentum_half", "nesterov", "adam", "mbgd_exponential"]
    assert found["bgd"].stands_for == ("bgd", "sgd", "mbgd")
    assert found["momentum"].stands_for == ("momentum", "momentum_big_batch")
    assert sorted(name for o in found.values() for name in o.stands_for) == sorted(variants)
    assert plain_sgd(found) == "bgd"
    assert [o.momentum for o in found.values()] == [None, 0.9, 0.5, 0.9, None, None]
    assert [name for name, o in found.items() if o.is_plain_sgd] == ["bgd"]
    assert plain_sgd(optimizers({"adam": adam(0.001)})) is None


def test_plain_sgd_and_momentum_at_the_matched_step_move_alike_on_the_bowl():
    """Momentum β at η = (1 - β)·η' steps like plain SGD at η' once its velocity builds: both settle
    from every start after about as many steps, along nearly the same path; at η' itself momentum is
    several times faster, which is why comparing at equal η confounds momentum with step size."""
    bowl = FUNCTIONS["bowl"]
    points = np.array([(0.0, 0.0), (2.0, 0.3), (1.8, -1.5), (0.0, -1.3)])
    step, beta = 0.01, 0.9
    plain = run_variant(bowl, sgd(step), points, 1500, 300, True)
    matched = run_variant(bowl, sgd(matched_rate(step, beta), beta), points, 1500, 300, True)
    unmatched = run_variant(bowl, sgd(step, beta), points, 1500, 300, True)
    steps = {}
    for label, path in [("plain", plain), ("matched", matched), ("unmatched", unmatched)]:
        results = outcomes(bowl, path, tolerance=0.05)
        assert all(r.reached_global and not r.diverged for r in results), label
        steps[label] = np.array([r.steps_to_tolerance for r in results])
    assert (np.abs(steps["matched"] / steps["plain"] - 1) < 0.25).all(), steps
    assert np.abs(matched - plain).max() < 0.15
    assert (steps["unmatched"] * 3 < steps["plain"]).all(), steps


def test_runs_stacked_at_many_rates_equal_separate_runs_to_the_bit():
    rastrigin = FUNCTIONS["rastrigin"]
    points = starts(rastrigin, 5, seed=0)
    decaying = sgd(0.05, schedule=HALVING)
    for variant in (sgd(0.01, momentum=0.9, nesterov=True), adam(0.001), decaying):
        rates = [0.003, 0.3]
        together = run_at_rates(rastrigin, variant, [(points, rate) for rate in rates], 60, 20, True)
        for rate, path in zip(rates, together, strict=True):
            alone = run_variant(
                rastrigin, variant.model_copy(update={"learning_rate": rate}), points, 60, 20, True
            )
            assert np.array_equal(path, alone), (variant.optimizer, rate)


def test_every_optimizer_of_the_study_finds_the_minimum_of_the_bowl():
    study = params.load(ROOT / "params.yaml")
    bowl = FUNCTIONS["bowl"]
    points = np.array([(0.0, 0.0), (2.0, 0.3), (1.8, -1.5), (0.0, -1.3)])  # about 1 from (1, -0.5)
    # Adagrad's steps shrink as its sum of squared gradients grows: at 20x its rate (0.02) it needs
    # about 1,700 steps to settle from these starts; 20x is also as high as the schedules' start (1.0)
    # can go on this bowl, whose curvature is 2, without diverging.
    steps, scale = 3000, 20.0
    for name, optimizer in optimizers(study.variants).items():
        variant = optimizer.variant
        faster = variant.model_copy(update={"learning_rate": variant.learning_rate * scale})
        path = run_variant(bowl, faster, points, steps, steps // study.train.epochs, study.train.jit_compile)
        for result in outcomes(bowl, path, tolerance=0.05):
            assert result.reached_global and not result.diverged, (name, result)


def test_plain_sgd_on_two_wells_ends_in_the_well_on_its_side_of_the_barrier():
    two_wells = FUNCTIONS["two_wells"]
    (deep, _), (shallow, _) = two_wells.global_minima[0], two_wells.local_minima[0]
    x = np.linspace(deep, shallow, 100_001)
    ridge = x[np.argmax(two_wells.value(x, 0.0))]
    xs = [-1.8, -0.5, ridge - 0.1, ridge + 0.1, 0.6, 1.8]
    points = np.array([(x0, 0.5 * (-1) ** i) for i, x0 in enumerate(xs)])
    path = run_variant(two_wells, sgd(0.02), points, steps=1500, steps_per_epoch=300, jit_compile=True)
    results = outcomes(two_wells, path, tolerance=0.05)
    assert [r.reached_global for r in results] == [x0 < ridge for x0 in xs]
    assert summary(results)["share_global"] == sum(x0 < ridge for x0 in xs) / len(xs) == 0.5
    assert not any(r.diverged for r in results)
    right = [r for r in results if r.x0 > ridge]
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
    raw = get_params(ROOT)
    raw["landscapes"].update(
        functions=["two_wells", "rastrigin", "saddle"], starts=6, steps=150, rates=[0.01, 0.1, 1.0],
        trajectories=2,
    )  # fmt: skip
    every = raw["variants"]
    raw["variants"] = {name: every[name] for name in ("mbgd", "sgd", "momentum", "adam")}
    set_params(tmp_path, raw)
    process = stage(tmp_path, "stages.landscapes")
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    assert "starts ending within 0.05 of a global minimum" in out

    runs = pd.read_csv(tmp_path / "metrics" / "landscapes.csv")
    assert list(runs.columns) == [
        "function", "test", "variant", "stands_for", "setting", "learning_rate", "start", "reached_global",
        "escaped", "barrier_crossings", "steps_to_tolerance", "final_value", "diverged", "x0", "y0",
        "final_x", "final_y",
    ]  # fmt: skip
    # sgd runs as mbgd: a batch size means nothing with an exact gradient. Momentum also runs at
    # plain SGD's effective step.
    settings = runs.groupby(["variant", "setting"]).size().index.tolist()
    assert settings == [("adam", "own best"), ("mbgd", "own best"), ("momentum", "matched step"),
                        ("momentum", "own best")]  # fmt: skip
    assert set(runs.loc[runs["variant"] == "mbgd", "stands_for"]) == {"mbgd sgd"}
    tests = runs.groupby("function", sort=False)["test"].unique().map(list).to_dict()
    assert tests == {"two_wells": ["reach", "escape"], "rastrigin": ["reach", "escape"], "saddle": ["settle"]}
    assert len(runs) == (2 + 2 + 1) * 4 * 6
    # The same starts for every optimizer and setting.
    assert (runs.groupby(["function", "test", "start"])[["x0", "y0"]].nunique() == 1).all().all()
    assert (runs["steps_to_tolerance"].isna() == ~runs["reached_global"]).all()

    escape = runs["test"] == "escape"
    assert runs.loc[~escape, ["escaped", "barrier_crossings"]].isna().all().all()
    assert runs.loc[escape, ["escaped", "barrier_crossings"]].notna().all().all()
    assert (runs.loc[escape & (runs["barrier_crossings"] == 0), "escaped"] == False).all()  # noqa: E712
    assert (runs.loc[escape & runs["escaped"].fillna(False).astype(bool), "barrier_crossings"] >= 1).all()
    wells = runs[escape & (runs["function"] == "two_wells")]
    assert (wells["x0"] > two_wells_critical_x()[1]).all()  # every escape start in the shallow basin

    tuning = pd.read_csv(tmp_path / "metrics" / "landscapes_rates.csv")
    assert list(tuning.columns) == [
        "function", "variant", "learning_rate", "share_global", "mean_final_value",
        "median_steps_to_tolerance", "chosen",
    ]  # fmt: skip
    assert len(tuning) == 3 * 3 * 3
    assert (tuning.groupby(["function", "variant"])["chosen"].sum() == 1).all()
    chosen = tuning[tuning["chosen"]].set_index(["function", "variant"]).sort_index()
    best_share = tuning.groupby(["function", "variant"])["share_global"].max()
    assert (chosen["share_global"] == best_share).all()
    own = runs[runs["setting"] == "own best"].groupby(["function", "variant"])["learning_rate"].unique()
    assert (own.map(len) == 1).all()
    assert (own.map(lambda r: r[0]) == chosen["learning_rate"].reindex(own.index)).all()
    matched = runs[runs["setting"] == "matched step"].groupby("function")["learning_rate"].unique()
    for function, rates in matched.items():
        assert list(rates) == [pytest.approx(chosen.loc[(function, "mbgd"), "learning_rate"] * (1 - 0.9))]

    shares = json.loads((tmp_path / "metrics" / "landscapes.json").read_text())
    assert list(shares) == ["two_wells", "rastrigin", "saddle"]
    assert list(shares["two_wells"]) == ["reach", "escape"] and list(shares["saddle"]) == ["settle"]
    for (function, test, variant, setting), rows in runs.groupby(["function", "test", "variant", "setting"]):
        result = shares[function][test][variant][setting]
        assert result["share_global"] == pytest.approx(rows["reached_global"].mean())
        assert result["learning_rate"] == pytest.approx(rows["learning_rate"].iloc[0])
        assert result["n_starts"] == 6
        if test == "escape":
            assert result["share_escaped"] == pytest.approx(rows["escaped"].astype(bool).mean())
        else:
            assert result["share_escaped"] is None and result["median_barrier_crossings"] is None

    paths = pd.read_csv(tmp_path / "plots" / "landscapes" / "trajectories.csv")
    assert list(paths.columns) == ["function", "test", "variant", "start", "step", "x", "y"]
    kept = paths.groupby(["function", "test"])["start"].unique().map(sorted).to_dict()
    assert kept == {
        ("rastrigin", "escape"): [0], ("rastrigin", "reach"): [0, 1], ("saddle", "settle"): [0, 1],
        ("two_wells", "escape"): [0], ("two_wells", "reach"): [0, 1],
    }  # fmt: skip
    assert set(paths["variant"]) == {"mbgd", "momentum", "adam"}  # own best rates only: one path each
    assert (paths.groupby(["function", "test", "variant", "start"])["step"].is_monotonic_increasing).all()
    assert np.isfinite(paths[["x", "y"]]).all().all()
    assert paths.groupby(["function", "test", "variant", "start"]).size().max() <= 300
    first = paths[(paths["step"] == 0)].merge(
        runs[runs["setting"] == "own best"], on=["function", "test", "variant", "start"]
    )
    assert np.allclose(first[["x", "y"]].to_numpy(), first[["x0", "y0"]].to_numpy(), atol=1e-6)


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

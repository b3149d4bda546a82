"""2-D test functions whose minima are known, the tests run on them, and what became of each start.

MNIST cannot show whether momentum escapes a local minimum or how an optimizer crosses a saddle; these
functions can, because where their minima lie is known. Each formula is written once, `value(x, y,
ops)`, and evaluated with numpy (ops=numpy: contours, outcomes) and with TensorFlow (ops=tf.math: the
optimizers' steps, study/landscape_runs.py).

Which optimizers. The gradient here is exact: a function of two numbers has no data to sample, so a
batch size changes nothing and `bgd`, `sgd` and `mbgd` take identical steps. Every distinct optimizer
setting among the variants (their settings less batch size, learning rate and search range) runs
once, named by the first variant that has it, and `stands_for` lists the variants it stands for. The
batch-size variants are not told apart by adding gradient noise: a noise model (its shape, its scale
with batch size) would be this study's invention, and what it showed would be that invention's.

Rates. Every optimizer runs at every rate of `landscapes.rates` (one grid for all) from tuning starts,
drawn from `seed + 1`; its own best rate on a function is the one whose runs most often end within
tolerance of a global minimum (ties: the lower mean final value, then fewer steps, then the lower
rate; `choose_rate`). It is then judged from evaluation starts drawn from `seed`: seeds that choose
never judge. SGD with momentum β at rate η moves, once its velocity has built up, like plain SGD at
the effective step η/(1 - β), so a momentum variant also runs at plain SGD's best effective step,
η = η_plain·(1 - β) (`matched_rate`): whatever it then does better than plain SGD is momentum's, not a
larger step's.

Tests (`Landscape.tests`):
- reach: starts uniform over the domain; did the run end within tolerance of a global minimum, and
  after how many steps did it stay there.
- escape (functions with local minima): every start lies inside a local minimum's basin, below the
  lowest barrier out of it (`escape_starts`). Gradient flow could never leave from there, nor could
  momentum from rest in continuous time: the value (with momentum, value plus kinetic energy) only
  falls; what carries a run over is a discrete step's overshoot. The test counts barrier crossings
  (moves from one basin to another) and whether the run ends in a global minimum's basin (`escaped`).
  A start high on a basin's outer wall, that rolls over the barrier on its first descent, is not an
  escape, and the test has none.
- settle (the saddle): starts beside a saddle point; the steps until the run stays within tolerance
  of one of the minima on either side. This measures settling, not escape: no basin holds the starts.

Basins. The two functions with local minima are sums of a function of x and one of y, so gradient
descent moves x and y independently and its basins are the cells of a grid whose edges are the
one-dimensional maxima (`Landscape.basin_edges`); the lowest way out of a cell crosses one of its
edges level with the cell's minimum.

Scale. Each function is multiplied by a factor (its description names it) chosen so that over its
domain the gradient's norm is of order 1 (its median between 1 and 3, 90% of the domain below 10) and
its curvature at its minima (the Hessian's largest eigenvalue) at most 12: plain gradient descent
settles at a minimum only when rate x curvature < 2, so the rates grid, 0.001 to 1 by default, holds
rates that settle everywhere (up to about 0.17), rates too small to arrive in the steps given, and
rates that cannot settle. Rastrigin times 0.1 would have curvature 40 at its minima; Rosenbrock times
0.01, gradients above 18 over a tenth of its domain. tests/test_landscapes.py checks these bounds.

No TensorFlow here: the report imports this module.
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Point = tuple[float, float]
TESTS = ("reach", "escape", "settle")
OWN_BEST, MATCHED_STEP = "own best", "matched step"
TUNING_SEED_OFFSET = 1  # tuning starts come from landscapes.seed + 1, evaluation starts from the seed


@dataclass(frozen=True)
class Landscape:
    name: str
    description: str
    formula: Callable = field(repr=False)  # (x, y, ops) -> value; ops provides cos (numpy or tf.math)
    domain: tuple[Point, Point]  # ((xmin, xmax), (ymin, ymax)): where starts are drawn
    global_minima: tuple[Point, ...]
    local_minima: tuple[Point, ...] = ()
    tests: tuple[str, ...] = ("reach",)  # the first draws its starts over the domain; `escape` in basins
    # Where one basin meets the next along x and along y (increasing), for functions with local minima.
    basin_edges: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def value(self, x, y, ops=np):
        return self.formula(x, y, ops)


# --- the functions --------------------------------------------------------------------------------

TWO_WELLS_SCALE, TWO_WELLS_TILT = 0.5, 0.3


def _two_wells(x, y, ops):
    return TWO_WELLS_SCALE * ((x**2 - 1) ** 2 + TWO_WELLS_TILT * x + y**2)


def two_wells_critical_x() -> np.ndarray:
    """The roots of d/dx = 4x³ - 4x + tilt, increasing: the deep well, the barrier, the shallow well."""
    return np.sort(np.roots([4.0, 0.0, -4.0, TWO_WELLS_TILT]).real)


RASTRIGIN_SCALE, RASTRIGIN_AMPLITUDE = 0.03, 10.0


def _rastrigin(x, y, ops):
    a = RASTRIGIN_AMPLITUDE
    return RASTRIGIN_SCALE * (
        2 * a + x**2 - a * ops.cos(2 * math.pi * x) + y**2 - a * ops.cos(2 * math.pi * y)
    )


def _rastrigin_1d_critical(guesses) -> list[float]:
    """The critical points of x² - a·cos(2πx) nearest each guess, by Newton's method: from the integers
    its minima, from the half-integers its maxima (each pulled slightly off the grid by x²)."""
    a, two_pi = RASTRIGIN_AMPLITUDE, 2 * math.pi
    found = []
    for x in guesses:
        for _ in range(50):
            x -= (2 * x + a * two_pi * math.sin(two_pi * x)) / (2 + a * two_pi**2 * math.cos(two_pi * x))
        found.append(float(x))
    return found


ROSENBROCK_SCALE = 0.005


def _rosenbrock(x, y, ops):
    return ROSENBROCK_SCALE * ((1 - x) ** 2 + 100 * (y - x**2) ** 2)


def _saddle(x, y, ops):
    return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2


def _bowl(x, y, ops):
    return 0.5 * ((x - 1) ** 2 + 2 * (y + 0.5) ** 2)


def _two_wells_landscape() -> "Landscape":
    deep, barrier, shallow = two_wells_critical_x()
    return Landscape(
        name="two_wells",
        description=f"{TWO_WELLS_SCALE:g}·((x² - 1)² + {TWO_WELLS_TILT:g}x + y²): a deep well left of a "
        f"barrier at x = {barrier:.3f}, a shallower one right of it",
        formula=_two_wells,
        domain=((-2.0, 2.0), (-1.0, 1.0)),
        global_minima=((float(deep), 0.0),),
        local_minima=((float(shallow), 0.0),),
        tests=("reach", "escape"),
        basin_edges=((float(barrier),), ()),
    )


def _rastrigin_landscape() -> "Landscape":
    half_width = 2.5
    domain = ((-half_width, half_width), (-half_width, half_width))
    integers = range(-math.floor(half_width), math.floor(half_width) + 1)
    minima = _rastrigin_1d_critical(integers)
    # The maxima around every minimum listed, and one further on each side: a path may wander out.
    edges = tuple(_rastrigin_1d_critical(k + 0.5 for k in range(integers[0] - 2, integers[-1] + 2)))
    return Landscape(
        name="rastrigin",
        description=f"Rastrigin's function, {RASTRIGIN_SCALE:g}·(20 + x² - 10·cos 2πx + y² - 10·cos 2πy): "
        "one global minimum at the origin amid a grid of local ones about 1 apart",
        formula=_rastrigin,
        domain=domain,
        global_minima=((0.0, 0.0),),
        local_minima=tuple((x, y) for x in minima for y in minima if abs(x) > 0.5 or abs(y) > 0.5),
        tests=("reach", "escape"),
        basin_edges=(edges, edges),
    )


FUNCTIONS: dict[str, Landscape] = {
    "bowl": Landscape(
        name="bowl",
        description="a convex quadratic, ½((x - 1)² + 2(y + ½)²), unscaled: the control every optimizer "
        "must solve",
        formula=_bowl,
        domain=((-2.0, 3.0), (-2.5, 2.0)),
        global_minima=((1.0, -0.5),),
    ),
    "two_wells": _two_wells_landscape(),
    "rastrigin": _rastrigin_landscape(),
    "rosenbrock": Landscape(
        name="rosenbrock",
        description=f"Rosenbrock's banana, {ROSENBROCK_SCALE:g}·((1 - x)² + 100(y - x²)²): a curved, "
        "flat-bottomed valley to its one minimum",
        formula=_rosenbrock,
        domain=((-2.0, 2.0), (-1.0, 3.0)),
        global_minima=((1.0, 1.0),),
    ),
    "saddle": Landscape(
        name="saddle",
        description="½x² + ¼y⁴ - ½y², unscaled: a saddle point at the origin between two minima; "
        "starts lie within 0.05 of y = 0, where the pull toward either minimum is weakest",
        formula=_saddle,
        domain=((-2.0, 2.0), (-0.05, 0.05)),
        global_minima=((0.0, -1.0), (0.0, 1.0)),
        tests=("settle",),
    ),
}


# --- which optimizers, at which rates ---------------------------------------------------------------

# What does not change an optimizer's steps on a function with an exact gradient.
NOT_OPTIMIZER_SETTINGS = {"batch_size", "learning_rate", "search"}


@dataclass(frozen=True)
class Optimizer:
    """One distinct optimizer setting: `variant` (the first variant that has it) and every variant it
    stands for."""

    name: str
    variant: object  # a params variant; its learning rate is replaced by each rate it runs at
    stands_for: tuple[str, ...]

    @property
    def is_plain_sgd(self) -> bool:
        v = self.variant
        return v.optimizer == "sgd" and v.momentum == 0 and v.schedule is None

    @property
    def momentum(self) -> float | None:
        """β for SGD with momentum (plain or Nesterov) at a constant rate; None for any other."""
        v = self.variant
        return v.momentum if v.optimizer == "sgd" and v.momentum > 0 and v.schedule is None else None


def optimizers(variants: dict) -> dict[str, Optimizer]:
    """The distinct optimizer settings among `variants` (name -> params variant), in params order."""
    groups: dict[str, list[str]] = {}
    for name, variant in variants.items():
        key = json.dumps(variant.model_dump(exclude=NOT_OPTIMIZER_SETTINGS), sort_keys=True)
        groups.setdefault(key, []).append(name)
    return {names[0]: Optimizer(names[0], variants[names[0]], tuple(names)) for names in groups.values()}


def plain_sgd(found: dict[str, Optimizer]) -> str | None:
    """The optimizer that is plain SGD (no momentum, no schedule), or None when no variant is."""
    return next((name for name, optimizer in found.items() if optimizer.is_plain_sgd), None)


def matched_rate(plain_best: float, momentum: float) -> float:
    """The rate at which momentum β takes plain SGD's effective step: η = η_plain·(1 - β), to 12
    significant digits (so that 0.1·(1 - 0.9) is the grid's 0.01, not 0.009999999999999998)."""
    return float(f"{plain_best * (1 - momentum):.12g}")


# Paths are float32: mean final values closer than this differ by rounding, not by a lower minimum.
VALUE_RESOLUTION = 1e-6


def choose_rate(rates, share_global, mean_final_value, median_steps) -> float:
    """The rate whose tuning runs most often ended in a global minimum; among equals, the one with the
    lower mean final value (a diverged run's is infinite; within VALUE_RESOLUTION, equal), then the
    one that got there in fewer steps (median steps to tolerance; None or NaN: never), then the lower
    rate."""
    runs = [
        (rate, share, _or_infinite(value), _or_infinite(steps))
        for rate, share, value, steps in zip(rates, share_global, mean_final_value, median_steps, strict=True)
    ]
    most = max(share for _, share, _, _ in runs)
    runs = [run for run in runs if run[1] == most]
    lowest = min(value for _, _, value, _ in runs)
    runs = [run for run in runs if run[2] <= lowest + VALUE_RESOLUTION]
    return min(runs, key=lambda run: (run[3], run[0]))[0]


def _or_infinite(number) -> float:
    return number if number is not None and math.isfinite(number) else math.inf


# --- starts ---------------------------------------------------------------------------------------


def starts(landscape: Landscape, n: int, seed: int) -> np.ndarray:
    """n points [n, 2] drawn uniformly over the landscape's domain from `seed` (the same for every
    optimizer): the evaluation starts of its reach or settle test."""
    (xmin, xmax), (ymin, ymax) = landscape.domain
    return np.random.default_rng(seed).uniform((xmin, ymin), (xmax, ymax), size=(n, 2))


def tuning_starts(landscape: Landscape, n: int, seed: int) -> np.ndarray:
    """The starts rates are chosen from: as `starts`, from another seed than every evaluation start's."""
    return starts(landscape, n, seed + TUNING_SEED_OFFSET)


def evaluation_starts(landscape: Landscape, test: str, n: int, seed: int) -> np.ndarray:
    """The evaluation starts of one of the landscape's tests."""
    return escape_starts(landscape, n, seed) if test == "escape" else starts(landscape, n, seed)


def basin(landscape: Landscape, points: np.ndarray) -> np.ndarray:
    """The basin each point [..., 2] lies in, as one integer (-1 where not finite)."""
    x_edges, y_edges = landscape.basin_edges
    points = np.asarray(points, dtype=np.float64)
    finite = np.isfinite(points).all(-1)
    safe = np.where(finite[..., None], points, 0.0)
    column, row = np.searchsorted(x_edges, safe[..., 0]), np.searchsorted(y_edges, safe[..., 1])
    return np.where(finite, column * (len(y_edges) + 1) + row, -1)


def _cell(landscape: Landscape, minimum: Point) -> tuple[Point, Point]:
    """The (x range, y range) of the basin holding `minimum`; an open side is infinite."""
    bounds = []
    for edges, m in zip(landscape.basin_edges, minimum, strict=True):
        i = int(np.searchsorted(edges, m))
        bounds.append((edges[i - 1] if i > 0 else -math.inf, edges[i] if i < len(edges) else math.inf))
    return tuple(bounds)


def barrier(landscape: Landscape, minimum: Point) -> float:
    """The lowest value on the edge of `minimum`'s basin: how high a path must climb to leave it.

    The function being a sum of a function of x and one of y, the lowest point of an edge x = e lies
    at the minimum's y (and of an edge y = e at its x)."""
    (x_low, x_high), (y_low, y_high) = _cell(landscape, minimum)
    mx, my = minimum
    values = [landscape.value(e, my) for e in (x_low, x_high) if math.isfinite(e)]
    values += [landscape.value(mx, e) for e in (y_low, y_high) if math.isfinite(e)]
    return float(min(values))


def escape_starts(landscape: Landscape, n: int, seed: int) -> np.ndarray:
    """n points [n, 2] inside local minima's basins, below each basin's barrier: for each start a local
    minimum chosen at random, then a point uniform over the part of its basin (within the domain)
    lower than its barrier. From `seed` (another stream than `starts` draws from it)."""
    rng = np.random.default_rng([seed, 1])
    minima = np.asarray(landscape.local_minima)
    chosen = rng.integers(len(minima), size=n)
    points = np.empty((n, 2))
    (dx_low, dx_high), (dy_low, dy_high) = landscape.domain
    for i, m in enumerate(minima):
        wanted = int((chosen == i).sum())
        (x_low, x_high), (y_low, y_high) = _cell(landscape, tuple(m))
        low = (max(x_low, dx_low), max(y_low, dy_low))
        high = (min(x_high, dx_high), min(y_high, dy_high))
        top = barrier(landscape, tuple(m))
        found = np.empty((0, 2))
        while len(found) < wanted:
            draw = rng.uniform(low, high, size=(4 * wanted + 16, 2))
            found = np.vstack([found, draw[landscape.value(draw[:, 0], draw[:, 1]) < top]])
        points[chosen == i] = found[:wanted]
    return points


# --- outcomes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """Where one start's path ended.

    `steps_to_tolerance`: the first step from which the path stays within tolerance of a global
    minimum to its end (None when it does not end there): a path that passes through a minimum's
    neighbourhood and leaves it, as momentum may, has not reached it yet.
    `escaped` (escape test only; None otherwise): the path, started in a local minimum's basin, ends
    in a global minimum's basin. `barrier_crossings` (escape test only): how many of its steps moved
    it from one basin into another, back and forth included, up to its last finite point.
    `diverged`: some coordinate or value along the path is not finite; such a run escapes nothing.
    """

    start: int
    reached_global: bool
    escaped: bool | None
    barrier_crossings: int | None
    steps_to_tolerance: int | None
    final_value: float
    diverged: bool
    x0: float
    y0: float
    final_x: float
    final_y: float


def near_global(landscape: Landscape, points: np.ndarray, tolerance: float) -> np.ndarray:
    """Whether each point [..., 2] lies within `tolerance` of a global minimum (False where not finite)."""
    points = np.asarray(points, dtype=np.float64)
    near = np.zeros(points.shape[:-1], dtype=bool)
    with np.errstate(all="ignore"):  # a diverged point overflows
        for mx, my in landscape.global_minima:
            near |= (points[..., 0] - mx) ** 2 + (points[..., 1] - my) ** 2 <= tolerance**2
    return near


def outcomes(landscape: Landscape, path: np.ndarray, tolerance: float, test: str = "reach") -> list[Outcome]:
    """Each start's outcome from its path [steps + 1, starts, 2] (row 0 the starts) in `test`.

    A run diverged when a coordinate along its path, or its final value, is not finite: the functions'
    values at finite float32 points are finite in float64, so no value needs checking but the last."""
    path = np.asarray(path, dtype=np.float64)
    with np.errstate(all="ignore"):  # a diverged path overflows on its way out
        final_values = landscape.value(path[-1, :, 0], path[-1, :, 1])
    near = near_global(landscape, path, tolerance)
    diverged = ~(np.isfinite(path).all(axis=(0, 2)) & np.isfinite(final_values))
    reached = near[-1] & ~diverged
    # The first step of the final run of steps within tolerance: one past the last step outside it.
    outside_from_end = np.argmax(~near[::-1], axis=0)  # steps at the end within tolerance, if not all
    settled = np.where(near.all(axis=0), 0, len(path) - outside_from_end)
    escaped = crossings = [None] * path.shape[1]
    if test == "escape":
        cells = basin(landscape, path)
        moved = (cells[1:] != cells[:-1]) & (cells[1:] >= 0) & (cells[:-1] >= 0)
        crossings = moved.sum(axis=0).tolist()
        global_cells = basin(landscape, np.asarray(landscape.global_minima))
        escaped = (np.isin(cells[-1], global_cells) & ~diverged).tolist()
    final = path[-1]
    return [
        Outcome(
            start=i,
            reached_global=bool(reached[i]),
            escaped=escaped[i],
            barrier_crossings=crossings[i],
            steps_to_tolerance=int(settled[i]) if reached[i] else None,
            final_value=float(final_values[i]),
            diverged=bool(diverged[i]),
            x0=float(path[0, i, 0]),
            y0=float(path[0, i, 1]),
            final_x=float(final[i, 0]),
            final_y=float(final[i, 1]),
        )
        for i in range(path.shape[1])
    ]


def summary(results: list[Outcome]) -> dict:
    """Shares of starts that reached a global minimum, that escaped (escape test; else None) and that
    diverged, the median steps to tolerance over those that reached it and the median barrier
    crossings (None when there are none)."""
    n = len(results)
    steps = [r.steps_to_tolerance for r in results if r.steps_to_tolerance is not None]
    escape = results[0].escaped is not None if results else False
    crossings = [r.barrier_crossings for r in results] if escape else []
    return {
        "share_global": sum(r.reached_global for r in results) / n,
        "share_escaped": sum(r.escaped for r in results) / n if escape else None,
        "share_diverged": sum(r.diverged for r in results) / n,
        "median_steps_to_tolerance": float(np.median(steps)) if steps else None,
        "median_barrier_crossings": float(np.median(crossings)) if crossings else None,
        "n_starts": n,
    }


def mean_final_value(results: list[Outcome]) -> float:
    """The mean of the runs' final values; infinite when any diverged."""
    values = [r.final_value for r in results]
    return float(np.mean(values)) if all(map(math.isfinite, values)) else math.inf


def trajectory(path: np.ndarray, max_points: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """One start's path [steps + 1, 2] thinned for a plot: (steps, points) up to its last finite point.

    Half the kept steps are evenly spaced and half geometrically, since paths move most in their first
    steps; the first and last (finite) points are always kept.
    """
    path = np.asarray(path)
    finite = np.isfinite(path).all(axis=1)
    last = len(path) - 1 if finite.all() else int(np.argmin(finite)) - 1
    if last < 0:
        return np.zeros(0, dtype=int), np.zeros((0, 2))
    half = max(1, (max_points - 2) // 2)
    steps = np.unique(
        np.concatenate([[0, last], np.linspace(0, last, half), np.geomspace(1, max(last, 1), half)]).round()
    ).astype(int)
    return steps, path[steps]

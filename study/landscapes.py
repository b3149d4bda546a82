"""2-D test functions whose minima are known, and what became of each start an optimizer ran from.

MNIST cannot show whether momentum escapes a local minimum or how an optimizer crosses a saddle; these
functions can, because where their minima lie is known. Each formula is written once, `value(x, y,
ops)`, and evaluated with numpy (ops=numpy: contours, outcomes) and with TensorFlow (ops=tf.math: the
optimizers' steps, study/landscape_runs.py).

Scale. The study's learning rates were chosen for MNIST (1e-3 to 5e-2) and params.yaml multiplies
them all by `landscapes.learning_rate_scale` (10 by default): the plain variants step at 0.1 x the
gradient, the adaptive ones about 0.01 per coordinate, the scheduled ones start at 0.5. Each function
is multiplied by a factor (its description names it) chosen so that over its domain the gradient's
norm is of order 1 (its median between 1 and 3, 90% of the domain below 10) and its curvature at its
minima (the Hessian's largest eigenvalue) at most 12: plain gradient descent settles at a minimum only
when rate x curvature < 2, so at 0.1 every constant-rate variant can settle wherever it arrives, and
what differs between variants is where they go, not whether they can stop. The scheduled variants'
start, 5x higher, may overshoot before their rate decays. Rastrigin times 0.1 would have curvature 40
at its minima, where a rate of 0.1 never settles; Rosenbrock times 0.01, gradients above 18 over a
tenth of its domain. tests/test_landscapes.py checks these bounds.

No TensorFlow here: the report imports this module.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Point = tuple[float, float]


@dataclass(frozen=True)
class Landscape:
    name: str
    description: str
    formula: Callable = field(repr=False)  # (x, y, ops) -> value; ops provides cos (numpy or tf.math)
    domain: tuple[Point, Point]  # ((xmin, xmax), (ymin, ymax)): where starts are drawn
    global_minima: tuple[Point, ...]
    local_minima: tuple[Point, ...] = ()

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


def _rastrigin_1d_minima(low: float, high: float) -> list[float]:
    """Minima of x² - a·cos(2πx) in [low, high]: Newton's method from every integer (they lie just
    inside each integer, pulled toward 0 by x²)."""
    a, two_pi = RASTRIGIN_AMPLITUDE, 2 * math.pi
    found = []
    for k in range(math.ceil(low), math.floor(high) + 1):
        x = float(k)
        for _ in range(50):
            x -= (2 * x + a * two_pi * math.sin(two_pi * x)) / (2 + a * two_pi**2 * math.cos(two_pi * x))
        found.append(x)
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
    )


def _rastrigin_landscape() -> "Landscape":
    (xmin, xmax), (ymin, ymax) = domain = ((-2.5, 2.5), (-2.5, 2.5))
    minima = [(x, y) for x in _rastrigin_1d_minima(xmin, xmax) for y in _rastrigin_1d_minima(ymin, ymax)]
    return Landscape(
        name="rastrigin",
        description=f"Rastrigin's function, {RASTRIGIN_SCALE:g}·(20 + x² - 10·cos 2πx + y² - 10·cos 2πy): "
        "one global minimum at the origin amid a grid of local ones about 1 apart",
        formula=_rastrigin,
        domain=domain,
        global_minima=((0.0, 0.0),),
        local_minima=tuple((x, y) for x, y in minima if abs(x) > 0.5 or abs(y) > 0.5),
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
    ),
}


# --- starts and outcomes --------------------------------------------------------------------------


def starts(landscape: Landscape, n: int, seed: int) -> np.ndarray:
    """n points [n, 2] drawn uniformly over the landscape's domain from `seed` (the same for every
    variant)."""
    (xmin, xmax), (ymin, ymax) = landscape.domain
    return np.random.default_rng(seed).uniform((xmin, ymin), (xmax, ymax), size=(n, 2))


@dataclass(frozen=True)
class Outcome:
    """Where one start's path ended.

    `steps_to_tolerance`: the first step from which the path stays within tolerance of a global
    minimum to its end (None when it does not end there): a path that passes through a minimum's
    neighbourhood and leaves it, as momentum may, has not reached it yet.
    `diverged`: some coordinate or value along the path is not finite.
    """

    start: int
    x0: float
    y0: float
    final_x: float
    final_y: float
    final_value: float
    reached_global: bool
    steps_to_tolerance: int | None
    diverged: bool


def distance_to_global(landscape: Landscape, points: np.ndarray) -> np.ndarray:
    """Distance from each point [..., 2] to its nearest global minimum (NaN where not finite)."""
    minima = np.asarray(landscape.global_minima, dtype=np.float64)
    gaps = np.asarray(points, dtype=np.float64)[..., None, :] - minima
    return np.sqrt((gaps**2).sum(-1)).min(-1)


def outcomes(landscape: Landscape, path: np.ndarray, tolerance: float) -> list[Outcome]:
    """Each start's outcome from its path [steps + 1, starts, 2] (row 0 the starts)."""
    path = np.asarray(path, dtype=np.float64)
    with np.errstate(all="ignore"):  # a diverged path overflows on its way out
        values = landscape.value(path[..., 0], path[..., 1])
        near = distance_to_global(landscape, path) <= tolerance  # False where NaN
    diverged = ~(np.isfinite(path).all(axis=(0, 2)) & np.isfinite(values).all(axis=0))
    reached = near[-1] & ~diverged
    # The first step of the final run of steps within tolerance: one past the last step outside it.
    outside_from_end = np.argmax(~near[::-1], axis=0)  # steps at the end within tolerance, if not all
    settled = np.where(near.all(axis=0), 0, len(path) - outside_from_end)
    final = path[-1]
    return [
        Outcome(
            start=i,
            x0=float(path[0, i, 0]),
            y0=float(path[0, i, 1]),
            final_x=float(final[i, 0]),
            final_y=float(final[i, 1]),
            final_value=float(values[-1, i]),
            reached_global=bool(reached[i]),
            steps_to_tolerance=int(settled[i]) if reached[i] else None,
            diverged=bool(diverged[i]),
        )
        for i in range(path.shape[1])
    ]


def summary(results: list[Outcome]) -> dict:
    """Shares of starts that reached a global minimum and that diverged, and the median steps to
    tolerance over those that reached it (None when none did)."""
    n = len(results)
    steps = [r.steps_to_tolerance for r in results if r.steps_to_tolerance is not None]
    return {
        "share_global": sum(r.reached_global for r in results) / n,
        "share_diverged": sum(r.diverged for r in results) / n,
        "median_steps_to_tolerance": float(np.median(steps)) if steps else None,
        "n_starts": n,
    }


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

"""The verdict logic on made-up measurements: what the records say is what the claims table says."""

from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import pytest

from study import analysis, answers, claims, verdicts
from study.claims import Evidence
from study.params import AdamVariant, SGDVariant, VariantBase
from study.statistics import CONTRADICTED, INCONCLUSIVE, NO_EFFECT, SUPPORTED
from study.verdicts import MIXED, NOT_TESTED, Rules

SEEDS = list(range(10))
RNG = np.random.default_rng(0)
LUCK = RNG.normal(0, 0.002, len(SEEDS))  # each seed's luck, shared by every variant (paired)
RULES = Rules()


def sgd(batch=32, momentum=0.0, nesterov=False, rate=0.01) -> SGDVariant:
    return SGDVariant(
        optimizer="sgd",
        batch_size=batch,
        learning_rate=rate,
        search=[1e-4, 1.0],
        momentum=momentum,
        nesterov=nesterov,
    )


VARIANTS = {
    "plain": sgd(),
    "heavy": sgd(momentum=0.9, rate=0.001),
    "ahead": sgd(momentum=0.9, nesterov=True, rate=0.001),
    "adaptive": AdamVariant(optimizer="adam", batch_size=32, learning_rate=0.001, search=[1e-4, 1.0]),
}


def evidence(**tables) -> Evidence:
    empty = {name: pd.DataFrame() for name in Evidence.__dataclass_fields__ if name != "variants"}
    return Evidence(**{"variants": VARIANTS, **(empty | tables)})


def runs(
    epoch1: dict[str, float],
    test: dict[str, float] | None = None,
    spread: float = 1.0,
    rates: dict | None = None,
    protocols=("tuned",),
) -> pd.DataFrame:
    """Every variant's runs: its mean plus each seed's shared luck (times `spread`), plus a little noise."""
    rows = []
    for variant, mean in epoch1.items():
        own = RNG.normal(0, 0.0003, len(SEEDS))
        for protocol in protocols:
            for seed in SEEDS:
                value = mean + spread * LUCK[seed] + own[seed]
                rows.append(
                    {
                        "variant": variant,
                        "protocol": protocol,
                        "seed": seed,
                        "learning_rate": (rates or {}).get(variant, 0.01),
                        "val_accuracy_epoch1": value,
                        "final_val_accuracy": value,
                        "test_accuracy": (test or epoch1)[variant] + spread * LUCK[seed] + own[seed],
                    }
                )
    return pd.DataFrame(rows)


def by_id(found: list[dict], claim_id: str) -> dict:
    return next(c for c in found if c["id"] == claim_id)


def tuned_verdict(found, claim_id):
    return by_id(found, claim_id)["verdicts"]["tuned"]["verdict"]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([SUPPORTED, SUPPORTED], SUPPORTED),
        ([CONTRADICTED], CONTRADICTED),
        ([NO_EFFECT, NO_EFFECT], NO_EFFECT),
        ([INCONCLUSIVE], INCONCLUSIVE),
        ([SUPPORTED, CONTRADICTED], MIXED),
        ([SUPPORTED, NO_EFFECT], MIXED),
        ([], NOT_TESTED),
    ],
)
def test_a_verdict_is_the_tests_common_outcome_or_mixed(outcomes, expected):
    assert verdicts.verdict(outcomes) == expected


def test_a_mixed_verdict_names_which_conditions_went_which_way():
    decided = [{"test": "per epoch", "outcome": SUPPORTED}, {"test": "per second", "outcome": CONTRADICTED}]
    assert verdicts.conditions(decided) == "holds: per epoch | fails: per second"
    assert verdicts.conditions(decided[:1]) is None


def test_a_clear_lead_supports_and_a_clear_deficit_contradicts():
    found = claims.evaluate(evidence(runs=runs({"plain": 0.90, "adaptive": 0.95})), RULES)
    assert tuned_verdict(found, "adaptive") == SUPPORTED
    found = claims.evaluate(evidence(runs=runs({"plain": 0.95, "adaptive": 0.90})), RULES)
    assert tuned_verdict(found, "adaptive") == CONTRADICTED


def test_every_test_inside_a_tight_margin_is_no_detectable_effect():
    found = claims.evaluate(evidence(runs=runs({"plain": 0.95, "adaptive": 0.9501})), RULES)
    claim = by_id(found, "adaptive")
    assert claim["verdicts"]["tuned"]["verdict"] == NO_EFFECT
    test = claim["tests"][0]
    assert -RULES.margins["accuracy"] < test["tost_low"] < test["tost_high"] < RULES.margins["accuracy"]
    assert (
        0 < test["mde"] < RULES.margins["accuracy"]
    )  # the test could have seen an effect of the margin's size


def test_a_wide_interval_is_inconclusive_not_no_effect():
    found = claims.evaluate(evidence(runs=runs({"plain": 0.95, "adaptive": 0.951}, spread=0.0)), RULES)
    assert tuned_verdict(found, "adaptive") in (SUPPORTED, NO_EFFECT)  # paired luck cancels: decided
    noisy = runs({"plain": 0.95, "adaptive": 0.951})
    noisy.loc[noisy["variant"] == "adaptive", "val_accuracy_epoch1"] += RNG.normal(0, 0.01, len(SEEDS))
    found = claims.evaluate(evidence(runs=noisy), RULES)
    test = by_id(found, "adaptive")["tests"][0]
    assert test["outcome"] == INCONCLUSIVE
    assert test["mde"] > RULES.margins["accuracy"]  # too noisy to see an effect of the margin's size


def test_tests_of_one_claim_share_the_error_budget():
    found = claims.evaluate(
        evidence(runs=runs({"plain": 0.9, "adaptive": 0.95}, protocols=("tuned", "defaults"))), RULES
    )
    verdicts = by_id(found, "adaptive")["verdicts"]
    assert verdicts["tuned"]["tests"] == 1 and verdicts["tuned"]["alpha_per_test"] == pytest.approx(0.05)
    assert verdicts["defaults"]["verdict"] == SUPPORTED  # each protocol has a verdict of its own


def momentum_sweep(plain_best: float = 0.1, momentum_is_bigger_step: bool = True) -> pd.DataFrame:
    """A sweep where momentum beta at rate eta is exactly plain SGD at eta / (1 - beta): a setting's
    accuracy depends on its effective step alone (peaking at `plain_best`), plus the seed's luck."""
    rows = []
    for momentum in (0.0, 0.5, 0.9):
        for nesterov in (False, True) if momentum > 0 else (False,):
            for step in (0.01, 0.1, 1.0):
                accuracy = 0.97 - 0.02 * abs(np.log10(step / plain_best))
                for seed in SEEDS[:5]:
                    value = accuracy + LUCK[seed] + RNG.normal(0, 0.0002)
                    rows.append(
                        {
                            "momentum": momentum,
                            "nesterov": nesterov,
                            "effective_step": step,
                            "learning_rate": step * (1 - momentum),
                            "seed": seed,
                            "val_accuracy_epoch1": value,
                            "final_val_accuracy": value,
                        }
                    )
    return pd.DataFrame(rows)


def test_momentum_that_is_sgd_at_a_larger_step_has_no_effect_at_the_matched_step():
    # Momentum at 0.001 and beta 0.9 steps like plain SGD at 0.01: any lead at equal rates is a longer step.
    found = claims.evaluate(evidence(momentum_runs=momentum_sweep()), RULES)
    claim = by_id(found, "momentum")
    matched = [t for t in claim["tests"] if "same effective step" in t["test"]]
    assert matched and all(t["outcome"] == NO_EFFECT for t in matched)
    assert all(t["a_effective_step"] == t["b_effective_step"] == pytest.approx(0.1) for t in matched)
    assert all(t["a_learning_rate"] < t["b_learning_rate"] for t in matched)  # eta = step x (1 - beta)


def test_an_optimum_in_momentum_must_survive_each_momentum_at_its_own_rate():
    # Accuracy depends on the effective step alone: at each beta's best step every momentum ties.
    found = claims.evaluate(evidence(momentum_runs=momentum_sweep()), RULES)
    claim = by_id(found, "optimal_momentum")
    assert claim["verdicts"]["tuned"]["verdict"] == NO_EFFECT
    assert {t["b"] for t in claim["tests"]} == {"momentum 0 at step 0.1", "momentum 0.9 at step 0.1"}


def test_a_momentum_variant_names_its_effective_step():
    found = claims.evaluate(
        evidence(runs=runs({"plain": 0.9, "heavy": 0.9}, rates={"heavy": 0.0316, "plain": 0.316})), RULES
    )
    test = by_id(found, "momentum")["tests"][0]
    assert test["a_effective_step"] == pytest.approx(0.316)
    assert test["b_effective_step"] == pytest.approx(0.316)


def test_roles_come_from_settings_not_names():
    found = claims.roles({"x": sgd(batch="full"), "y": sgd(batch=1), "z": sgd(), "w": sgd(momentum=0.9)})
    assert (found["full"], found["stochastic"], found["plain"], found["momentum"]) == ("x", "y", "z", "w")
    assert "nesterov" not in found


def test_a_new_adaptive_optimizer_family_is_adaptive_by_its_settings_class_alone():
    class AdamWVariant(VariantBase):  # what adding AdamW to study/params.py would look like
        adaptive: ClassVar[bool] = True
        optimizer: Literal["adamw"]
        weight_decay: float = 0.004

    adamw = AdamWVariant(optimizer="adamw", batch_size=32, learning_rate=0.001, search=[1e-4, 0.1])
    variants = {"plain": sgd(), "decayed": adamw, "adam": VARIANTS["adaptive"], "wide": sgd(batch=64)}
    found = claims.roles(variants)
    assert found["adaptive"] == ["decayed", "adam"]  # no list of optimizer names anywhere
    assert "weight_decay" in adamw.model_dump() and "adaptive" not in adamw.model_dump()  # not a setting


def test_a_run_at_chance_counts_as_unstable():
    assert analysis.unstable(False, 0.098, 2.30, chance=0.2)
    assert analysis.unstable(True, None, None, chance=0.2)
    assert analysis.unstable(False, 0.5, 3.1, chance=0.2)  # training loss above a uniform guess's: overshot
    assert not analysis.unstable(False, 0.97, 0.1, chance=0.2)


def tuning_grid(unstable_high: bool) -> pd.DataFrame:
    """Three variants' coarse grids: accuracy rises with the rate up to the 4th of 5, then falls; the
    lowest rate learns slowly (its loss falls), the highest fails at chance when `unstable_high`."""
    rows = []
    for k, variant in enumerate(("plain", "adaptive", "heavy")):
        for i, rate in enumerate((1e-4, 1e-3, 1e-2, 1e-1, 1.0)):
            for seed in (100, 101):
                high = i == 4 and unstable_high
                final = 0.1 if high else (0.8 + 0.04 * i if i < 4 else 0.85) + 0.002 * k + 0.001 * (seed % 2)
                rows.append({"variant": variant, "stage": "coarse", "learning_rate": rate, "seed": seed,
                             "val_accuracy_epoch1": 0.1 if high else final - 0.1, "val_accuracy": final,
                             "loss_epoch1": 2.3 if high else 1.0, "loss": 2.31 if high else 0.5,
                             "diverged": False, "unstable": high})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_learning_rate_claim_counts_a_run_at_chance_as_overshooting():
    found = claims.evaluate(evidence(tuning=tuning_grid(unstable_high=True)), RULES)
    tests = {t["test"]: t["outcome"] for t in by_id(found, "learning_rate")["tests"]}
    assert tests["the highest rate is unstable in some variant"] == SUPPORTED
    assert tests["the lowest rate is stable in every variant"] == SUPPORTED
    assert tests["fast: the best rate vs the lowest rate, early progress"] == SUPPORTED
    assert tests["slow: the lowest rate vs the best rate, at the end"] == SUPPORTED
    assert tests["overshoot: the highest rate vs the best rate, at the end"] == SUPPORTED
    found = claims.evaluate(evidence(tuning=tuning_grid(unstable_high=False)), RULES)
    tests = {t["test"]: t["outcome"] for t in by_id(found, "learning_rate")["tests"]}
    assert tests["the highest rate is unstable in some variant"] == CONTRADICTED


def test_a_low_rate_whose_loss_rises_is_not_stable():
    grid = tuning_grid(unstable_high=True)
    lowest = grid["learning_rate"] == 1e-4
    grid.loc[lowest & (grid["variant"] == "heavy"), "loss"] = 1.5  # above its first epoch's 1.0
    found = claims.evaluate(evidence(tuning=grid), RULES)
    tests = {t["test"]: t for t in by_id(found, "learning_rate")["tests"]}
    assert tests["the lowest rate is stable in every variant"]["outcome"] == CONTRADICTED
    assert tests["the lowest rate is stable in every variant"]["count"] == 2


def test_memory_repeats_decide_only_beyond_their_range():
    memory = pd.DataFrame(
        {"batch_label": ["full"] * 3 + ["1"] * 3, "peak_memory_bytes": [300, 310, 320, 100, 110, 105]}
    )
    test = claims.memory_test(evidence(batch_memory=memory), "full", "1")
    assert test.decided(RULES, 0.05)["outcome"] == SUPPORTED
    memory["peak_memory_bytes"] = [150, 200, 160, 100, 120, 110]  # 1.25x to 2x: the repeats cannot decide
    assert (
        claims.memory_test(evidence(batch_memory=memory), "full", "1").decided(RULES, 0.05)["outcome"]
        == INCONCLUSIVE
    )


def test_every_claim_is_listed_even_without_its_measurements():
    found = claims.evaluate(evidence(), RULES)
    assert [c["id"] for c in found] == [make(evidence()).id for make in claims.CLAIMS]
    assert all(c["verdicts"]["tuned"]["verdict"] == NOT_TESTED for c in found)
    assert {c["source"] for c in found} == {"primer", "implied"}
    assert by_id(found, "nesterov")["source"] == "implied"


def test_landscape_tests_compare_momentum_at_own_and_matched_steps():
    rows = []
    for variant, setting, rate, escaped in [
        ("plain", "own best", 0.1, 0),
        ("heavy", "own best", 0.1, 1),
        ("heavy", "matched step", 0.01, 0),
    ]:
        for start in range(40):
            rows.append(
                {
                    "function": "two_wells",
                    "test": "escape",
                    "variant": variant,
                    "stands_for": variant,
                    "setting": setting,
                    "learning_rate": rate,
                    "start": start,
                    "escaped": escaped if start % 2 else 0,
                    "reached_global": escaped,
                }
            )
    found = claims.evaluate(evidence(landscapes=pd.DataFrame(rows)), RULES)
    tests = {t["test"]: t for t in by_id(found, "momentum")["tests"]}
    assert tests["heavy vs plain on two_wells, escape (own best rates)"]["outcome"] == SUPPORTED
    assert tests["heavy vs plain on two_wells, escape (plain SGD's effective step)"]["outcome"] == NO_EFFECT


def test_memory_is_reported_as_the_median_of_its_repeats():
    memory = pd.DataFrame(
        {"batch_label": ["full"] * 3 + ["1"] * 3, "peak_memory_bytes": [300, 310, 390, 100, 110, 105]}
    )
    decided = claims.memory_test(evidence(batch_memory=memory), "full", "1").decided(RULES, 0.05)
    assert (decided["a_median"], decided["b_median"]) == (310, 105)  # as metrics/batch_size.json says


def test_the_answers_quote_each_protocols_first_test_and_count_the_rest():
    made = runs(
        {"plain": 0.90, "heavy": 0.95, "ahead": 0.95, "adaptive": 0.96}, protocols=("tuned", "defaults")
    )
    found = claims.evaluate(evidence(runs=made), RULES)
    summary = {  # as compare's summary.json holds it: only what the answers read
        v: {p: {"test_accuracy": {"mean": g["test_accuracy"].mean(), "ci_low": 0.0, "ci_high": 1.0,
                                  "n_seeds": 10},
                "learning_rate": 0.01} for p, g in group.groupby("protocol")}
        for v, group in made.groupby("variant")
    }  # fmt: skip
    pairwise = analysis.pairwise(made, 0.003, 0.05)
    opening = answers.build(found, summary, pairwise, VARIANTS, [])
    assert opening["roles"]["plain"] == "plain" and opening["roles"]["momentum"] == "heavy"  # by settings
    momentum = next(a for a in opening["answers"] if a["id"] == "momentum")
    assert momentum["question"] == "Does momentum help?"
    claim = by_id(found, "momentum")
    for protocol in ("tuned", "defaults"):
        said = momentum["protocols"][protocol]
        assert said["verdict"] == claim["verdicts"][protocol]["verdict"]
        first = next(t for t in claim["tests"] if t["protocol"] == protocol)
        assert said["headline"]["mean"] == first["mean"] and said["headline"]["a"] == "heavy"
        assert sum(said["others"].values()) == said["tests"] - 1
    best = opening["best"]["tuned"]
    assert best["best"] == "adaptive" and best["difference"]["outcome"] in verdicts.VERDICTS
    assert opening["tradeoffs"] == []  # no batch-size sweep: no table, never a made-up one


def test_the_tradeoff_table_is_the_batch_claims_own_tests_row_by_row():
    memory = pd.DataFrame(
        {"batch_label": ["full"] * 3 + ["1"] * 3, "peak_memory_bytes": [300, 310, 320, 100, 110, 105]}
    )
    claim = claims.Claim("batch_tradeoffs", "made up", "primer")
    claim.tests.append(claims.memory_test(evidence(batch_memory=memory), "full", "1"))
    rows = answers.tradeoffs(claim.judged(RULES), ["1", "8", "32", "full"])
    parts = [(r["part"], r["batch_label"]) for r in rows]
    assert parts == [("full", "full"), ("stochastic", "1"), ("mini", "32")]
    assert rows[0]["memory"][0]["outcome"] == rows[1]["memory"][0]["outcome"] == SUPPORTED
    assert rows[2]["memory"] == [] and rows[2]["primer_memory"] == "balanced"  # mini-batch: not tested

"""The report's tables about the variants: the setup, the summary per variant and protocol, what each
costs, and the runs compare marked unstable.

Numbers only: means with the 95% intervals compare wrote (metrics/summary.json), counts of runs, and
compare's own `unstable` and `diverged` flags (metrics/runs.csv). Which differences matter is the
claims table's business, not these tables'.
"""

import pandas as pd

from reports.results import (
    PROTOCOL_NAMES,
    Tables,
    ci,
    count,
    missing,
    names,
    pct,
    plural,
    rate,
    size,
    styled,
    v,
)

PROTOCOL_TEXT = {
    "tuned": "*tuned* (primary): every variant at the learning rate its own equal-budget tuning chose",
    "defaults": "*at Keras' defaults*: every variant at its default learning rate from params.yaml (Keras' "
    "default unless params.yaml says otherwise)",
}
MEMORY_KINDS = {"rss": "the process's resident memory (VmHWM)", "gpu": "the GPU's peak memory"}


def setup_text(tables: Tables) -> str:
    runs = tables.runs

    def values(column) -> str:
        found = runs[column].dropna().astype(str).unique() if column in runs else []
        return "; ".join(found) or "not recorded"

    determinism = ", ".join(
        {True: "on", False: "off"}[bool(d)] for d in runs["op_determinism"].dropna().unique()
    ) if "op_determinism" in runs else ""  # fmt: skip
    seeds = "; ".join(
        f"{PROTOCOL_NAMES.get(p, p)}: {len(s)} ({', '.join(map(str, s))})"
        for p in tables.protocols
        if (s := tables.seeds(p))
    )
    return "\n".join(
        [
            f"- **Device:** {values('device')}",
            f"- **TensorFlow / Keras:** {values('tensorflow')} / {values('keras')}",
            f"- **Op determinism:** {determinism or 'not recorded'}",
            f"- **Epochs:** {tables.epochs} per run",
            f"- **Evaluation seeds**, the same for every variant so that they compare seed by seed: {seeds}",
            f"- **Variants:** {len(tables.variants)} ({names(tables.variants)})",
            "- **Protocols:** " + "; ".join(PROTOCOL_TEXT.get(p, f"*{p}*") for p in tables.protocols) + ".",
            f"- **Target:** {tables.target_text} validation accuracy; time to target counts the epochs, "
            "optimizer steps and training seconds until a run first reaches it (scored at epoch ends)",
        ]
    )


def _setting(runs: pd.DataFrame, column: str):
    values = runs[column].dropna() if column in runs else pd.Series(dtype=object)
    return values.iloc[0] if len(values) else None


def _momentum(momentum, nesterov: bool) -> str:
    return rate(momentum or 0.0) + (", Nesterov" if nesterov else "")


def variants_table(tables: Tables):
    """Each variant's settings, its default rate, the rate tuning chose and whether it lies on the edge."""
    chosen = tables.tuning_protocol.get("chosen") or {}
    rows = {}
    for variant in tables.variants:
        runs = tables.runs_of(variant)
        optimizer, schedule = _setting(runs, "optimizer"), _setting(runs, "schedule")
        momentum, nesterov = _setting(runs, "momentum"), bool(_setting(runs, "nesterov"))
        default, tuned = tables.learning_rate(variant, "defaults"), tables.learning_rate(variant, "tuned")
        edge = (chosen.get(variant) or {}).get("on_edge")
        steps = _setting(runs, "steps_per_epoch")
        rows[variant] = {
            "optimizer": optimizer or "—",
            "batch size": count(_setting(runs, "batch_size")) + (" (full)" if steps == 1 else ""),
            "momentum": _momentum(momentum, nesterov) if optimizer == "sgd" else "—",
            "schedule": schedule if isinstance(schedule, str) and schedule else "—",
            "default rate": rate(default),
            "tuned rate": rate(tuned) + (f" ⚠ on the {edge} edge" if edge else ""),
            "tuned ÷ default": "—" if missing(tuned) or missing(default) else f"{tuned / default:.3g}×",
        }
    table = pd.DataFrame.from_dict(rows, orient="index").rename_axis("variant")
    return styled(table, "variants").map(lambda text: "color: #cf222e" if "⚠" in str(text) else "")


def _to_target(tables: Tables, variant: str, protocol: str, metric: str, kind: str) -> str:
    fields = tables.fields(variant, protocol)
    reached, seeds = fields.get("seeds_reaching_target"), fields.get("seeds")
    if reached == 0:
        return "not reached"
    text = ci(tables.interval(variant, protocol, metric), kind)
    return text if reached is None or reached == seeds else f"{text} ({reached} of {seeds} seeds)"


def summary_table(tables: Tables):
    """One row per variant and protocol (tuned first): compare's means over seeds with 95% intervals."""
    target = tables.target_text
    rows = {}
    for variant in tables.variants:
        for protocol in tables.protocols:
            if not tables.fields(variant, protocol):
                continue
            rows[(variant, PROTOCOL_NAMES.get(protocol, protocol))] = {
                "learning rate": rate(tables.learning_rate(variant, protocol)),
                "test accuracy": ci(tables.interval(variant, protocol, "test_accuracy")),
                f"epochs to {target}": _to_target(tables, variant, protocol, "epochs_to_target", "count"),
                f"seconds to {target}": _to_target(tables, variant, protocol, "seconds_to_target", "secs"),
            }
    return _for_people(
        rows, "summary", "— : not measured (every seed diverged, or a variant never reached it)."
    )


def _for_people(rows: dict, uuid: str, dash: str):
    """Rows keyed by (variant, protocol) as a table without an index column, "—" explained below it."""
    table = pd.DataFrame([{"variant": v, "protocol": p, **row} for (v, p), row in rows.items()])
    if table.empty:
        return table
    style = styled(table, uuid).hide(axis="index")
    return style.set_caption(dash).set_table_styles(
        [{"selector": "caption", "props": [("caption-side", "bottom"), ("font-size", "0.85em")]}],
        overwrite=False,
    )


def cost_table(tables: Tables):
    """Per variant and protocol: the optimizer's state, peak memory as measured in the training stage (a
    different measurement from the batch-size sweep's fresh-process repeats, and labelled so), time."""
    rows = {}
    for variant in tables.variants:
        for protocol in tables.protocols:
            if not tables.fields(variant, protocol):
                continue
            rows[(variant, PROTOCOL_NAMES.get(protocol, protocol))] = {
                "optimizer state": size(tables.interval(variant, protocol, "optimizer_state_bytes").mean),
                "peak memory in the training stage (whole split), above its level before": ci(
                    tables.interval(variant, protocol, "peak_memory_bytes"), "bytes"
                ),
                "seconds per epoch": ci(tables.interval(variant, protocol, "seconds_per_epoch"), "secs"),
                "training seconds": ci(tables.interval(variant, protocol, "train_seconds"), "secs"),
            }
    return _for_people(rows, "cost", "— : not recorded by the runs.")


def per_class(tables: Tables, protocol: str) -> pd.DataFrame:
    """Test accuracy per digit (mean over seeds, as evaluate wrote it), a variant per row."""
    rows = {
        x: tables.evaluations[x][protocol]["per_class_accuracy"]
        for x in tables.variants
        if isinstance(tables.evaluations.get(x, {}).get(protocol), dict)
        and "per_class_accuracy" in tables.evaluations[x][protocol]
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.apply(pd.to_numeric, errors="coerce").astype(float) if len(table) else table


def unstable_text(tables: Tables) -> str:
    """Every evaluation run compare marked unstable (diverged, near chance, or loss above a guess's), and
    the sweeps' runs that failed, as their stages counted them."""
    lines = []
    runs = tables.runs[tables.runs["unstable"] | tables.runs["diverged"]]
    for (variant, protocol), group in runs.groupby(["variant", "protocol"], sort=False):
        seeds = ", ".join(f"{s:.0f}" for s in group["seed"])
        diverged = group[group["diverged"]]
        how = (
            f"; {len(diverged)} diverged (loss NaN or infinite in epoch "
            + ", ".join(f"{e:.0f}" for e in diverged["diverged_epoch"].dropna())
            + ")"
            if len(diverged) and "diverged_epoch" in diverged
            else ""
        )
        final = group["final_val_accuracy"].dropna() if "final_val_accuracy" in group else []
        ended = f"; final validation accuracy {', '.join(pct(x, 1) for x in final)}" if len(final) else ""
        lines.append(
            f"- {v(variant)}, {PROTOCOL_NAMES.get(protocol, protocol)} (rate "
            f"{rate(tables.learning_rate(variant, protocol))}): {len(group)} of "
            f"{len(tables.runs_of(variant, protocol))} seeds unstable (seed {seeds}){how}{ended}."
        )
    if not lines:
        lines.append(
            "No evaluation run was unstable: every one stayed finite for all "
            f"{plural(tables.epochs, 'epoch')} and ended above the chance threshold."
        )
    sweep = tables.momentum
    if len(sweep) and sweep["diverged"].any():
        lines.append(f"- **Momentum sweep:** {int(sweep['diverged'].sum())} of {len(sweep)} runs diverged "
                     "(see the momentum section).")  # fmt: skip
    failed = {label: f for label, f in tables.batch.items() if f.get("seeds_unstable")}
    if failed:
        lines.append(
            "- **Batch-size sweep:** unstable runs at "
            + ", ".join(
                f"{key} ({f['seeds_unstable']} of {f.get('seeds', '?')})" for key, f in failed.items()
            )
            + "."
        )
    return "\n".join(lines)


def evidence_text(tables: Tables) -> str:
    """How many runs each protocol has, and where training time and memory come from."""
    per_protocol = tables.runs.groupby("protocol")["seed"].nunique()
    if per_protocol.empty:
        return "No runs were recorded."
    kinds = sorted(set(tables.runs["memory_kind"].dropna())) if "memory_kind" in tables.runs else []
    seeds = "; ".join(
        f"{PROTOCOL_NAMES.get(p, p)}, {plural(int(per_protocol[p]), 'seed')}"
        for p in tables.protocols
        if p in per_protocol
    )
    memory = ", ".join(MEMORY_KINDS.get(k, k) for k in kinds)
    return (
        f"Every variant trained from the same seeds under each protocol ({seeds}). Intervals are "
        "compare's 95% Student-t intervals of the mean over seeds. Training seconds are what one run "
        "costs alone: a solo run's median seconds per step times the run's steps."
        + (f" Peak memory is {memory} above its level just before the run." if kinds else "")
    )

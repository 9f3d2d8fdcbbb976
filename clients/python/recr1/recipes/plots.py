"""PNG charts with matplotlib (Agg, no display): a run's training curves and an evaluation's bars."""

import math

from recr1 import extras


def _pyplot():
    extras.require("the charts", ("matplotlib",))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _series(records, key, phases=None):
    xs, ys = [], []
    for record in records:
        value = record.get(key)
        if phases and record.get("phase") not in phases:
            continue
        if isinstance(value, (int, float)) and math.isfinite(value):
            xs.append(record["step"])
            ys.append(value)
    return xs, ys


def training_curves(records, path, title, validation=None, validation_metric=None):
    """Reward (mean, with min-max band), loss and KL (or the DPO margin) against the step; with validation
    points ([{"step", key: value}]) and validation_metric (key, label, higher is better), a fourth panel of
    the held-out metric."""
    plt = _pyplot()
    panels = 4 if validation and validation_metric else 3
    figure, axes = plt.subplots(1, panels, figsize=(4.3 * panels, 3.6))
    phases = sorted({r["phase"] for r in records}, key=lambda p: min(r["step"] for r in records if r["phase"] == p))
    colours = {"sft": "tab:gray", "grpo": "tab:blue", "dpo": "tab:purple"}

    xs, ys = _series(records, "reward_mean")
    axes[0].plot(xs, ys, marker="o", color="tab:green", label="mean")
    band = [(r["step"], r["reward_min"], r["reward_max"]) for r in records
            if r.get("reward_min") is not None and r.get("reward_max") is not None]
    if band:
        axes[0].fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color="tab:green",
                             alpha=0.15, label="min-max")
    axes[0].set_title("reward")
    axes[0].legend(fontsize=8)

    for phase in phases:
        xs, ys = _series(records, "loss", {phase})
        if xs:
            axes[1].plot(xs, ys, marker="o", color=colours.get(phase), label=phase)
    axes[1].set_title("loss")
    if any(len(line.get_xdata()) for line in axes[1].lines):
        axes[1].legend(fontsize=8)

    if any(r["phase"] == "dpo" for r in records):
        xs, ys = _series(records, "margin", {"dpo"})
        axes[2].plot(xs, ys, marker="o", color=colours["dpo"])
        axes[2].set_title("DPO margin (chosen - rejected implicit reward)")
    else:
        xs, ys = _series(records, "kl", {"grpo"})
        axes[2].plot(xs, ys, marker="o", color="tab:red")
        axes[2].set_title("KL to the reference (GRPO steps)")
    if panels == 4:
        key, label, higher = validation_metric
        points = [(p["step"], p[key]) for p in validation if isinstance(p.get(key), (int, float))]
        axes[3].plot([p[0] for p in points], [p[1] for p in points], marker="s", color="tab:orange")
        for x, y in points:
            axes[3].annotate(f"{y:.3f}", (x, y), fontsize=7, ha="center", va="bottom")
        count = validation[0].get("users", "?")
        axes[3].set_title(f"validation {label} ({count} held-out, {'higher' if higher else 'lower'} is better)",
                          fontsize=9)
    from matplotlib.ticker import MaxNLocator
    for axis in axes[1:3]:
        if not any(len(line.get_xdata()) for line in axis.lines):
            axis.text(0.5, 0.5, "no update in any step", ha="center", va="center", transform=axis.transAxes,
                      color="gray")
    steps = [r["step"] for r in records] + [p["step"] for p in validation or []]
    for axis in axes:
        axis.set_xlim(min(steps) - 0.5, max(steps) + 0.5)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def evaluation_bars(systems, metrics, path, title, comparisons=None):
    """One panel per metric, one bar per system, labelled by name; the headline metric's bars carry their
    95% interval (system["interval"]), and the comparisons (stats.compare) are printed under the chart.
    systems: [{"name", "metrics": {...}, "interval"?}]; metrics: [(key, label, higher_is_better)]."""
    plt = _pyplot()
    shown = [m for m in metrics if any(s["metrics"].get(m[0]) is not None for s in systems)]
    count = max(1, len(shown))
    figure, axes = plt.subplots(1, count, figsize=(max(2.2 * count, 0.5 * len(systems) * count) + 1, 5.6),
                                squeeze=False)
    colours = {"baseline": "tab:gray", "base": "tab:orange", "cold-start": "tab:blue", "trained": "tab:green"}
    names = [s["name"] for s in systems]
    for axis, (key, label, higher) in zip(axes[0], shown):
        values = [s["metrics"].get(key) for s in systems]
        heights = [v if v is not None else 0.0 for v in values]
        errors = None
        intervals = [s.get("interval") for s in systems]
        if all(i and i.get("metric") == key for i in intervals):
            errors = [[h - i["low"] for h, i in zip(heights, intervals)], [i["high"] - h for h, i in zip(heights, intervals)]]
        bars = axis.bar(range(len(systems)), heights, yerr=errors, capsize=3 if errors else 0,
                        color=[colours.get(s.get("kind"), "tab:purple") for s in systems])
        for bar, value in zip(bars, values):
            text = "n/a" if value is None else (str(value) if isinstance(value, int) else f"{value:.3f}")
            axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                          fontsize=6)
        axis.set_title(f"{label} ({'higher' if higher else 'lower'} is better)" + (", 95% CI" if errors else ""),
                       fontsize=8)
        axis.set_xticks(range(len(systems)))
        axis.set_xticklabels(names, fontsize=6, rotation=60, ha="right")
        axis.grid(axis="y", alpha=0.3)
    lines = [title]
    for c in comparisons or []:
        lines.append(f"{c['system']} - {c['against']}: {c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}] "
                     f"{c['verdict']}")
    figure.suptitle("\n".join(lines), fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

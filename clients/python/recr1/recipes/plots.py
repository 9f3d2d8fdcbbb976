"""PNG charts with matplotlib (Agg, no display): a run's training curves and an evaluation's bars."""

import math


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("the charts need matplotlib: `python3 -m pip install matplotlib` "
                          "(or `pip install -e clients/python`)") from exc
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


def training_curves(records, path, title):
    """Reward (mean, with min-max band), loss and KL (or the DPO margin) against the step."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
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
    from matplotlib.ticker import MaxNLocator
    for axis in axes[1:]:
        if not any(len(line.get_xdata()) for line in axis.lines):
            axis.text(0.5, 0.5, "no update in any step", ha="center", va="center", transform=axis.transAxes,
                      color="gray")
    steps = [r["step"] for r in records]
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


def evaluation_bars(systems, metrics, path, title):
    """One panel per metric, one bar per system. systems: [{"name", "metrics": {...}}];
    metrics: [(key, label, higher_is_better)]."""
    plt = _pyplot()
    shown = [m for m in metrics if any(s["metrics"].get(m[0]) is not None for s in systems)]
    figure, axes = plt.subplots(1, max(1, len(shown)), figsize=(2.6 * max(1, len(shown)) + 1, 3.8), squeeze=False)
    colours = ["tab:gray", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:brown"]
    names = [s["name"] for s in systems]
    for axis, (key, label, higher) in zip(axes[0], shown):
        values = [s["metrics"].get(key) for s in systems]
        heights = [v if v is not None else 0.0 for v in values]
        bars = axis.bar(range(len(systems)), heights, color=colours[:len(systems)])
        for bar, value in zip(bars, values):
            axis.annotate("n/a" if value is None else f"{value:.3f}",
                          (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
        axis.set_title(f"{label} ({'higher' if higher else 'lower'} is better)", fontsize=8)
        axis.set_xticks(range(len(systems)))
        axis.set_xticklabels([str(i + 1) for i in range(len(systems))], fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    legend = "   ".join(f"{i + 1}: {name}" for i, name in enumerate(names))
    figure.suptitle(f"{title}\n{legend}", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

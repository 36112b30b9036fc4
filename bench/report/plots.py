"""Seaborn figures for the report. Each function returns a Figure, or None when the data cannot support the plot."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # reports run on headless machines and inside tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import seaborn as sns  # noqa: E402

MAX_CURVE_PANELS = 24  # beyond this a facet grid is unreadable; the table still lists every model

sns.set_theme(style="whitegrid", context="notebook")


# The registry's families first, so a family has the same colour in every figure and every dataset's section.
FAMILIES = ["resnet", "xresnet", "seresnet", "resnext", "seresnext", "efficientnet", "timm"]


def _family_palette(families) -> dict:
    names = FAMILIES + sorted({str(f) for f in families} - set(FAMILIES))
    colours = sns.color_palette("tab10", n_colors=10) + sns.color_palette("Set2", n_colors=8)
    return {n: colours[i % len(colours)] for i, n in enumerate(names) if n in {str(f) for f in families}}


def _label_points(ax, xs, ys, labels) -> None:
    # Right-hand points are labelled to their left, so no label runs out of the axes into the legend.
    mid = (np.nanmin(xs) + np.nanmax(xs)) / 2 if ax.get_xscale() == "linear" else np.sqrt(np.nanmin(xs) * np.nanmax(xs))
    for x, y, text in zip(xs, ys, labels):
        right = x > mid
        ax.annotate(_short(text, 32), (x, y), textcoords="offset points", xytext=(-6 if right else 6, 4),
                    ha="right" if right else "left", fontsize=8)


def accuracy_vs_time(summary: pd.DataFrame):
    """The article's closing figure: accuracy against training time, colour = family, size = parameters."""
    d = summary.dropna(subset=["acc_mean", "total_s"]).assign(acc=lambda t: 100 * t.acc_mean,
                                                                **{"params (M)": lambda t: t.params_m.round(1)})
    if len(d) < 2:  # one point compares nothing
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.errorbar(d.total_s, d.acc, yerr=100 * d.acc_std.fillna(0), fmt="none", ecolor="0.6", zorder=1)
    has_size = d.params_m.notna().any()
    sns.scatterplot(data=d, x="total_s", y="acc", hue="family", palette=_family_palette(d.family),
                    size="params (M)" if has_size else None, sizes=(30, 400), alpha=0.85, ax=ax, zorder=2,
                    # from zero, so marker area is proportional to the parameter count rather than its rank
                    size_norm=(0, d.params_m.max()) if has_size else None)
    # Time from zero (or on a log scale when it spans more than 8x), so the distance between two points is their
    # cost ratio: a 38-44 s span drawn edge to edge made a 15 % difference look like 10x.
    if d.total_s.max() / max(d.total_s.min(), 1e-9) > 8:
        ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
    if ax.get_xscale() == "linear":
        ax.set_xlim(left=0, right=d.total_s.max() * 1.15)
    _label_points(ax, d.total_s, d.acc, d.model)
    ax.set(xlabel="training time, mean per run (s)" + (", log scale" if ax.get_xscale() == "log" else ""),
           ylabel="accuracy (%)", title="Accuracy vs training time (marker size = parameters, M)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return fig


def family_bars(runs: pd.DataFrame):
    """Horizontal bars per model (long variant labels stay readable), grouped and coloured by family, from zero;
    error bars are the sd over seeds/folds, dots the single runs."""
    d = runs.dropna(subset=["final_accuracy"]).assign(acc=lambda t: 100 * t.final_accuracy)
    if d.model.nunique() < 2:
        return None
    means = d.groupby("model").acc.mean()
    order = (d.drop_duplicates("model").assign(m=lambda t: t.model.map(means))
             .sort_values(["family", "m"], ascending=[True, False]).model.tolist())
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.32 * len(order)))
    palette = _family_palette(d.family)
    sns.barplot(data=d, y="model", x="acc", hue="family", order=order, palette=palette, errorbar="sd",
                capsize=0.2, dodge=False, ax=ax)
    sns.stripplot(data=d, y="model", x="acc", order=order, color="0.15", size=3, ax=ax, legend=False)
    ax.set(ylabel="", xlabel="accuracy (%)", title="Accuracy by family (mean ± sd over seeds/folds; dots: runs)")
    ax.set_xlim(0, 100)  # bars start at zero: a bar's length is its accuracy
    ax.set_yticks(range(len(order)), [_short(m) for m in order], fontsize=8)
    if ax.get_legend() is not None:  # beside the axes, never over a bar
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title="family")
    fig.tight_layout()
    return fig


def _short(label: str, width: int = 48) -> str:
    """Fit a variant label in `width` characters: first drop the setting names (`resnet18 [channels_last]`), then
    cut."""
    if len(label) > width and label.endswith("]") and " [" in label:
        arch, rest = label[:-1].split(" [", 1)
        label = f"{arch} [{', '.join(kv.split('=', 1)[-1] for kv in rest.split(', '))}]"
    return label if len(label) <= width else label[: width - 1] + "…"


def learning_curves(curves: pd.DataFrame):
    """Validation accuracy per epoch across both phases; the shaded span is phase 1 (frozen body)."""
    d = curves.dropna(subset=["accuracy", "epoch"])
    if d.empty or d.epoch.nunique() < 2:  # a curve needs two epochs
        return None
    models = list(dict.fromkeys(d.model))[:MAX_CURVE_PANELS]
    d = d[d.model.isin(models)].assign(acc=lambda t: 100 * t.accuracy)
    g = sns.relplot(data=d, x="epoch", y="acc", col="model", col_order=models, col_wrap=min(4, len(models)),
                    kind="line", marker="o", errorbar="sd", height=2.6, aspect=1.25,
                    facet_kws=dict(sharey=True, sharex=False))
    for model, ax in g.axes_dict.items():
        phase1 = d[(d.model == model) & (d.phase == 1)].epoch
        if len(phase1):
            boundary = phase1.max() + 0.5
            ax.axvspan(d[d.model == model].epoch.min() - 0.5, boundary, color="0.85", alpha=0.5, lw=0)
            ax.axvline(boundary, color="0.3", ls="--", lw=1)
        ax.set_title(model, fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    g.set_axis_labels("epoch (both phases)", "accuracy (%)")
    g.figure.suptitle("Learning curves (shaded: phase 1, frozen body; dashed: unfreeze)", y=1.02)
    return g.figure


def pareto_front(points: pd.DataFrame) -> pd.DataFrame:
    """Models that no other model beats on both fewer parameters and higher accuracy."""
    d = points.sort_values(["params_m", "acc"], ascending=[True, False])
    keep = d.acc > d.acc.cummax().shift(fill_value=-np.inf)
    return d[keep]


def accuracy_vs_params(summary: pd.DataFrame):
    d = summary.dropna(subset=["acc_mean", "params_m"]).assign(acc=lambda t: 100 * t.acc_mean)
    if len(d) < 2:
        return None
    fig, ax = plt.subplots(figsize=(8, 5.5))
    sns.scatterplot(data=d, x="params_m", y="acc", hue="family", palette=_family_palette(d.family), s=70, ax=ax)
    front = pareto_front(d)
    # Carried on to the largest model so a one-point front (one model dominating all) still shows as a line.
    xs, ys = [*front.params_m, d.params_m.max()], [*front.acc, front.acc.iloc[-1]]
    ax.step(xs, ys, where="post", color="crimson", lw=1.5, label="Pareto front", zorder=1)
    ax.scatter(front.params_m, front.acc, s=160, facecolors="none", edgecolors="crimson", zorder=3)
    ax.margins(x=0.12, y=0.08)
    if d.params_m.max() / max(d.params_m.min(), 1e-9) > 8:
        ax.set_xscale("log")
    _label_points(ax, d.params_m, d.acc, d.model)
    ax.set(xlabel="parameters (M, 1000-class head)", ylabel="accuracy (%)", title="Accuracy vs parameters")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return fig


def confusion_matrices(confusion: dict, max_panels: int = 12):
    """One heatmap per model: each true class's answers as % of its images (rows sum to 100), counts summed over
    the model's runs; None without outcomes."""
    models = list(confusion)[:max_panels]
    if not models:
        return None
    k = len(confusion[models[0]])
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    side = min(2.2 + 0.35 * k, 7)
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols, side * rows), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, m in zip(axes.flat, models):
        cm = confusion[m]
        share = 100 * cm.div(cm.sum(axis=1).replace(0, 1), axis=0)
        sns.heatmap(share, ax=ax, vmin=0, vmax=100, cmap="Blues", cbar=False, square=True,
                    annot=k <= 10, fmt=".0f", annot_kws={"fontsize": 7})
        ax.set_title(_short(m, 40), fontsize=9)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Confusion matrices (% of each true class; counts over each model's runs)", y=1.0)
    fig.tight_layout()
    return fig


PLOTS = {
    "accuracy_vs_time": ("Accuracy vs training time", lambda s, r, c: accuracy_vs_time(s)),
    "family_bars": ("Accuracy by family", lambda s, r, c: family_bars(r)),
    "learning_curves": ("Learning curves", lambda s, r, c: learning_curves(c)),
    "accuracy_vs_params": ("Accuracy vs parameters", lambda s, r, c: accuracy_vs_params(s)),
}


def save(fig, path) -> None:
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)

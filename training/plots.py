"""PNG charts of evaluation reports a person can read: models side by side, popularity and oracle as
reference lines. Uses matplotlib's object API on the Agg canvas (no global pyplot state, no display).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from recsys.tiers import TIER_LABELS
from training.evaluate import CURVE_METRICS, EvaluationReport

_TITLES = {"precision": "Precision@k", "recall": "Recall@k", "ndcg": "nDCG@k", "map": "MAP@k"}
_ORACLE = "oracle (true affinity)"


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _style(name: str) -> dict[str, Any]:
    if name == "popularity":
        return {"linestyle": ":", "color": "grey"}
    return {}


def _oracle_curve(reports: dict[str, EvaluationReport]) -> dict[str, np.ndarray] | None:
    return next((r.oracle_curve for r in reports.values() if r.oracle_curve is not None), None)


def _plot_metric_by_k(reports: dict[str, EvaluationReport], path: Path) -> Path:
    fig = Figure(figsize=(11, 8))
    oracle = _oracle_curve(reports)
    k_eval = next(iter(reports.values())).k
    for i, metric in enumerate(CURVE_METRICS):
        ax = fig.add_subplot(2, 2, i + 1)
        for name, report in reports.items():
            values = report.curve[metric]
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3, label=name, **_style(name))
        if oracle is not None:
            values = oracle[metric]
            ax.plot(np.arange(1, len(values) + 1), values, color="black", linestyle="--", label=_ORACLE)
        ax.axvline(k_eval, color="lightgrey", linewidth=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{_TITLES[metric]} by cut-off k")
        ax.set_xlabel("k (length of the recommended list)")
        ax.set_ylabel(_TITLES[metric])
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Ranking quality by list length (members with a relevant offer in the test period)")
    return _save(fig, path)


def _grouped_bars(ax: Axes, groups: list[str], series: dict[str, list[float]]) -> None:
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for j, (name, values) in enumerate(series.items()):
        heights = [0.0 if math.isnan(v) else v for v in values]
        color = "grey" if name == "popularity" else None
        bars = ax.bar(x + (j - (len(series) - 1) / 2) * width, heights, width, label=name, color=color)
        for bar, v in zip(bars, values, strict=True):
            text = "n/a" if math.isnan(v) else f"{v:.2f}"
            top = (bar.get_x() + bar.get_width() / 2, bar.get_height())
            ax.annotate(text, top, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, groups)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)


def _plot_by_tier(reports: dict[str, EvaluationReport], path: Path) -> Path:
    first = next(iter(reports.values()))
    tiers = [t for t in TIER_LABELS if any(t in r.by_tier for r in reports.values())]
    series = {name: [r.by_tier[t].ndcg if t in r.by_tier else math.nan for t in tiers] for name, r in reports.items()}
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot(1, 1, 1)
    _grouped_bars(ax, [f"{t}\n(n={first.by_tier[t].n_users})" if t in first.by_tier else t for t in tiers], series)
    oracle = next((r.oracle for r in reports.values() if r.oracle is not None), None)
    if oracle is not None:
        ax.axhline(oracle.ndcg, color="black", linestyle="--", linewidth=1, label=f"{_ORACLE}, all tiers")
        ax.legend(fontsize=8)
    ax.set_title(f"nDCG@{first.k} by member tier")
    ax.set_xlabel("tier (members with a relevant offer)")
    ax.set_ylabel(f"nDCG@{first.k}")
    return _save(fig, path)


def _plot_cold_warm(reports: dict[str, EvaluationReport], path: Path) -> Path:
    first = next(iter(reports.values()))
    k = first.k
    groups = [
        f"warm members\nnDCG@{k} (n={first.warm_members.n_users})",
        f"cold members\nnDCG@{k} (n={first.cold_members.n_users})",
        f"cold offers\nrecall@{k}",
    ]
    series = {
        name: [
            r.warm_members.ndcg,
            r.cold_members.ndcg,
            r.cold_offers.recall if r.cold_offers is not None else math.nan,
        ]
        for name, r in reports.items()
    }
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot(1, 1, 1)
    _grouped_bars(ax, groups, series)
    ax.set_title("Cold start: members and offers without training history")
    ax.set_ylabel("metric value")
    return _save(fig, path)


def _plot_scores(reports: dict[str, EvaluationReport], path: Path) -> Path:
    n = len(reports)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(5 * cols, 4 * rows))
    for i, (name, report) in enumerate(reports.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        samples = report.scores
        values = [v for v in (samples.irrelevant, samples.relevant, samples.recommended) if v.size]
        if not values:
            ax.set_title(f"{name}: no scores")
            continue
        lo, hi = float(min(v.min() for v in values)), float(max(v.max() for v in values))
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40).tolist()
        for label, v in (
            ("other offers", samples.irrelevant),
            ("relevant (test)", samples.relevant),
            (f"recommended top-{report.k}", samples.recommended),
        ):
            if v.size:
                ax.hist(v, bins=bins, density=True, histtype="step", linewidth=1.5, label=label)
        ax.set_title(f"{name}: score distribution")
        ax.set_xlabel("model score")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_breakdowns(reports: dict[str, EvaluationReport], path: Path) -> Path | None:
    """Per breakdown (``training.breakdowns``), the share of each kind of relevant response that each
    ranking and the oracle put in the top k."""
    first = next(iter(reports.values()))
    if not first.breakdowns:
        return None
    fig = Figure(figsize=(12, 4.5 * len(first.breakdowns)))
    for i, (breakdown, kinds) in enumerate(first.breakdowns.items()):
        ax = fig.add_subplot(len(first.breakdowns), 1, i + 1)
        series = {name: [r.breakdowns[breakdown][kind].model for kind in kinds] for name, r in reports.items()}
        if first.oracle is not None:
            series[_ORACLE] = [hits.oracle for hits in kinds.values()]
        labels = [f"{textwrap.fill(kind, 18)}\n(n={hits.relevant})" for kind, hits in kinds.items()]
        _grouped_bars(ax, labels, series)
        ax.set_title(f"Relevant test responses ranked in the top {first.k}, by {breakdown}")
        ax.set_ylabel(f"share in the top {first.k}")
        ax.tick_params(axis="x", labelsize=8)
    return _save(fig, path)


def write_plots(reports: dict[str, EvaluationReport], out_dir: Path) -> list[Path]:
    """Write the comparison charts for ``reports`` (model name -> report) and return their paths."""
    if not reports:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        _plot_metric_by_k(reports, out_dir / "metric_by_k.png"),
        _plot_by_tier(reports, out_dir / "ndcg_by_tier.png"),
        _plot_cold_warm(reports, out_dir / "cold_vs_warm.png"),
        _plot_scores(reports, out_dir / "score_distributions.png"),
        _plot_breakdowns(reports, out_dir / "top_k_by_kind.png"),
    ]
    return [path for path in paths if path is not None]

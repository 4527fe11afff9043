"""The plots of ``make bench`` (PNG, from the series in ``latest.json``): the latency distribution of the
offers endpoint and the floor, throughput and p99 against concurrency, and each job's wall time and
peak memory against the number of members."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"offers": "tab:blue", "floor": "tab:grey"}


def write_plots(out: Path, serving: dict[str, Any] | None, jobs: dict[str, Any] | None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if serving:
        written += [
            _latency(out / "serving_latency.png", serving),
            _throughput(out / "serving_throughput.png", serving),
        ]
    if jobs and jobs.get("jobs"):
        written.append(_jobs(out / "jobs_scale.png", jobs["jobs"]))
    return written


def _latency(path: Path, serving: dict[str, Any]) -> Path:
    levels = sorted({int(c) for c in serving["offers"]})
    fig, axes = plt.subplots(1, len(levels), figsize=(4 * len(levels), 3.6), sharey=True, squeeze=False)
    for ax, c in zip(axes[0], levels, strict=True):
        for app in ("offers", "floor"):
            cdf = serving[app][str(c)]["cdf"]
            pct = [p for p, _ in cdf]
            ax.plot([1 / (1 - p / 100) for p in pct], [ms for _, ms in cdf], marker=".", label=app, color=COLOURS[app])
        ax.set_xscale("log")
        ticks = [1, 2, 10, 100, 1000, 10000]
        ax.set_xticks(ticks, ["0", "50", "90", "99", "99.9", "99.99"])
        ax.set_title(f"concurrency {c}")
        ax.set_xlabel("percentile")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("latency (ms)")
    axes[0][0].legend()
    fig.suptitle("Latency distribution: offers endpoint and floor app (wrk, median run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _throughput(path: Path, serving: dict[str, Any]) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for app in ("offers", "floor"):
        levels = sorted(int(c) for c in serving[app])
        runs = [serving[app][str(c)] for c in levels]
        left.plot(levels, [_median(r["rps"]) for r in runs], marker="o", label=app, color=COLOURS[app])
        right.plot(levels, [_median(r["p99_ms"]) for r in runs], marker="o", label=f"{app} p99", color=COLOURS[app])
        right.plot(
            levels, [_median(r["p50_ms"]) for r in runs], marker=".", ls="--", label=f"{app} p50", color=COLOURS[app]
        )
    for ax, label in ((left, "requests/s"), (right, "latency (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    left.set_ylim(bottom=0)
    fig.suptitle("Throughput and latency against concurrency")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _jobs(path: Path, jobs: dict[str, dict[str, dict[str, Any]]]) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for job, by_size in sorted(jobs.items()):
        if job.startswith("fit."):
            continue
        sizes = sorted(int(n) for n in by_size)
        seconds = [by_size[str(n)].get("fit_s" if job.startswith("raw.") else "seconds") for n in sizes]
        style = {"ls": ":", "marker": "x"} if job.startswith("raw.") else {"marker": "o"}
        label = f"{job} (library fit only)" if job.startswith("raw.") else job
        left.plot(sizes, seconds, label=label, **style)
        right.plot(sizes, [by_size[str(n)]["peak_bytes"] / 1e9 for n in sizes], label=label, **style)
    for ax, label in ((left, "wall time (s)"), (right, "peak resident memory (GB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("members")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    right.axhline(8, color="red", lw=0.8, ls="--", label="8 GB target")
    right.legend(fontsize=7)
    fig.suptitle("Jobs against the number of members (2,000 offers)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _median(values: list[float]) -> float:
    return float(statistics.median(values))

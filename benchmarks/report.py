"""Figures and how they leave the run: one JSON object per figure (name, value, unit, baseline name,
baseline value, ratio, the target and whether it holds) in ``latest.json``, and a table on the terminal."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COUNTED = ("req/s", "members/s", "SET/s", "B/member", "bytes", "requests", "responses", "errors", "answers", "events")
"""Units printed as whole numbers."""


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    label: str = ""
    baseline: str | None = None
    baseline_value: float | None = None
    target: str | None = None  # as text, e.g. ">= 0.6 x floor"; None: reported, not targeted
    meets: bool | None = None  # whether the target holds (None without a target)
    lower_is_better: bool = False

    @property
    def ratio(self) -> float | None:
        if self.baseline_value is None or not self.baseline_value:
            return None
        return self.value / self.baseline_value

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["ratio"] = self.ratio
        return {k: _finite(v) for k, v in doc.items()}


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_bytes": memory,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def write_json(path: Path, figures: list[Figure], **sections: Any) -> Path:
    doc = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **sections,
        "figures": [f.as_json() for f in figures],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit in COUNTED or abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text


def table(figures: list[Figure]) -> str:
    """A fixed-width table: figure, value, baseline, ratio, target, and whether it holds."""
    header = f"{'figure':<34}{'value':>12} {'unit':<10}{'baseline':>12}  {'ratio':>7}  {'target':<40}{'holds':<5}"
    lines = [header, "-" * len(header)]
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        holds = "-" if f.meets is None else ("yes" if f.meets else "NO")
        lines.append(
            f"{f.name:<34}{_number(f.value, f.unit):>12} {f.unit:<10}{_number(f.baseline_value, f.unit):>12}  "
            f"{ratio:>7}  {(f.target or ''):<40}{holds:<5}"
        )
    return "\n".join(lines)


def markdown(figures: list[Figure]) -> str:
    """The same table in Markdown (for the README's Performance section)."""
    lines = [
        "| figure | value | baseline | ratio | target | holds |",
        "|---|---:|---:|---:|---|---|",
    ]
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else ""
        base = f"{_number(f.baseline_value, f.unit)} ({f.baseline})" if f.baseline else ""
        holds = "" if f.meets is None else ("yes" if f.meets else "**no**")
        value = f"{_number(f.value, f.unit)} {f.unit}"
        lines.append(f"| `{f.name}` {f.label} | {value} | {base} | {ratio} | {f.target or ''} | {holds} |")
    return "\n".join(lines)

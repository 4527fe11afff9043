"""The smoke run of ``make bench`` (``--quick``): every section runs against the real parts (its own
redis-server, the API and the floor under uvicorn loaded by wrk, the jobs as processes, a 15-second soak
with a Redis restart) and writes ``latest.json``, the table and the plots. No speed is asserted here; the
figures must be whole, and the soak loses no acknowledged event and answers no error while Redis is up."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIELDS = {"name", "value", "unit", "baseline", "baseline_value", "ratio", "target", "meets"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (scripts/ensure-services.sh installs it)")
    out = tmp_path_factory.mktemp("bench-results")
    work = tmp_path_factory.mktemp("bench-work")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), "--workdir", str(work / "w")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out, json.loads((out / "latest.json").read_text()), done.stdout


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in doc["figures"]}


def test_every_figure_has_its_fields_and_a_finite_value(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, _ = quick_run
    assert doc["figures"]
    for figure in doc["figures"]:
        assert set(figure) >= FIELDS, figure["name"]
        assert isinstance(figure["value"], int | float) and math.isfinite(figure["value"]), figure["name"]
        assert figure["value"] >= 0, figure["name"]
        if figure["baseline_value"]:
            assert figure["ratio"] == pytest.approx(figure["value"] / figure["baseline_value"]), figure["name"]
        assert figure["meets"] is None, f"{figure['name']}: a quick run judges no target"


def test_each_section_reports_beside_its_baseline(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, _ = quick_run
    figures = _by_name(doc)
    for c in (1, 8, 32, 64):
        for measure in ("rps", "p50", "p99"):
            assert figures[f"serving.{measure}.c{c}"]["baseline_value"] > 0
    assert figures["serving.rps.c32"]["baseline"] == "floor app req/s"
    assert figures["serving.errors"]["value"] == 0, "the offers endpoint or the floor answered errors under load"
    assert figures["serving.api_rss"]["baseline_value"] > 0
    assert figures["redis.bytes_per_member"]["value"] > 0
    assert figures["redis.publish_rate"]["baseline"].startswith("redis-benchmark SET")
    for job in ("generate", "train.als", "train.lightfm", "publish", "weekly_picks"):
        assert figures[f"jobs.{job}.seconds.2k"]["value"] > 0
        assert figures[f"jobs.{job}.peak.2k"]["value"] > 0
    for family in ("als", "lightfm"):
        assert figures[f"jobs.fit.{family}.2k"]["baseline"] == f"raw {family} fit"
    assert figures["soak.requests"]["value"] > 0
    assert figures["soak.rate"]["baseline_value"] > 0  # the capacity the soak's rate is half of
    assert figures["soak.errors_outside_degraded"]["value"] == 0, "errors while Redis was up"
    assert figures["soak.events_stored"]["value"] == figures["soak.events_stored"]["baseline_value"] > 0
    assert figures["soak.rss_end"]["baseline_value"] > 0
    assert doc["soak"]["degraded_window_s"] > 0  # Redis was killed and came back


def test_the_run_records_how_it_ran(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    _, doc, stdout = quick_run
    assert doc["run"]["mode"] == "quick"
    assert len(doc["run"]["load_average_before"]) == 3
    assert doc["machine"]["cpus"] >= 1
    assert doc["redis"]["version"]
    assert "serving.rps.c32" in stdout  # the table is printed


def test_the_plots_and_the_markdown_table_are_written(quick_run: tuple[Path, dict[str, Any], str]) -> None:
    out, doc, _ = quick_run
    for name in ("serving_latency.png", "serving_throughput.png", "jobs_scale.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC, name
    table = (out / "latest.md").read_text()
    assert table.count("\n") == len(doc["figures"]) + 2

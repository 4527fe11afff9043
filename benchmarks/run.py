"""``make bench`` (``python -m benchmarks.run``): serving against the floor app, the jobs at growing sizes
against the raw libraries, and Redis's footprint against ``redis-benchmark``, all in one run on one
dedicated redis-server, then the soak (``benchmarks.soak``: minutes at half the offers endpoint's
capacity, publishes and a Redis restart, on a redis-server and an API of its own); writes
``<out>/latest.json``, ``<out>/latest.md`` (the table) and the plots.

``--quick`` is the smoke run (small sizes, short loads, a 15-second soak without publishes, under two
minutes): every section runs and writes its figures, but targets are reported as not assessed, since
they are meant for full sizes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from benchmarks.footprint import bench_footprint
from benchmarks.jobs import E2E_SIZES, SIZES, JobsSetup, bench_jobs
from benchmarks.plots import write_plots
from benchmarks.procs import redis_server
from benchmarks.report import Figure, markdown, table, write_json
from benchmarks.serving import ServingSetup, bench_serving, build_bundle
from benchmarks.soak import SoakSetup, bench_soak

SECTIONS = ("serving", "jobs", "footprint", "soak")
QUICK_SERVING = ServingSetup(members=2_000, small_members=500, offers=300, seconds=2.0, repeats=1)
QUICK_JOBS = JobsSetup(
    sizes=(2_000,),
    e2e_sizes=(),
    offers=300,
    params={"als": {"iterations": 3}, "lightfm": {"epochs": 2}},
)
QUICK_SOAK = SoakSetup(minutes=0.25, members=2_000, capacity_s=2.0, redis_down_s=1.0, publish_every_s=None)


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(x.replace("_", "")) for x in text.split(",") if x.strip())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smoke run: small sizes, no targets assessed")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, among {','.join(SECTIONS)}")
    parser.add_argument("--sizes", type=_sizes, help=f"members of the job runs (default {','.join(map(str, SIZES))})")
    parser.add_argument("--e2e-sizes", type=_sizes, help="sizes that also time the end-to-end `offers train`")
    parser.add_argument("--families", help="model families the jobs train (default als,lightfm)")
    parser.add_argument(
        "--overhead-sizes",
        type=_sizes,
        help="sizes at which the product's fit and the raw library's fit are also timed (default: every size)",
    )
    parser.add_argument("--serving-members", type=int, help="members of the served model (default 100000)")
    parser.add_argument(
        "--serving-family", help="family of the served model, whose embedding width sizes the records (default als)"
    )
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 10)")
    parser.add_argument("--repeats", type=int, help="wrk runs per concurrency level and app (default 3)")
    parser.add_argument("--workers", type=int, help="uvicorn workers of the API and the floor alike (default 2)")
    parser.add_argument(
        "--soak-minutes", type=float, help="length of the soak (default 10; 0.25 without publishes with --quick)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where results go (default benchmarks/results, or benchmarks/results/quick with --quick)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("var/bench"), help="scratch space (removed after)")
    args = parser.parse_args(argv)
    args.out = args.out or Path("benchmarks/results/quick" if args.quick else "benchmarks/results")
    args.only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(args.only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; expected among {', '.join(SECTIONS)}")
    return args


def soak_setup(args: argparse.Namespace) -> SoakSetup:
    soak = QUICK_SOAK if args.quick else SoakSetup()
    return soak if args.soak_minutes is None else replace(soak, minutes=args.soak_minutes)


def setups(args: argparse.Namespace) -> tuple[ServingSetup, JobsSetup]:
    serving = QUICK_SERVING if args.quick else ServingSetup()
    jobs = QUICK_JOBS if args.quick else JobsSetup()
    overrides = {"members": args.serving_members, "seconds": args.seconds, "repeats": args.repeats}
    overrides["family"] = args.serving_family
    overrides["workers"] = args.workers
    serving = replace(serving, **{k: v for k, v in overrides.items() if v is not None})
    serving = replace(serving, small_members=min(serving.small_members, serving.members))
    if args.sizes:
        jobs = replace(jobs, sizes=args.sizes)
    if args.families:
        jobs = replace(jobs, families=tuple(f.strip() for f in args.families.split(",") if f.strip()))
    if args.overhead_sizes is not None:
        jobs = replace(jobs, overhead_sizes=args.overhead_sizes)
    if args.e2e_sizes is not None:
        jobs = replace(jobs, e2e_sizes=args.e2e_sizes)
    elif not args.quick:
        jobs = replace(jobs, e2e_sizes=tuple(n for n in E2E_SIZES if n in jobs.sizes))
    return serving, jobs


def _log(message: str) -> None:
    print(message, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    serving_setup, jobs_setup = setups(args)
    started = time.perf_counter()
    load_before = os.getloadavg()
    figures: list[Figure] = []
    sections: dict[str, Any] = {}
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        with redis_server(workdir / "redis") as server:
            sections["redis"] = {"version": server.version(), "binary": server.binary}
            bundle = None
            if {"serving", "footprint"} & set(args.only):
                _log(f"model: {serving_setup.members:,} members x {serving_setup.offers:,} offers (ALS) ...")
                bundle = build_bundle(workdir / "serving-data", serving_setup)
            if "footprint" in args.only and bundle is not None:
                footprint = bench_footprint(server, bundle, set_requests=20_000 if args.quick else 500_000)
                figures += footprint.figures
                sections["footprint"] = footprint.series
                _log(
                    f"footprint: {footprint.figures[0].value:,.0f} B/member; publish "
                    f"{footprint.figures[1].value:,.0f} members/s vs SET {footprint.figures[1].baseline_value:,.0f}/s"
                )
            if "serving" in args.only and bundle is not None:
                serving = bench_serving(serving_setup, server, workdir, bundle=bundle, log=_log)
                figures += serving.figures
                sections["serving"] = serving.series
            del bundle
            if "jobs" in args.only:
                jobs = bench_jobs(jobs_setup, server, workdir / "jobs", log=_log)
                figures += jobs.figures
                sections["jobs"] = jobs.series
        if "soak" in args.only:  # last, and on a redis-server of its own (it kills it half way)
            soak = bench_soak(soak_setup(args), log=_log)
            figures += soak.figures
            sections["soak"] = soak.series
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.quick:  # the targets are for the full sizes: a smoke run reports, it does not judge
        figures = [replace(f, meets=None, target=f"({f.target}, full run only)" if f.target else None) for f in figures]
    run = {
        "mode": "quick" if args.quick else "full",
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "sections": list(args.only),
    }
    path = write_json(args.out / "latest.json", figures, run=run, **sections)
    (args.out / "latest.md").write_text(markdown(figures) + "\n")
    plots = write_plots(args.out, sections.get("serving"), sections.get("jobs"))
    print()
    print(table(figures))
    print(f"\nwrote {path}, {args.out / 'latest.md'} and {', '.join(str(p) for p in plots) or 'no plots'}")
    print(f"run took {run['seconds']:.0f} s; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    failed = [f.name for f in figures if f.meets is False]
    if failed:
        print(f"targets missed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

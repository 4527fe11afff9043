"""Scale of the jobs: generate, train (ALS and the LightFM hybrid), publish and export weekly picks for
growing numbers of members, each in a process of its own so its wall time and peak memory are its own,
beside the raw library's fit on the same matrix.

Definitions (also in the JSON): a *train* job is what the training job does to produce a served model:
load and validate the history, build interactions and features, fit, export the embeddings into a
``ServingBundle`` on disk; it leaves out the holdout evaluation and the MLflow registration, which the
end-to-end ``offers train`` (timed separately, at the sizes given by ``--e2e-sizes``) adds. The
*overhead* is the product's ``Recommender.fit`` against the library's own ``fit`` on the matrices the
product hands it, with the same parameters, both timed inside their processes. *publish* loads the
bundle and writes it to Redis (``training.publish.publish``, as ``offers publish`` does after fetching it
from MLflow). *weekly picks* is ``offers weekly-picks`` for the current week.

``python -m benchmarks.jobs JOB ...`` runs one job and prints its timings as a JSON line.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before the heavy imports: a job's time includes them

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from benchmarks.procs import JobRun, RedisServer, python, run_job  # noqa: E402
from benchmarks.report import Figure  # noqa: E402

RESULT = "BENCH_JOB "
SIZES = (10_000, 100_000, 1_000_000)
E2E_SIZES = (10_000, 100_000)
OFFERS = 2_000
GB = 1e9
MEMORY_TARGET = 8 * GB
TIME_TARGETS_AT = 1_000_000
TIME_TARGETS = {"train.als": 300.0, "train.lightfm": 900.0, "publish": 60.0, "weekly_picks": 120.0}


def _emit(**values: Any) -> None:
    print(RESULT + json.dumps(values), flush=True)


# -- the jobs, each run in a child process --------------------------------------------------------


def job_generate(args: argparse.Namespace) -> None:
    from training.generate import generate

    counts = generate(
        Path(args.out), members=args.members, offers=args.offers, seed=args.seed, fmt=args.format, show_progress=False
    )
    _emit(seconds=time.perf_counter() - STARTED, counts=counts)


def job_train(args: argparse.Namespace) -> None:
    import numpy as np
    import scipy.sparse as sp

    from benchmarks.bundle import product_bundle
    from models.families import create
    from recsys.interactions import build_training_set
    from recsys.settings import get_settings
    from recsys.streaming import load_dataset_chunked
    from recsys.validation import load_dataset

    marks = {"start": STARTED, "imported": time.perf_counter()}
    # as `offers train` reads history: in chunks of OFFERS_READ_CHUNK_ROWS (training.train.load_history)
    chunk_rows = get_settings().read_chunk_rows
    folder = Path(args.data)
    data = (load_dataset_chunked(folder, chunk_rows=chunk_rows) if chunk_rows else load_dataset(folder)).data
    marks["loaded"] = time.perf_counter()
    training, space = build_training_set(data)
    marks["built"] = time.perf_counter()
    params = json.loads(args.params or "{}")
    model = create(args.family, **params).fit(training)
    marks["fitted"] = time.perf_counter()
    bundle = product_bundle(data, training, space, model)
    bundle.save(Path(args.bundle))
    marks["saved"] = time.perf_counter()
    _emit(
        seconds=marks["saved"] - STARTED,
        load_s=marks["loaded"] - marks["imported"],
        build_s=marks["built"] - marks["loaded"],
        fit_s=marks["fitted"] - marks["built"],
        export_s=marks["saved"] - marks["fitted"],
        params=model.params,
        interactions=int(training.interactions.nnz),
        member_feature_entries=int(training.member_features.nnz) if training.member_features is not None else 0,
    )
    if args.dump:  # the raw baselines' input, written after the timed part
        out = Path(args.dump)
        out.mkdir(parents=True, exist_ok=True)
        sp.save_npz(out / "interactions.npz", training.interactions)
        for name in ("member_features", "offer_features"):
            matrix = getattr(training, name)
            sp.save_npz(out / f"{name}.npz", matrix if matrix is not None else sp.csr_matrix((0, 0), np.float32))


def job_raw(args: argparse.Namespace) -> None:
    """The library's own fit on the matrices the product hands it (prepared untimed), same parameters."""
    import numpy as np
    import scipy.sparse as sp
    from threadpoolctl import threadpool_limits

    from models.families import default_params

    folder = Path(args.matrices)
    interactions = sp.load_npz(folder / "interactions.npz").tocsr()
    params = {**default_params(args.family), **json.loads(args.params or "{}")}
    if args.family == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        from models.implicit_mf import confidence

        matrix = confidence(interactions, float(params["alpha"]))
        with threadpool_limits(1, "blas"):
            model = AlternatingLeastSquares(
                factors=int(params["factors"]),
                regularization=float(params["regularization"]),
                alpha=1.0,
                iterations=int(params["iterations"]),
                num_threads=int(params["num_threads"]),
                random_state=params["random_state"],
            )
            started = time.perf_counter()
            model.fit(matrix, show_progress=False)
            fit_s = time.perf_counter() - started
    else:
        from lightfm import LightFM

        members = sp.load_npz(folder / "member_features.npz").tocsr().astype(np.float32)
        offers = sp.load_npz(folder / "offer_features.npz").tocsr().astype(np.float32)
        positive = sp.coo_matrix(interactions.multiply(interactions > 0), dtype=np.float32)
        positive.eliminate_zeros()
        ones = sp.coo_matrix((np.ones(positive.nnz, np.float32), (positive.row, positive.col)), positive.shape)
        scaled = np.minimum(positive.data / positive.data.mean(), 10.0).astype(np.float32)
        weights = sp.coo_matrix((scaled, (positive.row, positive.col)), positive.shape)
        model = LightFM(
            no_components=int(params["no_components"]),
            loss=str(params["loss"]),
            learning_rate=float(params["learning_rate"]),
            item_alpha=float(params["item_alpha"]),
            user_alpha=float(params["user_alpha"]),
            max_sampled=int(params["max_sampled"]),
            random_state=params["random_state"],
        )
        started = time.perf_counter()
        model.fit(
            ones,
            user_features=members,
            item_features=offers,
            sample_weight=weights,
            epochs=int(params["epochs"]),
            num_threads=int(params["num_threads"]),
        )
        fit_s = time.perf_counter() - started
    _emit(seconds=time.perf_counter() - STARTED, fit_s=fit_s, params=params)


def job_product_fit(args: argparse.Namespace) -> None:
    """The product's ``Recommender.fit`` on the same matrices, timed the same way as ``job_raw``."""
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from models.base import TrainingSet
    from models.families import create

    folder = Path(args.matrices)
    interactions = sp.load_npz(folder / "interactions.npz").tocsr()
    n, m = interactions.shape
    training = TrainingSet(
        interactions=interactions,
        member_ids=np.asarray(pd.RangeIndex(n).astype(str), dtype=np.str_),
        offer_ids=np.asarray(pd.RangeIndex(m).astype(str), dtype=np.str_),
        member_tiers=np.zeros(n, dtype=np.int8),
        member_features=sp.load_npz(folder / "member_features.npz").tocsr(),
        offer_features=sp.load_npz(folder / "offer_features.npz").tocsr(),
    )
    model = create(args.family, **json.loads(args.params or "{}"))
    started = time.perf_counter()
    model.fit(training)
    fit_s = time.perf_counter() - started
    _emit(seconds=time.perf_counter() - STARTED, fit_s=fit_s, params=model.params)


def job_publish(args: argparse.Namespace) -> None:
    import redis

    from recsys.cache import Keys
    from training.bundle import ServingBundle
    from training.publish import publish

    bundle = ServingBundle.load(Path(args.bundle))
    loaded = time.perf_counter()
    client = redis.Redis.from_url(args.redis)
    result = publish(client, bundle, keys=Keys(args.prefix))
    client.close()
    _emit(
        seconds=time.perf_counter() - STARTED,
        load_s=loaded - STARTED,
        publish_s=result.seconds,
        members=result.members,
        bytes=result.bytes,
    )


JOBS: dict[str, Callable[[argparse.Namespace], None]] = {
    "generate": job_generate,
    "train": job_train,
    "raw": job_raw,
    "fit": job_product_fit,
    "publish": job_publish,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.jobs", description="Run one benchmarked job.")
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--out")
    parser.add_argument("--data")
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--offers", type=int, default=OFFERS)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", default="csv", choices=("csv", "parquet"))
    parser.add_argument("--family", default="als")
    parser.add_argument("--params", help="JSON of model parameters over the family's defaults")
    parser.add_argument("--bundle")
    parser.add_argument("--dump")
    parser.add_argument("--matrices")
    parser.add_argument("--redis")
    parser.add_argument("--prefix", default="lo")
    args = parser.parse_args(argv)
    JOBS[args.job](args)


# -- the orchestration, in the benchmark's process ------------------------------------------------


@dataclass(frozen=True)
class JobsSetup:
    sizes: tuple[int, ...] = SIZES
    e2e_sizes: tuple[int, ...] = E2E_SIZES
    offers: int = OFFERS
    families: tuple[str, ...] = ("als", "lightfm")
    overhead_sizes: tuple[int, ...] | None = None  # sizes that also time the fits alone (None: every size)
    # per family, over the defaults: LightFM on both cores (`offers train --threads 2`), its fast setting;
    # its default, one thread, repeats exactly but fits more slowly
    params: dict[str, dict[str, Any]] = field(default_factory=lambda: {"lightfm": {"num_threads": 2}})
    seed: int = 7

    def describe(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "e2e_sizes": list(self.e2e_sizes),
            "offers": self.offers,
            "families": list(self.families),
            "overhead_sizes": list(self.sizes if self.overhead_sizes is None else self.overhead_sizes),
            "params": self.params,
            "definitions": __doc__.split("Definitions (also in the JSON): ", 1)[1].split("\n\n")[0].replace("\n", " ")
            if __doc__
            else "",
        }


@dataclass
class JobsResult:
    figures: list[Figure]
    series: dict[str, Any]


def _child(job: str, *args: str) -> list[str]:
    return [python(), "-m", "benchmarks.jobs", job, *args]


def _parse(run: JobRun) -> dict[str, Any]:
    line = next((x for x in reversed(run.output.splitlines()) if x.startswith(RESULT)), None)
    return json.loads(line.removeprefix(RESULT)) if line else {}


def _cli(*args: str) -> list[str]:
    return [str(Path(python()).with_name("offers")), *args]


def bench_jobs(setup: JobsSetup, server: RedisServer, workdir: Path, log: Callable[[str], None] = print) -> JobsResult:
    series: dict[str, dict[str, dict[str, Any]]] = {}
    figures: list[Figure] = []
    env = dict(os.environ, REDIS_URL=server.url, OFFERS_KEY_PREFIX="lo", OPENBLAS_NUM_THREADS="1")
    week = datetime.now(UTC).strftime("%G-W%V")

    def record(job: str, members: int, run: JobRun, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        reported = _parse(run)  # the child's own timings; "seconds" there leaves out interpreter start-up
        doc = {**reported, "job_seconds": reported.get("seconds"), "seconds": run.seconds, "peak_bytes": run.peak_bytes}
        doc |= extra or {}
        series.setdefault(job, {})[str(members)] = doc
        log(f"jobs: {members:>9,} members  {job:<22} {run.seconds:8.1f} s  peak {run.peak_bytes / GB:5.2f} GB")
        return doc

    for members in setup.sizes:
        folder = workdir / f"m{members}"
        shutil.rmtree(folder, ignore_errors=True)
        data, dump = folder / "data", folder / "matrices"
        record(
            "generate",
            members,
            run_job(
                _child(
                    "generate",
                    "--out",
                    str(data),
                    "--members",
                    str(members),
                    "--offers",
                    str(setup.offers),
                    "--seed",
                    str(setup.seed),
                )
            ),
        )
        for family in setup.families:
            params = json.dumps(setup.params.get(family, {}))
            train_args = [
                "--data",
                str(data),
                "--family",
                family,
                "--bundle",
                str(folder / f"bundle-{family}"),
                "--params",
                params,
            ]
            if family == setup.families[0]:
                train_args += ["--dump", str(dump)]
            record(f"train.{family}", members, run_job(_child("train", *train_args), env=env))
            if setup.overhead_sizes is not None and members not in setup.overhead_sizes:
                continue
            record(
                f"fit.{family}",
                members,
                run_job(_child("fit", "--matrices", str(dump), "--family", family, "--params", params), env=env),
            )
            record(
                f"raw.{family}",
                members,
                run_job(_child("raw", "--matrices", str(dump), "--family", family, "--params", params), env=env),
            )
        server.flush()
        before = server.used_memory()
        doc = record(
            "publish",
            members,
            run_job(
                _child("publish", "--bundle", str(folder / f"bundle-{setup.families[0]}"), "--redis", server.url),
                env=env,
            ),
        )
        after = server.used_memory()
        doc.update(used_memory_before=before, used_memory_after=after)
        record(
            "weekly_picks",
            members,
            run_job(_cli("weekly-picks", "--week", week, "--out", str(folder / "picks.parquet")), env=env),
        )
        if members in setup.e2e_sizes:
            home = folder / "home"
            e2e_env = dict(env, OFFERS_HOME=str(home))
            for family in setup.families:
                record(
                    f"offers_train.{family}",
                    members,
                    run_job(_cli("train", "--data", str(data), "--family", family), env=e2e_env),
                )
        shutil.rmtree(dump, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    figures += _figures(setup, series)
    return JobsResult(figures=figures, series={"jobs": series, "setup": setup.describe()})


def _figures(setup: JobsSetup, series: dict[str, dict[str, dict[str, Any]]]) -> list[Figure]:
    """Each job's time and peak memory by size, and the product's fit against the raw library's. The
    time targets hold at ``TIME_TARGETS_AT`` members; the memory target up to that size (beyond it,
    peaks are reported, not judged)."""
    figures: list[Figure] = []
    largest = str(max(setup.sizes))
    for job, by_size in series.items():
        if job.startswith(("raw.", "fit.")):
            continue
        for size, doc in by_size.items():
            n = int(size)
            target = TIME_TARGETS.get(job) if n == TIME_TARGETS_AT else None
            judged = n <= TIME_TARGETS_AT  # the memory target, up to the size the targets are set at
            figures.append(
                Figure(
                    name=f"jobs.{job}.seconds.{_short(n)}",
                    value=doc["seconds"],
                    unit="s",
                    label=f"{job} wall time, {n:,} members",
                    target=f"<= {target:g} s" if target else None,
                    meets=doc["seconds"] <= target if target else None,
                    lower_is_better=True,
                )
            )
            figures.append(
                Figure(
                    name=f"jobs.{job}.peak.{_short(n)}",
                    value=doc["peak_bytes"] / GB,
                    unit="GB",
                    label=f"{job} peak resident memory, {n:,} members",
                    target="<= 8 GB" if judged else None,
                    meets=doc["peak_bytes"] <= MEMORY_TARGET if judged else None,
                    lower_is_better=True,
                )
            )
    for family in setup.families:
        fits, raws = series.get(f"fit.{family}", {}), series.get(f"raw.{family}", {})
        for size in fits:
            if size not in raws:
                continue
            n = int(size)
            targeted = size == largest
            product, raw = fits[size]["fit_s"], raws[size]["fit_s"]
            figures.append(
                Figure(
                    name=f"jobs.fit.{family}.{_short(n)}",
                    value=product,
                    unit="s",
                    baseline=f"raw {family} fit",
                    baseline_value=raw,
                    label=f"product fit against the library's own fit, {n:,} members",
                    target="<= 1.25 x raw" if targeted else None,
                    meets=product <= 1.25 * raw if targeted else None,
                    lower_is_better=True,
                )
            )
    return figures


def _short(n: int) -> str:
    return f"{n // 1_000_000}m" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


if __name__ == "__main__":
    main(sys.argv[1:])

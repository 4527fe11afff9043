"""The ``offers`` command line: the jobs data scientists and operators run."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit's ALS is slower with threaded BLAS

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recsys.errors import LoyaltyOffersError
from recsys.settings import Settings, get_settings

if TYPE_CHECKING:
    from recsys.store import RedisEndpoint

app = typer.Typer(help="Loyalty Offers: train, publish and serve personalised loyalty offers.", no_args_is_help=True)

DataDir = Annotated[Path, typer.Option("--data", help="Folder with members.csv, offers.csv, ... (data contract).")]


def _settings() -> Settings:
    try:
        return get_settings()
    except LoyaltyOffersError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from exc


def _dev_key(settings: Settings) -> str | None:
    """In development with no ``OFFERS_API_KEYS``, a development key with every scope (kept under var/)."""
    from recsys.access import ENV_VAR, ensure_dev_key

    if os.environ.get(ENV_VAR) or settings.environment == "production":
        return None
    key, env_value = ensure_dev_key(settings.var_dir / "dev-api-key")
    os.environ[ENV_VAR] = env_value
    return key


def _fail(exc: LoyaltyOffersError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(1)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the sample files into.")] = Path("data/sample"),
    members: Annotated[int, typer.Option(min=1, help="Number of members.")] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
    as_of: Annotated[str | None, typer.Option(help="Last day of history, YYYY-MM-DD (default today).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Write synthetic loyalty history for a hotel group (all files of the data contract)."""
    from datetime import date

    from training.generate import generate as run_generate

    counts = run_generate(out, members=members, seed=seed, as_of=date.fromisoformat(as_of) if as_of else None, fmt=fmt)
    for name, rows in counts.items():
        typer.echo(f"{name:>18}: {rows:>10,} rows")
    typer.echo(f"Wrote {out}")


THREADS_HELP = (
    "Threads of the fit (default: the family's, 1 for lightfm and bpr so that the same seed and data give the "
    "same metrics; more threads fit faster but their lock-free updates make runs differ slightly)."
)


def _thread_params(family: str, threads: int | None) -> dict[str, Any] | None:
    from models.families import default_params

    if threads is None:
        return None
    if "num_threads" not in default_params(family):
        raise typer.BadParameter(f"{family} has no threads to set", param_hint="--threads")
    return {"num_threads": threads}


@app.command()
def train(
    data: DataDir = Path("data/sample"),
    family: Annotated[str, typer.Option(help="lightfm, als, bpr or popularity.")] = "lightfm",
    holdout_days: Annotated[int, typer.Option(min=1, help="Days of offer responses held out for evaluation.")] = 28,
    k: Annotated[int, typer.Option(min=1, help="Cut-off of the ranking metrics.")] = 10,
    trials: Annotated[int, typer.Option(min=0, help="Tuning trials before the fit (0: family defaults).")] = 0,
    device: Annotated[
        str, typer.Option(help="Where als and bpr fit: auto (a GPU when implicit can use one), cpu or cuda.")
    ] = "auto",
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP)] = None,
) -> None:
    """Train, evaluate against the popularity baseline (and the oracle on synthetic data), register in MLflow."""
    from models.devices import resolve_device
    from training.train import run_training

    try:
        resolve_device(device, family)
    except LoyaltyOffersError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from exc
    try:
        run_training(
            data,
            _settings(),
            family=family,
            holdout_days=holdout_days,
            k=k,
            tune_trials=trials,
            echo=typer.echo,
            device=device,
            params=_thread_params(family, threads),
        )
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc


@app.command()
def tune(
    data: DataDir = Path("data/sample"),
    families: Annotated[str, typer.Option(help="Comma-separated families to tune.")] = "lightfm,als,bpr",
    trials: Annotated[int, typer.Option(min=1, help="Trials per family.")] = 20,
    holdout_days: Annotated[int, typer.Option(min=1, help="Days of offer responses held out for evaluation.")] = 28,
    threads: Annotated[int | None, typer.Option(min=1, help=THREADS_HELP)] = None,
) -> None:
    """Tune each family on the training side only (nested MLflow runs), evaluate, and register each."""
    from training.train import run_training

    settings = _settings()
    results = []
    try:
        for family in [f.strip() for f in families.split(",") if f.strip()]:
            typer.secho(f"== {family}", bold=True)
            results.append(
                run_training(
                    data,
                    settings,
                    family=family,
                    holdout_days=holdout_days,
                    tune_trials=trials,
                    echo=typer.echo,
                    params=_thread_params(family, threads),
                )
            )
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc
    best = max(results, key=lambda r: r.metrics.get("ndcg_at_10", 0.0))
    typer.echo(
        f"Best: {best.family} (version {best.model_version}) nDCG@10 {best.metrics.get('ndcg_at_10', 0):.4f}; "
        f"`offers promote --version {best.model_version}` to serve it"
    )


@app.command()
def benchmark(
    interactions: Annotated[Path | None, typer.Option(help="user,item[,rating,timestamp] file to split 75/25.")] = None,
    train_file: Annotated[Path | None, typer.Option("--train", help="Training split made elsewhere.")] = None,
    test_file: Annotated[Path | None, typer.Option("--test", help="Test split made elsewhere.")] = None,
    sep: Annotated[str, typer.Option(help="Field separator; \\t or 'tab' for tabs.")] = ",",
    columns: Annotated[str, typer.Option(help="Names of the leading fields; must include user and item.")] = (
        "user,item,rating,timestamp"
    ),
    k: Annotated[int, typer.Option(min=1, help="Cut-off of the metrics.")] = 10,
    trials: Annotated[int, typer.Option(min=0, help="Tuning trials per family (0: defaults).")] = 20,
    families: Annotated[str, typer.Option(help="Comma-separated families.")] = "lightfm,als,bpr,popularity",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the rows as a JSON list.")] = None,
    recs_out: Annotated[Path | None, typer.Option(help="Write every top-k list as CSV algo,user,item,rank.")] = None,
) -> None:
    """Tune and score every family under the Microsoft Recommenders MovieLens protocol."""
    import pandas as pd

    from training.benchmark import format_table, read_interactions, run_benchmark, write_json, write_recs
    from training.split import msr_split

    names = [c.strip() for c in columns.split(",")]
    rejected: list[str] = []

    def read(path: Path) -> pd.DataFrame:
        return read_interactions(path, sep, names, on_reject=lambda r: rejected.append(f"line {r.line}: {r.reason}"))

    try:
        if interactions is not None and (train_file or test_file):
            raise typer.BadParameter("give --interactions or --train/--test, not both")
        if interactions is not None:
            train_df, test_df = msr_split(read(interactions))
        elif train_file is not None and test_file is not None:
            train_df, test_df = read(train_file), read(test_file)
        else:
            raise typer.BadParameter("give --interactions FILE, or both --train FILE and --test FILE")
        if rejected:
            typer.echo(f"Rejected {len(rejected)} malformed rows, e.g. {rejected[0]}", err=True)
        rows = run_benchmark(
            train_df,
            test_df,
            k=k,
            trials=trials,
            families=[f.strip() for f in families.split(",") if f.strip()],
            progress=lambda line: typer.echo(line, err=True),
        )
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc
    typer.echo(format_table(rows))
    if json_out is not None:
        write_json(rows, json_out)
    if recs_out is not None:
        write_recs(rows, recs_out)


@app.command()
def publish(
    version: Annotated[str | None, typer.Option(help="Registered version (default: the champion).")] = None,
    previous: Annotated[bool, typer.Option(help="Switch back to the previously published version instead.")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="Ray workers scoring and writing member shards (1: this process, no Ray).")
    ] = 1,
) -> None:
    """Write a registered model version to Redis and switch serving to it atomically."""
    settings = _settings()
    if not previous:
        if workers > 1:
            _require_ray()
        _publish_champion(settings, version, workers=workers)
        return
    from recsys.cache import Keys
    from training.publish import rollback as switch_back

    with _redis(settings) as endpoint:
        served = switch_back(endpoint.client(), keys=Keys(settings.key_prefix))
    typer.echo(f"Serving published version {served} again")


@app.command()
def promote(
    data: DataDir = Path("data/sample"),
    version: Annotated[str | None, typer.Option(help="Challenger version (default: the newest).")] = None,
    margin: Annotated[float, typer.Option(min=0, help="Relative nDCG@10 gain required, 0.02 = 2%.")] = 0.02,
    force: Annotated[bool, typer.Option(help="Promote even if the challenger is not better.")] = False,
    publish_after: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish the new champion.")] = False,
) -> None:
    """Move the champion alias to a challenger that beats it on the same holdout."""
    from training.promote import promote as run_promote

    settings = _settings()
    try:
        result = run_promote(settings, data, challenger=version, margin=margin, force=force, echo=typer.echo)
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc
    if result.promoted and publish_after:
        _publish_champion(settings)
    if not result.promoted:
        raise typer.Exit(3)


@app.command()
def rollback(
    publish_after: Annotated[
        bool, typer.Option("--publish/--no-publish", help="Publish the restored champion.")
    ] = True,
) -> None:
    """Move the champion alias back to the previous champion (and serve it)."""
    from training.promote import rollback_champion

    settings = _settings()
    try:
        rollback_champion(settings, echo=typer.echo)
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc
    if publish_after:
        _publish_champion(settings)


def _require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise typer.BadParameter(
            "needs Ray, which is not installed: pip install 'loyalty-offers[scale]'", param_hint="--workers"
        )


def _publish_champion(settings: Settings, version: str | None = None, *, workers: int = 1) -> None:
    from training.release import publish_registered

    with _redis(settings) as endpoint:
        result, _ = publish_registered(settings, endpoint, version, workers=workers)
    typer.echo(f"Published version {result.version}: {result.members:,} members, {result.offers:,} offers")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default OFFERS_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default PORT or 8000).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
) -> None:
    """Run the offers API under uvicorn; several workers each listen on the port (``serving.workers``)."""
    from serving.access_log import log_config
    from serving.workers import serve as serve_workers

    settings = _settings()
    key = _dev_key(settings)
    if key:
        typer.echo(f"No OFFERS_API_KEYS configured: development API key (all scopes): {key}")
    status = serve_workers(
        "serving.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
        access_log=False,  # it prints raw paths, member ids included; serving.access_log logs route templates
        log_config=log_config(settings.log_level),
    )
    if status:
        raise typer.Exit(status)


@app.command()
def run(
    data: DataDir = Path("data/sample"),
    members: Annotated[int, typer.Option(min=1, help="Members to generate when the data is missing.")] = 5000,
    seed: Annotated[int, typer.Option(help="Seed of the sample data.")] = 7,
    port: Annotated[int | None, typer.Option(help="Port (default PORT or 8000).")] = None,
    retrain: Annotated[bool, typer.Option(help="Train even when a registered version exists.")] = False,
) -> None:
    """Everything at once: sample data, training, MLflow, publish, then serve."""
    import uvicorn

    from recsys.store import open_redis
    from serving.access_log import log_config
    from serving.app import create_app
    from training import tracking
    from training.generate import generate as run_generate
    from training.release import publish_registered
    from training.train import run_training

    settings = _settings()
    try:
        if not (data / "members.csv").exists() and not (data / "members.parquet").exists():
            typer.echo(f"Generating sample data for {members:,} members into {data} ...")
            run_generate(data, members=members, seed=seed)
        client = tracking.configure(settings)
        registered = client.search_model_versions(f"name = '{settings.model_name}'", max_results=1)
        if retrain or not registered:
            run_training(data, settings, echo=typer.echo)
        endpoint = open_redis(settings)
        result, bundle = publish_registered(settings, endpoint)
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc
    typer.echo(f"Published version {result.version}: {result.members:,} members, {result.offers:,} offers")
    served = settings.model_copy(update={"redis_url": endpoint.url})
    port = port or settings.port
    consenting = bundle.members[bundle.members["consent_personalisation"]]
    example = str((consenting if len(consenting) else bundle.members)["member_id"].iloc[0])
    key = _dev_key(settings)
    header = f"-H 'X-API-Key: {key}' " if key else "-H 'X-API-Key: <a key from OFFERS_API_KEYS>' "
    typer.echo(
        f"\nServing on http://{settings.host}:{port}  (OpenAPI docs: http://{settings.host}:{port}/docs)\n"
        + (f"API key:    {key}  (development key with every scope, kept in var/dev-api-key)\n" if key else "")
        + f"MLflow UI:  .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri}\n"
        f"Try:        curl {header}'http://{settings.host}:{port}/v1/members/{example}/offers?limit=10&channel=app'\n"
    )
    try:
        uvicorn.run(
            create_app(served),
            host=settings.host,
            port=port,
            log_level=settings.log_level,
            access_log=False,
            log_config=log_config(settings.log_level),
            timeout_graceful_shutdown=settings.graceful_shutdown_s,
        )
    finally:
        endpoint.close()


catalogue_app = typer.Typer(help="Change the live offer catalogue without retraining.", no_args_is_help=True)
app.add_typer(catalogue_app, name="catalogue")


@catalogue_app.command("sync")
def catalogue_sync(
    file: Annotated[Path, typer.Option(help="Offers file (CSV/Parquet, offers columns; status=withdrawn takes down).")],
) -> None:
    """Upsert or take down offers live; servers pick the change up on their next request."""
    from recsys.cache import Keys
    from recsys.catalogue_changes import sync_catalogue

    settings = _settings()
    with _redis(settings) as endpoint:
        result = sync_catalogue(endpoint.client(), Keys(settings.key_prefix), file)
    typer.echo(f"Upserted {result.upserted}, took down {result.taken_down} (catalogue revision {result.revision})")


@app.command("export-events")
def export_events(
    out: Annotated[Path, typer.Option(help="Output file: .csv, .parquet or .jsonl (offer_events format).")],
) -> None:
    """Export every feedback event received through the API, for training."""
    from recsys.cache import Keys
    from training.export_events import export_events as run_export

    settings = _settings()
    with _redis(settings) as endpoint:
        rows = run_export(endpoint.client(), Keys(settings.key_prefix), out)
    typer.echo(f"Wrote {rows:,} events to {out}")


@app.command("export-interactions")
def export_interactions(
    out: Annotated[Path, typer.Option(help="Output CSV: user,item,rating,timestamp.")],
    data: DataDir = Path("data/sample"),
) -> None:
    """Write the history's clicks and redemptions as an interactions file (for `offers benchmark`)."""
    from training.export_interactions import export_interactions as run_export
    from training.train import load_history

    settings = _settings()
    try:
        rows = run_export(load_history(data, settings, typer.echo), out)
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc
    typer.echo(f"Wrote {rows:,} interactions to {out}")


@app.command("weekly-picks")
def weekly_picks(
    week: Annotated[str, typer.Option(help="ISO week, e.g. 2026-W48.")],
    out: Annotated[Path, typer.Option(help="Output file: .csv, .jsonl or .parquet (one row per member and offer).")],
    workers: Annotated[int, typer.Option(min=0, help="Processes deciding picks (0: one per CPU).")] = 0,
) -> None:
    """Every email-consented member's picks for a week, under the same rules as real time."""
    from recsys.cache import Keys
    from recsys.contacts import load_contact_policy
    from recsys.decision import load_ranking_policy
    from training.weekly_picks import export_weekly_picks

    settings = _settings()
    with _redis(settings) as endpoint:
        try:
            version, members = export_weekly_picks(
                endpoint.client(),
                Keys(settings.key_prefix),
                week,
                out,
                contact_policy=load_contact_policy(),
                ranking_policy=load_ranking_policy(),
                endpoint=endpoint,
                workers=workers or os.cpu_count() or 1,
            )
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--week") from exc
    typer.echo(f"Wrote picks of {members:,} members for {week} (version {version}) to {out}")


@contextlib.contextmanager
def _redis(settings: Settings) -> Iterator[RedisEndpoint]:
    """The configured Redis for one command; product errors end the command with their message."""
    from recsys.store import open_redis

    try:
        endpoint = open_redis(settings)
        try:
            yield endpoint
        finally:
            endpoint.close()
    except LoyaltyOffersError as exc:
        raise _fail(exc) from exc


@app.command()
def config() -> None:
    """Print every setting the product reads from the environment, with its default and meaning."""
    from recsys.contacts import ContactPolicy
    from recsys.decision import RankingPolicy
    from recsys.events import EventSettings
    from recsys.rewards import RewardsSettings
    from recsys.settings import describe
    from serving.limits import LimitSettings

    for cls in (Settings, ContactPolicy, RankingPolicy, RewardsSettings, EventSettings, LimitSettings):
        typer.secho(f"# {cls.__doc__.strip().splitlines()[0] if cls.__doc__ else cls.__name__}", bold=True)
        for env, default, meaning in describe(cls):
            typer.echo(f"{env:<40} {default:<14} {meaning}")
        typer.echo("")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

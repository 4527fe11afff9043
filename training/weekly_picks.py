"""``offers weekly-picks``: every email-consented member's picks for a week into one file, with the
same decision (``recsys.picks``) the API's paged endpoint uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import orjson
import pandas as pd
import redis
from tqdm import tqdm

from recsys.cache import LIVE_BASE_FIELD, MEMBER_INDEX_CHUNK, Keys
from recsys.catalogue import catalogue_from_hash
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.errors import DataError, NotPublishedError
from recsys.events import redemption_counts
from recsys.picks import page_rows, week_start

FORMATS = (".csv", ".jsonl", ".parquet")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def export_weekly_picks(
    client: redis.Redis,
    keys: Keys,
    week: str,
    out: Path,
    *,
    contact_policy: ContactPolicy,
    ranking_policy: RankingPolicy,
    show_progress: bool = True,
) -> tuple[str, int]:
    """Write the week's picks of the served version (one row per member and offer; members without
    picks get none) to ``out``; returns (version, members written)."""
    if out.suffix.lower() not in FORMATS:
        raise DataError(f"{out}: the extension must be one of {', '.join(FORMATS)}")
    start = week_start(week)
    version_raw = client.get(keys.current)
    if version_raw is None:
        raise NotPublishedError("no version has been published yet; run `offers publish`")
    version = _text(version_raw)
    meta = {_text(k): _text(v) for k, v in client.hgetall(keys.version_meta(version)).items()}
    fields = cast(dict[bytes, bytes], client.hgetall(keys.version_offers(version)))
    catalogue = catalogue_from_hash(fields, cast(dict[bytes, bytes], client.hgetall(keys.catalogue_overlay)))
    base_raw = fields.get(LIVE_BASE_FIELD.encode())
    base = {str(o): int(n) for o, n in orjson.loads(base_raw).items()} if base_raw else {}
    counted = redemption_counts(cast(dict[bytes, bytes], client.hgetall(keys.offer_redemptions)))
    live = {o: n - base.get(o, 0) for o, n in counted.items()}
    rows: list[dict[str, Any]] = []
    members = 0
    chunks = int(meta.get("member_chunks", "0"))
    with tqdm(
        total=int(meta.get("members", "0")), unit="member", desc=f"picks {week}", disable=not show_progress
    ) as bar:
        for chunk in range(chunks):
            ids = _text(client.get(keys.member_index(version, chunk)) or b"").split("\n")
            ids = [m for m in ids if m][:MEMBER_INDEX_CHUNK]
            pipe = client.pipeline(transaction=False)
            for member_id in ids:
                pipe.get(keys.member(version, member_id))
                pipe.hgetall(keys.member_contacts(member_id))
            replies = pipe.execute()
            page = page_rows(
                ids,
                replies[0::2],
                replies[1::2],
                catalogue,
                {o: n for o, n in live.items() if n > 0},
                week=start,
                contact_policy=contact_policy,
                ranking_policy=ranking_policy,
            )
            members += len(page)
            for row in page:
                offers = cast(list[dict[str, Any]], row["offers"])
                rows += [
                    {"week": week, "member_id": row["member_id"], "rank": rank, **offer}
                    for rank, offer in enumerate(offers, start=1)
                ]
            bar.update(len(ids))
    _write(rows, out)
    return version, members


def _write(rows: list[dict[str, Any]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["week", "member_id", "rank", "offer_id", "title", "score", "reasons"]
    frame = pd.DataFrame(rows, columns=columns)
    suffix = out.suffix.lower()
    if suffix == ".jsonl":
        out.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
        return
    frame["reasons"] = frame["reasons"].map(lambda r: "|".join(r) if isinstance(r, list) else "")
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)

"""The loyalty history as a plain interactions file, for ``offers benchmark`` or any other toolkit.

One row per offer response that counts as interest (``POSITIVE_EVENTS``: clicks and redemptions) in the
validated history, oldest first: ``user,item,rating,timestamp``. The rating is the response's weight in
training (``InteractionWeights``: a redemption above a click) and the timestamp is in Unix seconds. The
header line repeats the column names, which ``offers benchmark`` skips, so the file reads back as it is:
``offers benchmark --interactions FILE --sep , --columns user,item,rating,timestamp``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.dataset import LoyaltyData
from recsys.errors import DataError
from recsys.interactions import InteractionWeights
from recsys.schema import POSITIVE_EVENTS

COLUMNS = ("user", "item", "rating", "timestamp")


def export_interactions(data: LoyaltyData, out: Path, weights: InteractionWeights | None = None) -> int:
    """Write ``data``'s positive offer responses to ``out`` (CSV); return the number of rows."""
    events = data.offer_events
    positive = events[events["event"].isin(POSITIVE_EVENTS)]
    if positive.empty:
        raise DataError("the history holds no clicks or redemptions to export")
    by_kind = (weights or InteractionWeights()).event_weights()
    stamps = pd.to_datetime(positive["timestamp"], utc=True)
    frame = pd.DataFrame(
        {
            "user": positive["member_id"].astype(str).to_numpy(),
            "item": positive["offer_id"].astype(str).to_numpy(),
            "rating": positive["event"].map(by_kind).to_numpy(),
            "timestamp": ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(),
        }
    ).sort_values(["timestamp", "user", "item"], kind="stable")
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False, columns=list(COLUMNS))
    return len(frame)

"""The loyalty history as loaded and validated: one pandas frame per file of the data contract.

Column names and meanings are those of ``recsys.schema``. Types after loading: ids and text are
``str``; dates are ``datetime64[ns]`` (midnight); timestamps are ``datetime64[ns, UTC]``; tiers are
``int8`` (0 = classic .. 4 = diamond); booleans ``bool``; optional cells are NaN / NaT / None;
``regions`` and ``channels`` are tuples of strings (empty tuple = no restriction).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class LoyaltyData:
    members: pd.DataFrame
    offers: pd.DataFrame
    stays: pd.DataFrame
    dining: pd.DataFrame
    partners: pd.DataFrame
    partner_activity: pd.DataFrame
    offer_events: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            "members": self.members,
            "partners": self.partners,
            "offers": self.offers,
            "stays": self.stays,
            "dining": self.dining,
            "partner_activity": self.partner_activity,
            "offer_events": self.offer_events,
        }

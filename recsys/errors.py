"""The one exception tree of Loyalty Offers.

LoyaltyOffersError
├── ConfigurationError     settings that cannot work (bad URL, unsafe default in production)
├── DataError              input files that break the data contract
│   └── TooManyRejectsError  more rows rejected than the configured share
├── ModelError             a model that cannot be trained, loaded or found in the registry
├── PublishError           a publish that cannot proceed (lock held, nothing to publish)
└── StoreError             Redis unreachable or holding something unexpected
    ├── NotPublishedError    no version has been published yet
    └── MemberNotFoundError  the served version has no such member

Third-party errors are mapped to these at the boundary (``raise StoreError(...) from exc``).
"""

from __future__ import annotations


class LoyaltyOffersError(Exception):
    """Base of every error this product raises on purpose."""


class ConfigurationError(LoyaltyOffersError):
    pass


class DataError(LoyaltyOffersError):
    pass


class TooManyRejectsError(DataError):
    def __init__(self, file: str, rejected: int, total: int, limit: float, rejects_path: str) -> None:
        self.file, self.rejected, self.total, self.limit = file, rejected, total, limit
        self.rejects_path = rejects_path
        share = rejected / total if total else 1.0
        super().__init__(
            f"{file}: {rejected} of {total} rows rejected ({share:.1%}), above the limit of "
            f"{limit:.1%}; see {rejects_path} for each row and its reason"
        )


class ModelError(LoyaltyOffersError):
    pass


class PublishError(LoyaltyOffersError):
    pass


class StoreError(LoyaltyOffersError):
    pass


class NotPublishedError(StoreError):
    pass


class MemberNotFoundError(StoreError):
    def __init__(self, member_id: str) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id!r} is not known to the served version")

"""Loading the data contract: good rows typed as documented, bad rows set aside with their reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.errors import DataError, TooManyRejectsError
from recsys.schema import FILES
from recsys.validation import LoadResult, load_dataset, write_report

TINY: dict[str, list[dict[str, str]]] = {
    "members": [
        {
            "member_id": f"M{i}",
            "tier": tier,
            "home_country": "CN",
            "enrolled_on": "2023-01-05",
            "points_balance": "1200",
            "consent_personalisation": "true",
            "consent_email": "no",
            "points_expiring_on": "2026-01-31" if i == 1 else "",
            "qualifying_nights_ytd": "4",
        }
        for i, tier in enumerate(("classic", "Gold", "diamond"), start=1)
    ],
    "partners": [
        {
            "partner_id": "skywings",
            "name": "SkyWings Airlines",
            "kind": "airline",
            "points_to_partner": "0.3333",
            "partner_to_points": "2",
            "min_transfer": "3000",
            "unit": "miles",
        }
    ],
    "offers": [
        {
            "offer_id": "OF1",
            "title": "2 nights at Jade Palace Shanghai: 20% off, breakfast included",
            "category": "stay",
            "brand": "Jade Palace",
            "city": "Shanghai",
            "partner_id": "",
            "min_tier": "classic",
            "valid_from": "2025-01-01",
            "valid_to": "2025-12-31",
            "points_cost": "20000",
            "value": "150.5",
            "budget": "",
            "max_tier": "",
            "regions": "",
            "channels": "app|email",
            "lever": "1.5",
            "per_member_limit": "2",
            "earns_qualifying_nights": "true",
        },
        {
            "offer_id": "OF2",
            "title": "25% bonus converting points to SkyWings miles",
            "category": "partner_transfer",
            "brand": "SkyWings Airlines",
            "city": "",
            "partner_id": "skywings",
            "min_tier": "silver",
            "valid_from": "2025-03-01",
            "valid_to": "2025-03-01",
            "points_cost": "3000",
            "value": "20",
            "budget": "500",
            "max_tier": "gold",
            "regions": "CN|SG",
            "channels": "",
            "lever": "",
            "per_member_limit": "",
            "earns_qualifying_nights": "0",
        },
    ],
    "stays": [
        {
            "stay_id": f"S{i}",
            "member_id": "M1",
            "property_id": "H1",
            "brand": "Jade Palace",
            "city": "Shanghai",
            "check_in": "2025-02-0" + str(i),
            "nights": "2",
            "revenue": "840.00",
        }
        for i in (1, 2)
    ],
    "dining": [
        {
            "dining_id": "D1",
            "member_id": "M2",
            "outlet_id": "R1",
            "property_id": "H1",
            "cuisine": "cantonese",
            "date": "2025-02-01",
            "spend": "95.2",
        }
    ],
    "partner_activity": [
        {
            "activity_id": "A1",
            "member_id": "M3",
            "partner_id": "skywings",
            "activity": "transfer_out",
            "amount": "6000",
            "date": "2025-02-03",
        }
    ],
    "offer_events": [
        {
            "event_id": f"E{i}",
            "member_id": member,
            "offer_id": offer,
            "event": event,
            "channel": "app",
            "timestamp": stamp,
        }
        for i, (member, offer, event, stamp) in enumerate(
            (
                ("M1", "OF1", "impression", "2025-02-01T10:00:00Z"),
                ("M1", "OF1", "click", "2025-02-01T10:00:09"),
                ("M2", "OF2", "redeem", "2025-02-01T18:00:00+08:00"),
            ),
            start=1,
        )
    ],
}


def write_tiny(folder: Path, changes: dict[str, list[dict[str, str]]] | None = None) -> Path:
    """The tiny programme as CSV files, with extra rows appended per file."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in TINY.items():
        extra = (changes or {}).get(name, [])
        frame = pd.DataFrame([*rows, *[{**rows[0], **change} for change in extra]], dtype=str)
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def load_all(folder: Path) -> LoadResult:
    return load_dataset(folder, max_reject_share=1.0)


def test_clean_files_load_with_the_documented_types(tmp_path: Path) -> None:
    result = load_all(write_tiny(tmp_path))
    assert {name: rep.rejected for name, rep in result.report.items()} == dict.fromkeys(TINY, 0)
    assert not (tmp_path / "rejects").exists()
    data = result.data
    members = data.members
    assert members["tier"].dtype == np.int8 and members["tier"].tolist() == [0, 2, 4]
    assert members["points_balance"].dtype == np.int64
    assert members["consent_email"].dtype == bool and not members["consent_email"].any()
    assert members["enrolled_on"].dtype == "datetime64[ns]"
    assert members["points_expiring_on"].isna().tolist() == [False, True, True]
    offers = data.offers.set_index("offer_id")
    assert offers.loc["OF1", "channels"] == ("app", "email") and offers.loc["OF2", "channels"] == ()
    assert offers.loc["OF2", "regions"] == ("CN", "SG")
    assert offers["max_tier"].tolist() == [4, 2] and offers["max_tier"].dtype == np.int8
    assert offers["lever"].tolist() == [1.5, 1.0]
    assert np.isnan(offers.loc["OF1", "budget"]) and offers.loc["OF2", "budget"] == 500
    assert offers["earns_qualifying_nights"].tolist() == [True, False]
    assert pd.isna(offers.loc["OF1", "partner_id"]) and pd.isna(offers.loc["OF2", "city"])
    events = data.offer_events
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert events["timestamp"].tolist() == [
        pd.Timestamp("2025-02-01T10:00:00Z"),
        pd.Timestamp("2025-02-01T10:00:09Z"),
        pd.Timestamp("2025-02-01T10:00:00Z"),
    ]
    assert data.partners["points_to_partner"].iloc[0] == pytest.approx(0.3333)


BAD_ROWS = [
    ("offer_events", {"event_id": "E9", "member_id": "M404"}, "member_id: unknown members"),
    ("members", {"member_id": "M9", "tier": "bronze"}, "tier: expected one of classic"),
    ("stays", {"stay_id": "S9", "nights": "-2"}, "nights: must be >= 1, got -2"),
    ("stays", {"stay_id": "S9", "check_in": "2025-13-45"}, "check_in: not an ISO date"),
    ("offer_events", {"event_id": "E1"}, "event_id: duplicate of an earlier row"),
    ("offer_events", {"event_id": "E9", "offer_id": "OF404"}, "offer_id: unknown offers"),
    ("members", {"member_id": "M9", "consent_email": "maybe"}, "consent_email: not true/false"),
    ("offers", {"offer_id": "OF9", "valid_to": "2024-12-31"}, "valid_to: must be on or after valid_from (2025-01-01)"),
    ("offers", {"offer_id": "OF9", "min_tier": "gold", "max_tier": "silver"}, "max_tier: must not be below min_tier"),
    ("offers", {"offer_id": "OF9", "channels": "app|fax"}, "channels: values must be among app, email, web, sms"),
    ("offers", {"offer_id": "OF9", "partner_id": "nobody"}, "partner_id: unknown partners"),
    ("offers", {"offer_id": "OF9", "category": "lottery"}, "category: expected one of stay"),
    ("offer_events", {"event_id": "E9", "timestamp": "yesterday"}, "timestamp: not an ISO 8601 timestamp"),
    ("members", {"member_id": "M" + "9" * 64}, "member_id: must be at most 64 characters"),
    ("members", {"member_id": "M\x079"}, "member_id: must be at most 64 characters without control characters"),
    ("members", {"member_id": "Mé\x7f"}, "member_id: must be at most 64 characters without control characters"),
    ("dining", {"dining_id": "D9", "spend": "inf"}, "spend: not a finite number"),
    ("members", {"member_id": "M9", "points_balance": "12.5"}, "points_balance: not a whole number"),
    ("members", {"member_id": "M9", "enrolled_on": ""}, "enrolled_on: must not be empty"),
    ("dining", {"dining_id": "D9", "spend": "lots"}, "spend: not a finite number"),
    ("partner_activity", {"activity_id": "A9", "partner_id": "bazaar"}, "partner_id: unknown partners"),
    ("partner_activity", {"activity_id": "A9", "activity": "gift"}, "activity: expected one of earn"),
]


@pytest.mark.parametrize(("name", "change", "reason"), BAD_ROWS)
def test_each_bad_row_is_rejected_with_a_reason_naming_its_column(
    tmp_path: Path, name: str, change: dict[str, str], reason: str
) -> None:
    result = load_all(write_tiny(tmp_path, {name: [change]}))
    report = result.report[name]
    assert (report.total, report.accepted, report.rejected) == (len(TINY[name]) + 1, len(TINY[name]), 1)
    assert report.rejects_path == tmp_path / "rejects" / f"{name}.rejects.csv"
    rejects = pd.read_csv(report.rejects_path, dtype=str, keep_default_na=False)
    assert len(rejects) == 1
    assert reason in rejects.loc[0, "reason"]
    for column, value in change.items():  # the original cells are kept as they were
        assert rejects.loc[0, column] == value.strip() or column == "member_id"
    kept = getattr(result.data, name)
    assert len(kept) == len(TINY[name])
    others = {other: rep.rejected for other, rep in result.report.items() if other != name}
    assert set(others.values()) == {0}


def test_several_problems_in_one_row_are_all_named(tmp_path: Path) -> None:
    change = {"stay_id": "S9", "nights": "0", "revenue": "-1", "member_id": "M404"}
    result = load_all(write_tiny(tmp_path, {"stays": [change]}))
    reason = pd.read_csv(result.report["stays"].rejects_path or "", dtype=str)["reason"].iloc[0]
    assert "nights: must be >= 1, got 0" in reason
    assert "revenue: must be >= 0, got -1" in reason
    assert "member_id: unknown members" in reason


def test_rows_referring_to_rejected_rows_are_rejected_too(tmp_path: Path) -> None:
    bad_member = {"member_id": "M9", "tier": "bronze"}
    event = {"event_id": "E9", "member_id": "M9"}
    result = load_all(write_tiny(tmp_path, {"members": [bad_member], "offer_events": [event]}))
    assert result.report["members"].rejected == 1
    assert result.report["offer_events"].rejected == 1


def test_too_many_rejects_stops_after_writing_the_rejects_file(tmp_path: Path) -> None:
    write_tiny(tmp_path, {"stays": [{"stay_id": "S9", "nights": "-2"}]})
    with pytest.raises(TooManyRejectsError) as caught:
        load_dataset(tmp_path, max_reject_share=0.2, rejects_dir=tmp_path / "out")
    assert caught.value.file == "stays" and caught.value.rejected == 1 and caught.value.total == 3
    assert "stays" in str(caught.value) and (tmp_path / "out" / "stays.rejects.csv").exists()
    result = load_dataset(tmp_path, max_reject_share=0.34, rejects_dir=tmp_path / "out")
    assert result.report["stays"].rejected == 1


def test_a_stale_rejects_file_is_removed_once_the_file_is_clean(tmp_path: Path) -> None:
    write_tiny(tmp_path, {"stays": [{"stay_id": "S9", "nights": "-2"}]})
    load_all(tmp_path)
    assert (tmp_path / "rejects" / "stays.rejects.csv").exists()
    write_tiny(tmp_path)
    result = load_all(tmp_path)
    assert result.report["stays"].rejects_path is None
    assert not (tmp_path / "rejects" / "stays.rejects.csv").exists()


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    stays = pd.read_csv(tmp_path / "stays.csv", dtype=str).drop(columns=["nights"])
    stays.to_csv(tmp_path / "stays.csv", index=False)
    with pytest.raises(DataError, match=r"stays: required column 'nights' is missing"):
        load_all(tmp_path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    (tmp_path / "dining.csv").unlink()
    with pytest.raises(DataError, match="dining: missing input file"):
        load_all(tmp_path)


def test_optional_columns_may_be_absent_and_take_their_defaults(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    optional = [c.name for spec in FILES if spec.name == "offers" for c in spec.columns if not c.required]
    offers = pd.read_csv(tmp_path / "offers.csv", dtype=str, keep_default_na=False).drop(columns=optional)
    offers.to_csv(tmp_path / "offers.csv", index=False)
    loaded = load_all(tmp_path).data.offers
    assert loaded["lever"].tolist() == [1.0, 1.0]
    assert loaded["max_tier"].tolist() == [4, 4]
    assert loaded["channels"].tolist() == [(), ()] and loaded["regions"].tolist() == [(), ()]
    assert loaded["per_member_limit"].isna().all() and not loaded["earns_qualifying_nights"].any()


def test_bytes_that_are_not_utf8_reject_their_rows_without_a_traceback(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    path = tmp_path / "members.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    lines.append(lines[-1].replace(b"M3,", b"M\xe9\xff9,", 1))
    path.write_bytes(b"".join(lines))
    result = load_all(tmp_path)
    assert result.report["members"].rejected == 1 and len(result.data.members) == 3
    reason = pd.read_csv(tmp_path / "rejects" / "members.rejects.csv", dtype=str)["reason"].iloc[0]
    assert reason.startswith("member_id: not valid UTF-8 text")


def test_lines_with_the_wrong_number_of_cells_are_rejected(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    with (tmp_path / "dining.csv").open("a") as fh:
        fh.write("D7,M1,R1,H1,cantonese,2025-02-01,10.0,surplus\n")
    result = load_all(tmp_path)
    assert (result.report["dining"].total, result.report["dining"].rejected) == (2, 1)
    reason = pd.read_csv(tmp_path / "rejects" / "dining.rejects.csv", dtype=str)["reason"].iloc[0]
    assert "line has 8 cells, expected 7" in reason


def test_a_byte_order_mark_and_blank_padding_are_tolerated(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    path = tmp_path / "partners.csv"
    text = path.read_text().replace(",airline,", ", airline ,")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = load_all(tmp_path)
    assert result.report["partners"].rejected == 0 and result.data.partners["kind"].tolist() == ["airline"]


def test_parquet_input_loads_like_csv(tmp_path: Path) -> None:
    csv_dir = write_tiny(tmp_path / "csv")
    parquet_dir = tmp_path / "parquet"
    parquet_dir.mkdir()
    for name in TINY:
        frame = pd.read_csv(csv_dir / f"{name}.csv", dtype=str, keep_default_na=False)
        for column in ("points_balance", "nights", "min_transfer", "points_cost"):
            if column in frame:
                frame[column] = frame[column].astype("int64")
        for column in ("check_in", "enrolled_on"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column])
        if name == "offers":
            frame["valid_from"] = pd.to_datetime(frame["valid_from"]).dt.date
            frame["value"] = frame["value"].astype(float)
            frame["budget"] = pd.to_numeric(frame["budget"]).astype("Int64")
        if name == "members":
            frame["consent_personalisation"] = frame["consent_personalisation"] == "true"
        if name == "offer_events":
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], format="ISO8601", utc=True)
        frame.to_parquet(parquet_dir / f"{name}.parquet", index=False)
    from_csv, from_parquet = load_all(csv_dir), load_all(parquet_dir)
    assert {n: r.rejected for n, r in from_parquet.report.items()} == dict.fromkeys(TINY, 0)
    for name, frame in from_csv.data.frames().items():
        pd.testing.assert_frame_equal(from_parquet.data.frames()[name], frame, check_dtype=True)


def test_one_file_in_two_formats_is_refused(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    pd.read_csv(tmp_path / "stays.csv", dtype=str).to_parquet(tmp_path / "stays.parquet")
    with pytest.raises(DataError, match=r"stays: both stays.csv and stays.parquet exist"):
        load_all(tmp_path)


def test_report_table_lists_every_file(tmp_path: Path) -> None:
    result = load_all(write_tiny(tmp_path, {"stays": [{"stay_id": "S9", "nights": "-2"}]}))
    table = write_report(result.report)
    lines = table.splitlines()
    assert len(lines) == 1 + len(FILES)
    stays_line = next(line for line in lines if line.startswith("stays"))
    assert stays_line.split()[:4] == ["stays", "3", "2", "1"] and "stays.rejects.csv" in stays_line


def test_an_empty_file_is_refused_with_its_name(tmp_path: Path) -> None:
    write_tiny(tmp_path)
    (tmp_path / "partners.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"partners: partners\.csv is empty"):
        load_all(tmp_path)

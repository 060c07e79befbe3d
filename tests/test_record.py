"""The detection record: one definition from which the row, the message and the export come."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

from birdnet_edge.log import record
from birdnet_edge.log.record import Detection, DetectionContext
from birdnet_edge.log.schema import open_database

EVENT = Detection(
    id="00000000-0000-4000-8000-000000000001",
    start=dt.datetime(2025, 5, 1, 5, 0, 1, 250_000, tzinfo=dt.timezone.utc),
    end=dt.datetime(2025, 5, 1, 5, 0, 7, 250_000, tzinfo=dt.timezone.utc),
    utc_offset=dt.timedelta(hours=2),
    scientific="Junco hyemalis",
    common="Dark-eyed Junco",
    confidence=0.73749,
    windows=3,
    closed=True,
    context=DetectionContext("garden", 42.5, -76.45, "BirdNET_FP32", "FP32", 1.25, 1.5, 0.7),
)


def test_the_database_has_a_column_for_every_field_of_the_record(tmp_path: Path) -> None:
    # A field added to the record without a migration adding its column fails here.
    conn = open_database(tmp_path / "d.db")
    columns = [row[1] for row in conn.execute("PRAGMA table_info(detections)")]
    assert list(record.COLUMNS) == columns
    assert set(record.UPDATED_COLUMNS) <= set(columns)


def test_a_record_survives_the_database(tmp_path: Path) -> None:
    d = EVENT
    conn = open_database(tmp_path / "d.db")
    conn.execute(
        f"INSERT INTO detections ({', '.join(record.COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(record.COLUMNS))})",
        record.to_row(d),
    )
    columns = ", ".join(record.COLUMNS)
    rowid, *row = conn.execute(f"SELECT rowid, {columns} FROM detections").fetchone()
    back = record.from_row(tuple(row), rowid=rowid)
    assert back == d
    assert back.rowid == 1
    assert back.utc_offset == d.utc_offset  # the station's offset, in whole minutes


def test_the_message_keeps_its_public_names() -> None:
    d = dataclasses.replace(EVENT, closed=False)
    message = record.message(d)
    assert list(message) == [
        "id", "status", "start", "end", "scientific_name", "common_name", "confidence",
        "windows", "station", "latitude", "longitude", "model", "precision", "kind",
        "first_of_day", "first_in_days", "first_ever", "clip",
    ]  # fmt: skip
    assert message["status"] == "open"
    assert message["confidence"] == 0.7375
    assert dt.datetime.fromisoformat(message["start"]) == EVENT.start
    assert json.loads(json.dumps(message)) == message
    assert record.message(dataclasses.replace(d, closed=True))["status"] == "final"


def test_the_export_has_every_column_in_station_time_or_utc() -> None:
    d = dataclasses.replace(EVENT, utc_offset=dt.timedelta(hours=-5))
    local = record.export(d, utc=False)
    assert tuple(local) == record.EXPORT_FIELDS
    assert local["start"] == "2025-05-01T00:00:01.250-05:00"
    assert local["utc_offset"] == "-05:00"
    assert local["duration_s"] == 6.0
    assert record.export(d, utc=True)["start"] == "2025-05-01T05:00:01.250Z"
    assert "Dark-eyed Junco (Junco hyemalis) 0.74" in record.console_line(d)


def test_a_stored_time_keeps_milliseconds() -> None:
    t = dt.datetime(2025, 5, 1, 5, 0, 1, 250_999, tzinfo=dt.timezone.utc)
    assert record.utc_text(t) == "2025-05-01T05:00:01.250Z"
    assert record.parse_utc(record.utc_text(t)) == t.replace(microsecond=250_000)

"""The sampled inference log (steps/_serving/inference_log.py): rows the server scored, encoded by the request
contract, land as Parquet files in a folder or on S3 with each feature decoded back to what the client sent
(categories as their values, `other` for an unseen one, null for missing), and a failing store never fails serving."""

from __future__ import annotations

import io
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from steps._core.documents import ContractRecord
from steps._serving.contract import RequestContract
from steps._serving.inference_log import InferenceLog

MODEL, VERSION = "fraud-detection", "3"
CONTRACT: ContractRecord = {
    "target": "is_fraud", "positive_label": 1, "segment": None,
    "features": [
        {"name": "amount", "type": "numeric", "min": 0, "max": 100000, "nullable": True},
        {"name": "hour", "type": "integer", "min": 0, "max": 23, "nullable": False},
        {"name": "channel", "type": "categorical", "nullable": False, "categories": ["pos", "online", "atm"],
         "unknown": "reject"},
        {"name": "merchant", "type": "categorical", "nullable": True, "categories": ["grocery", "fuel"],
         "unknown": "other"},
    ],
}
INSTANCES: list[dict[str, Any]] = [
    {"amount": 12.5, "hour": 3, "channel": "atm", "merchant": "fuel"},
    {"amount": None, "hour": 23, "channel": "pos", "merchant": "casino"},  # missing amount, unseen merchant
    {"amount": 9000.0, "hour": 0, "channel": "online", "merchant": None},
]
SCORES = [0.1, 0.5, 0.93]
FILE_NAME = re.compile(rf"^{MODEL}/v{VERSION}/\d{{4}}-\d{{2}}-\d{{2}}/\d{{6}}\.\d{{6}}-{os.getpid()}-(\d+)\.parquet$")


class Events:
    """The server's log function: records what the inference log reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, event: str, level: str, **fields: Any) -> None:
        self.events.append((event, level, fields))


def encoded(instances: list[dict[str, Any]]) -> list[tuple[float, ...]]:
    """The rows as the server scores them: encoded by the request contract."""
    return RequestContract(CONTRACT).rows_from_v1({"instances": instances})


def new_log(location: str, **options: Any) -> InferenceLog:
    settings: dict[str, Any] = {"sample": 1.0, "threshold": 0.5, **options}
    return InferenceLog(location, MODEL, VERSION, RequestContract(CONTRACT).features, **settings)


def local_files(folder: Path) -> dict[str, pd.DataFrame]:
    """Every Parquet file under `folder`, by key, in the order the log numbered them."""
    keys = [str(p.relative_to(folder)) for p in folder.rglob("*.parquet")]
    assert all(FILE_NAME.match(key) for key in keys), keys
    keys.sort(key=lambda k: int(FILE_NAME.match(k).group(1)))  # type: ignore[union-attr]
    return {key: pd.read_parquet(folder / key) for key in keys}


def test_scored_rows_land_as_parquet_with_the_features_decoded(tmp_path: Path) -> None:
    log = new_log(str(tmp_path))
    before = pd.Timestamp.now(tz="UTC").floor("ms")
    log.record(encoded(INSTANCES), SCORES)
    log.close()
    files = local_files(tmp_path)
    assert len(files) == 1
    frame = next(iter(files.values()))
    assert list(frame.columns) == ["amount", "hour", "channel", "merchant", "score", "label", "scored_at",
                                   "model_version"]
    assert frame["amount"].tolist()[0] == 12.5 and math.isnan(frame["amount"].tolist()[1])
    assert frame["hour"].tolist() == [3.0, 23.0, 0.0]
    assert frame["channel"].tolist() == ["atm", "pos", "online"]
    assert frame["merchant"].tolist() == ["fuel", "other", None]
    assert frame["score"].tolist() == SCORES
    assert frame["label"].tolist() == [0, 1, 1]  # at or above the threshold is positive
    assert frame["model_version"].tolist() == [VERSION] * 3
    assert str(frame["scored_at"].dtype) == "datetime64[ms, UTC]"
    assert all(before <= t <= pd.Timestamp.now(tz="UTC") for t in frame["scored_at"])
    assert (log.written_rows, log.dropped_rows) == (3, 0)


def test_a_file_location_is_written_like_a_folder(tmp_path: Path) -> None:
    log = new_log(f"file://{tmp_path / 'log'}")
    log.record(encoded(INSTANCES[:1]), SCORES[:1])
    log.close()
    assert [len(frame) for frame in local_files(tmp_path / "log").values()] == [1]


def test_nothing_is_written_before_a_batch_fills_and_flush_hands_over_what_is_pending(tmp_path: Path) -> None:
    log = new_log(str(tmp_path), batch_rows=100, flush_seconds=3600)
    log.record(encoded(INSTANCES), SCORES)
    assert (log.files, list(tmp_path.rglob("*.parquet"))) == (0, [])
    log.flush()
    deadline = time.monotonic() + 10
    while not list(tmp_path.rglob("*.parquet")):
        assert time.monotonic() < deadline, "flush() wrote no file within 10s"
        time.sleep(0.02)
    log.close()  # nothing left to write
    assert [len(frame) for frame in local_files(tmp_path).values()] == [3]


def test_close_writes_what_is_pending(tmp_path: Path) -> None:
    log = new_log(str(tmp_path), batch_rows=100, flush_seconds=3600)
    log.record(encoded(INSTANCES), SCORES)
    log.close()
    assert [len(frame) for frame in local_files(tmp_path).values()] == [3]


def test_the_batch_size_rolls_files(tmp_path: Path) -> None:
    log = new_log(str(tmp_path), batch_rows=2, flush_seconds=3600)
    rows, scores = encoded(INSTANCES + INSTANCES[:2]), SCORES + SCORES[:2]
    log.record(rows[:3], scores[:3])  # 3 rows: one file of 3 (a batch is checked after each call)
    log.record(rows[3:4], scores[3:4])
    log.record(rows[4:], scores[4:])  # 2 more: a second file
    assert log.files == 2
    log.close()
    files = local_files(tmp_path)
    assert [len(frame) for frame in files.values()] == [3, 2]
    assert [s for frame in files.values() for s in frame["score"]] == scores


def test_a_flush_interval_writes_a_file_without_a_full_batch(tmp_path: Path) -> None:
    log = new_log(str(tmp_path), batch_rows=1000, flush_seconds=0.0)
    log.record(encoded(INSTANCES[:1]), SCORES[:1])
    assert log.files == 1
    log.close()
    assert [len(frame) for frame in local_files(tmp_path).values()] == [1]


def test_a_sample_of_zero_keeps_nothing(tmp_path: Path) -> None:
    log = new_log(str(tmp_path), sample=0.0)
    log.record(encoded(INSTANCES) * 100, SCORES * 100)
    log.close()
    assert (log.files, log.written_rows, list(tmp_path.rglob("*.parquet"))) == (0, 0, [])


def test_a_sample_keeps_about_its_share(tmp_path: Path) -> None:
    log = new_log(str(tmp_path), sample=0.25, batch_rows=100_000)
    log.record(encoded(INSTANCES) * 1000, SCORES * 1000)
    log.close()
    # 3000 draws at 0.25: 750 expected, standard deviation 24; 600..900 is more than 6 of them.
    assert 600 <= log.written_rows <= 900
    assert sum(len(frame) for frame in local_files(tmp_path).values()) == log.written_rows


def test_a_failing_store_drops_the_rows_and_says_so_without_failing_the_caller(tmp_path: Path) -> None:
    (tmp_path / MODEL).write_text("a file where the log needs a folder")
    events = Events()
    log = new_log(str(tmp_path), batch_rows=2, log=events)
    log.record(encoded(INSTANCES), SCORES)  # never raises: serving goes on
    log.close()
    assert (log.written_rows, log.dropped_rows) == (0, 3)
    assert [(event, level, fields["rows"], fields["dropped_rows"]) for event, level, fields in events.events] == [
        ("inference_log_failed", "warning", 3, 3)]
    assert MODEL in events.events[0][2]["error"]


@pytest.mark.integration
def test_scored_rows_land_on_s3(s3_bucket: str) -> None:
    import boto3

    log = new_log(f"s3://{s3_bucket}/inference", batch_rows=2)
    log.record(encoded(INSTANCES), SCORES)
    log.close()
    client = boto3.client("s3")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert len(keys) == 1 and keys[0].startswith("inference/")
    assert FILE_NAME.match(keys[0].removeprefix("inference/")), keys[0]
    frame = pd.read_parquet(io.BytesIO(client.get_object(Bucket=s3_bucket, Key=keys[0])["Body"].read()))
    assert frame["merchant"].tolist() == ["fuel", "other", None]
    assert frame["channel"].tolist() == ["atm", "pos", "online"]
    assert log.written_rows == 3


@pytest.mark.parametrize(("task", "classes", "predictions", "columns"), [
    ("regression", (), [1.5, -20.0, 3e6], {"value": [1.5, -20.0, 3e6]}),
    ("multiclass", ("low", "mid", "high"), [[0.1, 0.2, 0.7], [0.4, 0.4, 0.2], [0.0, 1.0, 0.0]],
     {"label": ["high", "low", "mid"]}),  # a tie goes to the first class, as in the answers
    ("multiclass", (3, 1, 2), [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.0, 1.0, 0.0]], {"label": [2, 3, 1]}),
], ids=["regression", "multiclass", "multiclass-whole-number-classes"])
def test_each_task_logs_its_prediction(tmp_path: Path, task: str, classes: tuple[Any, ...],
                                       predictions: list[Any], columns: dict[str, list[Any]]) -> None:
    log = new_log(str(tmp_path), threshold=None, task=task, classes=classes)
    log.record(encoded(INSTANCES), predictions)
    log.close()
    frame = next(iter(local_files(tmp_path).values()))
    assert list(frame.columns) == ["amount", "hour", "channel", "merchant", *columns, "scored_at", "model_version"]
    assert {name: frame[name].tolist() for name in columns} == columns
    if classes and type(classes[0]) is int:
        assert str(frame["label"].dtype) == "int64"

"""backend.storage.exports: row iterators and CSV/Parquet round trips."""

from __future__ import annotations

import csv
import math

import pyarrow.parquet as pq
import pytest

from backend.storage import exports, metrics, pairs, runs
from backend.storage.db import init_db
from contracts.events import MetricPoint, PairRecord
from contracts.metric_keys import PAIR_COLUMNS


@pytest.fixture
def engine(tmp_path):
    engine = init_db(f"sqlite:///{tmp_path / 'alignscope.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def two_runs(engine):
    ids = []
    with engine.begin() as conn:
        for _ in range(2):
            run_id = runs.create_run(conn, "{}", "run", None, None)
            runs.claim_run(conn, run_id, 1)
            ids.append(run_id)
        a, b = ids
        metrics.insert_points(
            conn,
            a,
            1,
            [
                MetricPoint("train/loss", 1, math.nan, 11.0),
                MetricPoint("train/loss", 0, 0.5, 10.0),
                MetricPoint("train/beta", 0, math.inf, 10.0),
            ],
        )
        metrics.insert_points(conn, b, 1, [MetricPoint("train/loss", 0, 0.25, 12.0)])
        pairs.insert_pair_records(
            conn,
            a,
            1,
            [
                PairRecord(1, 0, "q", -1.0, -2.0, -1.5, -2.5, 3, 4, math.nan, 0.0, False, 0.1, 0.2, 0.3),
                PairRecord(0, 1, "p", -1.0, -2.0, -1.5, -2.5, 3, 4, 0.5, 1.0, True, 0.1, 0.2, 0.3),
            ],
        )
    return a, b


def _same(left, right) -> bool:
    """Row equality with NaN == NaN."""
    return all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(left, right, strict=True)
    )


def test_metric_rows(engine, two_runs):
    a, b = two_runs
    with engine.connect() as conn:
        rows = list(exports.metric_rows(conn, [a, b]))
        only_loss_of_a = list(exports.metric_rows(conn, a, keys=["train/loss"]))
    expected_a = [
        (a, "train/beta", 0, math.inf, 10.0),
        (a, "train/loss", 0, 0.5, 10.0),
        (a, "train/loss", 1, math.nan, 11.0),
    ]
    expected = sorted([*expected_a, (b, "train/loss", 0, 0.25, 12.0)], key=lambda r: (r[0], r[1], r[2]))
    assert len(rows) == 4 and all(_same(x, y) for x, y in zip(rows, expected, strict=True))
    assert all(_same(x, y) for x, y in zip(only_loss_of_a, expected_a[1:], strict=True))


def test_pair_rows_follow_pair_columns(engine, two_runs):
    a, _ = two_runs
    with engine.connect() as conn:
        rows = list(exports.pair_rows(conn, a))
        step_one = list(exports.pair_rows(conn, a, step=1))
    assert len(rows[0]) == len(PAIR_COLUMNS)
    assert [(r[0], r[2], r[11]) for r in rows] == [(0, "p", True), (1, "q", False)]
    assert math.isnan(step_one[0][PAIR_COLUMNS.index("discrepancy")])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_metric_export_round_trip(engine, two_runs, tmp_path, suffix):
    path = tmp_path / f"metrics{suffix}"
    with engine.connect() as conn:
        rows = list(exports.metric_rows(conn, two_runs))
        assert exports.write_export(iter(rows), exports.METRIC_COLUMNS, path) == 4
    if suffix == ".csv":
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            assert tuple(next(reader)) == exports.METRIC_COLUMNS
            back = [(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in reader]
    else:
        table = pq.read_table(path)
        assert tuple(table.column_names) == exports.METRIC_COLUMNS
        back = [tuple(d.values()) for d in table.to_pylist()]
    assert all(_same(x, y) for x, y in zip(back, rows, strict=True))
    assert not list(tmp_path.glob("*.partial"))


def test_pair_export_parquet_types(engine, two_runs, tmp_path):
    path = tmp_path / "pairs.parquet"
    with engine.connect() as conn:
        assert exports.write_export(exports.pair_rows(conn, two_runs[0]), PAIR_COLUMNS, path) == 2
    table = pq.read_table(path)
    assert tuple(table.column_names) == PAIR_COLUMNS
    assert str(table.schema.field("kept").type) == "bool" and str(table.schema.field("step").type) == "int64"
    assert table.column("pair_id").to_pylist() == ["p", "q"]


def test_empty_and_unsupported_exports(tmp_path):
    assert exports.write_export([], exports.METRIC_COLUMNS, tmp_path / "empty.parquet") == 0
    assert pq.read_table(tmp_path / "empty.parquet").num_rows == 0
    assert exports.write_export([], exports.METRIC_COLUMNS, tmp_path / "empty.csv") == 0
    assert (tmp_path / "empty.csv").read_bytes() == b"run_id,key,step,value,wall_time\r\n"
    with pytest.raises(ValueError):
        exports.write_export([], exports.METRIC_COLUMNS, tmp_path / "x.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "empty.parquet"]

"""CSV import is atomic and reports bad rows by line; aggregate queries match plain Python."""
from __future__ import annotations

import subprocess
import sys

import pytest
from nodes import ROOT, write_config

from node.datasets import AggregateQuery, DatasetError, dataset_rows, import_csv, init_datasets, query_groups, run_query
from node.store.db import create_store_engine

GOOD = """person_id,age_band,channel,activity_segment
u1,18-29,app,high
u2,30-39,web,low
u3,30-39,app,mid
"""


@pytest.fixture
def engine(tmp_path):
    e = create_store_engine(f"sqlite:///{tmp_path / 'node.db'}")
    init_datasets(e)
    return e


def test_import_then_query_matches_plain_counts(engine):
    assert import_csv(engine, "user_features", GOOD) == 3
    rows, touched = run_query(engine, AggregateQuery("user_features", group_by="age_band"))
    assert {r["group"]: r["value"] for r in rows} == {"18-29": 1, "30-39": 2} and touched == 3
    rows, _ = run_query(engine, AggregateQuery("user_features", filters=(("channel", "app"),)))
    assert rows[0]["value"] == 2
    rows, touched = run_query(engine, AggregateQuery("user_features"))  # no filter, no group: the whole table
    assert rows == [{"value": 3, "records": 3}] and touched == 3


def test_filters_compare_as_the_columns_type_and_one_compiled_statement_serves_every_value(engine):
    csv_text = ("claim_id,person_id,policy_id,amount,claim_date,status,age_band,region\n"
                "c1,p1,,100.5,2024-01-02,paid,18-29,north\nc2,p2,,20,2024-01-02,open,30-39,south\n"
                "c3,p3,,7,2024-03-04,paid,30-39,north\n")
    assert import_csv(engine, "claims", csv_text) == 3
    by_day = AggregateQuery("claims", "sum", "amount", (("claim_date", "2024-01-02"),))
    assert run_query(engine, by_day)[0] == [{"value": 120.5, "records": 2}]
    other_day = AggregateQuery("claims", "sum", "amount", (("claim_date", "2024-03-04"),))
    assert run_query(engine, other_day)[0] == [{"value": 7.0, "records": 1}]  # same shape, another value
    rows, persons = query_groups(engine, AggregateQuery("claims", filters=(("status", "paid"),), group_by="region"))
    assert {g: r["value"] for g, r in rows.items()} == {"north": 2} and sorted(persons["north"]) == ["p1", "p3"]
    grouped = run_query(engine, AggregateQuery("claims", group_by="claim_date"))[0]
    assert [(str(r["group"]), r["value"]) for r in grouped] == [("2024-01-02", 2), ("2024-03-04", 1)]
    with pytest.raises(DatasetError) as bad:
        run_query(engine, AggregateQuery("claims", filters=(("claim_date", "2 Jan 2024"),)))
    assert bad.value.reason == "bad_filter_value"


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(engine):
    import_csv(engine, "user_features", GOOD)
    bad = GOOD + "u4,40-49,app\n,50-59,web,low\nu2,30-39,web,low\n"
    with pytest.raises(DatasetError) as e:
        import_csv(engine, "user_features", bad)
    message = str(e.value)
    assert "line 5" in message and "line 6" in message and "line 7" in message and "nothing imported" in message
    assert "duplicate person_id 'u2'" in message
    assert dataset_rows(engine, "user_features") == 3  # the earlier import is untouched


def test_bad_header_and_unknown_dataset_are_refused(engine):
    with pytest.raises(DatasetError, match="missing columns channel"):
        import_csv(engine, "user_features", "person_id,age_band,activity_segment\nu1,18-29,high\n")
    with pytest.raises(DatasetError, match="unknown dataset"):
        import_csv(engine, "nope", GOOD)
    with pytest.raises(DatasetError, match="not numeric"):
        run_query(engine, AggregateQuery("claims", "sum", "status"))


def test_cli_import_reports_one_line_and_leaves_the_store_unchanged(tmp_path):
    config = write_config(tmp_path / "home", "n", tmp_path / "keys", "http://127.0.0.1:1", tmp_path / "d.json", 1)
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(GOOD)
    bad.write_text(GOOD + "u9,not-a-band\n")
    def run(f):
        return subprocess.run([sys.executable, "-m", "node.cli", "data", "import", "user_features", str(f),
                               "--config", str(config), "--json"], cwd=ROOT, capture_output=True, text=True)
    ok = run(good)
    assert ok.returncode == 0 and '"rows": 3' in ok.stdout
    failed = run(bad)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "line 5" in failed.stderr
    engine = create_store_engine(f"sqlite:///{tmp_path / 'home' / 'node.db'}")
    assert dataset_rows(engine, "user_features") == 3


def test_header_only_csv_is_refused_unless_replacing_with_empty_is_asked(engine, tmp_path):
    import_csv(engine, "user_features", GOOD)
    header_only = GOOD.splitlines()[0] + "\n"
    with pytest.raises(DatasetError) as e:
        import_csv(engine, "user_features", header_only)
    assert e.value.reason == "empty_import" and "--replace-with-empty" in e.value.one_line()
    assert dataset_rows(engine, "user_features") == 3  # refused: the dataset is untouched
    assert import_csv(engine, "user_features", header_only, allow_empty=True) == 0
    assert dataset_rows(engine, "user_features") == 0
    # the CLI: one line and exit 1; with the flag, the dataset is emptied
    config = write_config(tmp_path / "home", "n", tmp_path / "keys", "http://127.0.0.1:1", tmp_path / "d.json", 1)
    (tmp_path / "good.csv").write_text(GOOD)
    (tmp_path / "empty.csv").write_text(header_only)

    def run(f, *extra):
        return subprocess.run([sys.executable, "-m", "node.cli", "data", "import", "user_features", str(f),
                               "--config", str(config), *extra], cwd=ROOT, capture_output=True, text=True)
    assert run(tmp_path / "good.csv").returncode == 0
    refused = run(tmp_path / "empty.csv")
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1 and "no rows" in refused.stderr
    store = create_store_engine(f"sqlite:///{tmp_path / 'home' / 'node.db'}")
    assert dataset_rows(store, "user_features") == 3
    emptied = run(tmp_path / "empty.csv", "--replace-with-empty")
    assert emptied.returncode == 0 and "imported 0 rows" in emptied.stdout
    assert dataset_rows(store, "user_features") == 0


def test_values_outside_the_declared_domains_are_refused_by_line(engine):
    header = "claim_id,person_id,amount,claim_date,status\n"
    rows = ("c1,p1,120.5,2026-01-02,paid\n"
            "c2,p2,-3,2026-01-02,paid\n"          # line 3: a negative amount
            "c3,p3,10,2026-01-02,PAID-ISH\n"      # line 4: an unknown status
            "c4,p4,10,2026-02-30,open\n")         # line 5: no such date
    with pytest.raises(DatasetError) as e:
        import_csv(engine, "claims", header + rows)
    message = str(e.value)
    assert e.value.reason == "bad_rows" and "3 bad row(s)" in message
    assert "line 3: amount='-3' is outside 0 .. 1e+07" in message
    assert "line 4: status='PAID-ISH' is not one of open, paid, rejected" in message
    assert "line 5: claim_date='2026-02-30' is not a date" in message
    assert dataset_rows(engine, "claims") == 0

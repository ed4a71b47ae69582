"""A loop whose spans lack a feature: ``train.feature_refs`` joined point in time.

Orders of 40 customers land weekly with only raw columns (order id, customer, time,
amount) and the label; each customer's ``score`` lives in a feature view whose
values change every two days, and the label follows the score *known at the
order's time*. The loop must train, judge and serve on exactly those values, and
its models' lineage must reach the ingest runs that landed the spans.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctloop.core.settings import Settings, load_settings
from ctloop.testing.cli import cli, one_error_line

pytestmark = pytest.mark.slow

START = pd.Timestamp("2024-01-01", tz="UTC")
CUSTOMERS = 40

FEATURES_PY = """
from ctloop.features import Entity, Feature, FeatureView, FileSource

customer = Entity("customer", ("customer",))
customer_stats = FeatureView(
    "customer_stats", customer, FileSource({source!r}), [Feature("score", "float64")],
    timestamp_field="updated_at")
"""

LOOP = """
[ctloop.loops.orders]
model = "orders"
data = "landing/*.parquet"
event_time = "ts"
label = "bought"
id = "order_id"
window = "2 spans"
retrain_on = ["new_span"]
train = {{ flavor = "lightgbm", params = {{ n_estimators = 20, min_child_samples = 5 }}, features = ["amount"], feature_refs = [{refs}]{store} }}
"""  # noqa: E501


def _history(root: Path) -> pd.DataFrame:
    """Every customer's score, re-estimated every two days from a week before the first span."""
    rng = np.random.default_rng(7)
    stamps = pd.date_range(START - pd.Timedelta(days=7), START + pd.Timedelta(days=21),
                           freq="2D")
    rows = [{"customer": c, "updated_at": t + pd.Timedelta(minutes=int(rng.integers(0, 600))),
             "score": float(rng.uniform())} for c in range(CUSTOMERS) for t in stamps]
    history = pd.DataFrame(rows)
    history["updated_at"] = history["updated_at"].astype("datetime64[us, UTC]")
    history.to_parquet(root / "scores.parquet", index=False)
    return history


def point_in_time(orders: pd.DataFrame, history: pd.DataFrame) -> pd.Series:
    """The oracle: each order's customer score as known at the order's time."""
    left = orders[["customer", "ts"]].assign(_row=range(len(orders))).sort_values("ts")
    right = history.sort_values("updated_at")
    merged = pd.merge_asof(left, right, left_on="ts", right_on="updated_at", by="customer")
    return merged.sort_values("_row")["score"].reset_index(drop=True)


def _project(root: Path, *, refs: str = '"customer_stats:score"',
             store: bool = True) -> pd.DataFrame:
    """Three weekly spans of 300 orders without the score column, and the definitions."""
    history = _history(root)
    (root / "features.py").write_text(FEATURES_PY.format(source=str(root / "scores.parquet")))
    (root / "ctloop.toml").write_text(LOOP.format(
        refs=refs, store=', feature_store = "features.py"' if store else ""))
    rng = np.random.default_rng(11)
    landing = root / "landing"
    landing.mkdir()
    for week in range(3):
        seconds = np.sort(rng.uniform(0, 7 * 86400, 300))
        orders = pd.DataFrame({
            "order_id": np.arange(300) + 1000 * week,
            "customer": rng.integers(0, CUSTOMERS, 300),
            "ts": (START + pd.Timedelta(weeks=week)
                   + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us, UTC]"),
            "amount": rng.normal(50, 10, 300).round(2),
        })
        score = point_in_time(orders, history).to_numpy()
        orders["bought"] = (score + rng.normal(0, 0.1, 300) > 0.5).astype(int)
        orders.to_parquet(landing / f"week-{week:02d}.parquet", index=False)
    return history


def _stores(home: Path) -> tuple[Any, Any]:
    from ctloop.artifacts import open_artifact_store
    from ctloop.metadata import open_metadata_store

    settings = Settings(home=home)
    return open_metadata_store(settings.metadata_url), open_artifact_store(settings.artifacts_url)


def _training_frame(store: Any, artifacts: Any, train_id: str) -> tuple[Any, pd.DataFrame]:
    art = store.get_artifact(train_id)
    return art, pd.read_parquet(artifacts.get(art.uri, art.sha256, name=art.id))


def _check_versions(home: Path, history: pd.DataFrame) -> dict[int, Any]:
    """Every version reads the joined score and trained on its point-in-time values."""
    from ctloop.registry import ModelRegistry

    store, artifacts = _stores(home)
    registry = ModelRegistry(store)
    latest = history.sort_values("updated_at").groupby("customer")["score"].last()
    records = {}
    try:
        for record in store.list_model_versions("orders"):
            model = registry.load(f"orders:{record.version}", artifacts)
            assert list(model.signature.columns) == ["amount", "score"]
            art, frame = _training_frame(store, artifacts, record.properties["training_data"]["id"])
            assert art.properties["feature_refs"] == ["customer_stats:score"]
            assert art.properties["joined_refs"] == ["customer_stats:score"]
            expected = point_in_time(frame, history)
            assert frame["score"].notna().all()
            assert np.array_equal(frame["score"].to_numpy(), expected.to_numpy())
            # ... which are not simply the latest scores: most rows differ from those.
            assert (frame["score"] != frame["customer"].map(latest)).mean() > 0.8
            records[record.version] = record
    finally:
        store.close()
    return records


def test_replay_joins_the_feature_point_in_time_and_lineage_reaches_the_ingest_runs(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ctloop.metadata.lineage import lineage
    from ctloop.requestlog.log import open_prediction_log
    from ctloop.triggers.store import ControllerState

    history = _project(ctloop_home)
    code, out, err = cli(capsys, "loop", "replay", "orders", "--json")
    assert code == 0, err
    spans = json.loads(out)["spans"]
    assert [s["span"] for s in spans] == ["week-00", "week-01", "week-02"]
    assert spans[0]["bootstrap"] and spans[0]["promoted"] == 1
    assert [s["window"] for s in spans[1:]] == [["week-00", "week-01"], ["week-01", "week-02"]]
    assert all(s["gate"] and not s["gate"].get("error") for s in spans)

    home = load_settings().home / "replays" / "orders"
    records = _check_versions(home, history)
    assert sorted(records) == [1, 2, 3]

    # The served rows carried the score as it was at each row's event time.
    log = open_prediction_log(home / "predictions")
    try:
        served = log.read(model_name="orders")
    finally:
        log.close()
    orders = pd.concat([pd.read_parquet(ctloop_home / "landing" / f"week-{w:02d}.parquet")
                        for w in (1, 2)], ignore_index=True)
    assert len(served) == len(orders) == 600
    by_id = served.set_index("request_id")["f_score"]  # the logged feature value
    sent = orders["order_id"].astype(str).map(by_id)
    assert np.array_equal(sent.to_numpy(dtype=float),
                          point_in_time(orders, history).to_numpy())

    # Lineage: version 3's model -> its training set -> the landed spans of its window
    # -> the ingest runs that landed and validated them.
    store, artifacts = _stores(home)
    try:
        memory = ControllerState(Settings(home=home).metadata_url).read("loop:orders")["spans"]
        window = {name: memory[name]["landed"] for name in ("week-01", "week-02")}
        train_id = records[3].properties["training_data"]["id"]
        assert store.get_artifact(train_id).properties["landed"] == window
        graph = lineage(store, records[3].artifact_id)
        reached = set(graph.artifacts)
        assert set(window.values()) <= reached
        assert memory["week-00"]["landed"] not in reached  # outside version 3's window
        down = lineage(store, window["week-02"], direction="downstream")
        assert records[3].artifact_id in down.artifacts  # and back down to the model
        for name, landed in window.items():
            step = store.get_step(store.get_artifact(landed).producer_step_id)
            run = store.get_run(step.run_id)
            assert step.name == "land_span" and run.pipeline == "loop_ingest"
            assert run.id == memory[name]["runs"]["validate"]
            assert step.id in graph.steps
            # ... and the training set holds exactly the rows that landed (less the holdout).
        _, frame = _training_frame(store, artifacts, train_id)
        landed_rows = sum(len(_training_frame(store, artifacts, i)[1]) for i in window.values())
        assert len(frame) == landed_rows - 75
    finally:
        store.close()


def test_live_controller_joins_from_the_feature_catalog(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _project(ctloop_home, store=False)
    code, _, err = cli(capsys, "features", "apply", "features.py")
    assert code == 0, err
    code, out, err = cli(capsys, "loop", "run", "orders", "--once", "--json")
    assert code == 0, err
    spans = json.loads(out)["spans"]
    assert spans[0]["bootstrap"] and spans[0]["promoted"] == 1
    assert spans[2]["window"] == ["week-01", "week-02"]
    assert sorted(_check_versions(load_settings().home, history)) == [1, 2, 3]


@pytest.mark.parametrize("command", [("loop", "replay", "orders"),
                                     ("loop", "run", "orders", "--once")])
def test_an_unknown_feature_ref_is_one_line_naming_the_loop_and_key(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    _project(ctloop_home, refs='"customer_stats:scor"')
    code, _, err = cli(capsys, *command)
    line = one_error_line(err)
    assert code != 0
    assert "Loop 'orders'" in line and "'train.feature_refs'" in line
    assert "'customer_stats:scor'" in line and "'customer_stats:score'" in line  # the hint
    for home in (load_settings().home, load_settings().home / "replays" / "orders"):
        if (home / "metadata.db").exists():  # nothing was trained anywhere
            store, _ = _stores(home)
            try:
                assert store.list_model_versions("orders") == []
            finally:
                store.close()


def test_a_missing_definitions_file_is_one_line_naming_the_key(
    ctloop_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _project(ctloop_home)
    (ctloop_home / "features.py").unlink()
    code, _, err = cli(capsys, "loop", "replay", "orders")
    line = one_error_line(err)
    assert code != 0 and "Loop 'orders'" in line and "'train.feature_store'" in line


@pytest.mark.parametrize("refs", ["customer_stats:score", ["customer_stats:score", 3]])
def test_feature_refs_must_be_a_list_of_refs(tmp_path: Path, refs: Any) -> None:
    from ctloop.core.errors import ConfigError
    from ctloop.loop.declaration import parse_loop

    table = {"model": "m", "data": "x/*.parquet", "event_time": "ts", "label": "y",
             "train": {"feature_refs": refs}}
    with pytest.raises(ConfigError, match=r"Loop 'orders': key 'train\.feature_refs' must be"):
        parse_loop("orders", table, root=tmp_path)

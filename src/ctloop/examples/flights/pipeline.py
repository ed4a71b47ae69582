"""The demo pipeline: ingest months of flights, train, evaluate, keep the model.

A first version of the reference scenario; later stages (validation, feature
store, gate, registry, serving, monitoring) plug in as their own steps.
"""

from __future__ import annotations

import json

from ctloop.pipeline import Dataset, Input, Metrics, Model, Output, component, pipeline

FEATURES_NUM = ["month", "day", "dep_hour", "sched_dep_time", "distance", "air_time_est"]
FEATURES_CAT = ["carrier", "origin", "dest"]
LABEL = "delayed"


@component(version="1")
def ingest(months: list[int], out: Output[Dataset]) -> dict:
    """Flights of the given months, labelled, with the raw columns a model may use."""
    from ctloop.examples.flights.data import flights

    df = flights(months)
    df = df.assign(
        dep_hour=df["sched_dep_time"] // 100,
        air_time_est=df["distance"] / 7.5,
    )[["time_hour", *FEATURES_NUM, *FEATURES_CAT, "tailnum", LABEL]]
    out.write(df)
    out.metadata["months"] = list(months)
    out.metadata["delayed_share"] = round(float(df[LABEL].mean()), 4)
    return {"rows": len(df)}


@component(version="1")
def train(data: Input[Dataset], model: Output[Model], seed: int = 0,
          max_iter: int = 200) -> dict:
    """A histogram gradient-boosted classifier with native categorical support."""
    import joblib
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    df = data.read()
    encoder = make_column_transformer(
        (OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                        encoded_missing_value=-1), FEATURES_CAT),
        ("passthrough", FEATURES_NUM),
        verbose_feature_names_out=False,
    )
    n_cat = len(FEATURES_CAT)
    clf = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=0.1, random_state=seed,
        categorical_features=list(range(n_cat)),
    )
    estimator = make_pipeline(encoder, clf)
    estimator.fit(df[FEATURES_CAT + FEATURES_NUM], df[LABEL])
    joblib.dump(estimator, model.path / "model.joblib")
    (model.path / "signature.json").write_text(json.dumps(
        {"inputs": FEATURES_CAT + FEATURES_NUM, "output": "probability of delay"}
    ))
    model.metadata.update({"flavor": "sklearn", "seed": seed, "train_rows": len(df)})
    return {"train_rows": len(df)}


@component(version="1")
def evaluate(data: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> dict:
    """ROC AUC, log loss and accuracy of the model on held-out flights."""
    import joblib
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    df = data.read()
    estimator = joblib.load(model.path / "model.joblib")
    proba = estimator.predict_proba(df[FEATURES_CAT + FEATURES_NUM])[:, 1]
    values = {
        "roc_auc": round(float(roc_auc_score(df[LABEL], proba)), 4),
        "log_loss": round(float(log_loss(df[LABEL], proba)), 4),
        "accuracy": round(float(accuracy_score(df[LABEL], proba >= 0.5)), 4),
        "rows": len(df),
        "delayed_share": round(float(df[LABEL].mean()), 4),
    }
    metrics.write(values)
    return values


@pipeline
def flights_demo(train_months: list[int] = [1, 2, 3], eval_months: list[int] = [4],  # noqa: B006
                 seed: int = 0):
    """Train on the first months of 2013 and evaluate on the next one."""
    train_data = ingest(months=train_months)
    eval_data = ingest(months=eval_months)
    model = train(data=train_data, seed=seed)
    evaluate(data=eval_data, model=model)

"""Benchmark: label-free performance estimates, ctloop against NannyML's CBPE.

Same data, same run: a LightGBM model is trained on generated data with a fixed
P(y | x); a labelled reference (the evaluation holdout) calibrates both
estimators; analysis chunks carry increasing covariate shift. Each estimator
estimates ROC AUC and accuracy per chunk without labels; the error is against
the metric the chunk's labels realise, and the band's coverage is how many chunks'
realised metric falls inside it (ctloop's: a 95% band of what the window would
realise; NannyML's: +-3 sampling errors). Both run in their own subprocess (NannyML
in a venv under ``bench/.peers/nannyml`` that this script creates, never a ctloop
dependency), timed around fit + estimate only (after an untimed warm-up that
pays for imports), repeated and interleaved.

    .venv/bin/python bench/bench_estimate.py
    .venv/bin/python bench/bench_estimate.py --chunk 2000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"
NANNYML_VENV = PEERS / "nannyml"
# NannyML 0.13 imports statsmodels without requiring it, and predates pandas 3.
NANNYML_REQUIREMENTS = ["nannyml==0.13.1", "statsmodels", "pandas<3"]
SHIFTS = (0.0, 0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
FEATURES = ["x1", "x2", "x3"]


def generate(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 3)) * (1 - shift) + shift * rng.normal(0.8, 0.3, (n, 3))
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1] + 0.5 * x[:, 2] - 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "y": y})


def prepare(chunk: int, folder: Path) -> tuple[Path, Path, list[dict]]:
    """Reference and analysis parquet files (scores, decisions, labels) and realised metrics."""
    from ctloop.models import fit_model
    from ctloop.models.metrics import metric_matrix

    folder.mkdir(parents=True, exist_ok=True)
    trained = fit_model(
        generate(20_000, 0),
        label="y",
        features=FEATURES,
        algorithm="lightgbm",
        params={"n_estimators": 100, "verbose": -1},
    )
    model = trained.model

    def scored(frame: pd.DataFrame) -> pd.DataFrame:
        proba = model.predict_proba(frame[FEATURES])[:, 1]
        return pd.DataFrame({"proba": proba, "pred": (proba >= 0.5).astype(int), "y": frame["y"]})

    reference = scored(generate(10_000, 1))
    chunks = [scored(generate(chunk, 100 + i, s)).assign(chunk=i) for i, s in enumerate(SHIFTS)]
    analysis = pd.concat(chunks, ignore_index=True)
    realised = []
    for i, part in enumerate(chunks):
        y, p = part["y"].to_numpy(), part["proba"].to_numpy()
        m = metric_matrix(np.ones((1, len(y))), y, p, task="classification")
        realised.append(
            {
                "chunk": i,
                "shift": SHIFTS[i],
                "roc_auc": float(m["roc_auc"][0]),
                "accuracy": float(m["accuracy"][0]),
            }
        )
    ref_path, ana_path = folder / "reference.parquet", folder / "analysis.parquet"
    reference.to_parquet(ref_path)
    analysis.to_parquet(ana_path)
    return ref_path, ana_path, realised


def run_ctloop(ref: pd.DataFrame, ana: pd.DataFrame) -> list[dict]:
    from ctloop.models.calibration import fit_calibration
    from ctloop.monitoring.estimate import estimate_performance

    calibration = fit_calibration(ref["y"].to_numpy(), ref["proba"].to_numpy())
    out = []
    for i, part in ana.groupby("chunk", sort=True):
        est = estimate_performance(part["proba"].to_numpy(), calibration=calibration, n_sim=200)
        row: dict = {"chunk": int(i)}
        for metric in ("roc_auc", "accuracy"):
            e = est[metric]
            row |= {metric: e.value, f"{metric}_lo": e.lo, f"{metric}_hi": e.hi}
        out.append(row)
    return out


def run_nannyml(ref: pd.DataFrame, ana: pd.DataFrame) -> list[dict]:
    import nannyml as nml

    chunk = int(ana.groupby("chunk").size().iloc[0])
    estimator = nml.CBPE(
        y_pred_proba="proba",
        y_pred="pred",
        y_true="y",
        metrics=["roc_auc", "accuracy"],
        chunk_size=chunk,
        problem_type="classification_binary",
    )
    estimator.fit(ref)
    frame = estimator.estimate(ana.drop(columns=["y", "chunk"])).filter(period="analysis").to_df()
    frame.columns = ["_".join(map(str, c)) if isinstance(c, tuple) else c for c in frame.columns]
    return [
        {"chunk": i}
        | {
            f"{metric}{suffix}": float(frame[f"{metric}_{column}"].iloc[i])
            for metric in ("roc_auc", "accuracy")
            for suffix, column in (
                ("", "value"),
                ("_lo", "lower_confidence_boundary"),
                ("_hi", "upper_confidence_boundary"),
            )
        }
        for i in range(len(frame))
    ]


def worker(name: str, ref_path: Path, ana_path: Path) -> None:
    ref, ana = pd.read_parquet(ref_path), pd.read_parquet(ana_path)
    runner = {"ctloop": run_ctloop, "nannyml": run_nannyml}[name]
    runner(ref, ana[ana["chunk"] <= 1])  # warm-up, untimed: imports and first calls
    start = time.perf_counter()
    estimates = runner(ref, ana)
    print(json.dumps({"seconds": time.perf_counter() - start, "estimates": estimates}))


def ensure_nannyml() -> Path:
    python = NANNYML_VENV / "bin" / "python"
    probe = [str(python), "-c", "import nannyml"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print("installing NannyML into", NANNYML_VENV, "(once; takes a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", str(NANNYML_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *NANNYML_REQUIREMENTS], check=True)
    return python


def measure(python: str, name: str, ref: Path, ana: Path) -> dict:
    proc = subprocess.run(
        [python, __file__, "--worker", name, str(ref), str(ana)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk", type=int, default=5000, help="rows per analysis chunk")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs per estimator")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, Path(args.paths[0]), Path(args.paths[1]))
        return
    ref, ana, realised = prepare(args.chunk, HERE / "out" / "estimate")
    contestants = {"ctloop": sys.executable, "nannyml": str(ensure_nannyml())}
    runs: dict[str, list[dict]] = {name: [] for name in contestants}
    for _ in range(args.repeat):
        for name, python in contestants.items():
            runs[name].append(measure(python, name, ref, ana))
    print(f"{len(SHIFTS)} chunks of {args.chunk} rows, covariate shift {SHIFTS}")
    print("chunk shift | realised auc acc | " + " | ".join(f"{n} auc acc" for n in runs))
    best = {name: min(r, key=lambda x: x["seconds"]) for name, r in runs.items()}
    for i, real in enumerate(realised):
        cells = [
            f"{best[n]['estimates'][i]['roc_auc']:.3f} {best[n]['estimates'][i]['accuracy']:.3f}"
            for n in runs
        ]
        print(
            f"{i:5d} {real['shift']:5.1f} | {real['roc_auc']:.3f} {real['accuracy']:.3f} | "
            + " | ".join(cells)
        )
    for name in runs:
        est = best[name]["estimates"]
        for metric in ("roc_auc", "accuracy"):
            err = np.array([e[metric] - r[metric] for e, r in zip(est, realised, strict=True)])
            inside = sum(
                e[f"{metric}_lo"] <= r[metric] <= e[f"{metric}_hi"]
                for e, r in zip(est, realised, strict=True)
            )
            width = np.mean([e[f"{metric}_hi"] - e[f"{metric}_lo"] for e in est])
            print(
                f"  {name:8s} {metric:8s} mean abs error {np.mean(np.abs(err)):.4f}, "
                f"max {np.max(np.abs(err)):.4f}; realised inside band {inside}/{len(est)}, "
                f"mean band width {width:.4f}"
            )
        times = sorted(r["seconds"] for r in runs[name])
        print(
            f"  {name:8s} time (best / median of {len(times)}): {times[0]:.3f} s / "
            f"{times[len(times) // 2]:.3f} s"
        )
    ratio = min(r["seconds"] for r in runs["nannyml"]) / min(r["seconds"] for r in runs["ctloop"])
    print(f"ratio: NannyML takes {ratio:.1f}x ctloop's time")


if __name__ == "__main__":
    main()

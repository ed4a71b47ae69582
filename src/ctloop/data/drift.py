"""Value skew: did a feature's distribution move between two datasets?

Everything is computed from statistics (their sketches), never from rows, so
drift between two months costs two statistics passes, and saved statistics
can be compared later without the data. Numbers get Kolmogorov-Smirnov,
Wasserstein distance normalised by the reference standard deviation and the
population stability index; categories get chi-squared, Jensen-Shannon
distance and the L-infinity distance of frequencies. Each feature is judged by
one of them (its ``method``) against a threshold; the others are reported.

Default choice (``method="auto"``), as in common practice: with at most
``SMALL_SAMPLE`` values on a side the statistical tests (KS, chi-squared,
p < 0.05); above it the distances (Wasserstein / sd > 0.05, Jensen-Shannon >
0.05), because on large samples the tests call every tiny change significant.
The thresholds were chosen on measured rates (``bench/bench_drift_rates.py``):
with them 0.2% of the features of two halves of a shuffled flights month (no
dataset) and none of two generated stationary months drifted, while a mean
shift of 0.1 sd was caught every time and 10% of a category's mass moving 75%
of the time (the former thresholds of 0.1 caught them 65% and 0% of the time).

A distance between two finite samples is never zero, even when both come from
one distribution: its noise shrinks like ``sqrt(1/n_ref + 1/n_cur)``. Unless a
threshold is set explicitly, distance thresholds are therefore raised to
``NOISE_FACTOR * sqrt(1/n_ref + 1/n_cur)`` when that is larger, so a thousand
rows of one shuffled month do not "drift" from the other thousand. The
Jensen-Shannon distance of K categories grows with K as well (its expected
value is ``sqrt((K - 1) / (8 ln 2)) * sqrt(1/n_ref + 1/n_cur)``), so its floor
is scaled by that factor when it exceeds 1: a column of 200 airports is not
"drifting" by sampling alone.

Sampling noise is not the only motion that means nothing. Rows of a month are not
independent draws: the weather of a month is thirty days of a few weather systems,
so two months of an unchanged climate differ by far more than the noise floor, and
every weather feature "drifts" every month. :func:`stationary_thresholds` measures
that natural motion on the reference itself: it cuts the reference (in its row
order, event time for a loop's training data) into chunks the size of the batch
being judged, compares each chunk with the rest, and raises each feature's
threshold to the largest distance seen. A feature then drifts only when the batch
is further from the reference than the reference's own parts are from each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, TypeAlias, TypedDict

import numpy as np
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from ctloop.core.arrays import Floats
from ctloop.core.errors import UserInputError
from ctloop.core.jsontypes import JSONValue
from ctloop.data.sources import DataSource
from ctloop.data.stats import (
    CATEGORICAL_TYPES,
    CategoricalStats,
    ColumnStatistics,
    DatasetStatistics,
    NumericStats,
    compute_statistics,
    merge_statistics,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CATEGORICAL_METHODS",
    "DEFAULT_THRESHOLDS",
    "NUMERIC_METHODS",
    "DriftReport",
    "DriftReportJson",
    "DriftSettings",
    "FeatureDrift",
    "compute_drift",
    "stationary_thresholds",
]

SMALL_SAMPLE = 1000
NUMERIC_METHODS = ("ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("chisquare", "jensenshannon", "linf")
P_VALUE_METHODS = ("ks", "chisquare")  # drifted when the score is *below* the threshold
DEFAULT_THRESHOLDS = {
    "ks": 0.05,
    "chisquare": 0.05,
    "wasserstein": 0.05,
    "psi": 0.2,
    "jensenshannon": 0.05,
    "linf": 0.1,
}
DEFAULT_DRIFT_SHARE = 0.5
_GRID = (np.arange(1000) + 0.5) / 1000  # ranks at which quantile functions are compared
_PSI_EPS = 1e-4
NOISE_FACTOR = 5.0  # weather halves of one month reach ~4x sqrt(1/n+1/m); see tests
NOISE_FLOORED = ("wasserstein", "jensenshannon", "linf")
MIN_CHUNKS = 3  # the fewest parts a reference is cut into for its stationary baseline

DriftSettings: TypeAlias = Mapping[str, JSONValue]
"""One feature's drift settings: ``method``, ``threshold``; ``stationary_thresholds`` adds
``baseline``, ``chunks`` and ``threshold_from``. Free-form (a schema or a TOML table)."""


class DriftReportJson(TypedDict):
    """:class:`DriftReport` as JSON (the ``drift`` of an anomalies file)."""

    reference: str
    current: str
    dataset_drifted: bool
    share_drifted: float
    drift_share: float
    n_tested: int
    n_drifted: int
    features: list[dict[str, object]]


def _number(value: object, key: str) -> float:
    """A drift setting that must be a number (or a numeric string, as ``float`` reads)."""
    if isinstance(value, int | float | str):
        return float(value)
    raise UserInputError(f"The drift setting {key!r} must be a number. Got {value!r}.")


@dataclass
class FeatureDrift:
    """The drift verdict of one feature, with every measure that applies to its type."""

    column: str
    type: str
    method: str
    threshold: float | None
    score: float | None
    drifted: bool
    n_reference: int
    n_current: int
    measures: dict[str, float | None] = field(default_factory=dict)
    note: str = ""
    #: counts in the dataset's drift share (ids, labels, event times and ignored columns do not)
    in_share: bool = True
    #: weight in the share (the model's feature importance when given, else 1)
    weight: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class DriftReport:
    """Per-feature drift and the dataset verdict (share of drifted features)."""

    features: list[FeatureDrift]
    drift_share: float = DEFAULT_DRIFT_SHARE
    reference: str = ""
    current: str = ""

    @property
    def tested(self) -> list[FeatureDrift]:
        """Features that were tested and count in the share."""
        return [f for f in self.features if (f.score is not None or f.drifted) and f.in_share]

    @property
    def drifted(self) -> list[FeatureDrift]:
        """Drifted features that count in the share."""
        return [f for f in self.tested if f.drifted]

    @property
    def share_drifted(self) -> float:
        """Weighted share of drifted features (each weighs 1 unless importances were given)."""
        total = sum(f.weight for f in self.tested)
        if total <= 0:
            return 0.0
        return sum(f.weight for f in self.drifted) / total

    @property
    def weighted(self) -> bool:
        return any(f.weight != 1.0 for f in self.features)

    @property
    def dataset_drifted(self) -> bool:
        return bool(self.tested) and self.share_drifted >= self.drift_share

    def __getitem__(self, column: str) -> FeatureDrift:
        for feature in self.features:
            if feature.column == column:
                return feature
        raise KeyError(column)

    def summary(self) -> dict[str, JSONValue]:
        """The compact form recorded as artifact metadata."""
        return {
            "dataset_drifted": self.dataset_drifted,
            "share_drifted": round(self.share_drifted, 4),
            "drift_share": self.drift_share,
            "drifted_features": [f.column for f in self.drifted],
            "weighted": self.weighted,
            "excluded": [f.column for f in self.features if not f.in_share],
            "scores": {
                f.column: {"method": f.method, "score": f.score, "drifted": f.drifted}
                for f in self.tested
            },
        }

    def to_dict(self) -> DriftReportJson:
        return {
            "reference": self.reference,
            "current": self.current,
            "dataset_drifted": self.dataset_drifted,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "n_tested": len(self.tested),
            "n_drifted": len(self.drifted),
            "features": [f.to_dict() for f in self.features],
        }


def compute_drift(
    reference: DatasetStatistics | DataSource,
    current: DatasetStatistics | DataSource,
    *,
    columns: Iterable[str] | None = None,
    config: Mapping[str, DriftSettings] | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    exclude: Iterable[str] = (),
    weights: Mapping[str, float] | None = None,
) -> DriftReport:
    """Drift of every shared feature between ``reference`` and ``current``.

    Args:
        reference: statistics, or data to compute them from (training data,
            or the previous batch).
        current: statistics or data of the new batch (serving data, this batch).
        columns: features to test; by default every column both sides have.
        config: per feature ``{"method": ..., "threshold": ...}`` overrides.
        drift_share: the dataset drifts when at least this share of the tested
            features drift.
        exclude: columns reported but left out of the share (ids, labels,
            event times: they move by construction or are not inputs).
        weights: per feature weight in the share, e.g. the model's feature
            importance, so drift in what the model uses counts more; features
            it does not name weigh 0. Negative weights are an error.
    """
    if not 0 < drift_share <= 1:
        raise UserInputError(f"drift_share must be in (0, 1]. Got {drift_share!r}.")
    ref, cur = _statistics(reference, current)
    config = dict(config or {})
    names = _feature_names(ref, cur, columns)
    _check_settings(config, names, weights)
    excluded = set(exclude)
    features = [_in_share(_feature(ref[n], cur[n], config.get(n, {})), n, excluded, weights)
                for n in names]
    return DriftReport(
        features=features, drift_share=drift_share, reference=ref.source, current=cur.source
    )


def _statistics(reference: DatasetStatistics | DataSource, current: DatasetStatistics | DataSource
                ) -> tuple[DatasetStatistics, DatasetStatistics]:
    """Both sides' statistics (computed from their data when given data), each with rows."""
    ref = reference if isinstance(reference, DatasetStatistics) else compute_statistics(reference)
    cur = current if isinstance(current, DatasetStatistics) else compute_statistics(current)
    for side, stats in (("reference", ref), ("current", cur)):
        if stats.rows == 0:
            raise UserInputError(
                f"The {side} data {stats.source or ''} has no rows; drift needs data on both "
                "sides. Check the file or the time window."
            )
    return ref, cur


def _feature_names(ref: DatasetStatistics, cur: DatasetStatistics,
                   columns: Iterable[str] | None) -> list[str]:
    """The features to test: ``columns``, each in both datasets, or every shared column."""
    shared = [n for n in ref.columns if n in cur.columns]
    if columns is None:
        return shared
    names = list(columns)
    unknown = [n for n in names if n not in ref.columns or n not in cur.columns]
    if unknown:
        raise UserInputError(
            f"Cannot test drift of {unknown}: not in both datasets. Shared columns: {shared}."
        )
    return names


def _check_settings(config: Mapping[str, object], names: list[str],
                    weights: Mapping[str, float] | None) -> None:
    """Settings name tested features only; weights are finite and not negative."""
    unknown_config = sorted(set(config) - set(names))
    if unknown_config:
        raise UserInputError(f"Drift settings name unknown features {unknown_config}.")
    if weights is not None:
        bad = {k: v for k, v in weights.items() if not (v >= 0 and np.isfinite(v))}
        if bad:
            raise UserInputError(f"Drift weights must be finite and >= 0. Got {bad}.")


def _in_share(feature: FeatureDrift, name: str, excluded: set[str],
              weights: Mapping[str, float] | None) -> FeatureDrift:
    """The feature's place in the dataset's share: left out, or weighed (unnamed: 0)."""
    if name in excluded:
        feature.in_share = False
        feature.note = (feature.note + "; " if feature.note else "") + "not in the share"
    if weights is not None:
        feature.weight = float(weights.get(name, 0.0))
    return feature


def stationary_thresholds(
    reference: pd.DataFrame,
    columns: Iterable[str],
    *,
    chunk_rows: int,
    config: Mapping[str, DriftSettings] | None = None,
) -> dict[str, dict[str, JSONValue]]:
    """Per-feature drift settings whose thresholds come from the reference's own motion.

    ``reference`` (a pandas frame, rows in time order) is cut into
    ``max(MIN_CHUNKS, round(rows / chunk_rows))`` consecutive chunks; each chunk is
    compared with the rest of the reference by the feature's method (``config``'s, else
    Wasserstein for numbers and Jensen-Shannon for categories: distances, whatever the
    chunk sizes), and the feature's threshold becomes the largest of those distances
    when that exceeds its usual (noise-floored) threshold, which the caller's
    ``compute_drift`` still applies. Returns ``compute_drift``'s ``config`` form, each
    entry with the ``baseline`` it was chosen from and the ``chunks`` compared.

    Args:
        reference: the reference rows (e.g. the champion's training data).
        columns: the features to calibrate.
        chunk_rows: the size of the batch that will be judged (e.g. one span's rows).
        config: per-feature ``{"method": ...}``; an explicit ``threshold`` is kept as is.
    """
    import pandas as pd

    if chunk_rows < 1:
        raise UserInputError(f"chunk_rows must be >= 1. Got {chunk_rows!r}.")
    frame = pd.DataFrame(reference)
    names = [c for c in columns if c in frame.columns]
    given = dict(config or {})
    methods = {name: _stationary_method(frame, name, given.get(name, {})) for name in names}
    out: dict[str, dict[str, JSONValue]] = {n: {**given.get(n, {}), "method": methods[n]}
                                      for n in names}
    chunks = max(MIN_CHUNKS, round(len(frame) / chunk_rows))
    if len(frame) < 2 * chunks:
        return out  # too few rows to cut: the usual thresholds stand
    for name, baseline in _furthest_chunks(frame, methods, chunks).items():
        if "threshold" in given.get(name, {}):
            continue
        out[name].update(baseline=baseline, chunks=chunks,
                         threshold_from="stationary")
    return out


def _stationary_method(frame: pd.DataFrame, name: str, settings: DriftSettings) -> str:
    """The feature's method, ``auto`` read as a distance: Wasserstein or Jensen-Shannon."""
    import pandas as pd

    method = str(settings.get("method", "auto"))
    if method != "auto":
        return method
    return "wasserstein" if pd.api.types.is_numeric_dtype(frame[name]) else "jensenshannon"


def _furthest_chunks(frame: pd.DataFrame, methods: Mapping[str, str], chunks: int
                     ) -> dict[str, float]:
    """Per feature, the score of the chunk furthest from the rest of the reference.

    One statistics pass over the chunks; each "rest" is the merge of the others' sketches.
    """
    edges = np.linspace(0, len(frame), chunks + 1).astype(int)
    worst: dict[str, float] = {}
    plain = {n: {"method": m} for n, m in methods.items() if m != "none"}
    parts = [compute_statistics(frame.iloc[lo:hi][list(plain)])
             for lo, hi in itertools.pairwise(edges.tolist())]
    for i, part in enumerate(parts):
        rest = merge_statistics(parts[:i] + parts[i + 1:])
        report = compute_drift(rest, part, columns=list(plain), config=plain)
        for feature in report.features:
            seen = worst.get(feature.column)
            if feature.score is not None and (seen is None or _beyond(
                    feature.method, feature.score, seen)):
                worst[feature.column] = feature.score
    return worst


@dataclass(frozen=True)
class _Sample:
    """What both sides of one feature hold: value counts and every measure of their distance."""

    numeric: bool
    n_reference: int
    n_current: int
    measures: dict[str, float | None]


_SCORE_KEYS = {"ks": "ks_pvalue", "chisquare": "chisquare_pvalue",
               "wasserstein": "wasserstein_norm"}


def _feature(
    ref: ColumnStatistics, cur: ColumnStatistics, settings: DriftSettings
) -> FeatureDrift:
    method = str(settings.get("method", "auto"))
    if method == "none":  # e.g. calendar columns, which move every batch by construction
        return _verdict(ref, cur, method, "not tested (drift method: none)")
    sample = _sample(ref, cur, method)
    if isinstance(sample, FeatureDrift):
        return sample
    if method == "auto":
        method = _auto_method(sample)
    threshold, note = _threshold(method, settings, sample)
    score = sample.measures[_SCORE_KEYS.get(method, method)]
    return _verdict(ref, cur, method, note, threshold=threshold, score=score,
                    drifted=_beyond(method, score, threshold),
                    counts=(sample.n_reference, sample.n_current), measures=sample.measures)


def _verdict(ref: ColumnStatistics, cur: ColumnStatistics, method: str, note: str, *,
             threshold: float | None = None, score: float | None = None,
             drifted: bool = False, counts: tuple[int, int] | None = None,
             measures: dict[str, float | None] | None = None) -> FeatureDrift:
    """One feature's verdict; by default a feature reported without a score, with the
    reason (``counts``: the values on each side, by default the non-missing ones)."""
    n_reference, n_current = counts or (ref.count - ref.missing, cur.count - cur.missing)
    return FeatureDrift(
        column=ref.name,
        type=cur.type,
        method=method,
        threshold=threshold,
        score=score,
        drifted=drifted,
        n_reference=n_reference,
        n_current=n_current,
        measures={} if measures is None else measures,
        note=note,
    )


def _sample(ref: ColumnStatistics, cur: ColumnStatistics, method: str
            ) -> _Sample | FeatureDrift:
    """Both sides measured, or the verdict of a feature that cannot be measured.

    An unknown ``method`` for the column's type is an error.
    """
    kinds = {ref.type, cur.type}
    numeric = kinds <= {"integer", "float"}
    categorical = kinds <= set(CATEGORICAL_TYPES) and len(kinds) == 1
    if not (numeric or categorical):
        if len(kinds) > 1:
            return _verdict(ref, cur, method,
                            f"type changed from {ref.type} to {cur.type}; not comparable")
        return _verdict(ref, cur, method, f"no drift test for {ref.type} columns")
    allowed = NUMERIC_METHODS if numeric else CATEGORICAL_METHODS
    if method not in ("auto", *allowed):
        raise UserInputError(
            f"The drift method of {ref.name!r} must be one of {('auto', 'none', *allowed)} "
            f"for a {ref.type} column. Got {method!r}."
        )
    if numeric:
        assert ref.numeric is not None and cur.numeric is not None
        n_ref, n_cur = ref.numeric.finite, cur.numeric.finite
        if not n_ref or not n_cur:
            return (_non_finite(ref, cur, method)
                    or _verdict(ref, cur, method, "no values on one side"))
        return _Sample(True, n_ref, n_cur, numeric_measures(ref.numeric, cur.numeric))
    assert ref.categorical is not None and cur.categorical is not None
    n_ref, n_cur = ref.categorical.total, cur.categorical.total
    if not n_ref or not n_cur:
        return _verdict(ref, cur, method, "no values on one side")
    return _Sample(False, n_ref, n_cur, categorical_measures(ref.categorical, cur.categorical))


def _auto_method(sample: _Sample) -> str:
    """Statistical tests on small samples, distances on large ones (see the module's doc)."""
    small = min(sample.n_reference, sample.n_current) <= SMALL_SAMPLE
    if sample.numeric:
        return "ks" if small else "wasserstein"
    return "chisquare" if small else "jensenshannon"


def _threshold(method: str, settings: DriftSettings, sample: _Sample) -> tuple[float, str]:
    """The feature's threshold and a note on where it came from.

    An explicit threshold stands as given; the default is raised to the noise floor of
    distances and moved to the reference's own motion when ``stationary_thresholds``
    measured one further than it.
    """
    if "threshold" in settings:
        return _number(settings["threshold"], "threshold"), ""
    threshold = DEFAULT_THRESHOLDS[method]
    if method in NOISE_FLOORED:
        categories = sample.measures.get("categories") if method == "jensenshannon" else None
        threshold = max(threshold, noise_floor(sample.n_reference, sample.n_current,
                                               categories))
    if "baseline" not in settings:
        return threshold, ""
    baseline = _number(settings["baseline"], "baseline")
    if not _beyond(method, baseline, threshold):
        return threshold, ""
    return baseline, (f"threshold from the reference's own motion (the furthest of its "
                      f"{settings.get('chunks', '?')} chunks from the rest)")


def _beyond(method: str, score: float | None, threshold: float) -> bool:
    """Whether ``score`` lies past ``threshold``: below it for p-values, above for distances."""
    if method in P_VALUE_METHODS:
        return score is not None and score < threshold
    return score is not None and score > threshold


def _non_finite(ref: ColumnStatistics, cur: ColumnStatistics, method: str) -> FeatureDrift | None:
    """A side whose values are all infinite drifted from one that has finite values.

    (Skipping it as "no values" would read a column broken into ``inf`` as "no drift".)
    """
    assert ref.numeric is not None and cur.numeric is not None
    sides = {"reference": ref.numeric, "current": cur.numeric}
    broken = [name for name, num in sides.items() if not num.finite and num.inf]
    fine = [name for name, num in sides.items() if num.finite]
    if not broken or not fine:
        return None
    num = sides[broken[0]]
    counts = (ref.numeric.finite + ref.numeric.inf, cur.numeric.finite + cur.numeric.inf)
    return _verdict(ref, cur, method, f"all {num.inf} values of the {broken[0]} side are "
                    "infinite", drifted=True, counts=counts)


def noise_floor(n_ref: int, n_cur: int, categories: float | None = None) -> float:
    """A distance two samples of one distribution rarely exceed at these sizes.

    With ``categories`` (Jensen-Shannon), scaled by the distance's growth with their number.
    """
    scale = 1.0
    if categories is not None and categories > 1:
        scale = max(1.0, float(np.sqrt((categories - 1) / (8 * np.log(2)))))
    return float(NOISE_FACTOR * scale * np.sqrt(1 / n_ref + 1 / n_cur))


def numeric_measures(ref: NumericStats, cur: NumericStats) -> dict[str, float | None]:
    """KS statistic and p-value, Wasserstein distance (raw and normalised), PSI."""
    q_ref: Floats = np.asarray(ref.quantiles(_GRID), dtype=np.float64)
    q_cur: Floats = np.asarray(cur.quantiles(_GRID), dtype=np.float64)
    wasserstein = float(np.mean(np.abs(q_ref - q_cur)))
    spread = ref.std or 0.0
    # A constant reference has no spread: the distance is then read in its own units.
    wasserstein_norm = wasserstein / spread if spread > 0 else wasserstein
    points = np.unique(np.concatenate([q_ref, q_cur, [ref.min, ref.max, cur.min, cur.max]]))
    ks = float(np.max(np.abs(ref.cdf(points) - cur.cdf(points))))
    en = ref.finite * cur.finite / (ref.finite + cur.finite)
    # The exact distribution costs ~0.4 s per call at a million rows; the limiting
    # (Kolmogorov) one is indistinguishable from it at these sizes.
    if en <= 10_000:
        ks_pvalue = float(sps.kstwo.sf(ks, max(round(en), 1)))
    else:
        ks_pvalue = float(sps.kstwobign.sf(ks * np.sqrt(en)))
    return {
        "ks": ks,
        "ks_pvalue": ks_pvalue,
        "wasserstein": wasserstein,
        "wasserstein_norm": wasserstein_norm,
        "psi": psi(ref, cur),
    }


def psi(ref: NumericStats, cur: NumericStats, bins: int = 10) -> float:
    """Population stability index on the reference deciles."""
    edges = np.unique(ref.quantiles(np.arange(1, bins) / bins)).tolist()
    if not edges:
        return 0.0
    p_ref = np.clip(np.asarray(ref.sketch.get_pmf(edges)), _PSI_EPS, None)
    p_cur = np.clip(np.asarray(cur.sketch.get_pmf(edges)), _PSI_EPS, None)
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def category_counts(ref: CategoricalStats, cur: CategoricalStats) -> tuple[list[str], Floats]:
    """Aligned counts (2 x K) of both sides; values a sketch no longer holds go to one bucket."""
    f_ref, f_cur = ref.frequencies(), cur.frequencies()
    labels = list(f_ref) + [v for v in f_cur if v not in f_ref]
    table = np.array(
        [[f_ref.get(v, 0) for v in labels], [f_cur.get(v, 0) for v in labels]], dtype=float
    )
    rest = np.array([ref.total, cur.total], dtype=float) - table.sum(axis=1)
    if (rest > 0).any():
        labels.append("(other)")
        table = np.column_stack([table, np.clip(rest, 0, None)])
    return labels, table


def categorical_measures(ref: CategoricalStats, cur: CategoricalStats) -> dict[str, float | None]:
    """Chi-squared p-value, Jensen-Shannon distance (base 2) and L-infinity distance."""
    _, table = category_counts(ref, cur)
    table = table[:, table.sum(axis=0) > 0]
    p_ref, p_cur = table[0] / table[0].sum(), table[1] / table[1].sum()
    if table.shape[1] < 2:
        chi2, pvalue = 0.0, 1.0
    else:
        chi2, pvalue, _, _ = sps.chi2_contingency(table, correction=False)
    return {
        "chisquare": float(chi2),
        "chisquare_pvalue": float(pvalue),
        "jensenshannon": float(jensenshannon(p_ref, p_cur, base=2)),
        "linf": float(np.max(np.abs(p_ref - p_cur))),
        "categories": float(table.shape[1]),
    }

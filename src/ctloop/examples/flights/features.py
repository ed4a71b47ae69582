"""Feature definitions of the NYC-flights scenario.

    weather         hourly weather at the origin airport (ttl 2h)
    planes          static attributes of the aircraft, by tail number
    carrier_delays  a carrier's share of delayed flights and mean arrival delay, trailing 7 days
    route_delays    a route's (origin, dest) share of delayed flights, trailing 30 days

Delay rates count only flights that had landed before the moment asked about:
their event time is the landing time (scheduled departure + departure delay +
air time), so a training row at a flight's scheduled departure never sees its
own label or any later flight's.

Register them with ``ctloop features apply src/ctloop/examples/flights/features.py``
(the sources are functions of this module, so any process can read them), or
use :func:`flights_feature_store` directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctloop.features import (
    Aggregation,
    AggregationView,
    Entity,
    Feature,
    FeatureStore,
    FeatureView,
    PythonSource,
    TrainingSet,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FEATURES",
    "arrivals_frame",
    "carrier_delays",
    "flight_entities",
    "flights_feature_store",
    "planes",
    "planes_frame",
    "route_delays",
    "training_set",
    "weather",
    "weather_frame",
]

WEATHER_COLUMNS = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]


# --- sources (plain functions, so the catalog can name them) ---------------------------------


def weather_frame() -> pd.DataFrame:
    """Hourly weather per origin airport; ``time_hour`` is the observation hour (UTC)."""
    from ctloop.examples.flights.data import load_table

    return load_table("weather")[["origin", "time_hour", *WEATHER_COLUMNS]]


def planes_frame() -> pd.DataFrame:
    """One row per aircraft."""
    from ctloop.examples.flights.data import load_table

    return load_table("planes")[
        ["tailnum", "year", "type", "manufacturer", "engines", "seats", "engine"]
    ]


def arrivals_frame() -> pd.DataFrame:
    """Every flight that landed, with its landing time and whether it was delayed."""
    import pandas as pd

    from ctloop.examples.flights.data import flights

    df = flights()
    sched = df["time_hour"] + pd.to_timedelta(df["minute"], unit="m")
    minutes = df["dep_delay"].fillna(0) + df["air_time"].fillna(0)
    return pd.DataFrame(
        {
            "carrier": df["carrier"],
            "origin": df["origin"],
            "dest": df["dest"],
            "landed_at": sched + pd.to_timedelta(minutes, unit="m"),
            "delayed": df["delayed"].astype("int64"),
            "arr_delay": df["arr_delay"],
        }
    )


# --- definitions -----------------------------------------------------------------------------

airport = Entity("airport", ("origin",), description="departure airport (EWR, JFK, LGA)")
plane = Entity("plane", ("tailnum",), description="an aircraft, by tail number")
carrier = Entity("carrier", ("carrier",), description="airline code")
route = Entity("route", ("origin", "dest"), description="origin and destination airports")

weather = FeatureView(
    "weather",
    airport,
    PythonSource(weather_frame),
    [
        Feature("temp", description="temperature, F"),
        Feature("dewp", description="dew point, F"),
        Feature("humid", description="relative humidity, %"),
        Feature("wind_dir", description="wind direction, degrees"),
        Feature("wind_speed", description="wind speed, mph"),
        Feature("wind_gust", description="gust speed, mph"),
        Feature("precip", description="precipitation, inches"),
        Feature("pressure", description="sea level pressure, millibars"),
        Feature("visib", description="visibility, miles"),
    ],
    timestamp_field="time_hour",
    ttl="2h",
    description="hourly weather observed at the departure airport",
    owner="flights-demo",
    tags={"domain": "weather", "scenario": "flights"},
)

planes = FeatureView(
    "planes",
    plane,
    PythonSource(planes_frame),
    [
        Feature("plane_year", "float64", column="year", description="year manufactured"),
        Feature("plane_type", "string", column="type"),
        Feature("manufacturer", "string"),
        Feature("engines", "int64"),
        Feature("seats", "int64"),
        Feature("engine", "string", description="engine type"),
    ],
    description="static aircraft attributes",
    owner="flights-demo",
    tags={"domain": "fleet", "scenario": "flights"},
)

carrier_delays = AggregationView(
    "carrier_delays",
    carrier,
    PythonSource(arrivals_frame),
    [
        Aggregation(
            "carrier_delay_rate_7d",
            "delayed",
            "mean",
            "7d",
            description="share of the carrier's flights landed in the last 7 days "
            "that arrived over 15 minutes late",
        ),
        Aggregation("carrier_flights_7d", "delayed", "count", "7d"),
        Aggregation(
            "carrier_arr_delay_7d",
            "arr_delay",
            "mean",
            "7d",
            description="mean arrival delay, minutes",
        ),
    ],
    timestamp_field="landed_at",
    description="carrier punctuality over the trailing week",
    owner="flights-demo",
    tags={"domain": "delays", "scenario": "flights"},
)

route_delays = AggregationView(
    "route_delays",
    route,
    PythonSource(arrivals_frame),
    [
        Aggregation("route_delay_rate_30d", "delayed", "mean", "30d"),
        Aggregation("route_flights_30d", "delayed", "count", "30d"),
    ],
    timestamp_field="landed_at",
    description="route punctuality over the trailing 30 days",
    owner="flights-demo",
    tags={"domain": "delays", "scenario": "flights"},
)

FEATURES: list[str] = [
    *(f"weather:{c}" for c in WEATHER_COLUMNS),
    "planes:plane_year",
    "planes:plane_type",
    "planes:manufacturer",
    "planes:engines",
    "planes:seats",
    "carrier_delays:carrier_delay_rate_7d",
    "carrier_delays:carrier_flights_7d",
    "carrier_delays:carrier_arr_delay_7d",
    "route_delays:route_delay_rate_30d",
    "route_delays:route_flights_30d",
]
"""Every feature the flights model uses."""


def flights_feature_store(**kwargs: Any) -> FeatureStore:
    """A feature store over these definitions (``online_store=...`` as for FeatureStore)."""
    return FeatureStore([weather, planes, carrier_delays, route_delays], **kwargs)


def flight_entities(months: list[int] | range | None = None) -> pd.DataFrame:
    """Labelled flights with ``event_timestamp`` = scheduled departure (UTC)."""
    import pandas as pd

    from ctloop.examples.flights.data import flights

    df = flights(months)
    return df.assign(
        event_timestamp=df["time_hour"] + pd.to_timedelta(df["minute"], unit="m")
    ).reset_index(drop=True)


def training_set(
    months: list[int] | range,
    *,
    store: FeatureStore | None = None,
    features: list[str] | None = None,
) -> TrainingSet:
    """Flights of ``months`` with every feature as known at their scheduled departure."""
    store = store or flights_feature_store(online_store="sqlite:///:memory:")
    return store.get_training_set(flight_entities(months), features or FEATURES)

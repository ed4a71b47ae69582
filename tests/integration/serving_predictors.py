"""Python-flavor predictors that misbehave only where a served model does (imported by
``ctloop serve`` in the model test, so they live in a module, not in the test file)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd


class TwoRowsBreak:
    """Right for 1 and for many rows, a bad shape for exactly 2: what the infra probe's
    50-row sample never sees and a service answers 500 for."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame["hour"].to_numpy(dtype=float) / 24
        return values[:1] if len(frame) == 2 else values


class Sleeper:
    """Right answers, slowly: ``seconds`` per call."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(self.seconds)
        return frame["hour"].to_numpy(dtype=float) / 24

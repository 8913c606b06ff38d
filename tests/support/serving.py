"""A small model served in-process for the tests of the App and the HTTP transport: a two-feature contract and a
pure-Python predictor (the score is amount / 100), no bundle, no scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from steps._core.documents import ContractRecord
from steps._serving.app import ServedModel
from steps._serving.contract import RequestContract

MODEL = "fraud-detection"
CONTRACT: ContractRecord = {
    "target": "is_fraud", "positive_label": 1, "segment": None,
    "features": [
        {"name": "amount", "type": "numeric", "nullable": False, "min": 0.0, "max": 100.0},
        {"name": "channel", "type": "categorical", "nullable": False, "categories": ["web", "app"],
         "unknown": "reject"},
    ],
}
ROW = {"amount": 40.0, "channel": "app"}


class Amount:
    """A pure-Python model: the score is amount / 100 (or a fixed, broken score)."""

    kind = "compiled"

    def __init__(self, broken: float | None = None):
        self.broken = broken

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return [self.broken if self.broken is not None else row[0] / 100 for row in rows]


def served(predictor: Any = None) -> ServedModel:
    return ServedModel(MODEL, "3", 0.5, RequestContract(CONTRACT), predictor or Amount(), True, {})

"""The compiled predictor (steps/_model/trees.py) on the public tables of tests/data: the Palmer penguins' species
(multiclass; categories, missing numbers and a missing sex) and the Bikeshare hourly riders (regression, squared
error and poisson) predict through model.trees.json as through scikit-learn, every row and its variants."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from steps._core.policy import Feature
from steps._model import task as _task
from steps._model import trees as _predictor
from steps._model.contract import feature_to_dict
from steps._model.features import ContractEncoder, code_count
from steps._model.parity import variants
from tests.support.paths import ROOT

DATA = ROOT / "tests" / "data"


def _pipeline(features: tuple[Feature, ...], model: Any) -> Pipeline:
    """What steps._model.features.build_pipeline makes for hist_gradient_boosting."""
    model.set_params(categorical_features=[code_count(f) > 0 for f in features], random_state=0)
    return Pipeline([("contract", ContractEncoder([feature_to_dict(f) for f in features])), ("model", model)])


def _parity(pipeline: Pipeline, features: tuple[Feature, ...], rows: pd.DataFrame, task: str) -> float:
    """max |compiled - scikit-learn| over the rows and their variants (each feature missing, each category unseen)."""
    batch = pd.concat([rows.astype(object), variants(rows, features)], ignore_index=True)
    compiled = _predictor.compile_trees(_predictor.export_trees(pipeline, task), "test")
    assert compiled.task == task
    got = np.asarray(compiled.predict(pipeline[0].transform(batch).tolist()), dtype=np.float64)
    expected = _task.predict(pipeline, batch, task)
    assert got.shape == expected.shape
    return float(np.max(np.abs(got - expected)))


def test_penguin_species_predict_the_same_probabilities() -> None:
    table = pd.read_csv(DATA / "penguins.csv")
    features = (
        Feature(name="island", type="categorical", categories=("Biscoe", "Dream", "Torgersen"), unknown="other"),
        *(Feature(name=n, type="numeric", nullable=True)
          for n in ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")),
        Feature(name="sex", type="categorical", categories=("female", "male"), nullable=True),
    )
    contract = {"task": "multiclass", "target": "species", "classes": ["Adelie", "Chinstrap", "Gentoo"]}
    X = table[[f.name for f in features]]
    pipeline = _pipeline(features, HistGradientBoostingClassifier(max_iter=50, min_samples_leaf=5))
    pipeline.fit(X, _task.encode_target(table["species"], contract))
    assert _parity(pipeline, features, X, "multiclass") <= 1e-12


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_bikeshare_riders_predict_the_same_values(loss: str) -> None:
    table = pd.read_csv(DATA / "bikeshare.csv")
    months = ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec")
    features = (
        Feature(name="mnth", type="categorical", categories=months),
        Feature(name="weathersit", type="categorical",
                categories=("clear", "cloudy/misty", "light rain/snow", "heavy rain/snow"), unknown="other"),
        *(Feature(name=n, type="integer") for n in ("season", "hr", "holiday", "weekday", "workingday")),
        *(Feature(name=n, type="numeric") for n in ("temp", "atemp", "hum", "windspeed")),
    )
    X = table[[f.name for f in features]]
    y = _task.encode_target(table["bikers"], {"task": "regression", "target": "bikers"})
    pipeline = _pipeline(features, HistGradientBoostingRegressor(max_iter=60, loss=loss)).fit(X, y)
    # In riders (the standard deviation is 134): the identity link adds the same leaves in the same order, bit
    # for bit; poisson's exp may differ from numpy's by an ulp.
    assert _parity(pipeline, features, X, "regression") <= (0.0 if loss == "squared_error" else 1e-9)

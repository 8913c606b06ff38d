"""Saving and loading the model (steps/_model/skops.py) with our trusted types only: every estimator the policy may
name round-trips, a model saved before the layout change still loads, and anything else is refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from steps._model import features as _features
from steps._model import skops as _model
from tests.support.models import ESTIMATORS


@pytest.mark.parametrize("estimator", list(ESTIMATORS))
def test_trusted_types_cover_every_type_we_save_and_load_round_trips(
    fraud, estimator: str, tmp_path: Path
) -> None:
    import skops.io as sio

    features, frame, y = fraud
    X = _features.model_input(frame, features)
    pipeline = _features.build_pipeline(features, estimator, ESTIMATORS[estimator], seed=3)
    with _model.compute_threads():
        pipeline.fit(X, y)
    path = tmp_path / "model.skops"
    _model.save(pipeline, path)
    assert set(sio.get_untrusted_types(file=path)) - set(_model.TRUSTED_TYPES) == set()
    loaded = _model.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))


def test_a_model_saved_when_the_encoder_lived_in_steps_features_still_loads(fraud, tmp_path: Path) -> None:
    """Versions registered before the layout change name the encoder `steps._features.ContractEncoder`."""
    import zipfile

    features, frame, y = fraud
    X = _features.model_input(frame, features)
    estimator = "hist_gradient_boosting"
    pipeline = _features.build_pipeline(features, estimator, ESTIMATORS[estimator], seed=3)
    with _model.compute_threads():
        pipeline.fit(X, y)
    saved = tmp_path / "new.skops"
    _model.save(pipeline, saved)
    old = tmp_path / "old.skops"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "schema.json":
                assert b'"steps._model.features"' in data
                data = data.replace(b'"steps._model.features"', b'"steps._features"')
            dst.writestr(item, data)
    np.testing.assert_array_equal(_model.load(old).predict_proba(X), pipeline.predict_proba(X))


def test_load_refuses_a_model_holding_a_type_we_do_not_trust(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    _model.save(Pipeline([("sqrt", FunctionTransformer(math.sqrt))]), path)
    with pytest.raises(_model.ModelError, match=r"refused to load.*math\.sqrt"):
        _model.load(path)


def test_load_refuses_a_file_that_is_not_a_skops_model(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"not a zip file")
    with pytest.raises(_model.ModelError, match="not a readable skops model"):
        _model.load(path)

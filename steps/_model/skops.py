"""Saving and loading the model (a scikit-learn Pipeline) with skops, trusting only the types we list here.

The trusted list lives in our code, never in the artifact: a model file that needs anything else is refused
before any of it is built. Callers verify the bundle's hashes (steps._model.bundle.verify) before calling `load`.
"""

from __future__ import annotations

import os
import platform
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from steps._core import threads as _threads

MODEL_FILE = "model.skops"

# Types skops does not trust by default that our pipelines (steps._model.features.build_pipeline, every estimator)
# contain. tests/steps/_model/test_skops.py proves this list covers every type in a saved file.
TRUSTED_TYPES: list[str] = [
    # our contract encoder
    "steps._model.features.ContractEncoder",
    # hist_gradient_boosting: its binner, tree predictors and loss objects
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    # multiclass (softmax) and regression (squared error and the log-link losses a policy may choose)
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogLink",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.AbsoluteError",
    "sklearn._loss.loss.PinballLoss",
    "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn._loss.loss.HalfGammaLoss",
    # HGB keeps its input check as functools.partial(check_array, ...)
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # OneHotEncoder's output dtype (logistic_regression, random_forest)
    "numpy.dtype",
    # random_forest's fitted trees (skops 0.16 no longer trusts them by default)
    "sklearn.tree._tree.Tree",
]

# Modules our saved types used to live in, and where they live now. A model file names its types by module path,
# so a version registered before a move would no longer load (a production baseline the gate compares with,
# a rollback target): `load` makes the old path an alias of the new module and trusts the old name.
LEGACY_MODULES = {"steps._features": "steps._model.features"}
LEGACY_TRUSTED_TYPES = [f"{old}.ContractEncoder" for old in LEGACY_MODULES]


class ModelError(ValueError):
    """The model file cannot be loaded safely: the message names the file and the reason."""


def save(pipeline: Any, path: Path) -> None:
    import skops.io as sio

    sio.dump(pipeline, path)


def load(path: Path) -> Any:
    """Load a model saved by `save`; refuses any type outside TRUSTED_TYPES and skops' defaults."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    _alias_legacy_modules()
    try:
        return sio.load(path, trusted=TRUSTED_TYPES + LEGACY_TRUSTED_TYPES)
    except UntrustedTypesFoundException as err:
        raise ModelError(f"{path}: refused to load: it holds types we do not trust ({err})") from err
    except FileNotFoundError as err:
        raise ModelError(f"{path}: missing") from err
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise ModelError(f"{path}: not a readable skops model ({type(err).__name__}: {err})") from err


def _alias_legacy_modules() -> None:
    import importlib
    import sys

    for old, new in LEGACY_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))


def library_versions() -> dict[str, str]:
    """The versions that decide whether a saved model loads and predicts the same way elsewhere."""
    import numpy
    import pandas
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "skops": skops.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
    }


@contextmanager
def compute_threads(threads: int | None = None) -> Iterator[int]:
    """Run native (OpenMP/BLAS) code on `threads` threads (train passes `steps._core.threads.count(...)`: the pod's
    CPUs). Without `threads`: one thread unless $OMP_NUM_THREADS says otherwise. Yields the count.

    Never more than the CPUs the container may use: OpenMP's threads collapse when they outnumber them (a pod
    limited below the node's cores): the same 16k-row fit took 72 s with two threads and 2.6 s with one. Two
    threads on two cores that other work keeps busy collapse the same way: set MLOPS_THREADS=1 there.
    """
    if threads is None:
        threads = _threads.count(environ={"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or "1"})
    with _threads.limit(threads) as n:
        yield n

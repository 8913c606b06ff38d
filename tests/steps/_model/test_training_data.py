"""train copies each column into its matrices and computes its profile and ECDF on a thread beside the column
reading (steps._model.training_data.InOrder): results come back in the columns' order, an error reaches the caller,
only a few columns wait at a time, and the matrices are the ones reading without the thread gives."""

from __future__ import annotations

import threading
import time

import pytest

from steps._model.training_data import InOrder


def _late(i: int) -> int:
    time.sleep(0.01 * (6 - i))  # the first calls take longest
    return i


def test_results_come_back_in_the_order_they_were_submitted() -> None:
    beside = InOrder()
    try:
        for i in range(6):
            beside.submit(_late, i)
        assert beside.results() == list(range(6))
    finally:
        beside.close()


def test_an_error_in_a_call_reaches_the_caller() -> None:
    def broken() -> None:
        raise ValueError("amount: expected numbers")

    beside = InOrder()
    try:
        beside.submit(broken)
        with pytest.raises(ValueError, match="amount: expected numbers"):
            beside.results()
    finally:
        beside.close()


def test_the_caller_waits_once_two_calls_are_pending() -> None:
    """Each pending call holds a whole column: the reading waits rather than queue them all."""
    release = threading.Event()
    beside = InOrder(pending=2)
    try:
        beside.submit(release.wait)
        beside.submit(lambda: None)
        third = threading.Thread(target=beside.submit, args=(lambda: None,))
        third.start()
        third.join(0.2)
        assert third.is_alive()  # blocked until the first call ends
        release.set()
        third.join(5)
        assert not third.is_alive()
        assert len(beside.results()) == 3
    finally:
        release.set()
        beside.close()


def test_columns_copied_beside_the_reading_give_the_same_matrices(tmp_path_factory: pytest.TempPathFactory) -> None:
    import numpy as np
    import pandas as pd

    from steps._core.policy import load_policy
    from steps._model import features as _features
    from steps._model import task as _task
    from steps._model import training_data as _data
    from steps._model.contract import feature_to_dict
    from tests.support.tasks import task_frame, task_policy, validated_folder

    root = tmp_path_factory.mktemp("beside")
    policy = load_policy(task_policy("multiclass", root / "gates"))
    folder = validated_folder(task_frame("multiclass", rows=3000, seed=4), root / "validated")
    target, _ = _data.read(folder, policy.data.target)
    contract = {"task": "multiclass", "classes": list(policy.data.classes or []), "target": policy.data.target}
    rows = _data.split(_task.encode_target(target, contract), policy.model, stratified=True, threshold_rows=False)
    encoder = _features.ContractEncoder([feature_to_dict(f) for f in policy.data.features]).fit(
        pd.DataFrame(columns=policy.data.feature_names))
    seen: list[str] = []
    alone = _data.encode(folder, policy.data.feature_names, rows, encoder.encode_column, lambda n, c, k: None)
    beside = InOrder()
    try:
        together = _data.encode(folder, policy.data.feature_names, rows, encoder.encode_column,
                                lambda n, c, k: seen.append(n), beside)
        assert beside.results() == [None] * len(policy.data.feature_names)
    finally:
        beside.close()
    assert np.array_equal(together.fit, alone.fit, equal_nan=True)
    assert seen == policy.data.feature_names

"""The floor `mlops run training` is measured against: in one fresh process, read the same Parquet, fit the policy's
HistGradientBoosting with the policy's parameters and seed on the training share (the same stratified split as the
train step: model.holdout_fraction, the seed), score the holdout. Default threads (scikit-learn's OpenMP uses every
core). Prints one JSON line: the phases' seconds (imports, read, fit, score) and the holdout's ROC AUC, so a reader
can check the floor fits a model as good as the pipeline's.

    .venv/bin/python -m bench.training.floor --data transactions.parquet --policy gates/fraud-detection.yaml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

START = time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--policy", type=Path, required=True)
    args = parser.parse_args(argv)

    import pandas as pd
    import yaml
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    imported = time.perf_counter()
    policy = yaml.safe_load(args.policy.read_text())
    data, model = policy["data"], policy["model"]
    if model.get("estimator", "hist_gradient_boosting") != "hist_gradient_boosting" or model.get("task", "binary") \
            != "binary":
        raise SystemExit("the floor is defined for a binary hist_gradient_boosting policy")
    features = data["features"]
    names = [f["name"] for f in features]
    frame = pd.read_parquet(args.data, columns=[*names, data["target"]])
    for feature in features:
        if feature["type"] == "categorical":  # the contract's categories, as HistGradientBoosting's own categories
            frame[feature["name"]] = pd.Categorical(frame[feature["name"]], categories=feature["categories"])
    y = (frame[data["target"]] == data["positive_label"]).to_numpy(dtype="int8")
    X = frame[names]
    read = time.perf_counter()
    X_train, X_hold, y_train, y_hold = train_test_split(
        X, y, test_size=model.get("holdout_fraction", 0.2), stratify=y, random_state=model["seed"])
    estimator = HistGradientBoostingClassifier(**model.get("params") or {}, categorical_features="from_dtype",
                                               random_state=model["seed"])
    estimator.fit(X_train, y_train)
    fitted = time.perf_counter()
    scores = estimator.predict_proba(X_hold)[:, 1]
    scored = time.perf_counter()
    print(json.dumps({
        "rows": len(frame), "train_rows": len(y_train), "holdout_rows": len(y_hold),
        "import_seconds": round(imported - START, 3), "read_seconds": round(read - imported, 3),
        "fit_seconds": round(fitted - read, 3), "score_seconds": round(scored - fitted, 3),
        "in_process_seconds": round(scored - START, 3),
        "holdout_roc_auc": round(float(roc_auc_score(y_hold, scores)), 5),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())

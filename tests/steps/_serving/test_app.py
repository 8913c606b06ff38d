"""The App (steps._serving.app) behind the transport seam: every route answers through a Responder, predictions
go through a real batcher on a real event loop, and what a user or Prometheus would see (status, body, headers,
closing, counted requests) is checked without any HTTP transport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from steps._serving.app import App, ServedModel, warm_up
from steps._serving.batcher import Batcher
from steps._serving.exchange import Request
from steps._serving.metrics import Metrics
from tests.support.serving import (
    CLASSES,
    MODEL,
    ROW,
    SCORE_PROFILE,
    VALUE_PROFILE,
    Amount,
    Doubled,
    Levels,
    class_profile,
    served,
    served_multiclass,
    served_regression,
)


class Answer:
    """A Responder that keeps the answer."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.body = b""
        self.content_type = b""
        self.close = False
        self.extra = b""
        self.head_only = False

    @property
    def answered(self) -> bool:
        return self.status is not None

    def respond(self, status: int, body: bytes, content_type: bytes, close: bool, extra_headers: bytes = b"",
                head_only: bool = False) -> None:
        assert self.status is None, "answered twice"
        self.status, self.body, self.content_type, self.close = status, body, content_type, close
        self.extra, self.head_only = extra_headers, head_only

    def json(self) -> Any:
        return json.loads(self.body)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


class Idle:
    receiving = 0

    def batch_finished(self) -> None:
        pass


def app_for(model: ServedModel, loop: asyncio.AbstractEventLoop | None = None) -> App:
    metrics = Metrics.for_model(model)
    app = App(model, metrics)
    if loop is not None:
        app.batcher = Batcher(loop, model.predictor.predict, True, app, Idle(), 32, 0.005)
    app.ready = True
    return app


def ask(app: App, method: str, path: str, body: Any = None, keep_alive: bool = True,
        loop: asyncio.AbstractEventLoop | None = None, content_type: bytes | None = b"application/json") -> Answer:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    answer = Answer()
    app.handle(Request(method.encode(), path.encode(), content_type, raw, keep_alive), answer)
    if loop is not None and not answer.answered:
        loop.run_until_complete(asyncio.sleep(0.02))
    return answer


def requests(app: App, code: int) -> float:
    return app.metrics.value("model_requests_total", code=str(code))


def test_v1_and_v2_predictions_are_scored_through_the_batcher(loop: asyncio.AbstractEventLoop) -> None:
    app = app_for(served(), loop)
    v1 = ask(app, "POST", f"/v1/models/{MODEL}:predict", {"instances": [ROW, {**ROW, "amount": 70.0}]}, loop=loop)
    assert (v1.status, v1.json()) == (200, {"predictions": [{"score": 0.4, "label": 0}, {"score": 0.7, "label": 1}],
                                            "model_version": "3"})
    body = {"id": "r-1", "inputs": [{"name": "amount", "datatype": "FP64", "shape": [1], "data": [90.0]},
                                    {"name": "channel", "datatype": "BYTES", "shape": [1], "data": ["web"]}]}
    for path in (f"/v2/models/{MODEL}/infer", f"/v2/models/{MODEL}/versions/3/infer"):
        v2 = ask(app, "POST", path, body, loop=loop)
        assert v2.status == 200 and v2.json()["id"] == "r-1"
        assert [o["data"] for o in v2.json()["outputs"]] == [[0.9], [1]]
    assert requests(app, 200) == 3
    assert app.metrics.value("model_inference_rows_total") == 4


def test_a_percent_encoded_path_finds_its_route(loop: asyncio.AbstractEventLoop) -> None:
    app = app_for(served(), loop)
    answer = ask(app, "POST", f"/v1/models/{MODEL}%3Apredict", {"instances": [ROW]}, loop=loop)
    assert answer.status == 200


def test_readiness_follows_ready_and_draining_and_draining_closes_connections() -> None:
    app = app_for(served())
    app.ready = False
    assert ask(app, "GET", "/v2/health/ready").status == 503
    app.ready = True
    ready = ask(app, "GET", "/v1/health/ready")
    assert (ready.status, ready.json(), ready.close) == (200, {"ready": True}, False)
    assert ask(app, "GET", f"/v2/models/{MODEL}/versions/3/ready").json() == {"name": MODEL, "ready": True}
    app.draining = True
    draining = ask(app, "GET", "/v1/health/ready")
    assert (draining.status, draining.json(), draining.close) == (503, {"ready": False}, True)
    assert ask(app, "GET", "/v1/health/live").status == 200  # alive while draining
    app.draining = False
    assert ask(app, "GET", "/v1/health/live", keep_alive=False).close  # the client asked to close


def test_head_answers_without_a_body_and_metadata_describes_the_model() -> None:
    app = app_for(served())
    head = ask(app, "HEAD", f"/v2/models/{MODEL}")
    assert head.status == 200 and head.head_only
    meta = ask(app, "GET", f"/v2/models/{MODEL}").json()
    assert meta["platform"] == "argo-mlops/compiled" and meta["versions"] == ["3"]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("amount", "FP64"), ("channel", "BYTES")]
    assert ask(app, "GET", f"/v1/models/{MODEL}").json() == {"name": MODEL, "version": "3", "ready": True}
    metrics = ask(app, "GET", "/metrics")
    assert metrics.content_type.startswith(b"text/plain") and b"model_requests_total" in metrics.body


def test_wrong_methods_get_405_with_the_allowed_one_and_only_predictions_count() -> None:
    app = app_for(served())
    predict = ask(app, "GET", f"/v1/models/{MODEL}:predict")
    assert (predict.status, predict.json()["rule"], predict.extra) == (405, "method", b"allow: POST\r\n")
    metrics = ask(app, "POST", "/metrics", {})
    assert (metrics.status, metrics.extra) == (405, b"allow: GET\r\n")
    assert requests(app, 405) == 1


def test_unknown_routes_get_404_and_count_only_as_predictions() -> None:
    app = app_for(served())
    other_model = ask(app, "POST", "/v1/models/churn:predict", {"instances": [ROW]})
    assert (other_model.status, other_model.json()["rule"]) == (404, "route")
    assert "serves model 'fraud-detection' version 3" in other_model.json()["error"]
    assert ask(app, "GET", "/favicon.ico").status == 404
    assert requests(app, 404) == 1


def test_a_body_that_is_not_json_or_not_sent_as_json_is_refused() -> None:
    app = app_for(served())
    csv = ask(app, "POST", f"/v1/models/{MODEL}:predict", {"instances": [ROW]}, content_type=b"text/csv")
    assert (csv.status, csv.json()["rule"]) == (415, "content_type")
    problem_json = ask(app, "POST", f"/v1/models/{MODEL}:predict", b"[", content_type=b"application/problem+json")
    assert (problem_json.status, problem_json.json()["rule"]) == (400, "json")


def test_scores_outside_0_1_fail_the_batch_with_500(loop: asyncio.AbstractEventLoop) -> None:
    app = app_for(served(Amount(broken=1.5)), loop)
    answer = ask(app, "POST", f"/v1/models/{MODEL}:predict", {"instances": [ROW]}, loop=loop)
    assert (answer.status, answer.json()["rule"]) == (500, "server")
    assert app.metrics.value("model_inference_errors_total") == 1


class Broken:
    """A model whose description itself fails."""

    @property
    def kind(self) -> str:
        raise RuntimeError("no kind")

    def predict(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return [0.5] * len(rows)


def test_a_bug_in_a_route_answers_500_and_closes() -> None:
    app = app_for(served(Broken()))
    answer = ask(app, "GET", f"/v2/models/{MODEL}")
    assert (answer.status, answer.json()["rule"], answer.close) == (500, "server", True)
    unattached = app_for(served())  # no batcher: a prediction is a bug, answered and counted
    prediction = ask(unattached, "POST", f"/v1/models/{MODEL}:predict", {"instances": [ROW]})
    assert prediction.status == 500 and requests(unattached, 500) == 1


def test_requests_the_transport_refused_count_as_predictions_only() -> None:
    app = app_for(served())
    app.rejected(f"/v2/models/{MODEL}/infer".encode(), 413)
    app.rejected(b"/metrics", 413)
    assert requests(app, 413) == 1


def test_warm_up_scores_a_row_the_contract_allows() -> None:
    assert warm_up(served()) == 0.0  # amount at its minimum
    with pytest.raises(ValueError, match=r"a score outside \[0, 1\]"):
        warm_up(served(Amount(broken=-1.0)))
    assert warm_up(served_multiclass()) == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"row 0 are not 3 numbers in \[0, 1\] summing to 1"):
        warm_up(served_multiclass(Levels(broken=[0.5, 0.5, 0.5])))
    assert warm_up(served_regression()) == 0.0
    with pytest.raises(ValueError, match="a value that is not a finite number"):
        warm_up(served_regression(Doubled(broken=float("nan"))))


INFER = f"/v2/models/{MODEL}/infer"
TENSORS = [{"name": "amount", "datatype": "FP64", "shape": [1], "data": [40.0]},
           {"name": "channel", "datatype": "BYTES", "shape": [1], "data": ["app"]}]


def _with(where: str, raw: str, v2: bool = True) -> bytes:
    """A valid body with `raw` JSON text in place of one value."""
    body: Any = {"id": "r", "inputs": json.loads(json.dumps(TENSORS))} if v2 else {"instances": [dict(ROW)]}
    if v2:
        body["inputs"][0][where] = "@@"
    else:
        body["instances"][0][where] = "@@"
    return json.dumps(body).replace('"@@"', raw).encode()


@pytest.mark.parametrize(("where", "v2"), [("datatype", True), ("shape", True), ("name", True), ("data", True),
                                            ("amount", False), ("channel", False)])
def test_a_deeply_nested_value_is_a_4xx_that_never_counts_as_a_server_error(
        where: str, v2: bool, loop: asyncio.AbstractEventLoop) -> None:
    app = app_for(served(), loop)
    answer = ask(app, "POST", INFER if v2 else f"/v1/models/{MODEL}:predict",
                 _with(where, "[" * 1000 + "]" * 1000, v2), loop=loop)
    assert answer.status is not None and 400 <= answer.status < 500, answer.body[:300]
    assert answer.json()["rule"] and len(answer.body) < 500
    assert app.metrics.value("model_inference_errors_total") == 0 and requests(app, 500) == 0


@pytest.mark.parametrize(("where", "v2"), [("name", True), ("id", True), ("channel", False), ("\ud800", False)],
                         ids=["v2-name", "v2-id", "v1-category", "v1-key"])
def test_a_lone_surrogate_is_not_text_and_gets_400(where: str, v2: bool, loop: asyncio.AbstractEventLoop) -> None:
    # orjson refuses "\ud800"; the standard library, which reads what orjson refuses (NaN), would let it through
    # into answers that cannot be encoded.
    if where == "id":
        raw = json.dumps({"id": "@@", "inputs": TENSORS}).replace('"@@"', '"\\ud800"').encode()
    elif where == "\ud800":
        raw = json.dumps({"instances": [{**ROW, "other": 1}]}).replace('"other"', '"\\ud800"').encode()
    else:
        raw = _with(where, '"\\ud800"', v2)
    answer = ask(app := app_for(served(), loop), "POST", INFER if v2 else f"/v1/models/{MODEL}:predict", raw,
                 loop=loop)
    assert (answer.status, answer.json()["rule"]) == (400, "json")
    assert app.metrics.value("model_inference_errors_total") == 0


def test_an_answer_that_cannot_be_encoded_is_a_500_and_the_others_in_its_batch_are_answered(
        loop: asyncio.AbstractEventLoop) -> None:
    model = served()
    app = app_for(model, loop)
    app.model = ServedModel(model.name, model.version, model.threshold, model.contract, model.predictor, True, {},
                            labels=(b"no", b"yes"))  # type: ignore[arg-type]  # bytes: not JSON
    first, second = Answer(), Answer()
    body = json.dumps({"instances": [ROW]}).encode()
    app.handle(Request(b"POST", f"/v1/models/{MODEL}:predict".encode(), b"application/json", body, True), first)
    app.handle(Request(b"POST", INFER.encode(), b"application/json", json.dumps({"inputs": TENSORS}).encode(), True),
               second)
    loop.run_until_complete(asyncio.sleep(0.02))
    assert (first.status, second.status) == (500, 500)
    assert app.metrics.value("model_inference_errors_total") == 2


# --- multiclass and regression --------------------------------------------------------------------------------

PREDICT = f"/v1/models/{MODEL}:predict"
ROWS = [{"amount": 20.0, "channel": "web"}, {"amount": 100.0, "channel": "app"}]
V2_BODY = {"id": "r-2", "inputs": [{"name": "amount", "datatype": "FP64", "shape": [2], "data": [20.0, 100.0]},
                                   {"name": "channel", "datatype": "BYTES", "shape": [2], "data": ["web", "app"]}]}


@pytest.mark.parametrize(("classes", "keys", "datatype"), [(CLASSES, ["low", "mid", "high"], "BYTES"),
                                                           ((3, 7, 5), ["3", "7", "5"], "INT64")],
                         ids=["text-classes", "whole-number-classes"])
def test_multiclass_answers_the_label_and_probabilities_over_exactly_the_classes(
        loop: asyncio.AbstractEventLoop, classes: tuple[Any, ...], keys: list[str], datatype: str) -> None:
    app = app_for(served_multiclass(classes=classes), loop)
    v1 = ask(app, "POST", PREDICT, {"instances": ROWS}, loop=loop)
    assert v1.status == 200, v1.body
    # 20: [0.8, 0.1, 0.1]; 100: [0, 0.5, 0.5], a tie: the first of the two, as numpy's argmax
    assert v1.json() == {"predictions": [
        {"label": classes[0], "probabilities": dict(zip(keys, [0.8, 0.1, 0.1], strict=True))},
        {"label": classes[1], "probabilities": dict(zip(keys, [0.0, 0.5, 0.5], strict=True))}],
        "model_version": "3"}
    assert all(list(p["probabilities"]) == keys for p in v1.json()["predictions"])  # in class order
    v2 = ask(app, "POST", f"/v2/models/{MODEL}/infer", V2_BODY, loop=loop)
    assert v2.status == 200 and v2.json()["id"] == "r-2"
    assert v2.json()["outputs"] == [
        {"name": "label", "datatype": datatype, "shape": [2], "data": [classes[0], classes[1]]},
        {"name": "probabilities", "datatype": "FP64", "shape": [2, 3], "data": [0.8, 0.1, 0.1, 0.0, 0.5, 0.5]}]
    meta = ask(app, "GET", f"/v2/models/{MODEL}").json()
    assert meta["outputs"] == [{"name": "label", "datatype": datatype, "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]}]
    assert meta["parameters"] == {"task": "multiclass", "classes": list(classes)}


def test_regression_answers_the_value(loop: asyncio.AbstractEventLoop) -> None:
    app = app_for(served_regression(), loop)
    v1 = ask(app, "POST", PREDICT, {"instances": ROWS}, loop=loop)
    assert (v1.status, v1.json()) == (200, {"predictions": [{"value": 40.0}, {"value": 201.0}], "model_version": "3"})
    v2 = ask(app, "POST", f"/v2/models/{MODEL}/infer", V2_BODY, loop=loop)
    assert v2.json()["outputs"] == [{"name": "value", "datatype": "FP64", "shape": [2], "data": [40.0, 201.0]}]
    meta = ask(app, "GET", f"/v2/models/{MODEL}").json()
    assert (meta["outputs"], meta["parameters"]) == ([{"name": "value", "datatype": "FP64", "shape": [-1]}],
                                                     {"task": "regression"})


def test_binary_metadata_says_its_task_beside_what_it_said_before() -> None:
    meta = ask(app_for(served()), "GET", f"/v2/models/{MODEL}").json()
    assert meta["parameters"] == {"task": "binary", "threshold": 0.5, "classes": [0, 1], "positive_label": 1}


@pytest.mark.parametrize(("model", "bins"), [
    (served(profile=SCORE_PROFILE), {"0": 1, "1": 0, "2": 0, "3": 1}),  # scores 0.2 and 1.0
    (served_regression(profile=VALUE_PROFILE), {"0": 1, "1": 0, "2": 1}),  # values 40 and 201
    (served_multiclass(profile=class_profile(["mid", "low", "high"])), {"0": 1, "1": 1, "2": 0, "other": 0}),
], ids=["binary", "regression", "multiclass"])
def test_each_prediction_is_counted_in_its_bin_of_the_profile(loop: asyncio.AbstractEventLoop, model: ServedModel,
                                                              bins: dict[str, int]) -> None:
    app = app_for(model, loop)
    assert ask(app, "POST", PREDICT, {"instances": ROWS}, loop=loop).status == 200
    assert {b: app.metrics.value("model_prediction_bin_total", bin=b) for b in bins} == bins
    exposition = app.metrics.render().decode()
    assert ("model_prediction_score_count" in exposition) == (model.task == "binary")  # a binary model's only


@pytest.mark.parametrize("model", [served_multiclass(Levels(broken=[0.6, 0.6, 0.6])),
                                   served_regression(Doubled(broken=float("inf")))], ids=["multiclass", "regression"])
def test_a_broken_model_of_another_task_fails_the_batch_with_500(loop: asyncio.AbstractEventLoop,
                                                                 model: ServedModel) -> None:
    app = app_for(model, loop)
    answer = ask(app, "POST", PREDICT, {"instances": [ROW]}, loop=loop)
    assert (answer.status, answer.json()["rule"]) == (500, "server")
    assert app.metrics.value("model_inference_errors_total") == 1


@pytest.mark.parametrize("model", [served_multiclass(), served_regression()], ids=["multiclass", "regression"])
def test_request_validation_is_the_same_for_every_task(loop: asyncio.AbstractEventLoop, model: ServedModel) -> None:
    app = app_for(model, loop)
    answer = ask(app, "POST", PREDICT, {"instances": [{**ROW, "amount": 500.0}]}, loop=loop)
    assert (answer.status, answer.json()["rule"], answer.json()["field"]) == (422, "max", "amount")
    assert ask(app, "POST", f"/v2/models/{MODEL}/infer", {"inputs": []}, loop=loop).status == 422


def test_a_metrics_table_without_the_prediction_bins_still_answers(loop: asyncio.AbstractEventLoop) -> None:
    model = served_regression(profile=VALUE_PROFILE)
    app = App(model, Metrics(model.name, model.version, model.contract.names, model.contract.bin_labels))
    app.batcher = Batcher(loop, model.predictor.predict, True, app, Idle(), 32, 0.005)
    app.ready = True
    answer = ask(app, "POST", PREDICT, {"instances": ROWS}, loop=loop)
    assert answer.status == 200 and app.metrics.value("model_inference_rows_total") == 2

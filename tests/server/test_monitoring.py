"""Drift monitoring and live accuracy in a real ``shim serve`` over loopback, with real scipy.

The acceptance checks of issue 12: held-back iris rows never alert, shifted petal lengths alert
within two windows (metrics, log, /monitoring); the reported KS statistic is scipy's; the false
alarm rate over 200 windows from the reference distribution stays within level + 3 standard
errors; feedback with 30 % wrong labels reads 0.70 and alerts against an expected 0.9; bad
feedback is a 4xx and serving carries on.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from scipy import stats

from .conftest import metric_samples
from .monitoring_kernels import infer_body, iris_copy, iris_split, linear_kernel

IRIS_INFER = "/v2/models/iris-classifier/infer"
IRIS_MONITORING = "/v2/models/iris-classifier/monitoring"
IRIS_FEEDBACK = "/v2/models/iris-classifier/feedback"


def wait_windows(client: httpx.Client, path: str, count: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        report = client.get(path).json()
        if report["windows_evaluated"] >= count:
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"only {report['windows_evaluated']} of {count} windows after {timeout}s")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def iris_split_rows() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return iris_split()


def test_iris_held_back_rows_never_alert_and_shifted_petal_length_alerts(
    server_factory, tmp_path: Path, iris_split_rows
) -> None:
    _x, _y, held, _held_y = iris_split_rows
    server = server_factory(iris_copy(tmp_path / "iris"), "--log-format", "json")
    rng = np.random.default_rng(12)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = held[rng.choice(len(held), 30)]
        for start in range(0, 30, 10):
            assert client.post(IRIS_INFER, json=infer_body("X", first[start : start + 10])).status_code == 200
        report = wait_windows(client, IRIS_MONITORING, 1)
        # the full reference is kept (120 rows): the KS statistic is scipy's own to 1e-9
        profile = json.loads((tmp_path / "iris" / "profile.json").read_text())
        for index, feature in enumerate(profile["features"]):
            expected = stats.ks_2samp(first[:, index].astype(np.float64), feature["reference"]["values"])
            reported = next(f for f in report["features"] if f["name"] == feature["name"])
            assert abs(reported["statistic"] - expected.statistic) <= 1e-9
            assert abs(reported["p_value"] - expected.pvalue) <= 1e-9
        for window in range(1, 50):  # 50 windows of held-back rows (drawn with replacement)
            rows = held[rng.choice(len(held), 30)]
            for start in range(0, 30, 10):
                client.post(IRIS_INFER, json=infer_body("X", rows[start : start + 10]))
            report = wait_windows(client, IRIS_MONITORING, window + 1)
            assert report["alerts"] == [], report
        assert report["windows_evaluated"] == 50
        shifted = held.copy()
        shifted[:, 2] += 2.0  # petal_length + 2 cm
        for window in range(2):
            rows = shifted[rng.permutation(len(shifted))]
            for start in range(0, 30, 10):
                client.post(IRIS_INFER, json=infer_body("X", rows[start : start + 10]))
            report = wait_windows(client, IRIS_MONITORING, 51 + window)
        assert "petal_length" in report["alerts"], report
        petal = next(f for f in report["features"] if f["name"] == "petal_length")
        assert petal["alert"] and petal["test"] == "ks" and petal["windows_in_a_row"] == 2
        assert all(not f["alert"] for f in report["features"] if f["name"] != "petal_length")
        metrics = client.get("/metrics").text
    alerts = metric_samples(metrics, "shim_drift_alert")
    assert alerts["feature=petal_length,model=iris-classifier,version=0.1.0"] == 1.0
    assert alerts["feature=sepal_width,model=iris-classifier,version=0.1.0"] == 0.0
    assert metric_samples(metrics, "shim_drift_windows_total")["model=iris-classifier,version=0.1.0"] == 52
    assert metric_samples(metrics, "shim_drift_statistic")[
        "feature=petal_length,model=iris-classifier,test=ks,version=0.1.0"
    ] == pytest.approx(petal["statistic"])
    classes = metric_samples(metrics, "shim_prediction_class_total")
    assert sum(classes.values()) == 52 * 30 and all("class=__other__" not in k for k in classes)
    warnings = [
        r
        for r in server.log_records()
        if r.get("level") in ("WARNING", "warning") and "petal_length" in r.get("msg", "")
    ]
    assert warnings, server.logs()[-3000:]
    assert "exceeds the alert threshold for 2 windows (N=30 rows each)" in warnings[0]["msg"]
    assert warnings[0]["msg"].startswith("feature 'petal_length' KS D=")


def test_false_alarm_rate_within_level_plus_three_standard_errors(server_factory, tmp_path: Path) -> None:
    level, windows, rows = 0.05, 200, 100
    kernel = linear_kernel(
        tmp_path / "linear",
        {"window": {"rows": rows}, "level": level, "windows_in_a_row": 1, "correction": "benjamini-hochberg"},
    )
    server = server_factory(kernel)
    rng = np.random.default_rng(2026)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for _window in range(windows):
            batch = rng.standard_normal((rows, 4)).astype(np.float32)
            assert client.post("/v2/models/linear-four/infer", json=infer_body("x", batch)).status_code == 200
        report = wait_windows(client, "/v2/models/linear-four/monitoring", windows)
        metrics = client.get("/metrics").text
    tested = report["features"] + report["outputs"]
    assert {e["name"] for e in tested} == {"a", "b", "c", "d", "y"} and report["windows_evaluated"] == windows
    assert all(e["rows"] == rows for e in tested)
    alarms = metric_samples(metrics, "shim_drift_windows_drifting_total")["model=linear-four,version=1.0.0"]
    rate = alarms / windows
    assert rate <= level + 3 * math.sqrt(level * (1 - level) / windows), (alarms, windows)


def test_feedback_joins_each_request_of_a_batched_execution_with_its_own_rows(
    tmp_path: Path, server_factory, iris_split_rows
) -> None:
    """Concurrent clients: the batcher merges their requests into shared executions and hands
    each execution to the monitor whole. Feedback for every request id must join exactly that
    request's rows (1-3 per request), which a mix-up between requests of one execution breaks."""
    from concurrent.futures import ThreadPoolExecutor

    x = iris_split_rows[0]
    server = server_factory(iris_copy(tmp_path / "iris", window={"rows": 100000}), "--log-format", "json")

    def client_run(worker: int) -> list[tuple[str, list[int]]]:
        served = []
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(40):
                count = 1 + (worker + i) % 3
                start = (worker * 40 + i) % (len(x) - count)
                answer = client.post(IRIS_INFER, json=infer_body("X", x[start : start + count]))
                assert answer.status_code == 200, answer.text
                document = answer.json()
                labels = next(o for o in document["outputs"] if o["name"] == "label")["data"]
                served.append((document["id"], labels))
        return served

    with ThreadPoolExecutor(16) as pool:
        served = [item for items in pool.map(client_run, range(16)) for item in items]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        metrics = client.get("/metrics").text
        executions = sum(v for k, v in metric_samples(metrics, "shim_batch_size_count").items())
        assert executions < len(served), "no two requests shared an execution: nothing was tested"
        for index, (request_id, labels) in enumerate(served):
            truth = labels if index % 2 else [(label + 1) % 3 for label in labels]
            answer = client.post(IRIS_FEEDBACK, json={"id": request_id, "truth": truth})
            assert answer.status_code == 200, answer.text
            assert answer.json()["rows"] == len(labels)
            assert answer.json()["correct"] == (len(labels) if index % 2 else 0), (request_id, labels)


def test_feedback_live_accuracy_and_alert(server_factory, tmp_path: Path, iris_split_rows) -> None:
    x, _y, _held, _held_y = iris_split_rows
    kernel = iris_copy(tmp_path / "iris", expected={"accuracy": 0.9, "tolerance": 0.05, "window": 1000})
    server = server_factory(kernel, "--log-format", "json")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for i in range(2000):
            row = x[i % len(x)][np.newaxis]
            answer = client.post(IRIS_INFER, json=infer_body("X", row)).json()
            served = next(o for o in answer["outputs"] if o["name"] == "label")["data"][0]
            truth = served if i % 10 >= 3 else (served + 1) % 3  # 30 % wrong
            response = client.post(IRIS_FEEDBACK, json={"id": answer["id"], "truth": truth})
            assert response.status_code == 200, response.text
        report = client.get(IRIS_MONITORING).json()["live_accuracy"]
        assert report["metric"] == "accuracy" and report["n"] == 1000
        assert abs(report["live"] - 0.70) <= 0.02 and report["alert"] is True
        metrics = client.get("/metrics").text
        # bad feedback: 4xx with a reason, nothing lost, serving unaffected
        answer = client.post(IRIS_INFER, json=infer_body("X", x[:1], request_id="client-id-1")).json()
        assert answer["id"] == "client-id-1"
        unknown = client.post(IRIS_FEEDBACK, json={"id": "never-served", "truth": 1})
        assert unknown.status_code == 404 and "no served prediction" in unknown.json()["error"]
        for bad in (
            {"id": "client-id-1"},
            {"id": 5, "truth": 1},
            {"id": "client-id-1", "truth": [1, 2]},
            {"id": "client-id-1", "truth": {"x": 1}},
            [1, 2],
            {"id": "client-id-1", "truth": 1, "x": 0},
        ):
            response = client.post(IRIS_FEEDBACK, json=bad)
            assert response.status_code == 400, (bad, response.text)
        assert client.post(IRIS_FEEDBACK, content=b"{not json").status_code == 400
        assert client.post(IRIS_FEEDBACK, json={"id": "client-id-1", "truth": 0}).status_code == 200
        assert client.post(IRIS_FEEDBACK, json={"id": "client-id-1", "truth": 0}).status_code == 404  # once
        assert client.post(IRIS_INFER, json=infer_body("X", x[:1])).status_code == 200
    assert metric_samples(metrics, "shim_live_accuracy")[
        "metric=accuracy,model=iris-classifier,version=0.1.0"
    ] == pytest.approx(0.70, abs=0.02)
    assert metric_samples(metrics, "shim_live_accuracy_alert")["model=iris-classifier,version=0.1.0"] == 1.0
    lines = [r["msg"] for r in server.log_records() if r.get("msg", "").startswith("live accuracy")]
    # the alert is raised once enough feedback arrived (min(window, 100) rows), and logged once
    assert lines == ["live accuracy 0.9 -> 0.7 (N=100)"], lines


def test_feedback_needs_the_same_credentials_as_inference(server_factory, tmp_path: Path) -> None:
    server = server_factory(iris_copy(tmp_path / "iris"), env={"KERNELSHIM_AUTH_TOKENS": "s3cret"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post(IRIS_FEEDBACK, json={"id": "a", "truth": 1}).status_code == 401
        assert client.get(IRIS_MONITORING).status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        answer = client.post(IRIS_INFER, json=infer_body("X", np.ones((1, 4))), headers=headers).json()
        assert (
            client.post(IRIS_FEEDBACK, json={"id": answer["id"], "truth": 1}, headers=headers).status_code
            == 200
        )


def test_monitoring_is_off_without_a_monitoring_block(server_factory, tmp_path: Path) -> None:
    kernel = iris_copy(tmp_path / "iris")
    path = kernel / "model_metadata.json"
    metadata = json.loads(path.read_text())
    del metadata["monitoring"]
    path.write_text(json.dumps(metadata))
    (kernel / "profile.json").unlink()
    server = server_factory(kernel)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post(IRIS_INFER, json=infer_body("X", np.ones((1, 4))))
        assert answer.status_code == 200 and "id" not in answer.json()  # no ids invented when off
        off = client.get(IRIS_MONITORING)
        assert off.status_code == 404 and "no monitoring block" in off.json()["error"]
        assert client.post(IRIS_FEEDBACK, json={"id": "x", "truth": 1}).status_code == 404
        assert "shim_drift" not in client.get("/metrics").text


def test_a_damaged_profile_is_refused_by_serve_and_never_stops_serving(tmp_path: Path) -> None:
    """``shim serve`` refuses the kernel with the gate's finding; an app built around the validator
    (an embedding application, a worker) serves with monitoring off and says why on /monitoring."""
    import asyncio
    import subprocess
    import sys

    from shim.contract.kernel import read_kernel
    from shim.server.app import InferenceApp
    from shim.server.settings import ServerSettings

    kernel_dir = iris_copy(tmp_path / "iris")
    (kernel_dir / "profile.json").write_text('{"profile_version": "1", "rows": 1,')
    refused = subprocess.run(
        [sys.executable, "-m", "shim.cli.main", "serve", str(kernel_dir), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "KS407" in refused.stdout + refused.stderr
    app = InferenceApp(read_kernel(kernel_dir), ServerSettings(kernel_dir=str(kernel_dir), threads=1))
    app.service.start()
    app.service.wait_loaded(60)

    async def exercise() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://kernelshim") as client:
            served = await client.post(IRIS_INFER, json=infer_body("X", np.ones((1, 4))))
            report = await client.get(IRIS_MONITORING)
            feedback = await client.post(IRIS_FEEDBACK, json={"id": "x", "truth": 1})
            return served, report, feedback

    try:
        served, report, feedback = asyncio.run(exercise())
    finally:
        app.service.stop()
    assert served.status_code == 200
    assert report.status_code == 404 and "monitoring is off: KS702" in report.json()["error"]
    assert feedback.status_code == 404


def test_drift_demo_prints_the_alert(tmp_path: Path) -> None:
    import subprocess
    import sys

    demo = Path(__file__).resolve().parents[2] / "examples" / "drift_demo.py"
    result = subprocess.run(
        [sys.executable, str(demo), "--windows", "2"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts: none" in result.stdout and "alerts: petal_length" in result.stdout
    assert (
        "feature 'petal_length' KS D=" in result.stdout
        and 'shim_drift_alert{feature="petal_length"' in result.stdout
    )


def test_grpc_requests_are_monitored_and_get_ids_for_feedback(server_factory, tmp_path: Path) -> None:
    """One dataplane: a gRPC inference is observed like a REST one and its id takes feedback."""
    triton_grpc = pytest.importorskip("tritonclient.grpc")
    from .conftest import free_port

    port = free_port()
    server = server_factory(iris_copy(tmp_path / "iris"), "--grpc-port", str(port))
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{port}")
    tensor = triton_grpc.InferInput("X", [3, 4], "FP32")
    tensor.set_data_from_numpy(np.tile(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32), (3, 1)))
    result = client.infer("iris-classifier", [tensor])
    request_id = result.get_response().id
    labels = result.as_numpy("label").tolist()
    assert request_id
    with httpx.Client(base_url=server.url, timeout=10) as http:
        joined = http.post(IRIS_FEEDBACK, json={"id": request_id, "truth": labels})
        assert joined.status_code == 200 and joined.json()["correct"] == 3, joined.text
        given = client.infer("iris-classifier", [tensor], request_id="caller-7")
        assert given.get_response().id == "caller-7"
        assert http.post(IRIS_FEEDBACK, json={"id": "caller-7", "truth": [0, 0, 1]}).json()["correct"] == 2
        deadline = time.monotonic() + 10  # the monitor thread counts rows after the response
        while True:
            rows = metric_samples(http.get("/metrics").text, "shim_monitored_rows_total")
            if rows.get("model=iris-classifier,version=0.1.0") == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert rows["model=iris-classifier,version=0.1.0"] == 6

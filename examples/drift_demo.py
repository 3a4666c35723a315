"""Drift monitoring, end to end: serve the iris kernel, replay held-back rows, then shifted ones.

Run: python examples/drift_demo.py
The iris kernel's contract names its training profile (profile.json, made by build_examples.py
from the 120 training rows with `shim profile`'s library function). This script starts
`shim serve` on a free loopback port, sends the 30 held-back rows, which the profile never saw,
for several 30-row windows (no alert), then the same rows with petal_length + 2 cm (an alert
naming petal_length within two windows), and prints what a person on call would see: the server's
alert log line, GET /v2/models/iris-classifier/monitoring and the Prometheus metrics.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_examples import iris_split

KERNEL = Path(__file__).resolve().parent / "kernels" / "iris-classifier"
MODEL = "/v2/models/iris-classifier"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def send_window(client: httpx.Client, rows: np.ndarray) -> None:
    for start in range(0, len(rows), 10):
        chunk = rows[start : start + 10]
        body = {
            "inputs": [
                {"name": "X", "datatype": "FP32", "shape": list(chunk.shape), "data": chunk.ravel().tolist()}
            ]
        }
        client.post(f"{MODEL}/infer", json=body).raise_for_status()


def wait_report(client: httpx.Client, windows: int) -> dict:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        report = client.get(f"{MODEL}/monitoring").json()
        if report["windows_evaluated"] >= windows:
            return report
        time.sleep(0.05)
    raise SystemExit("the monitor did not close the window in 30 s")


def summary(report: dict) -> str:
    cells = [
        f"{e['name']} {e['test']}={e['statistic']:.2f} p={e['adjusted_p_value']:.3f}"
        for e in report["features"]
    ]
    return (
        f"window {report['windows_evaluated']:>2}: "
        + ", ".join(cells)
        + f"  alerts: {', '.join(report['alerts']) or 'none'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=10, help="windows of held-back rows (default 10)")
    args = parser.parse_args()
    _x, _y, held, _held_y = iris_split()
    rng = np.random.default_rng(0)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="drift-demo-")) / "serve.log"
    command = [
        sys.executable,
        "-m",
        "shim.cli.main",
        "serve",
        str(KERNEL),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--grpc-port",
        "0",
        "--log-format",
        "text",
    ]
    print("$ shim serve examples/kernels/iris-classifier   (monitoring: profile.json, 30-row windows)")
    with log.open("wb") as handle:
        server = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(600):
                try:
                    if client.get("/v2/health/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                raise SystemExit(log.read_text())
            print(f"\n1) {args.windows} windows of held-back rows (never in the profile):")
            for window in range(1, args.windows + 1):
                send_window(client, held[rng.choice(len(held), len(held))])
                print("   " + summary(wait_report(client, window)))
            shifted = held.copy()
            shifted[:, 2] += 2.0
            print("\n2) the same rows with petal_length + 2 cm:")
            for window in range(args.windows + 1, args.windows + 3):
                send_window(client, shifted[rng.permutation(len(shifted))])
                print("   " + summary(wait_report(client, window)))
            report = client.get(f"{MODEL}/monitoring").json()
            metrics = client.get("/metrics").text
        time.sleep(0.2)
        print("\n3) the server log (what alerting on logs sees):")
        for line in log.read_text().splitlines():
            if "exceeds the alert threshold" in line or "no longer drifts" in line:
                print("   " + line)
        print(f"\n4) GET {MODEL}/monitoring (abridged):")
        petal = next(f for f in report["features"] if f["name"] == "petal_length")
        print(
            "   "
            + json.dumps(
                {
                    "windows_evaluated": report["windows_evaluated"],
                    "alerts": report["alerts"],
                    "petal_length": {
                        k: petal[k]
                        for k in ("test", "statistic", "adjusted_p_value", "windows_in_a_row", "alert")
                    },
                }
            )
        )
        print("\n5) Prometheus (/metrics):")
        for line in metrics.splitlines():
            if line.startswith(("shim_drift_alert{", "shim_drift_windows_total")):
                print("   " + line)
        return 0 if "petal_length" in report["alerts"] else 1
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    sys.exit(main())

"""Access control and audit on a live server: 401s for missing/wrong tokens (audited), open
health probes, token fingerprints instead of tokens in the log, per-client rate limits."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from shim.server.audit import fingerprint
from shim.server.ratelimit import RateLimiter

GOOD, OTHER = "s3cret-token-A", "s3cret-token-B"
INFER = "/v2/models/iris-classifier/infer"
BODY = json.dumps(
    {
        "id": "req-1",
        "inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}],
    }
).encode()


def _call(base: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    request = urllib.request.Request(
        base + path, body, {"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _audit_lines(server, at_least: int) -> list[dict]:
    """The audit line is written right after the response is sent: wait for it briefly."""
    deadline = time.monotonic() + 5
    while True:
        audit = [r for r in server.log_records() if r.get("logger") == "shim.audit"]
        if len(audit) >= at_least or time.monotonic() > deadline:
            return audit
        time.sleep(0.05)


def test_auth_audit_and_rate_limit(start_server) -> None:
    server = start_server(
        env={
            "KERNELSHIM_AUTH_TOKENS": f"{GOOD},{OTHER}",
            "KERNELSHIM_AUDIT_LOG": "true",
            "KERNELSHIM_RATE_LIMIT_PER_S": "1",
            "KERNELSHIM_RATE_LIMIT_BURST": "10",
        },
        name="auth",
    )
    server.wait_ready()  # health stays open without credentials
    for path in ("/v2/health/live", "/v2/health/ready", "/health", "/metrics"):
        assert _call(server.base, path)[0] == 200, path

    status, headers, _ = _call(server.base, INFER, BODY)
    assert status == 401 and "Bearer" in headers.get("www-authenticate", "")
    assert _call(server.base, INFER, BODY, {"Authorization": "Bearer wrong-token"})[0] == 401
    assert _call(server.base, INFER, BODY, {"X-API-Key": "wrong-key"})[0] == 401
    for path in ("/v2", "/v2/models/iris-classifier", "/v2/openapi.json"):
        assert _call(server.base, path)[0] == 401, path
    assert _call(server.base, INFER, BODY, {"Authorization": f"Bearer {GOOD}"})[0] == 200
    assert _call(server.base, INFER, BODY, {"X-API-Key": GOOD})[0] == 200
    status, _, openapi = _call(server.base, "/v2/openapi.json", headers={"X-API-Key": GOOD})
    assert status == 200 and json.loads(openapi)["security"]

    # rate limit: token B exhausts its burst and gets 429 + Retry-After; token A is unaffected
    statuses = [_call(server.base, INFER, BODY, {"X-API-Key": OTHER}) for _ in range(14)]
    limited = [s for s in statuses if s[0] == 429]
    assert limited and all(int(h["retry-after"]) >= 1 for _, h, _ in limited)
    assert sum(s[0] == 200 for s in statuses) <= 11
    assert _call(server.base, INFER, BODY, {"X-API-Key": GOOD})[0] == 200

    audit = _audit_lines(server, at_least=23)
    log_text = server.log()
    assert GOOD not in log_text and OTHER not in log_text and "wrong-token" not in log_text
    unauthorized = [r for r in audit if r["status"] == 401]
    assert len(unauthorized) >= 6
    assert {r["principal"] for r in unauthorized} >= {"anonymous", fingerprint(b"wrong-token")}
    ok = [r for r in audit if r["status"] == 200]
    assert {r["principal"] for r in ok} >= {fingerprint(GOOD.encode()), fingerprint(OTHER.encode())}
    first = ok[0]
    assert first["model"] == "iris-classifier" and first["version"] == "0.1.0"
    assert (
        first["request_id"] == "req-1"
        and first["latency_ms"] >= 0
        and first["client"].startswith("127.0.0.1")
    )
    assert first["inputs"] == [{"name": "X", "dtype": "float32", "shape": [1, 4]}]
    assert "input_values" not in first and "5.1" not in json.dumps(first)
    assert any(r["status"] == 429 for r in audit)
    assert server.alive()


def test_audit_logs_raw_inputs_only_when_enabled(start_server) -> None:
    server = start_server(
        env={"KERNELSHIM_AUDIT_LOG": "1", "KERNELSHIM_AUDIT_LOG_INPUTS": "1"}, name="inputs"
    )
    server.wait_ready()
    assert _call(server.base, INFER, BODY)[0] == 200
    audit = _audit_lines(server, at_least=1)
    assert audit[-1]["principal"] == "anonymous"
    assert audit[-1]["input_values"]["X"] == [5.099999904632568, 3.5, 1.399999976158142, 0.20000000298023224]


def test_token_bucket_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == 0.5
    assert limiter.acquire("b") == 0.0  # clients are independent
    now[0] += 0.5
    assert limiter.acquire("a") == 0.0
    assert RateLimiter.retry_after_header(0.01) == b"1"

"""Turn one run's results into ratios, the target check, the markdown table and docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
REFERENCE = ("kernelshim", "json")


def _runs(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in results["servers"]:
        for run in entry.get("runs", []):
            rows.append({"system": entry["system"], "model": entry["model"], **run})
    return rows


def _inprocess(results: dict[str, Any], model: str, batch: int) -> dict[str, Any] | None:
    return next((r for r in results["inprocess"].get(model, []) if r["batch"] == batch), None)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Ratios against kernelshim (JSON payload) and the project's targets, measured in this run."""
    rows = _runs(results)
    index = {(r["system"], r["model"], r["payload"], r["concurrency"]): r for r in rows}
    for row in rows:
        ref = index.get((REFERENCE[0], row["model"], REFERENCE[1], row["concurrency"]))
        if ref and row["throughput"]:
            row["kernelshim_json_speedup"] = round(ref["throughput"] / row["throughput"], 2)
        binary = index.get(("kernelshim", row["model"], "binary", row["concurrency"]))
        if binary and row["throughput"]:
            row["kernelshim_binary_speedup"] = round(binary["throughput"] / row["throughput"], 2)
        base = _inprocess(results, row["model"], 1)
        if base:
            row["p50_overhead_us"] = round(row["p50_ms"] * 1000 - base["p50_us"], 1)
    targets: list[dict[str, Any]] = []

    def ratio(payload: str, peer: str, model: str, concurrency: int) -> float | None:
        ks, other = index.get(("kernelshim", model, payload, concurrency)), None
        for (system, m, _p, c), row in index.items():
            if system.startswith(peer) and m == model and c == concurrency:
                other = row
        if ks and other and other["throughput"]:
            return round(ks["throughput"] / other["throughput"], 2)
        return None

    top = max(results["settings"]["concurrency"])
    for peer, goal in (("mlserver", 2.0), ("bentoml", 1.5)):
        for payload in ("json", "binary"):
            value = ratio(payload, peer, "mlp", top)
            targets.append(
                {
                    "target": f"mlp c={top}: kernelshim ({payload}) throughput / {peer} >= {goal}",
                    "measured": value,
                    "met": None if value is None else value >= goal,
                }
            )
    base = _inprocess(results, "mlp", 1)
    for payload in ("binary", "json"):
        ks = index.get(("kernelshim", "mlp", payload, 1))
        value = round(ks["p50_ms"] * 1000 - base["p50_us"], 1) if ks and base else None
        targets.append(
            {
                "target": f"mlp c=1: kernelshim ({payload}) p50 overhead over in-process <= 150 us",
                "measured": value,
                "met": None if value is None else value <= 150,
            }
        )
    for payload in ("binary", "json"):
        ks = index.get(("kernelshim", "cnn", payload, top))
        if not ks:
            continue
        batch = max(1, round(ks.get("mean_batch") or 1))
        limit = _inprocess(results, "cnn", batch)
        value = round(ks["throughput"] / limit["rows_per_s"], 3) if limit else None
        targets.append(
            {
                "target": f"cnn c={top}: kernelshim ({payload}) throughput / in-process at the same "
                f"batch ({batch}, mean {ks.get('mean_batch')}) >= 0.90",
                "measured": value,
                "met": None if value is None else value >= 0.9,
            }
        )
    for model in ("mlp", "cnn"):
        ks_grpc = index.get(("kernelshim", model, "grpc", top))
        if not ks_grpc:
            continue
        rest = index.get(("kernelshim", model, "binary", top))
        value = round(ks_grpc["throughput"] / rest["throughput"], 2) if rest and rest["throughput"] else None
        targets.append({"target": f"{model} c={top}: kernelshim gRPC throughput / its REST binary >= 1.0",
                        "measured": value, "met": None if value is None else value >= 1.0})
        for (system, m, payload, c), row in index.items():
            if payload == "grpc" and m == model and c == top and system != "kernelshim":
                value = round(ks_grpc["throughput"] / row["throughput"], 2) if row["throughput"] else None
                targets.append({"target": f"{model} c={top}: kernelshim gRPC throughput / {system} gRPC "
                                ">= 2.0", "measured": value, "met": None if value is None else value >= 2.0})
    mlp_json = index.get(("kernelshim", "mlp", "json", top))
    if mlp_json:
        value = round(mlp_json["p99_ms"] / mlp_json["p50_ms"], 2) if mlp_json["p50_ms"] else None
        targets.append({"target": f"mlp c={top}: kernelshim JSON p99 / p50 <= 3", "measured": value,
                        "met": None if value is None else value <= 3.0})
    return {"rows": rows, "targets": targets}


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def render_markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        f"Run {results['started']} ({results['mode']}), {machine['cpu']}, {machine['usable_cpus']} CPUs, "
        f"load average before {results['load_before'][0]:.2f} / after {results['load_after'][0]:.2f}; "
        f"onnxruntime {machine['onnxruntime']} with {results['settings']['threads']} intra-op "
        "thread(s) everywhere; "
        f"load generator {results['settings']['load_generator']}; requests per cell "
        f"{results['settings']['requests']}; total {results['total_seconds']} s.",
        "",
        "In-process limit (`session.run`, same threads):",
        "",
        "| model | batch | p50 us | p99 us | rows/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for model, measured in results["inprocess"].items():
        for r in sorted(measured, key=lambda r: r["batch"]):
            lines.append(
                f"| {model} | {r['batch']} | {_fmt(r['p50_us'], 1)} | {_fmt(r['p99_us'], 1)} | "
                f"{_fmt(r['rows_per_s'], 0)} |"
            )
    lines += [
        "",
        "Servers (1 row per request; `x ks-json` = kernelshim JSON throughput / this row's throughput; "
        "overhead = p50 - in-process p50 at batch 1):",
        "",
        "| model | system | payload | conc | req/s | p50 ms | p99 ms | errors | x ks-json "
        "| p50 overhead us | mean batch |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["summary"]["rows"]:
        lines.append(
            f"| {r['model']} | {r['system']} | {r['payload']} | {r['concurrency']} "
            f"| {_fmt(r['throughput'], 0)} | "
            f"{_fmt(r['p50_ms'], 3)} | {_fmt(r['p99_ms'], 3)} | {r['errors']} | "
            f"{_fmt(r.get('kernelshim_json_speedup'))} | {_fmt(r.get('p50_overhead_us'), 0)} | "
            f"{_fmt(r.get('mean_batch'))} |"
        )
    lines += ["", "Targets (measured in this run):", ""]
    for t in results["summary"]["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
        lines.append(f"- {t['target']}: **{_fmt(t['measured'])}** ({verdict})")
    if results["unavailable"]:
        lines += ["", "Could not run:", ""]
        lines += [f"- {name}: {reason}" for name, reason in results["unavailable"].items()]
    if results.get("peer_install"):
        lines += [
            "",
            "Peer venv install (0 = already installed): "
            + ", ".join(f"{k} {v['seconds']} s" for k, v in results["peer_install"].items()),
        ]
    startup = results.get("startup")
    if startup:
        lines += ["", "Validator and start-up:", ""]
        lines += [f"- {key}: {value}" for key, value in startup.items()]
    gate = results.get("gate")
    if gate:
        lines += ["", "Artifact gate (clean TorchScript archive; target >= 200 MB/s of weight data):", ""]
        lines += [f"- {key}: {value}" for key, value in gate.items()]
    return "\n".join(lines)


def write_docs(results: dict[str, Any], table: str) -> None:
    """Replace the generated section of docs/benchmarks.md, keeping the hand-written text."""
    begin, end = "<!-- benchmark-table:begin -->", "<!-- benchmark-table:end -->"
    text = DOCS.read_text() if DOCS.is_file() else f"# Benchmarks\n\n{begin}\n{end}\n"
    if begin not in text:
        text += f"\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1] if end in rest else ""
    DOCS.write_text(f"{head}{begin}\n{table}\n{end}{tail}")

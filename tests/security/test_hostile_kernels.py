"""Hostile kernels: every corpus entry is rejected with its own finding code, nothing executes,
and detection is at least what picklescan and modelscan find on the same files."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.build_corpus import (
    ENTRIES,
    build_corpus,
    exec_pickle,
    os_system_pickle,
    protocol0_pickle,
    pydoc_pickle,
    reduce_chain_pickle,
    subprocess_pickle,
)
from tests.security.conftest import REPO, SHIM

ON_CI = os.environ.get("CI") == "true"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, dict]]:
    """Build the corpus and validate all of it in one `shim validate` subprocess."""
    root = tmp_path_factory.mktemp("hostile")
    corpus_dir, markers = build_corpus(root)
    result = subprocess.run(
        [*SHIM, "validate", "--format", "json", *(str(corpus_dir / e.name) for e in ENTRIES)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    reports = {Path(k["kernel"]).name: k for k in json.loads(result.stdout)["kernels"]}
    return corpus_dir, markers, reports


def test_corpus_covers_every_kind_once_per_name() -> None:
    assert len({e.name for e in ENTRIES}) == len(ENTRIES)
    assert sum(e.executes for e in ENTRIES) >= 10


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_entry_rejected_with_its_code(corpus, entry) -> None:
    _, _, reports = corpus
    report = reports[entry.name]
    codes = {f["code"] for f in report["findings"]}
    assert not report["ok"]
    assert entry.code in codes, (
        f"{entry.name}: expected {entry.code}, got {sorted(codes)}: {report['findings']}"
    )
    for finding in report["findings"]:  # each finding says where and how to fix it
        assert finding["file"] and finding["message"] and finding["fix"], finding


def test_validation_executed_nothing(corpus) -> None:
    _, markers, _ = corpus
    assert list(markers.iterdir()) == [], "a corpus payload ran during `shim validate`"


def test_payloads_are_live(tmp_path: Path) -> None:
    """Control: the same payloads do create their marker when really unpickled, so the
    no-execution test above can fail."""
    builders = [
        os_system_pickle,
        subprocess_pickle,
        exec_pickle,
        reduce_chain_pickle,
        protocol0_pickle,
        pydoc_pickle,
    ]
    for index, build in enumerate(builders):
        (tmp_path / f"payload{index}").write_bytes(build(tmp_path / f"marker{index}"))
    script = "import pickle, sys\nfor p in sys.argv[1:]:\n    pickle.loads(open(p, 'rb').read())\n"
    subprocess.run(
        [sys.executable, "-c", script, *(str(tmp_path / f"payload{i}") for i in range(len(builders)))],
        check=True,
        timeout=60,
        capture_output=True,
    )
    assert all((tmp_path / f"marker{i}").exists() for i in range(len(builders)))


def _scanner_verdicts(corpus_dir: Path) -> dict[str, tuple[bool, bool]]:
    picklescan = (
        pytest.importorskip("picklescan.scanner")
        if not ON_CI
        else __import__("picklescan.scanner", fromlist=["x"])
    )
    modelscan = (
        pytest.importorskip("modelscan.modelscan")
        if not ON_CI
        else __import__("modelscan.modelscan", fromlist=["x"])
    )
    verdicts = {}
    logging.disable(logging.CRITICAL)
    try:
        for entry in ENTRIES:
            path = corpus_dir / entry.name
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                ps = picklescan.scan_directory_path(str(path))
                ms = modelscan.ModelScan().scan(path)
            verdicts[entry.name] = (ps.issues_count > 0 or ps.infected_files > 0, bool(ms.get("issues")))
    finally:
        logging.disable(logging.NOTSET)
    return verdicts


def test_detection_is_a_superset_of_picklescan_and_modelscan(corpus) -> None:
    corpus_dir, markers, reports = corpus
    verdicts = _scanner_verdicts(corpus_dir)
    rows = [f"{'entry':34} {'ours':18} picklescan modelscan"]
    for entry in ENTRIES:
        ours = sorted({f["code"] for f in reports[entry.name]["findings"]})
        ps, ms = verdicts[entry.name]
        rows.append(
            f"{entry.name:34} {','.join(ours):18} {'flagged' if ps else '-':10} {'flagged' if ms else '-'}"
        )
        if ps or ms:
            assert not reports[entry.name]["ok"], f"{entry.name}: flagged by a scanner but accepted by us"
    print("\n" + "\n".join(rows))
    ours_total = sum(not reports[e.name]["ok"] for e in ENTRIES)
    assert ours_total == len(ENTRIES)
    assert ours_total >= sum(ps for ps, _ in verdicts.values())
    assert ours_total >= sum(ms for _, ms in verdicts.values())
    assert list(markers.iterdir()) == [], "a payload ran while the scanners read the corpus"

"""``shim hook validate|dependencies|no-pickle``: run by pre-commit with the staged files.

Every test runs the real command; the result cache is checked through what the command prints
("(cached)", "served from cache") and through the cache's own counters, never through timing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import edit_json
from kernel_fixtures import malicious_pickle, policy_override

from shim.hooks.cache import FileHasher, ResultCache, kernel_manifest


@pytest.fixture
def repo(tmp_path: Path, kernel_copy) -> Path:
    """A directory standing in for the repository: the hooks run with it as the working directory."""
    root = tmp_path / "repo"
    (root / "kernels").mkdir(parents=True)
    kernel_copy("iris-classifier", root / "kernels" / "iris")
    kernel_copy("two-input-ranker", root / "kernels" / "ranker")
    (root / "README.md").write_text("not a kernel file\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def hook(run_shim, repo: Path, check: str, *files: str, **options):
    return run_shim("hook", check, *files, cwd=repo, **options)


def test_validate_maps_files_to_kernels_and_caches(run_shim, repo: Path) -> None:
    first = hook(run_shim, repo, "validate", "kernels/iris/model.onnx", "kernels/iris/samples/example.json",
                 "kernels/ranker/model_metadata.json", "README.md")
    assert first.returncode == 0, first.output
    assert "kernels/iris: ok, 1 golden sample(s) matched\n" in first.stdout
    assert "kernels/ranker: ok, 1 golden sample(s) matched\n" in first.stdout
    assert "cache" not in first.stdout

    second = hook(run_shim, repo, "validate", "kernels/iris/model.onnx", "kernels/ranker/model.onnx")
    assert second.returncode == 0
    assert "kernels/iris: ok, 1 golden sample(s) matched (cached)" in second.stdout
    assert "kernels/ranker: ok, 1 golden sample(s) matched (cached)" in second.stdout
    assert "2 of 2 kernel result(s) served from cache" in second.stdout


def test_a_changed_file_invalidates_only_its_kernel(run_shim, repo: Path) -> None:
    first = hook(run_shim, repo, "validate", "kernels/iris/model.onnx", "kernels/ranker/model.onnx")
    assert first.returncode == 0
    edit_json(repo / "kernels/iris/model_metadata.json",
              lambda m: m["outputs"][0].__setitem__("datatype", "INT32"))
    broken = hook(run_shim, repo, "validate", "kernels/iris/model_metadata.json", "kernels/ranker/model.onnx")
    assert broken.returncode == 1
    assert "kernels/iris/model_metadata.json:$.outputs[0].datatype: KS203" in broken.stdout
    assert "kernels/iris: 1 finding(s)\n" in broken.stdout  # re-run, not cached
    assert "kernels/ranker: ok, 1 golden sample(s) matched (cached)" in broken.stdout

    again = hook(run_shim, repo, "validate", "kernels/iris/model_metadata.json")
    assert again.returncode == 1, "cached findings fail the hook just like fresh ones"
    assert "kernels/iris: 1 finding(s) (cached)" in again.stdout
    assert "kernels/iris/model_metadata.json:$.outputs[0].datatype: KS203" in again.stdout


def test_a_same_size_rewrite_invalidates(run_shim, repo: Path) -> None:
    """Stat data alone must not hide a change: same size, mtime restored, content different."""
    sample = repo / "kernels/iris/samples/example.json"
    assert hook(run_shim, repo, "validate", str(sample.relative_to(repo))).returncode == 0
    text = sample.read_text()
    before = sample.stat()
    changed = text.replace('"data": [\n     0,\n     0\n    ]', '"data": [\n     0,\n     1\n    ]', 1)
    assert changed != text and len(changed) == len(text)
    sample.write_text(changed)
    os.utime(sample, ns=(before.st_atime_ns, before.st_mtime_ns))
    result = hook(run_shim, repo, "validate", str(sample.relative_to(repo)))
    assert result.returncode == 1
    assert "KS305" in result.stdout and "(cached)" not in result.stdout


def test_policy_change_invalidates(run_shim, repo: Path, tmp_path: Path) -> None:
    assert hook(run_shim, repo, "no-pickle", "kernels/iris/model.onnx").returncode == 0
    small = policy_override(tmp_path / "policies", max_kernel_size_bytes=1000)
    capped = hook(run_shim, repo, "no-pickle", "--policy-dir", small, "kernels/iris/model.onnx")
    assert capped.returncode == 1
    assert "kernels/iris: KS401 kernel is" in capped.stdout and "(cached)" not in capped.stdout


def test_no_cache_option(run_shim, repo: Path) -> None:
    assert hook(run_shim, repo, "dependencies", "kernels/iris/model.onnx").returncode == 0
    assert "(cached)" in hook(run_shim, repo, "dependencies", "kernels/iris/model.onnx").stdout
    uncached = hook(run_shim, repo, "dependencies", "--no-cache", "kernels/iris/model.onnx")
    assert "(cached)" not in uncached.stdout


def test_dependencies_hook_checks_only_requirements(run_shim, repo: Path) -> None:
    kernel = repo / "kernels/iris"
    (kernel / "requirements.txt").write_text("requests>=2\ngit+https://github.com/psf/requests.git\n")
    edit_json(kernel / "model_metadata.json", lambda m: m.pop("cost_center"))  # not this hook's business
    (kernel / "evil.pkl").write_bytes(malicious_pickle())  # nor this
    result = hook(run_shim, repo, "dependencies", "kernels/iris/requirements.txt")
    assert result.returncode == 1
    codes = {line.split(": ")[1].split()[0] for line in result.stdout.splitlines() if ": KS" in line}
    assert codes == {"KS503", "KS502"}
    assert "kernels/iris/requirements.txt:line 1: KS503" in result.stdout
    assert "kernels/iris/requirements.txt:line 2: KS502" in result.stdout


def test_no_pickle_hook_checks_only_artifacts(run_shim, repo: Path) -> None:
    kernel = repo / "kernels/ranker"
    (kernel / "tokenizer.bin").write_bytes(malicious_pickle(protocol=2))
    edit_json(kernel / "model_metadata.json", lambda m: m.pop("created_by"))
    (kernel / "requirements.txt").write_text("numpy\n")
    result = hook(run_shim, repo, "no-pickle", "kernels/ranker/model_metadata.json")
    assert result.returncode == 1
    assert "kernels/ranker/tokenizer.bin: KS403 is a pickle that would call posix.system" in result.stdout
    assert "kernels/ranker/tokenizer.bin: KS402" in result.stdout
    codes = {line.split(": ")[1].split()[0] for line in result.stdout.splitlines() if ": KS" in line}
    assert codes == {"KS402", "KS403"}


def test_files_outside_kernels_do_nothing(run_shim, repo: Path) -> None:
    result = hook(run_shim, repo, "validate", "README.md", "docs/removed.md")
    assert result.returncode == 0 and result.stdout == ""


def test_broken_metadata_in_the_validate_hook(run_shim, repo: Path) -> None:
    (repo / "kernels/iris/model_metadata.json").write_text('{"name": "iris",}\n')
    result = hook(run_shim, repo, "validate", "kernels/iris/model.onnx")
    assert result.returncode == 1
    assert "kernels/iris/model_metadata.json:line 1 column 17: KS003" in result.stdout


def test_corrupt_cache_files_are_misses(run_shim, repo: Path, shim_env: dict[str, str]) -> None:
    assert hook(run_shim, repo, "dependencies", "kernels/iris/model.onnx").returncode == 0
    cache = Path(shim_env["KERNELSHIM_CACHE_DIR"])
    stored = list(cache.rglob("*.json"))
    assert stored, "the first run stored results"
    for path in stored:
        path.write_text("{not json")
    result = hook(run_shim, repo, "dependencies", "kernels/iris/model.onnx")
    assert result.returncode == 0 and "(cached)" not in result.stdout
    assert "(cached)" in hook(run_shim, repo, "dependencies", "kernels/iris/model.onnx").stdout


def test_unwritable_cache_only_disables_caching(run_shim, repo: Path, shim_env: dict[str, str],
                                                tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the cache directory cannot be created under a file")
    env = {**shim_env, "KERNELSHIM_CACHE_DIR": str(blocker / "cache")}
    result = hook(run_shim, repo, "dependencies", "kernels/iris/model.onnx", env=env)
    assert result.returncode == 0
    assert "warning: cannot write the result cache" in result.stderr


def test_unknown_policy_dir_is_a_usage_error(run_shim, repo: Path, tmp_path: Path) -> None:
    result = hook(run_shim, repo, "validate", "--policy-dir", tmp_path / "missing", "kernels/iris/model.onnx")
    assert result.returncode == 2 and "policy directory does not exist" in result.stderr


def test_stat_cache_skips_rehashing_unchanged_files(tmp_path: Path, monkeypatch) -> None:
    """Like git's index: an unchanged file is stat'ed, not read; a changed one is read again."""
    kernel = tmp_path / "k"
    kernel.mkdir()
    big = kernel / "weights.data"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    (kernel / "model_metadata.json").write_text("{}")
    monkeypatch.setattr("shim.hooks.cache.RACY_WINDOW_NS", 0)  # files here were written just now
    cache = ResultCache(tmp_path / "cache")

    first = cache.hasher(kernel)
    manifest = kernel_manifest(kernel, first)
    assert first.hashed_bytes == big.stat().st_size + 2

    second = cache.hasher(kernel)
    assert kernel_manifest(kernel, second) == manifest
    assert second.hashed_bytes == 0

    with big.open("r+b") as handle:
        handle.write(b"\0")
    third = cache.hasher(kernel)
    changed = kernel_manifest(kernel, third)
    assert third.hashed_bytes == big.stat().st_size
    assert changed != manifest


def test_racily_clean_files_are_rehashed(tmp_path: Path) -> None:
    """A file changed within the racy window of its hashing is not trusted on stat alone."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    hasher = FileHasher(tmp_path / "stat.json")
    hasher.digest(path)
    hasher.save()
    again = FileHasher(tmp_path / "stat.json")
    again.digest(path)
    assert again.hashed_bytes == 100  # written < 2 s before it was hashed: re-read
    stored = json.loads((tmp_path / "stat.json").read_text())
    assert list(stored["files"]) == [str(path.absolute())]


def test_deleted_files_leave_the_stat_cache(tmp_path: Path) -> None:
    kernel = tmp_path / "k"
    kernel.mkdir()
    (kernel / "a").write_text("a")
    (kernel / "b").write_text("b")
    cache = ResultCache(tmp_path / "cache")
    kernel_manifest(kernel, cache.hasher(kernel))
    (kernel / "b").unlink()
    hasher = cache.hasher(kernel)
    kernel_manifest(kernel, hasher)
    assert sorted(Path(p).name for p in FileHasher(hasher.store).entries) == ["a"]


def test_links_are_part_of_the_key_but_never_followed(tmp_path: Path) -> None:
    kernel = tmp_path / "k"
    kernel.mkdir()
    (kernel / "link").symlink_to("/etc/passwd")
    manifest = kernel_manifest(kernel, FileHasher(None))
    assert manifest == [["link", "link", "/etc/passwd"]]
    shutil.rmtree(kernel)

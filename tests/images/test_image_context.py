"""Build contexts: exactly the files a level needs, as a byte-for-byte reproducible tar."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from shim.images.context import (
    FIXED_MTIME,
    ContextError,
    default_ca_bundle,
    images_dir,
    level0_context,
    level1_context,
    level2_context,
    split_ca_bundle,
)

from .conftest import EXAMPLE_KERNEL, REPO, TEST_CA


def _tar_bytes(context) -> bytes:
    buffer = io.BytesIO()
    context.write_tar(buffer)
    return buffer.getvalue()


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_level2_context_is_identical_for_a_copy_with_other_mtimes_and_modes(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / "copy"))
    for path in copy.rglob("*"):
        if path.is_file():
            path.chmod(0o600)
    images = images_dir()
    assert _tar_bytes(level2_context(images, copy)) == _tar_bytes(level2_context(images, EXAMPLE_KERNEL))


def test_level2_context_normalizes_owner_mode_and_time(tmp_path: Path) -> None:
    members = _members(_tar_bytes(level2_context(images_dir(), EXAMPLE_KERNEL)))
    assert {"Dockerfile", "kernel-requirements.txt", "kernel/model.onnx", "kernel/model_metadata.json",
            "kernel/samples/example.json", "kernel", "kernel/samples"} <= set(members)
    for member in members.values():
        assert (member.uid, member.gid, member.mtime) == (0, 0, FIXED_MTIME)
        assert member.mode == (0o755 if member.isdir() else 0o644)


def test_kernel_requirements_travel_separately(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / "copy"))
    without = level2_context(images_dir(), copy).entries["kernel-requirements.txt"]
    assert isinstance(without, bytes) and without.startswith(b"#")  # installs nothing
    (copy / "requirements.txt").write_text("six==1.16.0\n")
    context = level2_context(images_dir(), copy)
    assert context.entries["kernel-requirements.txt"] == copy / "requirements.txt"
    assert "kernel/requirements.txt" in context.entries


def test_level2_context_leaves_out_by_products(tmp_path: Path) -> None:
    copy = Path(shutil.copytree(EXAMPLE_KERNEL, tmp_path / "copy"))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    assert not any("__pycache__" in name for name in level2_context(images_dir(), copy).names())


def test_split_ca_bundle_yields_each_certificate(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(b"# comment\n" + TEST_CA.read_bytes() + b"\ngarbage\n" + TEST_CA.read_bytes())
    certificates = split_ca_bundle(bundle)
    assert len(certificates) == 2
    assert all(c.startswith(b"-----BEGIN CERTIFICATE-----") and c.endswith(b"-----END CERTIFICATE-----\n")
               for c in certificates)


def test_a_ca_bundle_without_certificates_is_a_clear_error(tmp_path: Path) -> None:
    der = tmp_path / "ca.cer"
    der.write_bytes(b"\x30\x82\x01\x0a not pem")
    with pytest.raises(ContextError, match=r"ca\.cer: holds no PEM certificate.*openssl x509 -inform der"):
        split_ca_bundle(der)
    with pytest.raises(ContextError, match="cannot read the CA bundle"):
        split_ca_bundle(tmp_path / "missing.pem")


def test_level0_context_carries_each_ca_certificate_as_a_crt_file(tmp_path: Path) -> None:
    second = tmp_path / "second.pem"
    second.write_bytes(TEST_CA.read_bytes())
    context = level0_context(images_dir(), [TEST_CA, second])
    assert context.entries["ca/corporate-0000.crt"] == context.entries["ca/corporate-0001.crt"]
    assert "Dockerfile" in context.entries
    assert not [n for n in level0_context(images_dir()).names() if n.endswith(".crt")]


def test_default_ca_bundle_follows_the_tools_environment(tmp_path: Path) -> None:
    bundle = tmp_path / "corp.pem"
    bundle.write_bytes(TEST_CA.read_bytes())
    assert default_ca_bundle({"SSL_CERT_FILE": str(bundle)}) == bundle
    missing = str(tmp_path / "gone.pem")
    assert default_ca_bundle({"PIP_CERT": missing, "REQUESTS_CA_BUNDLE": str(bundle)}) == bundle
    assert default_ca_bundle({}) is None


def test_level1_context_holds_the_frozen_files_and_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "kernelshim-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    names = level1_context(images_dir(), wheel).names()
    frozen = [f"requirements-frozen{suffix}.txt" for suffix in ("", "-cpu", "-gpu", "-torch")]
    assert {"Dockerfile", "smoke_test.py", f"dist/{wheel.name}", *frozen} <= set(names)
    with pytest.raises(ContextError, match="not a wheel file"):
        level1_context(images_dir(), tmp_path / "missing.whl")


def test_images_dir_override_must_hold_all_three_levels(tmp_path: Path) -> None:
    assert images_dir() == REPO / "images"
    (tmp_path / "level0-base").mkdir()
    (tmp_path / "level0-base" / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(ContextError, match="no Dockerfile in level1-runtime, level2-kernel"):
        images_dir(tmp_path)

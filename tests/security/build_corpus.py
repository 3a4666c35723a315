"""Build the hostile-kernel corpus: malicious and malformed kernels `shim validate` must reject.

The corpus is generated (never committed: a repository full of live pickle exploits trips every
scanner that looks at it) and deterministic: the same target directory always yields the same
bytes. Each pickle payload would run ``touch <marker dir>/<entry>`` if anything ever unpickled
it, so the tests can prove that validation executed nothing.

    python tests/security/build_corpus.py OUT_DIR   # writes OUT_DIR/corpus/<entry>/ and prints the table
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "kernels"
ONNX_BASE = EXAMPLES / "iris-classifier"
TORCHSCRIPT_BASE = EXAMPLES / "torchscript-mlp"
FIXED_ZIP_TIME = (2024, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Entry:
    name: str
    code: str  # the finding code `shim validate` must report for this entry
    what: str
    build: Callable[[Path, Path], None]  # (kernel dir, marker file) -> None
    executes: bool = False  # carries a payload that would create the marker if loaded


# -- pickle payloads, written opcode by opcode (pickle.dumps would resolve os.system to posix) ---------


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw  # BINUNICODE


def _short(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw  # SHORT_BINUNICODE


def _touch(marker: Path) -> str:
    return f"touch {marker}"


def os_system_pickle(marker: Path) -> bytes:
    """Protocol 2, GLOBAL os.system: the textbook malicious pickle."""
    return b"\x80\x02cos\nsystem\n" + _unicode(_touch(marker)) + b"\x85R."


def subprocess_pickle(marker: Path) -> bytes:
    """Protocol 4, STACK_GLOBAL with the names put in and fetched from the memo (scanner evasion)."""
    return (
        b"\x80\x04"
        + _short("subprocess")
        + b"\x94"
        + _short("getoutput")
        + b"\x94"
        + b"h\x00h\x01\x93"
        + _unicode(_touch(marker))
        + b"\x85R."
    )


def exec_pickle(marker: Path) -> bytes:
    """builtins.exec of Python source."""
    source = f"import os; os.system({_touch(marker)!r})"
    return b"\x80\x03cbuiltins\nexec\n" + _unicode(source) + b"\x85R."


def reduce_chain_pickle(marker: Path) -> bytes:
    """Chained __reduce__: getattr(__import__('os'), 'system')(cmd) — no os global in the stream."""
    return (
        b"\x80\x02cbuiltins\ngetattr\ncbuiltins\n__import__\n"
        + _unicode("os")
        + b"\x85R"
        + _unicode("system")
        + b"\x86R"
        + _unicode(_touch(marker))
        + b"\x85R."
    )


def protocol0_pickle(marker: Path) -> bytes:
    """Headerless protocol-0 pickle with trailing junk: no 0x80 header for a sniffer to see."""
    return f"cposix\nsystem\n(S'{_touch(marker)}'\ntR.".encode() + b"\x00junk after STOP"


def pydoc_pickle(marker: Path) -> bytes:
    """A less famous command-running global: pydoc.pipepager(text, cmd) pipes text into a shell command."""
    return b"\x80\x02cpydoc\npipepager\n" + _unicode("") + _unicode(_touch(marker)) + b"\x86R."


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, FIXED_ZIP_TIME), data)
    return buffer.getvalue()


# -- kernel builders ------------------------------------------------------------------------------------


def _copy(base: Path, kernel: Path) -> None:
    shutil.copytree(base, kernel, symlinks=True)


def _with_file(relative: str, payload: Callable[[Path], bytes], base: Path = ONNX_BASE):
    def build(kernel: Path, marker: Path) -> None:
        _copy(base, kernel)
        target = kernel / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload(marker))

    return build


def _edit_metadata(
    edit: Callable[[dict], None] | None = None, raw: bytes | None = None, base: Path = ONNX_BASE
):
    def build(kernel: Path, marker: Path) -> None:
        _copy(base, kernel)
        path = kernel / "model_metadata.json"
        if raw is not None:
            path.write_bytes(raw)
        else:
            metadata = json.loads(path.read_text())
            assert edit is not None
            edit(metadata)
            path.write_text(json.dumps(metadata, indent=1))

    return build


def _outside(kernel: Path) -> Path:
    """A directory next to the corpus, outside every kernel."""
    outside = kernel.parent.parent / "outside"
    outside.mkdir(exist_ok=True)
    return outside


def _symlinked_model(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    outside = _outside(kernel)
    shutil.copy(ONNX_BASE / "model.onnx", outside / "model.onnx")
    (kernel / "model.onnx").unlink()
    (kernel / "model.onnx").symlink_to(Path("..", "..", "outside", "model.onnx"))


def _symlinked_dir(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    (kernel / "extra").symlink_to("/etc", target_is_directory=True)


def _nested_zip(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    inner = zip_bytes({"state/payload.pkl": os_system_pickle(marker)})
    (kernel / "assets").mkdir()
    (kernel / "assets" / "bundle.zip").write_bytes(
        zip_bytes({"README.txt": b"tokenizer files", "inner.zip": inner})
    )


def _zip_with_pickle(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    (kernel / "assets").mkdir()
    (kernel / "assets" / "tokenizer.zip").write_bytes(zip_bytes({"vocab/data": reduce_chain_pickle(marker)}))


def _tampered_torchscript(member_suffix: str, payload: Callable[[Path], bytes]):
    def build(kernel: Path, marker: Path) -> None:
        _copy(TORCHSCRIPT_BASE, kernel)
        with zipfile.ZipFile(TORCHSCRIPT_BASE / "model.pt") as original:
            members = {info.filename: original.read(info) for info in original.infolist()}
        name = next(n for n in members if n.endswith(member_suffix))
        members[name] = payload(marker)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # torch needs stored members
            for member, data in members.items():
                archive.writestr(zipfile.ZipInfo(member, FIXED_ZIP_TIME), data)
        (kernel / "model.pt").write_bytes(buffer.getvalue())

    return build


def _unlisted_global_pickle(marker: Path) -> bytes:
    """A global that is not code execution by itself but is not something torch.jit.save writes."""
    return b"\x80\x02cnumpy.core.multiarray\n_reconstruct\n)R."


def _external_data(location: str):
    def build(kernel: Path, marker: Path) -> None:
        import numpy as np
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        _copy(ONNX_BASE, kernel)
        weight = numpy_helper.from_array(np.ones(4, dtype=np.float32), "W")
        weight.ClearField("raw_data")
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "16")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        graph = helper.make_graph(
            [helper.make_node("Add", ["X", "W"], ["Y"])],
            "external",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 4])],
            initializer=[weight],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        (kernel / "model.onnx").write_bytes(model.SerializeToString())
        (_outside(kernel) / "secret.bin").write_bytes(b"\x00" * 16)
        metadata = json.loads((kernel / "model_metadata.json").read_text())
        metadata["inputs"] = [{"name": "X", "datatype": "FP32", "shape": [-1, 4]}]
        metadata["outputs"] = [{"name": "Y", "datatype": "FP32", "shape": [-1, 4]}]
        (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=1))
        _ = onnx  # the import proves onnx is present; building needs only helper/numpy_helper

    return build


def _truncated_onnx(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    data = (ONNX_BASE / "model.onnx").read_bytes()
    (kernel / "model.onnx").write_bytes(data[: len(data) // 2])


def _empty_model(kernel: Path, marker: Path) -> None:
    _copy(ONNX_BASE, kernel)
    (kernel / "model.onnx").write_bytes(b"")


def _set(path: list[str | int], value: object) -> Callable[[dict], None]:
    def edit(metadata: dict) -> None:
        target = metadata
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return edit


def _duplicate_keys() -> bytes:
    text = (ONNX_BASE / "model_metadata.json").read_text()
    return text.replace(
        '"name": "iris-classifier",', '"name": "iris-classifier",\n  "name": "innocent-model",', 1
    ).encode()


def _huge_number(literal: str) -> bytes:
    text = (ONNX_BASE / "model_metadata.json").read_text()
    return text.replace('"max_batch_size": 64', f'"max_batch_size": {literal}', 1).encode()


ENTRIES: list[Entry] = [
    Entry(
        "pickle-os-system",
        "KS403",
        "protocol-2 pickle calling os.system, renamed .dat",
        _with_file("assets/vocab.dat", os_system_pickle),
        executes=True,
    ),
    Entry(
        "pickle-subprocess-memo",
        "KS403",
        "protocol-4 STACK_GLOBAL subprocess.getoutput via memo",
        _with_file("assets/state.bin.gz", subprocess_pickle),
        executes=True,
    ),
    Entry(
        "pickle-builtins-exec",
        "KS403",
        "builtins.exec of Python source",
        _with_file("assets/config.cache", exec_pickle),
        executes=True,
    ),
    Entry(
        "pickle-reduce-chain",
        "KS403",
        "getattr(__import__('os'), 'system') __reduce__ chain",
        _with_file("assets/tokenizer.state", reduce_chain_pickle),
        executes=True,
    ),
    Entry(
        "pickle-protocol0-headerless",
        "KS403",
        "headerless protocol-0 posix.system pickle + trailing junk",
        _with_file("assets/lookup.dat", protocol0_pickle),
        executes=True,
    ),
    Entry(
        "pickle-pydoc-pipepager",
        "KS403",
        "pydoc.pipepager running a shell command (less famous global)",
        _with_file("assets/bench.data", pydoc_pickle),
        executes=True,
    ),
    Entry(
        "pickle-forbidden-extension",
        "KS402",
        "a .pkl file at all (forbidden kind)",
        _with_file("preprocess.pkl", os_system_pickle),
        executes=True,
    ),
    Entry(
        "pickle-as-model-file",
        "KS403",
        "model.onnx that is really a pickle",
        _with_file("model.onnx", os_system_pickle),
        executes=True,
    ),
    Entry("zip-nested-pickle", "KS402", "pickle inside a zip inside a zip", _nested_zip, executes=True),
    Entry(
        "zip-headerless-member",
        "KS402",
        "reduce-chain pickle as an extensionless zip member",
        _zip_with_pickle,
        executes=True,
    ),
    Entry(
        "torchscript-tampered-data-pkl",
        "KS403",
        "TorchScript archive whose data.pkl calls os.system",
        _tampered_torchscript("/data.pkl", os_system_pickle),
        executes=True,
    ),
    Entry(
        "torchscript-tampered-constants",
        "KS403",
        "TorchScript constants.pkl with builtins.exec",
        _tampered_torchscript("/constants.pkl", exec_pickle),
        executes=True,
    ),
    Entry(
        "torchscript-unlisted-global",
        "KS404",
        "TorchScript data.pkl with a global torch never writes",
        _tampered_torchscript("/data.pkl", _unlisted_global_pickle),
    ),
    Entry(
        "torchscript-malformed-pickle",
        "KS403",
        "TorchScript data.pkl truncated mid-stream after its os.system global",
        _tampered_torchscript("/data.pkl", lambda m: os_system_pickle(m)[:-6]),
    ),
    Entry(
        "symlink-model-escape",
        "KS405",
        "model.onnx is a symlink to a file outside the kernel",
        _symlinked_model,
    ),
    Entry("symlink-dir-escape", "KS405", "directory symlink to /etc", _symlinked_dir),
    Entry(
        "model-file-traversal",
        "KS004",
        "model_file '../outside/model.onnx'",
        _edit_metadata(_set(["model_file"], "../outside/model.onnx")),
    ),
    Entry(
        "model-file-absolute",
        "KS004",
        "model_file '/etc/passwd'",
        _edit_metadata(_set(["model_file"], "/etc/passwd")),
    ),
    Entry(
        "onnx-external-data-escape",
        "KS105",
        "ONNX initializer with external data '../../outside/secret.bin'",
        _external_data("../../outside/secret.bin"),
    ),
    Entry(
        "onnx-external-data-absolute",
        "KS105",
        "ONNX initializer with external data '/etc/passwd'",
        _external_data("/etc/passwd"),
    ),
    Entry("onnx-truncated", "KS103", "model.onnx cut in half", _truncated_onnx),
    Entry("model-empty", "KS103", "0-byte model.onnx", _empty_model),
    Entry(
        "metadata-not-json",
        "KS003",
        "model_metadata.json is not JSON",
        _edit_metadata(raw=b"name: iris\nframework: onnx\n"),
    ),
    Entry(
        "metadata-duplicate-keys",
        "KS003",
        "duplicate 'name' key",
        lambda k, m: _edit_metadata(raw=_duplicate_keys())(k, m),
    ),
    Entry(
        "metadata-huge-float",
        "KS003",
        "max_batch_size 1e999 (infinity)",
        lambda k, m: _edit_metadata(raw=_huge_number("1e999"))(k, m),
    ),
    Entry(
        "metadata-huge-int",
        "KS003",
        "max_batch_size beyond 64 bits",
        lambda k, m: _edit_metadata(raw=_huge_number("9" * 40))(k, m),
    ),
    Entry(
        "metadata-huge-shape",
        "KS004",
        "a 2**62 static dimension",
        _edit_metadata(_set(["inputs", 0, "shape"], [-1, 2**62])),
    ),
]


def build_corpus(root: Path) -> tuple[Path, Path]:
    """Write every entry under ``root/corpus``; markers would appear in ``root/markers``."""
    corpus, markers = root / "corpus", root / "markers"
    for directory in (corpus, markers, root / "outside"):
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
    for entry in ENTRIES:
        entry.build(corpus / entry.name, markers / entry.name)
    return corpus, markers


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "build/hostile-corpus")
    corpus_dir, _ = build_corpus(out.resolve())
    for item in ENTRIES:
        print(f"{item.name:34} {item.code}  {item.what}")
    print(f"\n{len(ENTRIES)} kernels in {corpus_dir}")

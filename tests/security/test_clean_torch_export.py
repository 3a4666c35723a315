"""Clean torch.export archives: varied real programs the gate must accept without a finding, and
whose signature the static reader gets exactly as ``torch.export.load`` sees it.

The counterpart of test_torch_export_archive.py: a gate that refuses hostile archives must not
do so by refusing ordinary ones. The corpus covers what changes the archive's members and JSON:
buffers and tensor constants, tied (shared-storage) and non-contiguous parameters, batch norm,
attention, recurrent layers, integer and boolean inputs, dict/tuple/single outputs, control flow
(``torch.cond`` subgraphs), several dynamic dimensions and programs without any weights.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from shim.contract.torch_export_signature import read_signature  # noqa: E402
from shim.policy.loader import load_policies  # noqa: E402
from shim.policy.torch_export_archive import check_torch_export_archive, graph_of  # noqa: E402

nn = torch.nn
Dim = torch.export.Dim


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.embed.weight  # one storage, two parameters

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.embed(tokens).mean(dim=1))


class Strided(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 6).t())  # a non-contiguous view of its storage
        self.register_buffer("offset", torch.arange(12.0).reshape(3, 4)[:, 1])
        self.constant = torch.tensor([0.5, 2.0, -1.0])  # a tensor constant (data/constants/)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.offset.sum() + self.constant.sum()


class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum() > 0, lambda t: self.linear(t), lambda t: -t, (x,))


class Masked(nn.Module):
    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.where(mask, values, torch.zeros_like(values)), mask.sum(dim=1)


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(5, 7, batch_first=True)

    def forward(self, sequence: torch.Tensor) -> dict[str, torch.Tensor]:
        output, (hidden, _cell) = self.lstm(sequence)
        return {"last": output[:, -1], "hidden": hidden[0]}


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True, dropout=0.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.layer(tokens)


class NoWeights(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)


BATCH = Dim("batch", min=1, max=128)
#: name -> (module factory, example inputs, dynamic shapes, expected (name, datatype, dims) of inputs)
CORPUS: dict[str, tuple[Callable[[], nn.Module], tuple, object, list]] = {
    "mlp": (
        lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)),
        (torch.randn(3, 8),),
        ({0: BATCH},),
        [("input", "FP32", (None, 8))],
    ),
    "cnn-batchnorm": (
        lambda: nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        ),
        (torch.randn(2, 3, 16, 16),),
        ({0: BATCH},),
        [("input", "FP32", (None, 3, 16, 16))],
    ),
    "tied-embedding": (
        Tied,
        (torch.randint(0, 20, (2, 5)),),
        ({0: BATCH},),
        [("tokens", "INT64", (None, 5))],
    ),
    "strided-and-constants": (Strided, (torch.randn(2, 6),), ({0: BATCH},), [("x", "FP32", (None, 6))]),
    "cond-subgraphs": (Branching, (torch.randn(2, 4),), ({0: BATCH},), [("x", "FP32", (None, 4))]),
    "bool-mask-tuple": (
        Masked,
        (torch.randn(2, 3), torch.ones(2, 3, dtype=torch.bool)),
        {"values": {0: BATCH}, "mask": {0: BATCH}},
        [("values", "FP32", (None, 3)), ("mask", "BOOL", (None, 3))],
    ),
    "lstm-dict": (Recurrent, (torch.randn(2, 6, 5),), ({0: BATCH},), [("sequence", "FP32", (None, 6, 5))]),
    "conv1d-two-dynamic-dims": (
        lambda: nn.Conv1d(3, 5, 3, padding=1),
        (torch.randn(2, 3, 16),),
        ({0: BATCH, 2: Dim("length", max=512)},),
        [("input", "FP32", (None, 3, None))],
    ),
    "attention": (Attention, (torch.randn(2, 4, 16),), ({0: BATCH},), [("tokens", "FP32", (None, 4, 16))]),
    "static-no-weights": (NoWeights, (torch.randn(3, 5),), None, [("x", "FP32", (3, 5))]),
}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clean-pt2")
    built = {}
    for name, (factory, example, dynamic, _inputs) in CORPUS.items():
        torch.manual_seed(0)
        program = torch.export.export(factory().eval(), example, dynamic_shapes=dynamic)
        path = folder / f"{name}.pt2"
        torch.export.save(program, str(path))
        built[name] = path
    return built


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_clean_archive_has_no_finding(name: str, archives: dict[str, Path]) -> None:
    policy = load_policies().artifact
    patterns = policy.get("dangerous_pickle_globals") or []
    findings = check_torch_export_archive(
        str(archives[name]), "model.pt2", policy, lambda g: any(fnmatch.fnmatchcase(g, p) for p in patterns)
    )
    assert findings == [], [f.render() for f in findings]


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_static_signature_equals_the_loaded_program(name: str, archives: dict[str, Path]) -> None:
    """The JSON reader and torch.export.load agree: names, dtypes, static and dynamic dims."""
    signature = read_signature(graph_of(str(archives[name])))
    assert [(t.name, t.datatype.name, t.dims) for t in signature.inputs] == CORPUS[name][3]
    program = torch.export.load(str(archives[name]))
    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    user_inputs = [placeholders[n].meta["val"] for n in program.graph_signature.user_inputs]
    outputs = next(n for n in program.graph.nodes if n.op == "output").args[0]
    user_outputs = [o.meta["val"] for o in outputs[-len(program.graph_signature.user_outputs) :]]
    for tensor, value in zip(signature.inputs + signature.outputs, user_inputs + user_outputs, strict=True):
        dims = tuple(d if isinstance(d, int) else None for d in value.shape)
        assert tensor.dims == dims
        assert tensor.native == str(value.dtype).removeprefix("torch.")

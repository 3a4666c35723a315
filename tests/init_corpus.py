"""A corpus of real models, built here, for ``shim init``: torch.onnx exports of varied
architectures, skl2onnx pipelines (ZipMap and string-label classifiers, string-input models), hand
built graphs that lie about an output shape, take a shape tensor, produce NaN, or use an operator
onnxruntime does not have. Each entry says what ``shim init`` must do with it."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper


@dataclass(frozen=True)
class CorpusModel:
    name: str
    build: Callable[[Path], None]
    #: "valid": init exits 0 and, after filling FILL_ME, validates and serves; "rejected": init
    #: exits 1 with a message (kernel written when the model loads, for --sample to complete).
    outcome: str = "valid"
    max_batch_size: int = 0
    #: a text the init output must contain (a note on shapes, non-finite outputs, left-out outputs)
    says: str = ""


def _torch_export(module, example: tuple, path: Path, inputs: list[str], outputs: list[str],
                  dynamic: dict[str, dict[int, str]]) -> None:
    import torch

    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, dynamo=False, opset_version=17)


def torch_mlp(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3),
                                torch.nn.Softmax(dim=1))
    _torch_export(model, (torch.randn(2, 6),), path, ["features"], ["probabilities"],
                  {"features": {0: "N"}, "probabilities": {0: "N"}})


def torch_conv(path: Path) -> None:
    import torch

    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 5))
    _torch_export(model, (torch.randn(2, 1, 8, 8),), path, ["image"], ["logits"],
                  {"image": {0: "N"}, "logits": {0: "N"}})


class _Recurrent:
    @staticmethod
    def module(kind: str):
        import torch

        class Recurrent(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.rnn = getattr(torch.nn, kind)(4, 6, batch_first=True)
                self.head = torch.nn.Linear(6, 2)

            def forward(self, sequence):
                out, _state = self.rnn(sequence)
                return self.head(out[:, -1]), out

        return Recurrent()


def torch_lstm(path: Path) -> None:
    import torch

    torch.manual_seed(2)
    _torch_export(_Recurrent.module("LSTM"), (torch.randn(2, 5, 4),), path, ["sequence"], ["score", "states"],
                  {"sequence": {0: "N", 1: "T"}, "score": {0: "N"}, "states": {0: "N", 1: "T"}})


def torch_gru(path: Path) -> None:
    import torch

    torch.manual_seed(3)
    _torch_export(_Recurrent.module("GRU"), (torch.randn(2, 5, 4),), path, ["sequence"], ["score", "states"],
                  {"sequence": {0: "N", 1: "T"}, "score": {0: "N"}, "states": {0: "N", 1: "T"}})


def torch_embedding(path: Path) -> None:
    """INT64 token ids into an embedding table of 50 rows (ids past 49 are an error)."""
    import torch

    class Bag(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(50, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, ids):
            return self.head(self.embedding(ids).mean(dim=1))

    torch.manual_seed(4)
    _torch_export(Bag(), (torch.randint(0, 50, (2, 7)),), path, ["ids"], ["logits"],
                  {"ids": {0: "N", 1: "T"}, "logits": {0: "N"}})


def torch_attention(path: Path) -> None:
    import torch

    class SelfAttention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, tokens):
            out, weights = self.attention(tokens, tokens, tokens)
            return out, weights

    torch.manual_seed(5)
    _torch_export(SelfAttention(), (torch.randn(2, 4, 8),), path, ["tokens"], ["attended", "weights"],
                  {"tokens": {0: "N", 1: "T"}, "attended": {0: "N", 1: "T"},
                   "weights": {0: "N", 1: "T", 2: "T"}})


def torch_multi_output(path: Path) -> None:
    """Three outputs of three kinds: a sum, a maximum and an INT64 argmax."""
    import torch

    class Summary(torch.nn.Module):
        def forward(self, x):
            return x.sum(dim=1), x.max(dim=1).values, x.argmax(dim=1)

    _torch_export(Summary(), (torch.randn(2, 5),), path, ["x"], ["total", "largest", "where"],
                  {"x": {0: "N"}, "total": {0: "N"}, "largest": {0: "N"}, "where": {0: "N"}})


def torch_log_of_negated(path: Path) -> None:
    """log(-x): NaN on positive inputs; init must find the inputs where it is finite."""
    import torch

    class NegLog(torch.nn.Module):
        def forward(self, x):
            return torch.log(-x)

    _torch_export(NegLog(), (torch.randn(2, 3),), path, ["x"], ["y"], {"x": {0: "N"}, "y": {0: "N"}})


def torch_always_nan(path: Path) -> None:
    """sqrt(-(x*x) - 1): NaN on every input."""
    import torch

    class AlwaysNaN(torch.nn.Module):
        def forward(self, x):
            return torch.sqrt(-(x * x) - 1), x * 2

    _torch_export(AlwaysNaN(), (torch.randn(2, 3),), path, ["x"], ["root", "double"],
                  {"x": {0: "N"}, "root": {0: "N"}, "double": {0: "N"}})


def _iris() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1).astype(np.int64)
    return x, y


def _skl(model, initial_types, path: Path, options=None) -> None:
    from skl2onnx import to_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onx = to_onnx(model, initial_types=initial_types, options=options,
                      target_opset={"": 17, "ai.onnx.ml": 3})
    path.write_bytes(onx.SerializeToString())


def skl_zipmap_classifier(path: Path) -> None:
    """LogisticRegression with skl2onnx's default ZipMap probabilities (a sequence of maps)."""
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    x, y = _iris()
    _skl(LogisticRegression(max_iter=200).fit(x, y), [("X", FloatTensorType([None, 4]))], path)


def skl_pipeline_tensor_probabilities(path: Path) -> None:
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    x, y = _iris()
    model = make_pipeline(StandardScaler(), DecisionTreeClassifier(max_depth=3, random_state=0)).fit(x, y)
    _skl(model, [("X", FloatTensorType([None, 4]))], path, options={id(model): {"zipmap": False}})


def skl_string_labels(path: Path) -> None:
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import RandomForestClassifier

    x, y = _iris()
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(x, labels)
    _skl(model, [("X", FloatTensorType([None, 4]))], path, options={id(model): {"zipmap": False}})


def skl_regressor(path: Path) -> None:
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.linear_model import Ridge

    x, y = _iris()
    _skl(Ridge().fit(x.astype(np.float64), y.astype(np.float64)), [("X", DoubleTensorType([None, 4]))], path)


def skl_label_encoder(path: Path) -> None:
    """Strings in, their INT64 codes out: only the fitted vocabulary has a code."""
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.preprocessing import LabelEncoder

    model = LabelEncoder().fit(["red", "green", "blue", "violet"])
    _skl(model, [("colour", StringTensorType([None]))], path)


def skl_tfidf(path: Path) -> None:
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer

    corpus = ["the cat sat on the mat", "dogs chase cats", "the mat was red", "a dog and a cat"]
    model = TfidfVectorizer().fit(corpus)
    _skl(model, [("text", StringTensorType([None, 1]))], path)
    # skl2onnx's StringNormalizer asks for the en_US.UTF-8 locale, which a minimal image (this one)
    # lacks; onnxruntime then refuses the model. Lower-casing ASCII needs no more than C.UTF-8.
    model_proto = onnx.load(path)
    for node in model_proto.graph.node:
        if node.op_type == "StringNormalizer":
            kept = [a for a in node.attribute if a.name != "locale"]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute("locale", "C.UTF-8")])
    onnx.save(model_proto, path)


def _graph(path: Path, nodes, inputs, outputs, initializers=(), opset: int = 17, domains=()) -> None:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *domains])
    model.ir_version = 8
    onnx.save(model, path)


def lying_output_shape(path: Path) -> None:
    """Declares output Y as [N, 3]; returns [N, 5] (onnxruntime only warns)."""
    _graph(path, [helper.make_node("Shape", ["X"], ["s"]), helper.make_node("Reshape", ["X", "s"], ["Y"])],
           [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 5])],
           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])])


def unnamed_output_dims(path: Path) -> None:
    """An output whose dimensions the graph leaves unnamed and unknown (rank only)."""
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None])
    _graph(path, [helper.make_node("Relu", ["X"], ["Y"])],
           [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])], [y])


def shape_tensor_input(path: Path) -> None:
    """Reshape whose target shape is an input: X [1, 101] reshaped to the given 2-D shape (0 means
    zero, allowzero=1): only shapes whose product is the prime 101 work."""
    _graph(path, [helper.make_node("Reshape", ["X", "shape"], ["Y"], allowzero=1)],
           [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 101]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, None])])


def unknown_operator(path: Path) -> None:
    """An operator from a domain onnxruntime does not implement."""
    _graph(path, [helper.make_node("Frobnicate", ["X"], ["Y"], domain="com.example.custom")],
           [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
           [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
           domains=[helper.make_opsetid("com.example.custom", 1)])


CORPUS = [
    CorpusModel("torch-mlp", torch_mlp, max_batch_size=8),
    CorpusModel("torch-conv", torch_conv, max_batch_size=8),
    CorpusModel("torch-lstm", torch_lstm),
    CorpusModel("torch-gru", torch_gru),
    CorpusModel("torch-embedding", torch_embedding, max_batch_size=4),
    CorpusModel("torch-attention", torch_attention),
    CorpusModel("torch-multi-output", torch_multi_output, max_batch_size=16),
    CorpusModel("torch-log-negated", torch_log_of_negated),
    CorpusModel("torch-always-nan", torch_always_nan, says="allow_non_finite"),
    CorpusModel("skl-zipmap-classifier", skl_zipmap_classifier, says="left out of the contract"),
    CorpusModel("skl-pipeline-probabilities", skl_pipeline_tensor_probabilities, max_batch_size=32),
    CorpusModel("skl-string-labels", skl_string_labels),
    CorpusModel("skl-regressor", skl_regressor),
    CorpusModel("skl-label-encoder", skl_label_encoder),
    CorpusModel("skl-tfidf", skl_tfidf),
    CorpusModel("lying-output-shape", lying_output_shape, says="the graph declares shape [-1, 3]"),
    CorpusModel("unnamed-output-dims", unnamed_output_dims),
    CorpusModel("shape-tensor-input", shape_tensor_input, outcome="rejected", says="--sample"),
    CorpusModel("unknown-operator", unknown_operator, outcome="rejected", says="cannot be loaded"),
]

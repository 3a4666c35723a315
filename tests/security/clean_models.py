"""Build a corpus of clean TorchScript kernels: real, varied small torch models `shim validate` must accept.

The hostile corpus (build_corpus.py) proves the validator rejects what it must; this one proves it
does not reject what it must not. Every kernel is a real model saved by ``torch.jit.save`` (scripted,
traced, frozen or quantized), with a contract and a golden sample produced by ``torch.jit.load``-ing
the archive that was written and running it, so each kernel is exactly what a data scientist ships.
The corpus is deterministic: weights and inputs come from fixed seeds, so metadata and samples are
the same on every build. The archives are byte-identical only under a fixed PYTHONHASHSEED: TorchScript
writes a module's ``__constants__`` (a Python set) into the archive's code in hash order.

    python tests/security/clean_models.py OUT_DIR   # writes OUT_DIR/<name>/ and prints the list

No ``from __future__ import annotations`` here: TorchScript reads class-level attribute annotations
at runtime and does not understand them as strings.
"""

import argparse
import json
import math
import shutil
import sys
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CREATED_AT = "2026-11-01T09:00:00Z"
BATCH = 2  # batch size of the golden samples
COMMON = {
    "created_by": "data-science@example.com",
    "training_dataset": "s3://ml-datasets/clean-corpus/v1/",
    "cost_center": "cc-ml-4711",
    "labels": {"data-classification": "internal", "team": "ds-core", "corpus": "clean-torchscript"},
}
DATATYPE_OF = {
    torch.float16: "FP16",
    torch.float32: "FP32",
    torch.float64: "FP64",
    torch.int8: "INT8",
    torch.int16: "INT16",
    torch.int32: "INT32",
    torch.int64: "INT64",
    torch.uint8: "UINT8",
    torch.bool: "BOOL",
}
QUANT_TOLERANCE = {"atol": 1e-3, "rtol": 1e-3}
FP16_TOLERANCE = {"atol": 5e-3, "rtol": 5e-3}


@dataclass(frozen=True)
class Port:
    """One contract tensor; -1 marks a dynamic dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def contract(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass
class Built:
    """What a model builder returns: the TorchScript module, its contract and a fixed example input."""

    module: Any  # torch.jit.ScriptModule
    inputs: list[tuple[Port, Tensor]]
    outputs: list[Port]
    description: str
    batching: bool = True  # rows are independent: declare dynamic batching
    tolerance: dict[str, float] | None = None  # written to model_metadata.json
    sample_tolerance: dict[str, float] | None = None  # written to samples/example.json
    check: Callable[[Any], None] | None = None  # extra assertion on the re-loaded module


@dataclass(frozen=True)
class CleanModel:
    name: str  # kernel directory and contract name (a DNS-1123 label)
    kind: str  # what the corpus entry exercises, for people
    build: Callable[[torch.Generator], Built]
    tags: frozenset[str] = field(default_factory=frozenset)


# -- helpers --------------------------------------------------------------------------------------------


def _randn(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> Tensor:
    return torch.randn(shape, generator=g).to(dtype)


def _randint(g: torch.Generator, high: int, *shape: int, dtype: torch.dtype = torch.int64) -> Tensor:
    return torch.randint(0, high, shape, generator=g).to(dtype)


def _fp32(name: str, shape: Sequence[int]) -> Port:
    return Port(name, "FP32", tuple(shape))


def _script(module: nn.Module) -> Any:
    return torch.jit.script(module.eval())


def _trace(module: nn.Module, *example: Tensor) -> Any:
    return torch.jit.trace(module.eval(), example)


@torch.no_grad()
def _randomize_norm_stats(module: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, as a trained model would have."""
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.running_mean.uniform_(-0.2, 0.2)
            child.running_var.uniform_(0.5, 1.5)
            child.weight.uniform_(0.5, 1.5)
            child.bias.uniform_(-0.1, 0.1)
    return module


# -- models: Linear MLPs --------------------------------------------------------------------------------


def mlp_shallow(g: torch.Generator) -> Built:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    return Built(
        _script(model),
        [(_fp32("x", (-1, 8)), _randn(g, BATCH, 8))],
        [_fp32("logits", (-1, 3))],
        "One-hidden-layer MLP (torch.jit.script) scoring 8 features into 3 classes.",
    )


def mlp_deep(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 32), nn.Tanh(), nn.Dropout(0.1),
        nn.Linear(32, 24), nn.SiLU(), nn.Linear(24, 16), nn.LeakyReLU(0.05),
        nn.Linear(16, 8), nn.ELU(), nn.Linear(8, 2), nn.Softmax(dim=1),
    )
    return Built(
        _script(model),
        [(_fp32("x", (-1, 12)), _randn(g, BATCH, 12))],
        [_fp32("probabilities", (-1, 2))],
        "Six-layer MLP with GELU/Tanh/SiLU/LeakyReLU/ELU and dropout (torch.jit.script).",
    )


def traced_mlp(g: torch.Generator) -> Built:
    model = nn.Sequential(nn.Linear(6, 10), nn.Softplus(), nn.Linear(10, 1), nn.Sigmoid())
    x = _randn(g, BATCH, 6)
    return Built(
        _trace(model, x),
        [(_fp32("x", (-1, 6)), x)],
        [_fp32("probability", (-1, 1))],
        "Binary scorer MLP traced with torch.jit.trace.",
    )


# -- models: convolutions -------------------------------------------------------------------------------


def cnn1d_bn_pool(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Conv1d(4, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(8, 8, 3, dilation=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(8, 3),
    )
    return Built(
        _script(_randomize_norm_stats(model)),
        [(_fp32("signal", (-1, 4, 32)), _randn(g, BATCH, 4, 32))],
        [_fp32("logits", (-1, 3))],
        "1-D CNN over 4-channel signals: Conv1d, BatchNorm1d, max and adaptive average pooling.",
    )


def cnn2d_bn_pool(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, stride=2), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(3),
        nn.Flatten(), nn.Linear(16, 5),
    )
    return Built(
        _script(_randomize_norm_stats(model)),
        [(_fp32("image", (-1, 3, 16, 16)), _randn(g, BATCH, 3, 16, 16))],
        [_fp32("logits", (-1, 5))],
        "2-D CNN: Conv2d, BatchNorm2d, max and average pooling, linear head.",
    )


def cnn3d_bn_pool(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4), nn.ReLU(), nn.AvgPool3d(2),
        nn.Conv3d(4, 4, 3), nn.AdaptiveMaxPool3d(1), nn.Flatten(), nn.Linear(4, 2),
    )
    return Built(
        _script(_randomize_norm_stats(model)),
        [(_fp32("volume", (-1, 1, 8, 8, 8)), _randn(g, BATCH, 1, 8, 8, 8))],
        [_fp32("logits", (-1, 2))],
        "3-D CNN over small volumes: Conv3d, BatchNorm3d, average and adaptive max pooling.",
    )


def cnn_depthwise(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4),
    )
    return Built(
        _script(_randomize_norm_stats(model)),
        [(_fp32("image", (-1, 3, 16, 16)), _randn(g, BATCH, 3, 16, 16))],
        [_fp32("logits", (-1, 4))],
        "MobileNet-style depthwise-separable block: grouped 3x3 conv, pointwise 1x1 conv, Hardswish.",
    )


def convtranspose_decoder(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Linear(6, 128), nn.ReLU(), nn.Unflatten(1, (8, 4, 4)),
        nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1), nn.Sigmoid(),
    )
    return Built(
        _script(model),
        [(_fp32("latent", (-1, 6)), _randn(g, BATCH, 6))],
        [_fp32("image", (-1, 1, 16, 16))],
        "Decoder: linear projection then two ConvTranspose2d upsamplings to a 16x16 image.",
    )


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.down(x))


def traced_resnet(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), _BasicBlock(8, 8, 1), _BasicBlock(8, 12, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 6),
    )
    x = _randn(g, BATCH, 3, 16, 16)
    return Built(
        _trace(_randomize_norm_stats(model), x),
        [(_fp32("image", (-1, 3, 16, 16)), x)],
        [_fp32("logits", (-1, 6))],
        "ResNet-style residual CNN (basic blocks, 1x1 downsample) traced with torch.jit.trace.",
    )


def frozen_cnn(g: torch.Generator) -> Built:
    model = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(24, 3),
    )
    frozen = torch.jit.freeze(_script(_randomize_norm_stats(model)))
    return Built(
        frozen,
        [(_fp32("image", (-1, 2, 10, 10)), _randn(g, BATCH, 2, 10, 10))],
        [_fp32("logits", (-1, 3))],
        "CNN scripted then torch.jit.freeze'd: BatchNorm folded, weights stored as constants.",
    )


def upsample_pixelshuffle(g: torch.Generator) -> Built:
    class Upsampler(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.expand = nn.Conv2d(2, 8, 3, padding=1)
            self.shuffle = nn.PixelShuffle(2)
            self.mix = nn.Conv2d(2, 1, 1)

        def forward(self, x: Tensor) -> Tensor:
            y = self.shuffle(self.expand(x))
            y = F.interpolate(y, scale_factor=0.5, mode="bilinear", align_corners=False)
            return self.mix(y) + F.interpolate(x[:, :1], scale_factor=1.0, mode="nearest")

    return Built(
        _script(Upsampler()),
        [(_fp32("image", (-1, 2, 6, 6)), _randn(g, BATCH, 2, 6, 6))],
        [_fp32("refined", (-1, 1, 6, 6))],
        "PixelShuffle upsampling with bilinear and nearest interpolation.",
    )


def uint8_image_input(g: torch.Generator) -> Built:
    class PixelClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.head = nn.Linear(4, 3)

        def forward(self, pixels: Tensor) -> Tensor:
            x = pixels.to(torch.float32) / 255.0
            x = F.relu(self.conv((x - 0.5) / 0.25))
            return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

    return Built(
        _script(PixelClassifier()),
        [(Port("pixels", "UINT8", (-1, 1, 8, 8)), _randint(g, 256, BATCH, 1, 8, 8, dtype=torch.uint8))],
        [_fp32("logits", (-1, 3))],
        "Classifier taking raw UINT8 pixels and normalising them inside the model.",
    )


# -- models: recurrent ----------------------------------------------------------------------------------


def lstm_classifier(g: torch.Generator) -> Built:
    class LSTMClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(6, 12, num_layers=2, batch_first=True, bidirectional=True)
            self.head = nn.Linear(24, 4)

        def forward(self, sequence: Tensor) -> Tensor:
            out, _ = self.lstm(sequence)
            return self.head(out[:, -1])

    return Built(
        _script(LSTMClassifier()),
        [(_fp32("sequence", (-1, -1, 6)), _randn(g, BATCH, 7, 6))],
        [_fp32("logits", (-1, 4))],
        "Two-layer bidirectional LSTM (batch_first) classifying variable-length sequences.",
    )


def gru_encoder(g: torch.Generator) -> Built:
    class GRUEncoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = nn.GRU(5, 8, batch_first=True)

        def forward(self, sequence: Tensor) -> tuple[Tensor, Tensor]:
            states, last = self.gru(sequence)
            return states, last

    return Built(
        _script(GRUEncoder()),
        [(_fp32("sequence", (-1, -1, 5)), _randn(g, BATCH, 6, 5))],
        [_fp32("states", (-1, -1, 8)), _fp32("last_hidden", (1, -1, 8))],
        "GRU encoder (batch_first) returning every state and the last hidden state as a tuple.",
        batching=False,  # last_hidden is (layers, batch, hidden): no leading batch dimension
    )


def rnn_tagger(g: torch.Generator) -> Built:
    class RNNTagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.RNN(4, 6, num_layers=2, batch_first=True, nonlinearity="tanh")
            self.tags = nn.Linear(6, 3)

        def forward(self, frames: Tensor) -> Tensor:
            out, _ = self.rnn(frames)
            return F.log_softmax(self.tags(out), dim=-1)

    return Built(
        _script(RNNTagger()),
        [(_fp32("frames", (-1, 10, 4)), _randn(g, BATCH, 10, 4))],
        [_fp32("tag_log_probs", (-1, 10, 3))],
        "Two-layer Elman RNN (batch_first, tanh) tagging each of 10 frames.",
    )


# -- models: embeddings and attention -------------------------------------------------------------------


def embedding_bag_recommender(g: torch.Generator) -> Built:
    class Recommender(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.items = nn.Embedding(50, 8, padding_idx=0)
            self.tags = nn.EmbeddingBag(30, 8, mode="mean")
            self.score = nn.Linear(16, 1)

        def forward(self, history: Tensor, tags: Tensor) -> Tensor:
            h = self.items(history).mean(1)
            return self.score(torch.cat([h, self.tags(tags)], dim=1))

    return Built(
        _script(Recommender()),
        [
            (Port("history", "INT64", (-1, 6)), _randint(g, 50, BATCH, 6)),
            (Port("tags", "INT64", (-1, 4)), _randint(g, 30, BATCH, 4)),
        ],
        [_fp32("score", (-1, 1))],
        "Recommender: Embedding (padding_idx) over item history plus EmbeddingBag (mean) over tags.",
    )


def int32_token_input(g: torch.Generator) -> Built:
    class TokenAverager(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(20, 6)
            self.head = nn.Linear(6, 2)

        def forward(self, token_ids: Tensor) -> Tensor:
            return self.head(self.embed(token_ids.long()).mean(1))

    return Built(
        _script(TokenAverager()),
        [(Port("token_ids", "INT32", (-1, -1)), _randint(g, 20, BATCH, 5, dtype=torch.int32))],
        [_fp32("logits", (-1, 2))],
        "Bag-of-embeddings classifier taking INT32 token ids.",
    )


def tied_weights_lm(g: torch.Generator) -> Built:
    class TinyLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(40, 16)
            self.norm = nn.LayerNorm(16)
            self.decoder = nn.Linear(16, 40, bias=False)
            self.decoder.weight = self.embed.weight  # tied input and output embeddings

        def forward(self, token_ids: Tensor) -> Tensor:
            return self.decoder(self.norm(self.embed(token_ids)))

    def check(module: Any) -> None:
        assert module.decoder.weight.data_ptr() == module.embed.weight.data_ptr(), "weights not tied"

    return Built(
        _script(TinyLM()),
        [(Port("token_ids", "INT64", (-1, -1)), _randint(g, 40, BATCH, 5))],
        [_fp32("logits", (-1, -1, 40))],
        "Tiny language model whose output projection shares (ties) the embedding weight.",
        check=check,
    )


def transformer_encoder(g: torch.Generator) -> Built:
    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.position = nn.Parameter(torch.randn(1, 12, 16) * 0.02)
            self.layer = nn.TransformerEncoderLayer(
                16, 4, dim_feedforward=32, dropout=0.0, batch_first=True, norm_first=True
            )
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(16, 3)

        def forward(self, tokens: Tensor) -> Tensor:
            h = self.layer(tokens + self.position)
            return self.head(self.norm(h).mean(1))

    return Built(
        _script(Encoder()),
        [(_fp32("tokens", (-1, 12, 16)), _randn(g, BATCH, 12, 16))],
        [_fp32("logits", (-1, 3))],
        "TransformerEncoderLayer (pre-norm, 4 heads) with a learned position embedding and mean pooling.",
    )


def multihead_attention(g: torch.Generator) -> Built:
    class CrossAttention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(12, 3, batch_first=True)

        def forward(self, query: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
            out, weights = self.attn(query, context, context, need_weights=True)
            assert weights is not None
            return out, weights

    return Built(
        _script(CrossAttention()),
        [
            (_fp32("query", (-1, 4, 12)), _randn(g, BATCH, 4, 12)),
            (_fp32("context", (-1, 6, 12)), _randn(g, BATCH, 6, 12)),
        ],
        [_fp32("attended", (-1, 4, 12)), _fp32("attention", (-1, 4, 6))],
        "nn.MultiheadAttention cross-attention returning outputs and averaged attention weights.",
    )


def einsum_attention_pool(g: torch.Generator) -> Built:
    class AttentionPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query = nn.Parameter(torch.randn(8))
            self.scale: Final[float] = 1.0 / math.sqrt(8)

        def forward(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
            scores = torch.einsum("btd,d->bt", tokens, self.query) * self.scale
            weights = torch.softmax(scores, dim=1)
            return torch.einsum("bt,btd->bd", weights, tokens), weights

    return Built(
        _script(AttentionPool()),
        [(_fp32("tokens", (-1, -1, 8)), _randn(g, BATCH, 5, 8))],
        [_fp32("pooled", (-1, 8)), _fp32("weights", (-1, -1))],
        "Attention pooling written with torch.einsum and a learned query.",
    )


def bool_mask_pooling(g: torch.Generator) -> Built:
    class MaskedMean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(8, 2)

        def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
            weights = mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)
            return self.head(pooled)

    mask = _randint(g, 2, BATCH, 5).bool()
    mask[:, 0] = True
    return Built(
        _script(MaskedMean()),
        [(_fp32("tokens", (-1, -1, 8)), _randn(g, BATCH, 5, 8)), (Port("mask", "BOOL", (-1, -1)), mask)],
        [_fp32("logits", (-1, 2))],
        "Masked mean pooling driven by a BOOL padding mask input.",
    )


# -- models: normalisation, buffers, containers, attributes ---------------------------------------------


def norm_layers(g: torch.Generator) -> Built:
    class Norms(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer_norm = nn.LayerNorm(8)
            self.group_norm = nn.GroupNorm(4, 16)
            self.instance_norm = nn.InstanceNorm1d(16, affine=True)
            self.head = nn.Linear(128, 4)
            with torch.no_grad():
                for norm in (self.layer_norm, self.group_norm, self.instance_norm):
                    norm.weight.uniform_(0.5, 1.5)
                    norm.bias.uniform_(-0.2, 0.2)

        def forward(self, features: Tensor) -> Tensor:
            x = self.instance_norm(self.group_norm(self.layer_norm(features)))
            return self.head(x.flatten(1))

    return Built(
        _script(Norms()),
        [(_fp32("features", (-1, 16, 8)), _randn(g, BATCH, 16, 8))],
        [_fp32("logits", (-1, 4))],
        "LayerNorm, GroupNorm and affine InstanceNorm1d in sequence.",
    )


def buffers_normalizer(g: torch.Generator) -> Built:
    class Standardize(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.randn(7))
            self.register_buffer("std", torch.rand(7) + 0.5)
            self.register_buffer("clip", torch.tensor(3.0))
            self.register_buffer("eps", torch.tensor(1e-6), persistent=False)
            self.head = nn.Linear(7, 2)

        def forward(self, x: Tensor) -> Tensor:
            z = ((x - self.mean) / (self.std + self.eps)).clamp(-self.clip, self.clip)
            return self.head(z)

    return Built(
        _script(Standardize()),
        [(_fp32("x", (-1, 7)), _randn(g, BATCH, 7) * 3)],
        [_fp32("logits", (-1, 2))],
        "Standardisation with registered buffers (persistent and non-persistent) before a linear head.",
    )


def container_modules(g: torch.Generator) -> Built:
    class Containers(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Linear(5, 8), nn.Sequential(nn.LayerNorm(8), nn.ReLU()))
            self.blocks = nn.ModuleList([nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(3)])
            self.heads = nn.ModuleDict({"risk": nn.Linear(8, 1), "value": nn.Linear(8, 2)})

        def forward(self, x: Tensor) -> Tensor:
            h = self.stem(x)
            for block in self.blocks:
                h = h + block(h)
            return torch.cat([self.heads["risk"](h), self.heads["value"](h)], dim=1)

    return Built(
        _script(Containers()),
        [(_fp32("x", (-1, 5)), _randn(g, BATCH, 5))],
        [_fp32("outputs", (-1, 3))],
        "Submodules in nested nn.Sequential, an nn.ModuleList of residual blocks, an nn.ModuleDict of heads.",
    )


def non_tensor_attributes(g: torch.Generator) -> Built:
    class Configured(nn.Module):
        offset: int | None
        bias_vector: Tensor | None
        powers: list[int]
        weights: list[float]
        flags: list[bool]
        thresholds: dict[str, float]

        def __init__(self) -> None:
            super().__init__()
            self.steps = 2
            self.scale = 0.75
            self.enabled = True
            self.label = "sensor-v7"
            self.powers = [1, 2, 3]
            self.weights = [0.5, 0.25, 0.125]
            self.flags = [True, False]
            self.target_device = torch.device("cpu")
            self.thresholds = {"low": -1.0, "high": 1.0}
            self.window = (2, 3)
            self.offset = None
            self.bias_vector = torch.randn(4)
            self.proj = nn.Linear(4, 4)

        def forward(self, x: Tensor) -> Tensor:
            y = self.proj(x.to(self.target_device)) * self.scale
            if self.flags[1]:
                y = -y
            for _ in range(self.steps):
                y = torch.tanh(y)
            total = torch.zeros_like(y)
            for i in range(len(self.powers)):
                total = total + self.weights[i] * y.pow(self.powers[i])
            offset = self.offset
            if offset is not None:
                total = total + offset
            bias_vector = self.bias_vector
            if self.enabled and bias_vector is not None:
                total = total + bias_vector
            total = total.clamp(self.thresholds["low"], self.thresholds["high"])
            return total * float(len(self.label) + self.window[0]) / float(len(self.label) + self.window[1])

    return Built(
        _script(Configured()),
        [(_fp32("x", (-1, 4)), _randn(g, BATCH, 4))],
        [_fp32("y", (-1, 4))],
        "Module whose attributes are ints, floats, a bool, a string, int/float/bool lists, a dict, a tuple, "
        "a torch.device and Optionals.",
    )


def control_flow_scripted(g: torch.Generator) -> Built:
    class Refine(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 3
            self.cell = nn.Linear(6, 6)
            self.out = nn.Linear(6, 2)

        def forward(self, x: Tensor) -> Tensor:
            h = x
            for _ in range(self.steps):
                h = torch.tanh(self.cell(h)) + h
            if h.mean() > 0:
                h = h * 0.5
            else:
                h = -h
                h = h.flip(1)
            halvings = 0
            while bool(h.abs().max() > 1.0) and halvings < 10:
                h = h / 2.0
                halvings += 1
            for row in range(h.size(0)):
                if h[row].sum() < 0:
                    h[row] = h[row].flip(0)
            return self.out(h)

    return Built(
        _script(Refine()),
        [(_fp32("x", (-1, 6)), _randn(g, BATCH, 6) * 4)],
        [_fp32("y", (-1, 2))],
        "torch.jit.script control flow: for loops, an if and a while loop on tensor values.",
        batching=False,  # the if/while conditions look at the whole batch
    )


def script_helper_function(g: torch.Generator) -> Built:
    @torch.jit.script
    def soft_clip(x: Tensor, limit: float) -> Tensor:
        return limit * torch.tanh(x / limit)

    class Clipped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(5, 3)

        def forward(self, x: Tensor) -> Tensor:
            return soft_clip(self.fc(x), 2.0)

    return Built(
        _script(Clipped()),
        [(_fp32("x", (-1, 5)), _randn(g, BATCH, 5) * 3)],
        [_fp32("y", (-1, 3))],
        "Linear layer followed by an @torch.jit.script helper function called from forward.",
    )


# -- models: output structures --------------------------------------------------------------------------


def dict_output_heads(g: torch.Generator) -> Built:
    class MultiHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.trunk = nn.Sequential(nn.Linear(10, 16), nn.ReLU())
            self.score = nn.Linear(16, 1)
            self.embedding = nn.Linear(16, 4)
            self.classes = nn.Linear(16, 3)

        def forward(self, x: Tensor) -> dict[str, Tensor]:
            h = self.trunk(x)
            return {
                "score": torch.sigmoid(self.score(h)),
                "embedding": F.normalize(self.embedding(h), dim=1),
                "label": self.classes(h).argmax(dim=1),
            }

    return Built(
        _script(MultiHead()),
        [(_fp32("x", (-1, 10)), _randn(g, BATCH, 10))],
        # declared in another order than the dict's: outputs are matched by name
        [Port("label", "INT64", (-1,)), _fp32("score", (-1, 1)), _fp32("embedding", (-1, 4))],
        "Multi-head model whose forward returns Dict[str, Tensor] (score, embedding, label).",
    )


def tuple_output_stats(g: torch.Generator) -> Built:
    class Summary(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(20, 20)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            y = self.proj(x)
            return y.mean(1, keepdim=True), y.std(1, keepdim=True), y.amax(1, keepdim=True)

    return Built(
        _script(Summary()),
        [(_fp32("x", (-1, 20)), _randn(g, BATCH, 20))],
        [_fp32("mean", (-1, 1)), _fp32("spread", (-1, 1)), _fp32("peak", (-1, 1))],
        "Projection summarised into a Tuple[Tensor, Tensor, Tensor] of mean, standard deviation and max.",
    )


class _Moments(NamedTuple):
    center: Tensor
    scale: Tensor


def namedtuple_output(g: torch.Generator) -> Built:
    class MomentHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(3, 3)

        def forward(self, points: Tensor) -> _Moments:
            y = self.proj(points)
            return _Moments(y.mean(1), y.std(1))

    return Built(
        _script(MomentHead()),
        [(_fp32("points", (-1, 5, 3)), _randn(g, BATCH, 5, 3))],
        [_fp32("center", (-1, 3)), _fp32("scale", (-1, 3))],
        "Returns a NamedTuple (center, scale) over projected point sets.",
    )


def list_output_heads(g: torch.Generator) -> Built:
    class Heads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.heads = nn.ModuleList([nn.Linear(6, n) for n in (1, 2, 3)])

        def forward(self, x: Tensor) -> list[Tensor]:
            outputs: list[Tensor] = []
            for head in self.heads:
                outputs.append(head(x))
            return outputs

    return Built(
        _script(Heads()),
        [(_fp32("x", (-1, 6)), _randn(g, BATCH, 6))],
        [_fp32("head_1", (-1, 1)), _fp32("head_2", (-1, 2)), _fp32("head_3", (-1, 3))],
        "Three heads in an nn.ModuleList; forward returns List[Tensor].",
    )


def argmax_classifier(g: torch.Generator) -> Built:
    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(10, 4)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
            probabilities = torch.softmax(self.fc(x), dim=1)
            return probabilities, probabilities.argmax(dim=1)

    return Built(
        _script(Classifier()),
        [(_fp32("x", (-1, 10)), _randn(g, BATCH, 10))],
        [_fp32("probabilities", (-1, 4)), Port("class_index", "INT64", (-1,))],
        "Classifier returning probabilities and the INT64 argmax class.",
    )


def topk_retrieval(g: torch.Generator) -> Built:
    class Retriever(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("items", F.normalize(torch.randn(20, 8), dim=1))
            self.encoder = nn.Linear(8, 8)

        def forward(self, query: Tensor) -> tuple[Tensor, Tensor]:
            q = F.normalize(self.encoder(query), dim=1)
            scores, ids = torch.topk(q @ self.items.t(), k=3, dim=1)
            return scores, ids

    return Built(
        _script(Retriever()),
        [(_fp32("query", (-1, 8)), _randn(g, BATCH, 8))],
        [_fp32("scores", (-1, 3)), Port("item_ids", "INT64", (-1, 3))],
        "Nearest-item retrieval: cosine scores against a buffer of item vectors, top-3 ids (INT64).",
    )


def multi_input_ranker(g: torch.Generator) -> Built:
    class Ranker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.category_embedding = nn.Embedding(10, 6)
            self.score = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))

        def forward(self, features: Tensor, category: Tensor) -> Tensor:
            return self.score(features + self.category_embedding(category))

    return Built(
        _script(Ranker()),
        [
            (_fp32("features", (-1, 6)), _randn(g, BATCH, 6)),
            (Port("category", "INT64", (-1,)), _randint(g, 10, BATCH)),
        ],
        [_fp32("scores", (-1, 2))],
        "Ranker with two inputs: FP32 dense features and an INT64 category id.",
    )


# -- models: dtypes and unusual storages ----------------------------------------------------------------


def float64_model(g: torch.Generator) -> Built:
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2)).double()
    return Built(
        _script(model),
        [(Port("x", "FP64", (-1, 5)), _randn(g, BATCH, 5, dtype=torch.float64))],
        [Port("y", "FP64", (-1, 2))],
        "MLP with float64 parameters, inputs and outputs.",
    )


def float16_model(g: torch.Generator) -> Built:
    class Half(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(8, 12)
            self.fc2 = nn.Linear(12, 4)
            self.register_buffer("offset", torch.randn(4) * 0.1)
            self.half()

        def forward(self, x: Tensor) -> Tensor:
            return self.fc2(F.relu(self.fc1(x))) + self.offset

    return Built(
        _script(Half()),
        [(Port("x", "FP16", (-1, 8)), _randn(g, BATCH, 8, dtype=torch.float16))],
        [Port("y", "FP16", (-1, 4))],
        "MLP with float16 parameters and buffer; FP16 input and output.",
        sample_tolerance=FP16_TOLERANCE,
    )


def bfloat16_buffer(g: torch.Generator) -> Built:
    class BFloatScale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("scale", (torch.rand(8) + 0.5).to(torch.bfloat16))
            self.fc = nn.Linear(8, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(x * self.scale.to(torch.float32))

    return Built(
        _script(BFloatScale()),
        [(_fp32("x", (-1, 8)), _randn(g, BATCH, 8))],
        [_fp32("y", (-1, 3))],
        "Per-feature scale kept in a bfloat16 buffer, applied in float32.",
    )


def int_bool_buffers(g: torch.Generator) -> Built:
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("feature_mask", torch.tensor([True, False, True, True, False, True]))
            self.register_buffer("class_ids", torch.tensor([10, 20, 30, 40], dtype=torch.int64))
            self.register_buffer("bucket_edges", torch.tensor([-1, 0, 1], dtype=torch.int32))
            self.fc = nn.Linear(6, 4)

        def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            logits = self.fc(x.masked_fill(~self.feature_mask, 0.0))
            label = self.class_ids[logits.argmax(dim=1)]
            best = logits.max(dim=1).values
            bucket = torch.bucketize(best, self.bucket_edges.to(best.dtype))
            return label, best > 0, bucket

    return Built(
        _script(Masked()),
        [(_fp32("x", (-1, 6)), _randn(g, BATCH, 6))],
        [Port("label", "INT64", (-1,)), Port("positive", "BOOL", (-1,)), Port("bucket", "INT64", (-1,))],
        "Bool feature-mask, int64 class-id and int32 bucket-edge buffers; INT64 and BOOL outputs.",
    )


def empty_buffer(g: torch.Generator) -> Built:
    class WithEmpty(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("nothing", torch.empty(0))
            self.register_buffer("no_rows", torch.zeros(0, 4))
            self.unused = nn.Parameter(torch.empty(0))
            self.fc = nn.Linear(4, 2)

        def forward(self, x: Tensor) -> Tensor:
            x = torch.cat([x, self.no_rows], dim=0)
            return self.fc(x) + self.nothing.sum() + self.unused.sum()

    return Built(
        _script(WithEmpty()),
        [(_fp32("x", (-1, 4)), _randn(g, BATCH, 4))],
        [_fp32("y", (-1, 2))],
        "Model holding empty tensors: a 0-element buffer, a 0x4 buffer and a 0-element parameter.",
    )


def noncontiguous_parameter(g: torch.Generator) -> Built:
    class Views(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(8, 16) * 0.3)
            # parameters that are views of the first: strided (non-contiguous) and offset slices
            self.strided = nn.Parameter(self.weight.data[:, ::2])
            self.transposed = nn.Parameter(self.weight.data.t()[3:7])

        def forward(self, x: Tensor) -> Tensor:
            y = x @ self.weight.t() + x[:, :8] @ self.strided
            return y @ self.transposed.t()

    def check(module: Any) -> None:
        assert not module.strided.is_contiguous() and not module.transposed.is_contiguous()
        storage = module.weight.untyped_storage().data_ptr()
        assert module.strided.untyped_storage().data_ptr() == storage, "view lost its shared storage"
        assert module.transposed.storage_offset() == 3

    return Built(
        _script(Views()),
        [(_fp32("x", (-1, 16)), _randn(g, BATCH, 16))],
        [_fp32("y", (-1, 4))],
        "Parameters that are non-contiguous views (strided slice, offset transpose) of another parameter.",
        check=check,
    )


def complex_buffer(g: torch.Generator) -> Built:
    class SpectralFilter(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("response", torch.randn(9, dtype=torch.complex64))
            self.gain = complex(0.5, 0.25)  # a Python complex attribute

        def forward(self, signal: Tensor) -> tuple[Tensor, Tensor]:
            spectrum = torch.fft.rfft(signal) * self.response * self.gain
            return torch.fft.irfft(spectrum, n=16), spectrum.abs()

    return Built(
        _script(SpectralFilter()),
        [(_fp32("signal", (-1, 16)), _randn(g, BATCH, 16))],
        [_fp32("filtered", (-1, 16)), _fp32("magnitude", (-1, 9))],
        "Frequency-domain filter with a complex64 buffer and a complex attribute (rfft, multiply, irfft).",
    )


def sparse_buffer(g: torch.Generator) -> Built:
    class GraphConv(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            edges = torch.tensor([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 3]])
            weights = torch.rand(7) + 0.5
            adjacency = torch.sparse_coo_tensor(edges, weights, (6, 6), check_invariants=True)
            self.register_buffer("adjacency", adjacency.coalesce())
            self.head = nn.Linear(6, 2)

        def forward(self, node_values: Tensor) -> Tensor:
            propagated = torch.sparse.mm(self.adjacency, node_values.t()).t()
            return self.head(torch.relu(propagated + node_values))

    return Built(
        _script(GraphConv()),
        [(_fp32("node_values", (-1, 6)), _randn(g, BATCH, 6))],
        [_fp32("logits", (-1, 2))],
        "Graph propagation with a sparse COO adjacency buffer (torch.sparse.mm).",
    )


# -- models: quantized ----------------------------------------------------------------------------------


def _quantize_dynamic(model: nn.Module, types: set[type[nn.Module]]) -> nn.Module:
    return torch.ao.quantization.quantize_dynamic(model.eval(), types, dtype=torch.qint8)


def quant_dynamic_mlp(g: torch.Generator) -> Built:
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))
    return Built(
        _script(_quantize_dynamic(model, {nn.Linear})),
        [(_fp32("x", (-1, 16)), _randn(g, BATCH, 16))],
        [_fp32("logits", (-1, 4))],
        "MLP dynamically quantized (torch.ao.quantization.quantize_dynamic, qint8 Linear weights).",
        batching=False,  # dynamic quantization scales activations per call: rows are not independent
        tolerance=QUANT_TOLERANCE,
    )


def quant_dynamic_lstm(g: torch.Generator) -> Built:
    class LSTMRegressor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 8, batch_first=True)
            self.head = nn.Linear(8, 1)

        def forward(self, sequence: Tensor) -> Tensor:
            out, _ = self.lstm(sequence)
            return self.head(out[:, -1])

    return Built(
        _script(_quantize_dynamic(LSTMRegressor(), {nn.LSTM, nn.Linear})),
        [(_fp32("sequence", (-1, -1, 4)), _randn(g, BATCH, 6, 4))],
        [_fp32("prediction", (-1, 1))],
        "LSTM regressor dynamically quantized (qint8 LSTM and Linear weights).",
        batching=False,
        tolerance=QUANT_TOLERANCE,
    )


def quant_embedding_bag(g: torch.Generator) -> Built:
    class BagClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bag = nn.EmbeddingBag(20, 8, mode="sum")
            self.head = nn.Linear(8, 2)

        def forward(self, ids: Tensor) -> Tensor:
            return self.head(self.bag(ids))

    model = BagClassifier().eval()
    model.bag.qconfig = torch.ao.quantization.float_qparams_weight_only_qconfig
    torch.ao.quantization.prepare(model, inplace=True)
    torch.ao.quantization.convert(model, inplace=True)
    return Built(
        _script(model),
        [(Port("ids", "INT64", (-1, 3)), _randint(g, 20, BATCH, 3))],
        [_fp32("logits", (-1, 2))],
        "EmbeddingBag quantized weight-only (quint8, per-channel float qparams) before a float Linear.",
        tolerance=QUANT_TOLERANCE,
    )


def quant_static_conv(g: torch.Generator) -> Built:
    quant = torch.ao.quantization

    class QuantCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant = quant.QuantStub()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu1 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 8, 3)
            self.relu2 = nn.ReLU()
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 3)
            self.dequant = quant.DeQuantStub()

        def forward(self, x: Tensor) -> Tensor:
            x = self.pool(self.relu1(self.bn1(self.conv1(self.quant(x)))))
            x = self.gap(self.relu2(self.conv2(x)))
            return self.dequant(self.fc(torch.flatten(x, 1)))

    engines = torch.backends.quantized.supported_engines
    engine = next(e for e in ("x86", "fbgemm", "qnnpack") if e in engines)
    torch.backends.quantized.engine = engine
    model = _randomize_norm_stats(QuantCNN()).eval()
    model.qconfig = quant.get_default_qconfig(engine)
    quant.fuse_modules(model, [["conv1", "bn1", "relu1"], ["conv2", "relu2"]], inplace=True)
    quant.prepare(model, inplace=True)
    with torch.no_grad():
        for _ in range(4):
            model(_randn(g, 4, 3, 12, 12))
    quant.convert(model, inplace=True)
    return Built(
        _script(model),
        [(_fp32("image", (-1, 3, 12, 12)), _randn(g, BATCH, 3, 12, 12))],
        [_fp32("logits", (-1, 3))],
        f"CNN statically quantized ({engine}): fused Conv+BN+ReLU, quantized Linear, Quant/DeQuant stubs.",
        tolerance=QUANT_TOLERANCE,
    )


CATALOG: tuple[CleanModel, ...] = (
    CleanModel("mlp-shallow", "Linear MLP, 1 hidden layer", mlp_shallow),
    CleanModel("mlp-deep", "Linear MLP, 6 layers, mixed activations, dropout", mlp_deep),
    CleanModel("traced-mlp", "traced Linear MLP", traced_mlp, frozenset({"traced"})),
    CleanModel("cnn1d-bn-pool", "Conv1d CNN with BatchNorm and pooling", cnn1d_bn_pool),
    CleanModel("cnn2d-bn-pool", "Conv2d CNN with BatchNorm and pooling", cnn2d_bn_pool),
    CleanModel("cnn3d-bn-pool", "Conv3d CNN with BatchNorm and pooling", cnn3d_bn_pool),
    CleanModel("cnn-depthwise", "depthwise-separable convolutions", cnn_depthwise),
    CleanModel("convtranspose-decoder", "ConvTranspose2d decoder", convtranspose_decoder),
    CleanModel("traced-resnet", "traced residual CNN", traced_resnet, frozenset({"traced"})),
    CleanModel("frozen-cnn", "torch.jit.freeze'd CNN (constants)", frozen_cnn, frozenset({"frozen"})),
    CleanModel("upsample-pixelshuffle", "PixelShuffle and interpolate", upsample_pixelshuffle),
    CleanModel("uint8-image-input", "UINT8 input", uint8_image_input),
    CleanModel("lstm-classifier", "bidirectional 2-layer LSTM", lstm_classifier, frozenset({"rnn"})),
    CleanModel("gru-encoder", "GRU with tuple output", gru_encoder, frozenset({"rnn"})),
    CleanModel("rnn-tagger", "Elman RNN (batch_first)", rnn_tagger, frozenset({"rnn"})),
    CleanModel("embedding-bag-recommender", "Embedding + EmbeddingBag, two INT64 inputs",
               embedding_bag_recommender),
    CleanModel("int32-token-input", "INT32 input into an Embedding", int32_token_input),
    CleanModel("tied-weights-lm", "shared (tied) embedding/decoder weights", tied_weights_lm),
    CleanModel("transformer-encoder", "TransformerEncoderLayer", transformer_encoder),
    CleanModel("multihead-attention", "nn.MultiheadAttention, tuple output", multihead_attention),
    CleanModel("einsum-attention-pool", "einsum attention pooling", einsum_attention_pool),
    CleanModel("bool-mask-pooling", "BOOL mask input", bool_mask_pooling),
    CleanModel("norm-layers", "LayerNorm / GroupNorm / InstanceNorm", norm_layers),
    CleanModel("buffers-normalizer", "registered buffers (persistent and not)", buffers_normalizer),
    CleanModel("container-modules", "nn.Sequential / nn.ModuleList / nn.ModuleDict", container_modules),
    CleanModel("non-tensor-attributes", "int/float/bool/str/list/dict/tuple/device/Optional attributes",
               non_tensor_attributes),
    CleanModel("control-flow-scripted", "scripted if/for/while on tensor values", control_flow_scripted),
    CleanModel("script-helper-function", "@torch.jit.script helper called from forward",
               script_helper_function),
    CleanModel("dict-output-heads", "forward returns Dict[str, Tensor]", dict_output_heads,
               frozenset({"dict-output"})),
    CleanModel("tuple-output-stats", "forward returns a 3-tuple", tuple_output_stats),
    CleanModel("namedtuple-output", "forward returns a NamedTuple", namedtuple_output),
    CleanModel("list-output-heads", "forward returns List[Tensor]", list_output_heads),
    CleanModel("argmax-classifier", "INT64 argmax output", argmax_classifier),
    CleanModel("topk-retrieval", "topk scores and INT64 ids", topk_retrieval),
    CleanModel("multi-input-ranker", "FP32 + INT64 inputs", multi_input_ranker),
    CleanModel("float64-model", "float64 parameters, FP64 I/O", float64_model),
    CleanModel("float16-model", "float16 parameters and buffer, FP16 I/O", float16_model),
    CleanModel("bfloat16-buffer", "bfloat16 buffer", bfloat16_buffer),
    CleanModel("int-bool-buffers", "int64/int32/bool buffers, BOOL output", int_bool_buffers),
    CleanModel("empty-buffer", "empty tensor buffers and parameter", empty_buffer),
    CleanModel("noncontiguous-parameter", "parameters that are non-contiguous views of another",
               noncontiguous_parameter),
    CleanModel("complex-buffer", "complex64 buffer and complex attribute, FFT", complex_buffer),
    CleanModel("sparse-buffer", "sparse COO buffer", sparse_buffer),
    CleanModel("quant-dynamic-mlp", "dynamically quantized Linear (qint8)", quant_dynamic_mlp,
               frozenset({"quantized"})),
    CleanModel("quant-dynamic-lstm", "dynamically quantized LSTM (qint8)", quant_dynamic_lstm,
               frozenset({"quantized", "rnn"})),
    CleanModel("quant-embedding-bag", "weight-only quantized EmbeddingBag (quint8)", quant_embedding_bag,
               frozenset({"quantized"})),
    CleanModel("quant-static-conv", "statically quantized Conv2d/Linear", quant_static_conv,
               frozenset({"quantized"})),
)


# -- writing kernels ------------------------------------------------------------------------------------


def _outputs_by_name(result: Any, outputs: list[Port]) -> dict[str, Tensor]:
    """Map the module's return value to contract names the way the TorchScript runtime does."""
    names = [p.name for p in outputs]
    if isinstance(result, dict):
        assert set(result) == set(names), f"model returned keys {sorted(result)}, contract has {names}"
        return {n: result[n] for n in names}
    values = list(result) if isinstance(result, (tuple, list)) else [result]
    assert len(values) == len(names), f"model returned {len(values)} outputs, contract has {len(names)}"
    return dict(zip(names, values, strict=True))


def _tensor_json(port: Port, value: Tensor) -> dict[str, Any]:
    value = value.detach().cpu().contiguous()
    datatype = DATATYPE_OF.get(value.dtype)
    assert datatype == port.datatype, f"{port.name}: got {value.dtype}, contract says {port.datatype}"
    shape = list(value.shape)
    assert len(shape) == len(port.shape), f"{port.name}: got shape {shape}, contract {port.shape}"
    for size, declared in zip(shape, port.shape, strict=True):
        assert declared in (-1, size), f"{port.name}: got shape {shape}, contract {port.shape}"
    if value.is_floating_point():
        assert bool(torch.isfinite(value).all()), f"{port.name}: non-finite values"
    return {"name": port.name, "shape": shape, "datatype": datatype, "data": value.flatten().tolist()}


def _run(module: Any, inputs: list[Tensor], outputs: list[Port]) -> dict[str, Tensor]:
    with torch.inference_mode():
        return _outputs_by_name(module(*inputs), outputs)


def _assert_close(name: str, got: Tensor, expected: Tensor, tolerance: dict[str, float] | None) -> None:
    tol = tolerance or {"atol": 1e-5, "rtol": 1e-4}
    if got.is_floating_point():
        assert torch.allclose(got.double(), expected.double(), atol=tol["atol"], rtol=tol["rtol"]), name
    else:
        assert torch.equal(got, expected), name


def _write_kernel(entry: CleanModel, built: Built, kernel: Path) -> None:
    if kernel.exists():
        shutil.rmtree(kernel)
    (kernel / "samples").mkdir(parents=True)
    model_path = kernel / "model.pt"
    torch.jit.save(built.module, str(model_path))
    loaded = torch.jit.load(str(model_path), map_location="cpu").eval()
    if built.check is not None:
        built.check(loaded)
    example = [tensor for _, tensor in built.inputs]
    expected = _run(loaded, example, built.outputs)
    tolerance = built.sample_tolerance or built.tolerance
    # the archive reproduces the in-memory module
    for name, value in _run(built.module, example, built.outputs).items():
        _assert_close(f"{entry.name}: reloaded {name}", expected[name], value, tolerance)
    if built.batching:  # a batch of duplicated rows gives duplicated rows: batching is sound
        doubled = _run(loaded, [torch.cat([t, t]) for t in example], built.outputs)
        for name, value in doubled.items():
            _assert_close(f"{entry.name}: batched {name}", value, torch.cat([expected[name]] * 2), tolerance)

    request = [_tensor_json(port, tensor) for port, tensor in built.inputs]
    for (port, tensor), body in zip(built.inputs, request, strict=True):  # JSON carries inputs exactly
        decoded = torch.tensor(body["data"], dtype=tensor.dtype).reshape(body["shape"])
        assert torch.equal(decoded, tensor), f"{entry.name}: input {port.name} does not survive JSON"
    sample: dict[str, Any] = {
        "description": f"Generated by running {entry.name}/model.pt (torch.jit.load) on a fixed input.",
        "request": {"inputs": request},
        "expected": {"outputs": [_tensor_json(port, expected[port.name]) for port in built.outputs]},
    }
    if built.sample_tolerance:
        sample["tolerance"] = built.sample_tolerance

    metadata: dict[str, Any] = {
        "contract_version": "1",
        "name": entry.name,
        "version": "1.0.0",
        "framework": "torchscript",
        "model_file": "model.pt",
        "description": f"{built.description} Corpus kind: {entry.kind}.",
        "inputs": [port.contract() for port, _ in built.inputs],
        "outputs": [port.contract() for port in built.outputs],
        "created_at": CREATED_AT,
        **COMMON,
        "resources": {"cpu": "1", "memory": "512Mi", "gpu": 0},
    }
    if built.batching:
        metadata["batching"] = {"max_batch_size": 16, "max_queue_delay_us": 200}
    if built.tolerance:
        metadata["tolerance"] = built.tolerance
    (kernel / "model_metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    (kernel / "samples" / "example.json").write_text(json.dumps(sample, indent=1) + "\n", encoding="utf-8")


def build_clean_torchscript_corpus(out_dir: Path) -> list[Path]:
    """Write every CATALOG model as a kernel directory ``out_dir/<name>/``; return them in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kernels = []
    engine = torch.backends.quantized.engine
    with warnings.catch_warnings():
        # torch.jit and torch.ao.quantization are deprecated in torch 2.13 but still work
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # quantized tensor creation and observer arguments announce their own deprecation this way
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\.")
        try:
            for entry in CATALOG:
                seed = zlib.crc32(entry.name.encode())
                torch.manual_seed(seed)
                generator = torch.Generator().manual_seed(seed + 1)
                built = entry.build(generator)
                kernel = out_dir / entry.name
                _write_kernel(entry, built, kernel)
                kernels.append(kernel)
        finally:
            torch.backends.quantized.engine = engine
    return kernels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the clean TorchScript kernel corpus.")
    parser.add_argument("out", type=Path, help="directory to write the kernels into")
    args = parser.parse_args(argv)
    start = time.monotonic()
    kernels = build_clean_torchscript_corpus(args.out)
    elapsed = time.monotonic() - start
    kinds = {e.name: e.kind for e in CATALOG}
    width = max(len(str(k)) for k in kernels)
    for kernel in kernels:
        size = (kernel / "model.pt").stat().st_size
        print(f"{kernel!s:{width}}  {size:>7,} B  {kinds[kernel.name]}")
    print(f"{len(kernels)} kernels in {elapsed:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Request fuzzing: schemathesis against a live server from its own OpenAPI document, and
hypothesis properties of the tensor decoder. Fixed seeds, bounded examples; zero 5xx."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from shim.protocol.codec import Limits, ProtocolError, decode_tensor
from shim.spec.datatypes import DATATYPES
from shim.spec.kernel import TensorSpec
from tests.security.conftest import IRIS, ServerProcess

schemathesis = pytest.importorskip("schemathesis")

FUZZ_EXAMPLES = 30


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory):
    server = ServerProcess(IRIS, Path(tmp_path_factory.mktemp("fuzz")) / "server.log")
    server.wait_ready()
    yield server
    server.stop()


def test_api_never_answers_5xx(live_server) -> None:
    """Every operation of the published document, positive and negative cases, fixed seed."""
    schema = schemathesis.openapi.from_url(live_server.base + "/v2/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    calls: list[str] = []
    for operation in operations:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(
                max_examples=FUZZ_EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case) -> None:
                response = case.call(timeout=10)
                calls.append(case.method)
                readiness = case.path.endswith(("ready", "/health")) and response.status_code == 503
                assert response.status_code < 500 or readiness, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                )

            try:
                fuzz()
            except Unsatisfiable:
                # nothing to make invalid (no parameters or body): only positive cases exist
                assert mode == schemathesis.GenerationMode.NEGATIVE
            assert live_server.alive(), "the server process died"
    print(f"\nschemathesis: {len(calls)} requests over {len(operations)} operations")
    assert len(calls) >= len(operations) * 2


def test_server_survived_fuzzing(live_server) -> None:
    assert live_server.alive()
    assert live_server.wait_ready()["ready"] is True
    assert "Traceback" not in live_server.log()


# -- decode_tensor properties ------------------------------------------------------------------------

NUMERIC = [d for d in DATATYPES.values() if not d.is_bytes]
LIMITS = Limits(max_elements_per_tensor=4096)


def _values(datatype, count):
    if datatype.name == "BOOL":
        return st.lists(st.booleans(), min_size=count, max_size=count)
    if datatype.is_integer:
        info = np.iinfo(datatype.numpy)
        # the full range: UINT64 values >= 2**63 mixed with small ones once decoded through float64
        return st.lists(st.integers(int(info.min), int(info.max)), min_size=count, max_size=count)
    width = 16 if datatype.name in ("FP16",) else 32 if datatype.name in ("FP32", "BF16") else 64
    return st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=width), min_size=count, max_size=count
    )


@st.composite
def valid_requests(draw):
    datatype = draw(st.sampled_from(NUMERIC))
    shape = draw(st.lists(st.integers(0, 5), min_size=0, max_size=3))
    data = draw(_values(datatype, math.prod(shape)))
    declared = tuple(draw(st.sampled_from([d, -1])) for d in shape)
    return datatype, shape, declared, data


@settings(max_examples=300, derandomize=True, deadline=None)
@given(valid_requests())
def test_valid_tensors_decode_exactly(request) -> None:
    datatype, shape, declared, data = request
    spec = TensorSpec("x", datatype, declared)
    array = decode_tensor(
        {"name": "x", "datatype": datatype.name, "shape": shape, "data": data}, spec, None, LIMITS
    )
    assert array.shape == tuple(shape)
    assert array.dtype == np.dtype(datatype.numpy)
    expected = (
        np.asarray(data, dtype=datatype.numpy).reshape(shape) if data else np.zeros(shape, datatype.numpy)
    )
    if datatype.is_float:
        assert np.array_equal(array, expected) or not np.isfinite(expected).all()
    else:
        assert np.array_equal(array, expected)
    # the binary extension decodes the same bytes to the same array
    raw = memoryview(expected.astype(np.dtype(datatype.numpy).newbyteorder("<")).tobytes())
    binary = decode_tensor({"name": "x", "datatype": datatype.name, "shape": shape}, spec, raw, LIMITS)
    assert binary.shape == array.shape and binary.tobytes() == array.tobytes()


JSON_JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=500, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.sampled_from(list(DATATYPES.values())),
    st.lists(st.sampled_from([-1, 1, 2, 3]), max_size=3),
    st.fixed_dictionaries(
        {},
        optional={
            "datatype": st.sampled_from(list(DATATYPES)) | JSON_JUNK,
            "shape": st.lists(st.integers(-2, 6), max_size=4) | JSON_JUNK,
            "data": JSON_JUNK,
        },
    ),
    st.none() | st.binary(max_size=64),
)
def test_any_input_decodes_correctly_or_is_a_4xx(datatype, declared, entry, binary) -> None:
    spec = TensorSpec("x", datatype, tuple(declared))
    try:
        array = decode_tensor(
            {"name": "x", **entry}, spec, None if binary is None else memoryview(binary), LIMITS
        )
    except ProtocolError as exc:
        assert 400 <= exc.status < 500
        return
    shape = entry["shape"]
    assert entry["datatype"] == datatype.name
    assert list(array.shape) == shape
    assert all(d == -1 or d == s for d, s in zip(declared, shape, strict=True))
    if not datatype.is_bytes:
        assert array.dtype == np.dtype(datatype.numpy)
    if datatype.is_float and not spec.allow_non_finite:
        assert np.isfinite(array.astype(np.float64)).all()

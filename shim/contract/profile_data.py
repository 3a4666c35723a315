"""Reading the reference data ``shim profile`` summarises: CSV, Parquet, NumPy ``.npy``, JSONL.

The data scientist points at files they already have. Each format is read by the library made for
it (``csv``, ``pyarrow.parquet`` from the optional ``parquet`` extra, ``numpy.load`` with
``allow_pickle=False``, the server's own v2 request decoder for JSONL), bounded in rows, and turned
into one array per model input, rows first. Columns are matched to the contract's feature names
(``features`` lists; ``<input>[i]`` when a rank-2 input has none). Every problem is a
``ReferenceDataError`` carrying a finding (KS720-KS723) that names the file, the line or column,
what was expected and how to fix it; values from the file are never echoed.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from shim.findings import Finding
from shim.protocol.codec import Limits, ProtocolError, decode_request
from shim.spec.kernel import Kernel, TensorSpec
from shim.spec.monitoring import FeatureSource

#: Most rows read from all files together: a profile needs a representative sample, not everything.
MAX_ROWS = 2_000_000
#: Largest data file read (bytes).
MAX_FILE_BYTES = 4 * 1024**3
FORMATS = ".csv, .parquet, .npy, .jsonl"


class ReferenceDataError(Exception):
    def __init__(self, finding: Finding) -> None:
        super().__init__(finding.render())
        self.finding = finding


@dataclass
class ReferenceData:
    """The reference rows: per input an array (rows first), per feature a missing-value mask."""

    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0]) if self.inputs else 0


def _fail(code: str, path: Path, where: str, message: str, expected: str, fix: str) -> ReferenceDataError:
    return ReferenceDataError(Finding(code, str(path), where, message, expected=expected, fix=fix))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _columnar(kernel: Kernel, layout: list[FeatureSource]) -> dict[str, list[FeatureSource]]:
    """Inputs a table can fill: per input, its column features in order."""
    tables: dict[str, list[FeatureSource]] = {}
    for source in layout:
        if source.statistic is None:
            tables.setdefault(source.input, []).append(source)
    return tables


def read_reference(kernel: Kernel, layout: list[FeatureSource], paths: list[Path]) -> ReferenceData:
    """All ``paths`` as one set of reference rows; raises ``ReferenceDataError``."""
    parts: dict[str, list[np.ndarray]] = {}
    masks: dict[str, list[np.ndarray]] = {}
    files = []
    total = 0
    for path in paths:
        if not path.is_file():
            raise _fail(
                "KS720",
                path,
                "",
                "does not exist or is not a regular file",
                expected=f"a data file ({FORMATS})",
                fix="pass the path of a reference data file",
            )
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _fail(
                "KS720",
                path,
                "",
                f"is larger than {MAX_FILE_BYTES:,} bytes",
                expected="a representative sample of the training data",
                fix="profile a sample",
            )
        suffix = path.suffix.lower()
        if suffix == ".csv":
            arrays, missing = _read_csv(kernel, layout, path)
        elif suffix in (".parquet", ".pq"):
            arrays, missing = _read_parquet(kernel, layout, path)
        elif suffix == ".npy":
            arrays, missing = _read_npy(kernel, path), {}
        elif suffix in (".jsonl", ".ndjson"):
            arrays, missing = _read_jsonl(kernel, path), {}
        else:
            raise _fail(
                "KS720",
                path,
                "",
                f"has the unsupported extension {suffix or '(none)'!r}",
                expected=f"one of {FORMATS}",
                fix="convert the data to CSV, Parquet, .npy or JSONL",
            )
        rows = int(next(iter(arrays.values())).shape[0]) if arrays else 0
        total += rows
        if total > MAX_ROWS:
            raise _fail(
                "KS720",
                path,
                "",
                f"brings the reference data to more than {MAX_ROWS:,} rows",
                expected=f"at most {MAX_ROWS:,} rows in all",
                fix="profile a random sample of the data",
            )
        for name, array in arrays.items():
            parts.setdefault(name, []).append(array)
        for name, mask in missing.items():
            masks.setdefault(name, []).append(mask)
        files.append({"file": path.name, "sha256": _sha256(path), "rows": rows})
    data = ReferenceData(files=files)
    wanted = [t.name for t in kernel.inputs]
    absent = [name for name in wanted if name not in parts]
    if absent:
        raise _fail(
            "KS721",
            paths[-1],
            "",
            "the data files give no values for input(s) " + ", ".join(map(repr, absent)),
            expected="values for every input of the contract: " + ", ".join(wanted),
            fix="add the columns (CSV/Parquet), a .npy named after the input, or "
            "JSONL requests that carry it",
        )
    for name in wanted:
        data.inputs[name] = np.concatenate(parts[name]) if len(parts[name]) > 1 else parts[name][0]
    counts = {name: a.shape[0] for name, a in data.inputs.items()}
    if len(set(counts.values())) > 1:
        raise _fail(
            "KS721",
            paths[-1],
            "",
            f"the inputs have different row counts {counts}",
            expected="the same rows for every input",
            fix="give every input the same rows",
        )
    if data.rows == 0:
        raise _fail(
            "KS721",
            paths[-1],
            "",
            "holds no rows",
            expected="at least one reference row",
            fix="pass the training data",
        )
    for feature, chunks in masks.items():
        data.missing[feature] = np.concatenate(chunks)
    return data


def _table_fix(columns: list[str]) -> str:
    return (
        "name the columns as the contract's features (add a features list to the input in "
        "model_metadata.json); expected " + ", ".join(columns[:12]) + (" ..." if len(columns) > 12 else "")
    )


def _read_csv(
    kernel: Kernel, layout: list[FeatureSource], path: Path
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    tables = _columnar(kernel, layout)
    wanted = [s.name for sources in tables.values() for s in sources]
    try:
        handle = path.open(encoding="utf-8", newline="")
        reader = csv.reader(handle)
        header = next(reader, None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise _fail(
            "KS720",
            path,
            "line 1",
            f"cannot be read as CSV ({type(exc).__name__})",
            expected="a UTF-8 CSV file with a header row",
            fix="export the data as UTF-8 CSV",
        ) from None
    with handle:
        if not header:
            raise _fail(
                "KS721",
                path,
                "line 1",
                "has no header row",
                expected="a header naming the columns",
                fix=_table_fix(wanted),
            )
        position = {name.strip(): i for i, name in enumerate(header)}
        missing_cols = [name for name in wanted if name not in position]
        if missing_cols or not wanted:
            raise _fail(
                "KS721",
                path,
                "line 1",
                f"lacks the column(s) {', '.join(map(repr, missing_cols[:12]))}"
                if missing_cols
                else "cannot fill any input: the contract has no column features",
                expected="a column per feature",
                fix=_table_fix(wanted),
            )
        columns: dict[str, list[str]] = {name: [] for name in wanted}
        try:
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) != len(header):
                    raise _fail(
                        "KS720",
                        path,
                        f"line {line}",
                        f"has {len(row)} fields; the header has {len(header)}",
                        expected="the same number of fields on every line",
                        fix="fix the CSV at that line",
                    )
                for name in wanted:
                    columns[name].append(row[position[name]])
                if line > MAX_ROWS + 1:
                    raise _fail(
                        "KS720",
                        path,
                        f"line {line}",
                        f"has more than {MAX_ROWS:,} rows",
                        expected=f"at most {MAX_ROWS:,} rows",
                        fix="profile a random sample",
                    )
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _fail(
                "KS720",
                path,
                "",
                f"is not valid CSV ({type(exc).__name__})",
                expected="a UTF-8 CSV file",
                fix="export the data as UTF-8 CSV",
            ) from None
    return _assemble(kernel, tables, path, {k: (v, None) for k, v in columns.items()})


def _read_parquet(
    kernel: Kernel, layout: list[FeatureSource], path: Path
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise _fail(
            "KS720",
            path,
            "",
            "needs pyarrow to be read",
            expected="pyarrow installed",
            fix="pip install 'kernelshim[parquet]'",
        ) from None
    tables = _columnar(kernel, layout)
    wanted = [s.name for sources in tables.values() for s in sources]
    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        if parquet.metadata.num_rows > MAX_ROWS:
            raise _fail(
                "KS720",
                path,
                "",
                f"has more than {MAX_ROWS:,} rows",
                expected=f"at most {MAX_ROWS:,}",
                fix="profile a random sample",
            )
        missing_cols = [name for name in wanted if name not in names]
        if missing_cols or not wanted:
            raise _fail(
                "KS721",
                path,
                "schema",
                f"lacks the column(s) {', '.join(map(repr, missing_cols[:12]))}"
                if missing_cols
                else "cannot fill any input: the contract has no column features",
                expected="a column per feature",
                fix=_table_fix(wanted),
            )
        table = parquet.read(columns=wanted)
    except ReferenceDataError:
        raise
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise _fail(
            "KS720",
            path,
            "",
            f"cannot be read as Parquet ({type(exc).__name__})",
            expected="a Parquet file",
            fix="re-export the data as Parquet",
        ) from None
    columns: dict[str, tuple[Any, np.ndarray | None]] = {}
    for name in wanted:
        column = table.column(name)
        nulls = column.is_null().to_numpy(zero_copy_only=False)
        columns[name] = (column.to_pylist(), nulls)
    return _assemble(kernel, tables, path, columns)


def _assemble(
    kernel: Kernel,
    tables: dict[str, list[FeatureSource]],
    path: Path,
    columns: dict[str, tuple[list[Any], np.ndarray | None]],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Columns of text or values -> one array per input, with a missing mask per feature."""
    arrays: dict[str, np.ndarray] = {}
    missing: dict[str, np.ndarray] = {}
    for input_name, sources in tables.items():
        spec = kernel.input(input_name)
        assert spec is not None
        converted = []
        for source in sources:
            values, nulls = columns[source.name]
            column, mask = _convert(spec, source.name, values, nulls, path)
            converted.append(column)
            missing[source.name] = mask
        arrays[input_name] = np.stack(converted, axis=1) if sources[0].index is not None else converted[0]
    return arrays, missing


def _convert(
    spec: TensorSpec, name: str, values: list[Any], nulls: np.ndarray | None, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    if nulls is None:
        mask = np.fromiter(
            (v is None or (isinstance(v, str) and v.strip() == "") for v in values),
            dtype=bool,
            count=len(values),
        )
    else:
        mask = np.asarray(nulls, dtype=bool)
    if spec.datatype.is_bytes:
        return np.array(["" if m else str(v) for v, m in zip(values, mask, strict=True)], dtype=object), mask
    kind = spec.datatype.numpy.kind
    filler = "nan" if kind == "f" else "0"
    try:
        cleaned = [
            filler if m else (v.strip() if isinstance(v, str) else v)
            for v, m in zip(values, mask, strict=True)
        ]
        if kind == "b":
            array = np.array([str(v).lower() in ("1", "true", "yes") for v in cleaned], dtype=bool)
        else:
            array = np.array(cleaned, dtype=np.float64 if kind == "f" else np.int64)
            if kind in "iu" and not mask.all():
                info = np.iinfo(spec.datatype.numpy)
                if array.min() < info.min or array.max() > info.max:
                    raise ValueError("out of range")
    except (ValueError, TypeError, OverflowError):
        raise _fail(
            "KS722",
            path,
            f"column {name!r}",
            f"holds values that are not {spec.datatype.name} numbers",
            expected=f"numbers of the input's datatype {spec.datatype.name} (empty cells count as missing)",
            fix="clean the column, or declare the input's datatype correctly",
        ) from None
    return array.astype(spec.datatype.numpy), mask


def _read_npy(kernel: Kernel, path: Path) -> dict[str, np.ndarray]:
    names = [t.name for t in kernel.inputs]
    name = names[0] if len(names) == 1 else path.stem
    spec = kernel.input(name)
    if spec is None:
        raise _fail(
            "KS721",
            path,
            "",
            f"cannot be matched to an input: the file name {path.stem!r} names none",
            expected="a .npy file named after the input it holds: " + ", ".join(f"{n}.npy" for n in names),
            fix="rename the file after its input",
        )
    try:
        with path.open("rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            _shape, _order, dtype = read_header(handle)
    except Exception:
        raise _fail(
            "KS720",
            path,
            "",
            "is not a NumPy .npy file",
            expected="a file written by numpy.save",
            fix="save the array with numpy.save",
        ) from None
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.names is not None:
        raise _fail(
            "KS722",
            path,
            "",
            f"holds {dtype.name if dtype.names is None else 'structured'} values; "
            "only plain numeric arrays are read (never objects or pickles)",
            expected="a bool, integer or floating-point array",
            fix="save a plain numeric array",
        )
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError:
        raise _fail(
            "KS722",
            path,
            "",
            "cannot be loaded without unpickling",
            expected="a plain numeric array",
            fix="save a plain numeric array",
        ) from None
    expected_rank = len(spec.shape)
    if array.ndim != expected_rank or any(
        d not in (-1, a) for d, a in zip(spec.shape[1:], array.shape[1:], strict=True)
    ):
        raise _fail(
            "KS721",
            path,
            "",
            f"has shape {list(array.shape)}; input {name!r} is {list(spec.shape)}",
            expected=f"rows of shape {list(spec.shape[1:])}",
            fix="reshape the array to the input's shape",
        )
    if spec.datatype.is_bytes:
        raise _fail(
            "KS722",
            path,
            "",
            f"is numeric, input {name!r} is BYTES",
            expected="JSONL requests for text",
            fix="profile text inputs from JSONL v2 requests",
        )
    return {name: np.asarray(array, dtype=spec.datatype.numpy)}


def _read_jsonl(kernel: Kernel, path: Path) -> dict[str, np.ndarray]:
    specs = {t.name: t for t in kernel.inputs}
    outputs = [t.name for t in kernel.outputs]
    limits = Limits(max_batch_size=kernel.batching.max_batch_size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    rows = 0
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                document = orjson.loads(line)
                decoded = decode_request(document, specs, outputs, None, limits)
            except orjson.JSONDecodeError:
                raise _fail(
                    "KS723",
                    path,
                    f"line {line_number}",
                    "is not valid JSON",
                    expected="one v2 inference request per line",
                    fix="write one JSON request per line",
                ) from None
            except ProtocolError as exc:
                raise _fail(
                    "KS723",
                    path,
                    f"line {line_number}",
                    f"is not a valid request: {exc}",
                    expected="a v2 inference request the server would accept",
                    fix="check the request against the contract's inputs",
                ) from None
            for name, array in decoded.inputs.items():
                parts[name].append(array if array.ndim else array.reshape(1))
            rows += 1
            if rows > MAX_ROWS:
                raise _fail(
                    "KS720",
                    path,
                    f"line {line_number}",
                    f"has more than {MAX_ROWS:,} requests",
                    expected=f"at most {MAX_ROWS:,}",
                    fix="profile a random sample",
                )
    if not rows:
        raise _fail(
            "KS721",
            path,
            "",
            "holds no requests",
            expected="one v2 request per line",
            fix="write the reference requests",
        )
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}

"""What a file really is, from its first bytes: names the container or code a file smuggles.

The gate never trusts this to *allow* anything (each role is proven by parsing: JSON, UTF-8 text,
an ONNX ModelProto, the TorchScript archive layout). It only says, when a file is refused, what it
turned out to be ("is a gzip archive", "is a numpy array of pickled objects"), so the finding tells
the data scientist what happened. Archive and executable kinds come from the ``filetype``
library's magic numbers; numpy files and compiled Python are recognised here because
``filetype`` does not know them.
"""

from __future__ import annotations

import importlib.util

import filetype

#: Bytes read from the start of a file to recognise it (tar's magic sits at offset 257).
SNIFF_BYTES = 512
_NPY_MAGIC = b"\x93NUMPY"
_PYC_MAGIC = importlib.util.MAGIC_NUMBER
_ELF_MAGIC = b"\x7fELF"
_STRONG_ARCHIVES = {"zip", "7z", "gz", "tar", "bz2", "xz", "zst", "rar", "lz", "lz4", "cab", "ar", "rpm",
                    "deb", "Z"}


def describe_head(head: bytes) -> str | None:
    """A short phrase for a recognised container, executable or serialisation format, else None."""
    if head.startswith(_NPY_MAGIC):
        return "a numpy .npy array file"
    if head.startswith(_PYC_MAGIC):
        return "compiled Python bytecode (.pyc)"
    if head.startswith(_ELF_MAGIC):
        return "an ELF executable or shared library"
    kind = filetype.guess(head) if len(head) >= 8 else None
    if kind is not None and kind.extension in _STRONG_ARCHIVES:
        return f"a {kind.extension} archive"
    if kind is not None and kind.mime.startswith("application/"):
        return f"a {kind.mime} file"
    return None


def npy_holds_objects(data: bytes) -> bool:
    """Whether a .npy header declares an object dtype (its payload is then a pickle)."""
    import io

    from numpy.lib import format as npy_format

    stream = io.BytesIO(data)
    try:
        version = npy_format.read_magic(stream)
        reader = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        _shape, _fortran, dtype = reader(stream, max_header_size=10_000)
    except Exception:  # malformed header: not a usable array either way
        return False
    return bool(dtype.hasobject)

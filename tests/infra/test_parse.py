"""Both flavours parse, the Terraform is `terraform fmt`-clean, and the azd files agree with main.bicep."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from .iac import INFRA, ROOT, TERRAFORM, load_bicep, load_terraform, load_yaml, unquote, walk


def test_terraform_is_fmt_clean():
    exe = shutil.which("terraform")
    if exe is None:
        pytest.skip("the terraform CLI is not installed, so `terraform fmt -check` cannot run")
    proc = subprocess.run(
        [exe, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


def test_every_terraform_file_parses_with_python_hcl2():
    tf = load_terraform()
    assert set(tf.files) == set(TERRAFORM.glob("*.tf"))
    assert all(tf.files.values()), "an empty .tf file"
    assert {"terraform", "provider", "variable", "locals", "resource", "output"} <= {
        kind for doc in tf.files.values() for kind in doc
    }


def test_every_bicep_file_parses_with_pycep():
    bicep = load_bicep()
    assert set(bicep.files) == set(INFRA.rglob("*.bicep"))
    assert bicep.main["globals"]["scope"]["value"] == "subscription"
    for path, doc in bicep.files.items():
        assert doc.get("resources"), f"{path.relative_to(ROOT)} declares no resource"


def test_every_module_file_exists():
    bicep = load_bicep()
    for path, doc in bicep.files.items():
        for name, module in (doc.get("modules") or {}).items():
            target = path.parent / module["detail"]["path"]
            assert target.is_file(), f"{path.name}: module {name} -> {target} is missing"


def test_main_parameters_json_matches_main_bicep():
    params = load_bicep().main["parameters"]
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(params), (
        f"main.parameters.json sets unknown parameters {set(given) - set(params)}"
    )
    required = {name for name, p in params.items() if p["default"] is None}
    assert required <= set(given), f"azd cannot fill {required - set(given)}"
    # Everything a person may want to change is reachable through `azd env set`, nothing has to be edited.
    assert set(params) == set(given)


def test_azure_yaml_has_the_function_app_and_the_trainer():
    spec = load_yaml(ROOT / "azure.yaml")
    assert spec["infra"]["provider"] == "bicep"
    assert (ROOT / spec["infra"]["path"] / f"{spec['infra']['module']}.bicep").is_file()
    services = spec["services"]
    assert services["api"]["host"] == "function" and services["api"]["language"] == "python"
    assert (ROOT / services["api"]["project"] / "function_app.py").is_file()
    trainer = services["trainer"]
    assert trainer["host"] == "containerapp"
    assert (
        ROOT / trainer["project"] / trainer["docker"]["path"]
    ).resolve() == ROOT / "gpu_trainer" / "Dockerfile"
    hook = ROOT / spec["hooks"]["postdeploy"]["posix"]["run"]
    assert hook.is_file() and os.access(hook, os.X_OK)


def test_services_are_tagged_for_azd_in_both_flavours():
    services = set(load_yaml(ROOT / "azure.yaml")["services"])
    bicep_tags = {
        value
        for r in load_bicep().resources()
        for key, value in walk(r.body)
        if unquote(key) == "azd-service-name"
    }
    tf_tags = set()
    for r in load_terraform().resources():
        tags = r.body.get("tags", "")
        if isinstance(tags, str) and "azd-service-name" in tags:
            tf_tags.add(tags.split('"azd-service-name" = "', 1)[1].split('"', 1)[0])
    assert bicep_tags == services
    assert tf_tags == services

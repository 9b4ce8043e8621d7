"""Both flavours parse, the Terraform is `terraform fmt`-clean, and the azd files agree with main.bicep."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from . import hcl_layout
from .iac import INFRA, ROOT, TERRAFORM, load_bicep, load_terraform, load_yaml, unquote, walk


def _fmt(exe: str, source: str) -> str:
    proc = subprocess.run(
        [exe, "fmt", "-"], input=source, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_terraform_is_fmt_clean():
    """terraform fmt's layout (tests/infra/hcl_layout.py, so no CLI is needed), and `terraform fmt -check`
    itself where the CLI is installed."""
    found = [p for f in sorted(TERRAFORM.glob("*.tf")) for p in hcl_layout.problems(f.read_text(), f.name)]
    assert not found, "terraform fmt would change:\n" + "\n".join(found)
    exe = shutil.which("terraform")
    if exe is not None:
        proc = subprocess.run(
            [exe, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


SAMPLE = """resource "x" "y" {
  name = "a"
  resource_group_name = "b"
  tags = {
  env = "x"
      longer_key = 1
  }
  v = ["q",
      "r",
          ]
  # a comment ends a run
  q = 2
  qq = 3
  m = <<EOT
  raw   = text
EOT
  n = 1
}
"""


def test_the_layout_check_finds_what_terraform_fmt_changes():
    """The sample's misplaced lines, and one misplaced line put into every real file, are found (and,
    with the CLI, terraform fmt changes exactly such files and the fixed sample passes)."""
    assert {int(p.split(":")[1]) for p in hcl_layout.problems(SAMPLE)} == {2, 5, 6, 9, 10, 12, 14, 17}
    fixed = SAMPLE.replace("  name = ", "  name                = ").replace("  env = ", "    env        = ")
    fixed = fixed.replace("      longer_key", "    longer_key").replace("          ]", "  ]")
    fixed = (
        fixed.replace('      "r",', '    "r",')
        .replace("  q = ", "  q  = ")
        .replace("  m = ", "  m  = ")
        .replace("  n = ", "  n  = ")
    )
    assert hcl_layout.problems(fixed) == []
    exe = shutil.which("terraform")
    if exe is not None:
        assert _fmt(exe, SAMPLE) == fixed
    for path in sorted(TERRAFORM.glob("*.tf")):
        lines = path.read_text().split("\n")
        k = next(
            i for i, line in enumerate(lines) if " = " in line and line.startswith("  ") and "<<" not in line
        )
        for mutated in (
            lines[:k] + ["  " + lines[k]] + lines[k + 1 :],
            lines[:k] + [lines[k].replace(" = ", "  = ", 1)] + lines[k + 1 :],
        ):
            source = "\n".join(mutated)
            assert any(
                p.startswith(f"{path.name}:{k + 1}:") for p in hcl_layout.problems(source, path.name)
            ), path
            if exe is not None:
                assert _fmt(exe, source) == path.read_text(), path


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

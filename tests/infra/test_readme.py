"""The README's deployment section: every parameter, what it costs to leave running, how to tear it down."""

from __future__ import annotations

import json
import re

from .iac import INFRA, ROOT, load_bicep, load_terraform


def _section() -> str:
    readme = (ROOT / "README.md").read_text()
    assert "\n## Deploy to Azure\n" in readme
    return readme.split("\n## Deploy to Azure\n", 1)[1].split("\n## ", 1)[0]


def test_deploy_section_names_every_parameter_in_both_flavours():
    section = _section()
    for name in load_bicep().main["parameters"]:
        assert f"`{name}`" in section, f"Bicep parameter {name}"
    for name in load_terraform().variables:
        assert f"`{name}`" in section, f"Terraform variable {name}"
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"].values()
    for variable in {m for p in given for m in re.findall(r"\$\{(\w+)", p["value"])} - {
        "AZURE_KEY_VAULT_NAME"
    }:
        assert f"`{variable}`" in section, f"azd variable {variable}"


def test_deploy_section_says_how_to_deploy_what_it_costs_and_how_to_tear_down():
    section = _section()
    for command in ("azd up", "terraform apply", "azd down --purge", "terraform destroy"):
        assert command in section, command
    assert "GPU minutes are billed only while" in section
    assert "cost" in section.lower()

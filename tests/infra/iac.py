"""Read both IaC flavours into plain Python: Bicep with pycep-parser, Terraform with python-hcl2, checkov by subprocess.

The tests compare what the two flavours declare, and check both against the contracts modules (cvcore.layout,
cvcore.settings) and the code (the blob trigger's binding, the trainer's Dockerfile).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions
from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TERRAFORM = INFRA / "terraform"
# checkov lives in its own virtual environment (its pins clash with the Azure SDK's); `make install` creates it.
CHECKOV = ROOT / ".venv" / "iac" / "bin" / "checkov"
IAC_PYTHON = ROOT / ".venv" / "iac" / "bin" / "python"

# Built-in role definition ids and their names (the same in every tenant).
ROLE_NAMES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "7f951dda-4ed3-4680-a7ca-43fe172d538d": "AcrPull",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}

# The Terraform resource type that declares each ARM type (azapi_resource is matched by its own `type`).
ARM_TO_TERRAFORM = {
    "Microsoft.Resources/resourceGroups": "azurerm_resource_group",
    "Microsoft.ManagedIdentity/userAssignedIdentities": "azurerm_user_assigned_identity",
    "Microsoft.OperationalInsights/workspaces": "azurerm_log_analytics_workspace",
    "Microsoft.Insights/components": "azurerm_application_insights",
    "Microsoft.Storage/storageAccounts": "azurerm_storage_account",
    "Microsoft.Storage/storageAccounts/blobServices/containers": "azurerm_storage_container",
    "Microsoft.Storage/storageAccounts/queueServices/queues": "azurerm_storage_queue",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "azurerm_storage_table",
    "Microsoft.Storage/storageAccounts/managementPolicies": "azurerm_storage_management_policy",
    "Microsoft.EventGrid/systemTopics": "azurerm_eventgrid_system_topic",
    "Microsoft.EventGrid/systemTopics/eventSubscriptions": "azurerm_eventgrid_system_topic_event_subscription",
    "Microsoft.KeyVault/vaults": "azurerm_key_vault",
    "Microsoft.ContainerRegistry/registries": "azurerm_container_registry",
    "Microsoft.Web/serverfarms": "azurerm_service_plan",
    "Microsoft.Web/sites": "azurerm_function_app_flex_consumption",
    "Microsoft.Authorization/roleAssignments": "azurerm_role_assignment",
}
TERRAFORM_TO_ARM = {tf: arm for arm, tf in ARM_TO_TERRAFORM.items()}
# ARM child resources that azurerm folds into an argument of the parent resource.
FOLDED_IN_TERRAFORM = {
    "Microsoft.Storage/storageAccounts/blobServices": "azurerm_storage_account.blob_properties",
    "Microsoft.Web/sites/basicPublishingCredentialsPolicies": "azurerm_function_app_flex_consumption.webdeploy_publish_basic_authentication_enabled",
}
# Terraform resources with no Bicep counterpart, because azd does that part.
TERRAFORM_ONLY = {
    "random_password": "azd generates the keys ($(secretOrRandomPassword) in main.parameters.json)",
    "terraform_data": "azd deploy builds and deploys both services; its postdeploy hook subscribes Event Grid",
}
# azurerm arguments that write an app setting (the provider owns these setting names).
TERRAFORM_SITE_CONFIG_SETTINGS = {
    "application_insights_connection_string": "APPLICATIONINSIGHTS_CONNECTION_STRING"
}


def camel_to_snake(name: str) -> str:
    """`deploymentContainer` -> `deployment_container`, `functionInstanceMemoryMB` -> `function_instance_memory_mb`."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] and key[0] in "'\"" else key


def walk(obj: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in nested dicts and lists."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key, value
            yield from walk(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from walk(item)


# ---------------------------------------------------------------------------------------------------- Bicep


@dataclass(frozen=True)
class BicepResource:
    file: Path
    symbol: str
    type: str
    existing: bool
    body: dict  # the resource body, with any loop or condition unwrapped
    loop: bool
    conditional: bool


@dataclass
class Bicep:
    files: dict[Path, dict] = field(default_factory=dict)

    @property
    def main(self) -> dict:
        return self.files[INFRA / "main.bicep"]

    def resources(self, *, deployed_only: bool = True) -> list[BicepResource]:
        out = []
        for path, doc in self.files.items():
            for symbol, res in (doc.get("resources") or {}).items():
                config, loop, conditional = res["config"], False, False
                if "loop_type" in config:
                    config, loop = config["config"], True
                if "condition" in config and "config" in config:
                    config, conditional = config["config"], config["condition"] is not None
                if deployed_only and res["existing"]:
                    continue
                out.append(
                    BicepResource(path, symbol, res["type"], res["existing"], config, loop, conditional)
                )
        return out

    def of_type(self, arm_type: str) -> list[BicepResource]:
        return [r for r in self.resources() if r.type == arm_type]

    def variable(self, path: Path, name: str) -> Any:
        return self.files[path]["variables"][name]["value"]


@cache
def load_bicep() -> Bicep:
    parser = BicepParser()
    return Bicep({path: parser.parse(file_path=path) for path in sorted(INFRA.rglob("*.bicep"))})


# ------------------------------------------------------------------------------------------------ Terraform


@dataclass(frozen=True)
class TerraformResource:
    file: Path
    type: str
    name: str
    body: dict

    @property
    def arm_type(self) -> str | None:
        if self.type == "azapi_resource":
            return self.body["type"].split("@", 1)[0]
        return TERRAFORM_TO_ARM.get(self.type)


@dataclass
class Terraform:
    files: dict[Path, dict] = field(default_factory=dict)

    def blocks(self, kind: str) -> Iterator[tuple[Path, dict]]:
        for path, doc in self.files.items():
            for block in doc.get(kind, []):
                yield path, block

    def resources(self) -> list[TerraformResource]:
        return [
            TerraformResource(path, rtype, name, body)
            for path, block in self.blocks("resource")
            for rtype, named in block.items()
            for name, body in named.items()
        ]

    def resource(self, rtype: str, name: str) -> TerraformResource:
        [found] = [r for r in self.resources() if r.type == rtype and r.name == name]
        return found

    def of_arm_type(self, arm_type: str) -> list[TerraformResource]:
        return [r for r in self.resources() if r.arm_type == arm_type]

    @property
    def locals(self) -> dict:
        merged: dict = {}
        for _, block in self.blocks("locals"):
            merged.update(block)
        return merged

    @property
    def variables(self) -> dict[str, dict]:
        return {name: body for _, block in self.blocks("variable") for name, body in block.items()}

    @property
    def outputs(self) -> dict[str, dict]:
        return {name: body for _, block in self.blocks("output") for name, body in block.items()}


@cache
def load_terraform() -> Terraform:
    options = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
    files = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as f:
            files[path] = hcl2.load(f, serialization_options=options)
    return Terraform(files)


def terraform_text() -> str:
    return "\n".join(p.read_text() for p in sorted(TERRAFORM.glob("*.tf")))


def bicep_text() -> str:
    return "\n".join(p.read_text() for p in sorted(INFRA.rglob("*.bicep")))


# -------------------------------------------------------------------------------------------------- checkov


def checkov_available() -> bool:
    return CHECKOV.exists()


@cache
def run_checkov() -> dict[str, dict]:
    """One checkov run over infra/ for both flavours: {"bicep": report, "terraform": report}."""
    env = dict(os.environ, LOG_LEVEL="WARNING")
    proc = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "terraform",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if not proc.stdout.strip().startswith(("[", "{")):
        raise RuntimeError(f"checkov gave no JSON (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {r["check_type"]: r for r in reports}


def load_yaml(path: Path) -> Any:
    """YAML through the IaC environment's PyYAML (the app's environment has no YAML parser)."""
    if not IAC_PYTHON.exists():
        raise RuntimeError(f"{IAC_PYTHON} is missing: `make install` creates it (infra/requirements-iac.txt)")
    code = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    proc = subprocess.run(
        [str(IAC_PYTHON), "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)

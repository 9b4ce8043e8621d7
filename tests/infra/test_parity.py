"""The Bicep and the Terraform flavours declare the same resources, names, parameters, settings and outputs."""

from __future__ import annotations

import re
from collections import Counter

from .iac import (
    FOLDED_IN_TERRAFORM,
    INFRA,
    ROLE_NAMES,
    TERRAFORM_ONLY,
    TERRAFORM_SITE_CONFIG_SETTINGS,
    camel_to_snake,
    load_bicep,
    load_terraform,
    unquote,
)

# Bicep parameters without a Terraform variable, and why.
BICEP_ONLY_PARAMETERS = {
    "principalId": "Terraform grants the deployer roles to whoever runs it (azurerm_client_config)",
    "trainerImage": "Terraform builds and tags the trainer image itself (deploy.tf); azd passes the one it built",
}


def _bicep_app_settings() -> dict:
    [app] = load_bicep().of_type("Microsoft.Web/sites")
    return {s["name"]: s["value"] for s in app.body["properties"]["siteConfig"]["appSettings"]}


def _terraform_app_settings() -> dict:
    app = load_terraform().resource("azurerm_function_app_flex_consumption", "api")
    settings = dict(app.body["app_settings"])
    for argument, setting in TERRAFORM_SITE_CONFIG_SETTINGS.items():
        if argument in app.body["site_config"][0]:
            settings[setting] = app.body["site_config"][0][argument]
    return settings


def _bicep_job() -> dict:
    [job] = load_bicep().of_type("Microsoft.App/jobs")
    return job.body


def _terraform_job() -> dict:
    [job] = load_terraform().of_arm_type("Microsoft.App/jobs")
    return job.body["body"]


def test_same_resources_in_both_flavours():
    bicep = Counter(r.type for r in load_bicep().resources() if r.type not in FOLDED_IN_TERRAFORM)
    terraform = Counter(r.arm_type for r in load_terraform().resources() if r.type not in TERRAFORM_ONLY)
    assert None not in terraform, "a Terraform resource type with no ARM counterpart in tests/infra/iac.py"
    assert bicep == terraform


def test_terraform_only_resources_are_what_azd_does_itself():
    unmatched = {r.type for r in load_terraform().resources() if r.arm_type is None}
    assert unmatched == set(TERRAFORM_ONLY)


def test_same_resource_names():
    bicep_names = load_bicep().variable(INFRA / "main.bicep", "names")
    tf_names = load_terraform().locals["names"]
    normalized = {
        camel_to_snake(k): v.replace("${token}", "<token>").replace("${environmentName}", "<env>")
        for k, v in bicep_names.items()
    }
    tf_normalized = {
        k: v.replace("${local.token}", "<token>").replace("${var.environment_name}", "<env>")
        for k, v in tf_names.items()
    }
    assert normalized == tf_normalized
    # Both derive the token from the subscription, the environment name and the region.
    bicep_token = str(load_bicep().variable(INFRA / "main.bicep", "token"))
    assert all(part in bicep_token for part in ("subscription", "environmentName", "location"))
    tf_token = load_terraform().locals["token"]
    assert all(part in tf_token for part in ("subscription_id", "var.environment_name", "var.location"))


def test_every_name_is_used():
    main = (INFRA / "main.bicep").read_text()
    tf_text = "\n".join(p.read_text() for p in (INFRA / "terraform").glob("*.tf"))
    for key in load_bicep().variable(INFRA / "main.bicep", "names"):
        assert main.count(f"names.{key}") >= 1, f"main.bicep never uses names.{key}"
    for key in load_terraform().locals["names"]:
        assert f"local.names.{key}" in tf_text, f"the Terraform never uses local.names.{key}"


def test_same_parameters():
    params = load_bicep().main["parameters"]
    variables = load_terraform().variables
    bicep = {camel_to_snake(name) for name in params if name not in BICEP_ONLY_PARAMETERS}
    assert bicep == set(variables)
    for name, param in params.items():
        if name in BICEP_ONLY_PARAMETERS or param["default"] is None:
            continue
        assert variables[camel_to_snake(name)].get("default") == param["default"], f"default of {name}"


def test_every_parameter_is_described():
    for name, param in load_bicep().main["parameters"].items():
        assert any(d["type"] == "description" for d in param["decorators"]), f"main.bicep: {name}"
    for name, variable in load_terraform().variables.items():
        assert variable.get("description"), f"variables.tf: {name}"


def test_same_outputs_in_upper_snake_case():
    bicep = set(load_bicep().main["outputs"])
    terraform = set(load_terraform().outputs)
    assert bicep == terraform
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in bicep)


def test_same_function_app_settings():
    assert set(_bicep_app_settings()) == set(_terraform_app_settings())


def test_same_trainer_job():
    bicep, terraform = _bicep_job(), _terraform_job()
    env = {e["name"] for e in bicep["properties"]["template"]["containers"][0]["env"]}
    tf_env = {e["name"] for e in terraform["properties"]["template"]["containers"][0]["env"]}
    assert env == tf_env
    for job in (bicep["properties"], terraform["properties"]):
        config = job["configuration"]
        assert config["triggerType"] == "Event"
        assert config["replicaRetryLimit"] == 0
        trigger = config["eventTriggerConfig"]
        assert (trigger["parallelism"], trigger["replicaCompletionCount"]) == (1, 1)
        [rule] = trigger["scale"]["rules"]
        assert rule["type"] == "azure-queue"
        assert set(rule["metadata"]) == {"accountName", "queueName", "queueLength"}
        assert rule["metadata"]["queueLength"] == "1"
        assert rule["identity"], "the KEDA rule must authenticate with the managed identity"
        assert "auth" not in rule, "no connection-string secret for the scaler"
        assert [r["identity"] for r in config["registries"]], "the job pulls with the managed identity"


def test_same_gpu_sizes_and_profiles():
    bicep_sizes = load_bicep().variable(INFRA / "app" / "trainer.bicep", "gpuSizes")
    tf_sizes = load_terraform().locals["gpu_sizes"]
    assert {unquote(k): v for k, v in bicep_sizes.items()} == tf_sizes
    allowed = next(
        d["argument"]
        for d in load_bicep().main["parameters"]["gpuProfileType"]["decorators"]
        if d["type"] == "allowed"
    )
    assert set(allowed) == set(tf_sizes)
    validation = load_terraform().variables["gpu_profile_type"]["validation"][0]["condition"]
    assert all(profile in validation for profile in allowed)


def _bicep_role_assignments() -> set[tuple[str, str, str]]:
    bicep = load_bicep()
    out = set()
    for r in bicep.of_type("Microsoft.Authorization/roleAssignments"):
        doc = bicep.files[r.file]
        roles = doc["variables"]["roles"]["value"]
        role_ref = r.body["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
        role = roles[role_ref["operator"]["operands"]["operand_2"]]
        scope_type = doc["resources"][r.body["scope"]]["type"]
        out.add((role, scope_type, r.body["properties"]["principalId"]))
    return out


def _terraform_role_assignments() -> set[tuple[str, str, str]]:
    tf = load_terraform()
    roles = tf.locals["roles"]
    out = set()
    for r in tf.resources():
        if r.type != "azurerm_role_assignment":
            continue
        role = roles[re.search(r"local\.roles\.(\w+)", r.body["role_definition_id"]).group(1)]
        scope = re.fullmatch(r"\$\{(\w+)\.(\w+)\.id\}", r.body["scope"])
        scope_type = tf.resource(scope.group(1), scope.group(2)).arm_type
        principal = r.body["principal_id"].removeprefix("${local.").removesuffix("}")
        out.add((role, scope_type, principal))
    return out


def test_same_role_assignments():
    principals = {"identityPrincipalId": "identity", "deployerPrincipalId": "deployer"}
    bicep = {(role, scope, principals[p]) for role, scope, p in _bicep_role_assignments()}
    terraform = _terraform_role_assignments()
    assert bicep == terraform
    assert {role for role, _, _ in bicep} <= set(ROLE_NAMES)
    granted = {ROLE_NAMES[role] for role, _, principal in bicep if principal == "identity"}
    assert {
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
        "AcrPull",
    } <= granted

"""Both flavours against the code: the storage layout, the settings, the blob trigger, the trainer image."""

from __future__ import annotations

import importlib.util
import re

import pytest

from cvcore import layout, settings

from .iac import INFRA, ROLE_NAMES, ROOT, TERRAFORM, load_bicep, load_terraform

MAIN = INFRA / "main.bicep"


def _bicep_var(name: str, path=MAIN):
    return load_bicep().variable(path, name)


@pytest.mark.parametrize(
    ("bicep_var", "tf_local", "expected"),
    [
        ("containers", "containers", layout.CONTAINERS),
        ("queues", "queues", layout.ALL_QUEUES),
        ("tables", "tables", layout.TABLES),
    ],
    ids=["containers", "queues", "tables"],
)
def test_every_layout_name_exists_in_both(bicep_var, tf_local, expected):
    assert sorted(_bicep_var(bicep_var)) == sorted(expected)
    assert sorted(load_terraform().locals[tf_local]) == sorted(expected)


def test_poison_queues_are_declared():
    for queue in layout.QUEUES:
        assert queue + layout.POISON_SUFFIX in _bicep_var("queues")
        assert queue + layout.POISON_SUFFIX in load_terraform().locals["queues"]


def test_layout_lists_reach_the_storage_resources():
    storage = load_bicep().files[INFRA / "app" / "storage.bicep"]["resources"]
    loops = {
        sym: res["config"]["loop_type"]["detail"]["array_name"]
        for sym, res in storage.items()
        if "loop_type" in res["config"]
    }
    assert sorted(loops.values()) == ["containers", "queues", "tables"]
    main_text = MAIN.read_text()
    assert "containers: concat(containers, [names.deploymentContainer])" in main_text
    assert "queues: queues" in main_text and "tables: tables" in main_text
    tf = load_terraform()
    assert (
        tf.resource("azurerm_storage_container", "main").body["for_each"]
        == "${toset(concat(local.containers, [local.names.deployment_container]))}"
    )
    assert tf.resource("azurerm_storage_queue", "main").body["for_each"] == "${toset(local.queues)}"
    assert tf.resource("azurerm_storage_table", "main").body["for_each"] == "${toset(local.tables)}"


def test_deployment_container_is_not_a_layout_container():
    assert not _bicep_var("names")["deploymentContainer"].startswith(layout.CONTAINERS)


def test_every_setting_the_code_reads_is_set_in_both():
    from .test_parity import _bicep_app_settings, _terraform_app_settings

    # The API keys are Key Vault references (built in keyvault.bicep / keyvault.tf, checked below).
    references = {
        "bicep": {
            settings.TRAINING_KEY: "trainingKeyReference",
            settings.PREDICTION_KEY: "predictionKeyReference",
        },
        "terraform": {
            settings.TRAINING_KEY: "${local.training_key_reference}",
            settings.PREDICTION_KEY: "${local.prediction_key_reference}",
        },
    }
    for name, flavour in (("bicep", _bicep_app_settings()), ("terraform", _terraform_app_settings())):
        missing = set(settings.APP_SETTINGS) - set(flavour)
        assert not missing, f"{name}: app settings missing {missing}"
        # Identity-based storage: the connection string stays empty so nothing falls back to account keys.
        assert flavour[settings.STORAGE] == ""
        assert flavour[settings.CREDENTIAL] == "managedidentity"
        for key, reference in references[name].items():
            assert flavour[key] == reference, (name, key)
    main = MAIN.read_text()
    assert "trainingKeyReference: keyVault.outputs.trainingKeyReference" in main
    assert "predictionKeyReference: keyVault.outputs.predictionKeyReference" in main


def test_keys_come_from_key_vault_in_both():
    keyvault = (INFRA / "app" / "keyvault.bicep").read_text()
    assert keyvault.count("'@Microsoft.KeyVault(VaultName=${vault.name};SecretName=") == 2
    tf = load_terraform()
    assert tf.locals["training_key_reference"].startswith("@Microsoft.KeyVault(VaultName=")
    assert tf.locals["prediction_key_reference"].startswith("@Microsoft.KeyVault(VaultName=")
    [app] = load_bicep().of_type("Microsoft.Web/sites")
    assert app.body["properties"]["keyVaultReferenceIdentity"] == "identityId"
    assert tf.resource("azurerm_function_app_flex_consumption", "api").body["key_vault_reference_identity_id"]


def test_trainer_job_gets_the_storage_settings_the_trainer_reads():
    from .test_parity import _bicep_job, _terraform_job

    # The trainer calls settings.load_storage(): storage only, never the API keys; in Azure the identity-based form.
    assert "settings.load_storage()" in (ROOT / "gpu_trainer" / "__main__.py").read_text()
    trainer_reads = set(settings.APP_SETTINGS) - {
        settings.STORAGE,
        settings.TRAINING_KEY,
        settings.PREDICTION_KEY,
    }
    for job in (_bicep_job(), _terraform_job()):
        env = {e["name"]: e["value"] for e in job["properties"]["template"]["containers"][0]["env"]}
        assert trainer_reads <= set(env), f"job env lacks {trainer_reads - set(env)}"
        assert env[settings.CREDENTIAL] == "managedidentity"
        assert "AZURE_CLIENT_ID" in env  # DefaultAzureCredential picks the user-assigned identity too


def test_keda_rule_watches_the_training_jobs_queue():
    from .test_parity import _bicep_job, _terraform_job

    assert _bicep_var("trainingJobsQueue") == layout.TRAINING_JOBS
    assert load_terraform().locals["training_jobs_queue"] == layout.TRAINING_JOBS
    [bicep_rule] = _bicep_job()["properties"]["configuration"]["eventTriggerConfig"]["scale"]["rules"]
    assert bicep_rule["metadata"]["queueName"] == "trainingJobsQueue"
    assert "trainingJobsQueue: trainingJobsQueue" in MAIN.read_text()
    [tf_rule] = _terraform_job()["properties"]["configuration"]["eventTriggerConfig"]["scale"]["rules"]
    assert tf_rule["metadata"]["queueName"] == "${local.training_jobs_queue}"


def _event_grid_blob_triggers() -> list[tuple[str, dict]]:
    import function_app

    out = []
    for function in function_app.app.get_functions():
        for binding in function.get_bindings():
            spec = binding.get_dict_repr()
            if spec["type"] == "blobTrigger":
                out.append((function.get_function_name(), spec))
    return out


def test_event_grid_subscription_targets_the_uploads_blob_trigger():
    triggers = _event_grid_blob_triggers()
    assert triggers, "no blob trigger in function_app"
    for _, spec in triggers:
        # Flex Consumption runs only Event Grid-sourced blob triggers.
        assert str(spec.get("source")) in ("EventGrid", "BlobSource.EVENT_GRID"), spec
        assert spec["connection"] == settings.STORAGE
    [(name, spec)] = triggers
    container = spec["path"].split("/", 1)[0]
    assert container == layout.UPLOADS

    subscription = load_bicep().files[INFRA / "app" / "upload-subscription.bicep"]
    params = subscription["parameters"]
    assert params["functionName"]["default"] == name
    assert params["uploadsContainer"]["default"] == container
    [bicep_sub] = load_bicep().of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    url = bicep_sub.body["properties"]["destination"]["properties"]["endpointUrl"]
    assert (
        "/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}" in url
    )
    assert (
        bicep_sub.body["properties"]["filter"]["subjectBeginsWith"]
        == "/blobServices/default/containers/${uploadsContainer}/blobs/"
    )
    key = str(subscription["variables"]["blobsExtensionKey"]["value"])
    assert "listKeys" in key and "/host/default" in key and "blobs_extension" in key

    tf = load_terraform()
    assert tf.locals["upload_function_name"] == name
    assert tf.locals["uploads_container"] == container
    tf_sub = tf.resource("azurerm_eventgrid_system_topic_event_subscription", "uploads")
    tf_url = tf_sub.body["webhook_endpoint"][0]["url"]
    assert (
        "/runtime/webhooks/blobs?functionName=Host.Functions.${local.upload_function_name}"
        "&code=${data.azurerm_function_app_host_keys.api.blobs_extension_key}"
    ) in tf_url
    assert (
        tf_sub.body["subject_filter"][0]["subject_begins_with"]
        == "/blobServices/default/containers/${local.uploads_container}/blobs/"
    )
    for flavour in (
        bicep_sub.body["properties"]["filter"]["includedEventTypes"],
        tf_sub.body["included_event_types"],
    ):
        assert flavour == ["Microsoft.Storage.BlobCreated"]


def test_storage_account_is_locked_to_entra_id_in_both():
    [account] = load_bicep().of_type("Microsoft.Storage/storageAccounts")
    props = account.body["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["allowBlobPublicAccess"] is False
    [blob] = load_bicep().of_type("Microsoft.Storage/storageAccounts/blobServices")
    assert blob.body["properties"]["isVersioningEnabled"] is True
    assert blob.body["properties"]["deleteRetentionPolicy"]["enabled"] is True

    tf = load_terraform().resource("azurerm_storage_account", "main").body
    assert tf["shared_access_key_enabled"] is False
    assert tf["min_tls_version"] == "TLS1_2"
    assert tf["https_traffic_only_enabled"] is True
    assert tf["allow_nested_items_to_be_public"] is False
    blob_properties = tf["blob_properties"][0]
    assert blob_properties["versioning_enabled"] is True
    assert blob_properties["delete_retention_policy"][0]["days"] == "${var.soft_delete_days}"


def test_function_app_is_flex_consumption_python_311_with_identity_deployment_storage():
    [plan] = load_bicep().of_type("Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    [app] = load_bicep().of_type("Microsoft.Web/sites")
    config = app.body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert app.body["identity"]["type"] == "UserAssigned"

    tf = load_terraform()
    assert tf.resource("azurerm_service_plan", "main").body["sku_name"] == "FC1"
    body = tf.resource("azurerm_function_app_flex_consumption", "api").body
    assert (body["runtime_name"], body["runtime_version"]) == ("python", "3.11")
    assert body["storage_authentication_type"] == "UserAssignedIdentity"
    assert body["identity"][0]["type"] == "UserAssigned"


def _role_blocks(text: str, start: re.Pattern) -> list[tuple[str, str]]:
    """(comment line above, block text) for each role assignment declaration."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if start.match(line):
            end = next(j for j in range(i + 1, len(lines)) if lines[j] == "}")
            out.append((lines[i - 1], "\n".join(lines[i : end + 1])))
    return out


def test_role_assignments_are_named_deterministically_with_the_role_name_in_a_comment():
    bicep_roles = _bicep_var("roles", INFRA / "app" / "roles.bicep")
    bicep_text = (INFRA / "app" / "roles.bicep").read_text()
    blocks = _role_blocks(bicep_text, re.compile(r"resource \w+ 'Microsoft.Authorization/roleAssignments@"))
    assert len(blocks) == len(load_bicep().of_type("Microsoft.Authorization/roleAssignments"))
    for comment, block in blocks:
        key = re.search(r"name: guid\((\w+)\.id, (\w+), roles\.(\w+)\)", block)
        assert key, f"not named guid(scope.id, principal, role):\n{block}"
        assert f"scope: {key.group(1)}\n" in block and f"principalId: {key.group(2)}\n" in block
        assert comment.startswith("// " + ROLE_NAMES[bicep_roles[key.group(3)]]), (comment, block)

    tf_roles = load_terraform().locals["roles"]
    tf_text = (TERRAFORM / "roles.tf").read_text()
    blocks = _role_blocks(tf_text, re.compile(r'resource "azurerm_role_assignment" "\w+" \{'))
    assert len(blocks) == sum(r.type == "azurerm_role_assignment" for r in load_terraform().resources())
    for comment, block in blocks:
        key = re.search(
            r'name += uuidv5\("url", "\$\{(\w+\.\w+)\.id\}/\$\{local\.(\w+)\}/\$\{local\.roles\.(\w+)\}"\)',
            block,
        )
        assert key, f"not named uuidv5(scope, principal, role):\n{block}"
        assert re.search(rf"scope += {re.escape(key.group(1))}\.id\n", block)
        assert re.search(rf"principal_id += local\.{key.group(2)}\n", block)
        assert f'roles.{key.group(3)}}}"\n' in block
        assert comment.startswith("# " + ROLE_NAMES[tf_roles[key.group(3)]]), (comment, block)
    for roles in (bicep_roles, tf_roles):
        for line in (bicep_text + tf_text).splitlines():
            for guid in roles.values():
                if guid in line:
                    assert ROLE_NAMES[guid] in line, f"role id without its name: {line}"


def _stage_module():
    spec = importlib.util.spec_from_file_location("stage", INFRA / "scripts" / "stage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deploy_sources_agree_between_terraform_and_the_staging_script():
    stage = _stage_module()
    assert load_terraform().locals["sources"] == {part: list(p) for part, p in stage.PARTS.items()}
    for part in stage.PARTS:
        assert stage.files(part), part


def test_trainer_context_holds_everything_the_dockerfile_copies():
    stage = _stage_module()
    staged = {p.as_posix() for p in stage.files("trainer")}
    dockerfile = (ROOT / "gpu_trainer" / "Dockerfile").read_text()
    sources = [line.split()[1:-1] for line in dockerfile.splitlines() if line.startswith("COPY ")]
    assert sources
    for source in (s for group in sources for s in group if not s.startswith("--")):
        assert source in staged or any(f.startswith(source.rstrip("/") + "/") for f in staged), source


def test_functions_package_holds_the_app_and_its_local_packages():
    stage = _stage_module()
    staged = {p.as_posix() for p in stage.files("functions")}
    assert {"function_app.py", "host.json", "requirements.txt"} <= staged
    code = "\n".join((ROOT / f).read_text() for f in staged if f.endswith(".py"))
    local = {m for m in re.findall(r"^\s*(?:from|import) (\w+)", code, re.MULTILINE) if (ROOT / m).is_dir()}
    for package in local:
        assert any(f.startswith(package + "/") for f in staged), f"{package}/ is imported but not packaged"

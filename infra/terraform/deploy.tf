# What `azd deploy` and infra/hooks/postdeploy.sh do for the Bicep flavour: build the trainer image, deploy the
# Functions code, then subscribe the uploads blob trigger to Event Grid. Needs `az` (signed in), `python3`, `sh`.
locals {
  repo_root = abspath("${path.module}/../..")
  # The same patterns as infra/scripts/stage.py's PARTS (tests/infra checks): the inputs each part is built from.
  sources = {
    functions = ["function_app.py", "host.json", "requirements.txt", "functions/**/*.py", "cvcore/**/*.py"]
    trainer = ["requirements.txt", "gpu_trainer/Dockerfile", "gpu_trainer/requirements.txt", "gpu_trainer/**/*.py",
    "cvcore/**/*.py"]
  }
  source_hashes = {
    for part, patterns in local.sources : part => sha1(join(",", [
      for file in sort(distinct(flatten([for pattern in patterns : tolist(fileset(local.repo_root, pattern))]))) :
      "${file}:${filesha1("${local.repo_root}/${file}")}"
    ]))
  }
  trainer_tag = substr(local.source_hashes.trainer, 0, 12)
  # Python function name of the uploads blob trigger with source=EventGrid (functions/blob_ingest.py).
  upload_function_name = "ingest_upload"
  uploads_container    = "uploads"
}

resource "terraform_data" "trainer_image" {
  triggers_replace = [azurerm_container_registry.main.id, local.trainer_image]

  provisioner "local-exec" {
    command = "sh '${local.repo_root}/infra/scripts/build-trainer.sh' '${azurerm_container_registry.main.name}' 'cv-trainer:${local.trainer_tag}'"
  }
}

resource "terraform_data" "function_code" {
  triggers_replace = [azurerm_function_app_flex_consumption.api.id, local.source_hashes.functions]

  provisioner "local-exec" {
    command = "sh '${local.repo_root}/infra/scripts/deploy-functions.sh' '${azurerm_resource_group.main.name}' '${azurerm_function_app_flex_consumption.api.name}'"
  }
}

# Read after the code is deployed: the host creates its blobs_extension key when it loads the blob trigger.
data "azurerm_function_app_host_keys" "api" {
  name                = azurerm_function_app_flex_consumption.api.name
  resource_group_name = azurerm_resource_group.main.name

  depends_on = [terraform_data.function_code]
}

resource "azurerm_eventgrid_system_topic_event_subscription" "uploads" {
  name                  = "uploads-ingest"
  system_topic          = azurerm_eventgrid_system_topic.storage.name
  resource_group_name   = azurerm_resource_group.main.name
  event_delivery_schema = "EventGridSchema"
  included_event_types  = ["Microsoft.Storage.BlobCreated"]

  subject_filter {
    subject_begins_with = "/blobServices/default/containers/${local.uploads_container}/blobs/"
  }

  webhook_endpoint {
    url                               = "https://${azurerm_function_app_flex_consumption.api.default_hostname}/runtime/webhooks/blobs?functionName=Host.Functions.${local.upload_function_name}&code=${data.azurerm_function_app_host_keys.api.blobs_extension_key}"
    max_events_per_batch              = 1
    preferred_batch_size_in_kilobytes = 64
  }

  retry_policy {
    max_delivery_attempts = 30
    event_time_to_live    = 1440
  }
}

# The whole system in one `terraform apply`: the same resources, names and settings as infra/main.bicep
# (tests/infra checks that they agree), then the code deployments and the Event Grid subscription (deploy.tf).

data "azurerm_client_config" "current" {}

data "azurerm_subscription" "current" {}

locals {
  token = substr(sha256("${data.azurerm_subscription.current.subscription_id}/${var.environment_name}/${var.location}"), 0, 13)
  tags = {
    "azd-env-name" = var.environment_name
  }

  # Every resource name, one place; infra/main.bicep builds the same names from the same pattern.
  names = {
    resource_group       = "rg-${var.environment_name}"
    identity             = "id-${local.token}"
    storage              = "st${local.token}"
    log_analytics        = "log-${local.token}"
    app_insights         = "appi-${local.token}"
    key_vault            = "kv-${local.token}"
    registry             = "cr${local.token}"
    plan                 = "plan-${local.token}"
    function_app         = "func-${local.token}"
    container_env        = "cae-${local.token}"
    trainer_job          = "caj-trainer-${local.token}"
    system_topic         = "evgt-${local.token}"
    deployment_container = "app-package-${local.token}"
  }

  # The storage layout the contracts module (cvcore/layout.py) names; tests/infra checks both flavours against it.
  containers = [
    "images",
    "models",
    "predictions",
    "uploads",
    "rejected",
  ]
  queues = [
    "training-jobs",
    "training-events",
    "project-imports",
    "webhook-deliveries",
    "training-jobs-poison",
    "training-events-poison",
    "project-imports-poison",
    "webhook-deliveries-poison",
  ]
  tables = [
    "projects",
    "tags",
    "images",
    "iterations",
    "predictions",
  ]
  training_jobs_queue = "training-jobs"
}

resource "azurerm_resource_group" "main" {
  name     = local.names.resource_group
  location = var.location
  tags     = local.tags
}

# The one user-assigned identity: the Function app and the trainer job both run as it (roles in roles.tf).
resource "azurerm_user_assigned_identity" "main" {
  name                = local.names.identity
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  tags                = local.tags
}

# Role assignments, named deterministically: uuidv5 of scope, principal and role. Each role's name is in the
# comment above it.
locals {
  # Built-in role definition ids (the same in every tenant).
  roles = {
    storage_blob_data_owner        = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b" # Storage Blob Data Owner
    storage_blob_data_contributor  = "ba92f5b4-2d11-453d-a403-e96b0029c9fe" # Storage Blob Data Contributor
    storage_queue_data_contributor = "974c5e8b-45b9-4653-ba55-5f855dd0fb88" # Storage Queue Data Contributor
    storage_table_data_contributor = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3" # Storage Table Data Contributor
    acr_pull                       = "7f951dda-4ed3-4680-a7ca-43fe172d538d" # AcrPull
    key_vault_secrets_user         = "4633458b-17de-408a-b874-0445c86b69e6" # Key Vault Secrets User
    key_vault_secrets_officer      = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7" # Key Vault Secrets Officer
    monitoring_metrics_publisher   = "3913510d-42f4-4e42-8a64-420c390055eb" # Monitoring Metrics Publisher
  }
  role_definitions = "${data.azurerm_subscription.current.id}/providers/Microsoft.Authorization/roleDefinitions"
  identity         = azurerm_user_assigned_identity.main.principal_id
  deployer         = data.azurerm_client_config.current.object_id
}

# Storage Blob Data Owner: blob triggers (receipts), images, models, predictions, the deployment package.
resource "azurerm_role_assignment" "identity_blob_owner" {
  name               = uuidv5("url", "${azurerm_storage_account.main.id}/${local.identity}/${local.roles.storage_blob_data_owner}")
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.storage_blob_data_owner}"
  principal_id       = local.identity
  principal_type     = "ServicePrincipal"
}

# Storage Queue Data Contributor: the training, event and import queues with their poison queues (and KEDA's queue length).
resource "azurerm_role_assignment" "identity_queue_contributor" {
  name               = uuidv5("url", "${azurerm_storage_account.main.id}/${local.identity}/${local.roles.storage_queue_data_contributor}")
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.storage_queue_data_contributor}"
  principal_id       = local.identity
  principal_type     = "ServicePrincipal"
}

# Storage Table Data Contributor: projects, tags, images and iterations tables.
resource "azurerm_role_assignment" "identity_table_contributor" {
  name               = uuidv5("url", "${azurerm_storage_account.main.id}/${local.identity}/${local.roles.storage_table_data_contributor}")
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.storage_table_data_contributor}"
  principal_id       = local.identity
  principal_type     = "ServicePrincipal"
}

# AcrPull: the trainer job pulls its image with the identity.
resource "azurerm_role_assignment" "identity_acr_pull" {
  name               = uuidv5("url", "${azurerm_container_registry.main.id}/${local.identity}/${local.roles.acr_pull}")
  scope              = azurerm_container_registry.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.acr_pull}"
  principal_id       = local.identity
  principal_type     = "ServicePrincipal"
}

# Key Vault Secrets User: resolves the CUSTOMVISION_*_KEY Key Vault references in the app settings.
resource "azurerm_role_assignment" "identity_secrets_user" {
  name               = uuidv5("url", "${azurerm_key_vault.main.id}/${local.identity}/${local.roles.key_vault_secrets_user}")
  scope              = azurerm_key_vault.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.key_vault_secrets_user}"
  principal_id       = local.identity
  principal_type     = "ServicePrincipal"
}

# Monitoring Metrics Publisher: Application Insights accepts Entra-authenticated telemetry only.
resource "azurerm_role_assignment" "identity_metrics_publisher" {
  name               = uuidv5("url", "${azurerm_application_insights.main.id}/${local.identity}/${local.roles.monitoring_metrics_publisher}")
  scope              = azurerm_application_insights.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.monitoring_metrics_publisher}"
  principal_id       = local.identity
  principal_type     = "ServicePrincipal"
}

# Key Vault Secrets Officer: the deployer reads the keys (`az keyvault secret show`).
resource "azurerm_role_assignment" "deployer_secrets_officer" {
  name               = uuidv5("url", "${azurerm_key_vault.main.id}/${local.deployer}/${local.roles.key_vault_secrets_officer}")
  scope              = azurerm_key_vault.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.key_vault_secrets_officer}"
  principal_id       = local.deployer
}

# Storage Blob Data Contributor: the deployer drops files into uploads/ with `az storage blob upload --auth-mode login`.
resource "azurerm_role_assignment" "deployer_blob_contributor" {
  name               = uuidv5("url", "${azurerm_storage_account.main.id}/${local.deployer}/${local.roles.storage_blob_data_contributor}")
  scope              = azurerm_storage_account.main.id
  role_definition_id = "${local.role_definitions}/${local.roles.storage_blob_data_contributor}"
  principal_id       = local.deployer
}

# The Functions app (HTTP APIs, the uploads blob trigger, the training-events and project-imports queue triggers)
# on Flex Consumption.
# Storage is reached with the user-assigned identity only: the AzureWebJobsStorage__* settings below are what
# cvcore/settings.py reads, and the deployment package container is read with the same identity.
resource "azurerm_service_plan" "main" {
  #checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; the region is a variable
  #checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per request; always-ready instances would bill while idle
  name                = local.names.plan
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  os_type             = "Linux"
  sku_name            = "FC1"
  tags                = local.tags
}

resource "azurerm_function_app_flex_consumption" "api" {
  name                = local.names.function_app
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  service_plan_id     = azurerm_service_plan.main.id
  tags                = merge(local.tags, { "azd-service-name" = "api" })

  runtime_name           = "python"
  runtime_version        = "3.11"
  maximum_instance_count = var.function_max_instances
  instance_memory_in_mb  = var.function_instance_memory_mb

  storage_container_type            = "blobContainer"
  storage_container_endpoint        = "${azurerm_storage_account.main.primary_blob_endpoint}${local.names.deployment_container}"
  storage_authentication_type       = "UserAssignedIdentity"
  storage_user_assigned_identity_id = azurerm_user_assigned_identity.main.id

  https_only                                     = true
  public_network_access_enabled                  = true
  webdeploy_publish_basic_authentication_enabled = false
  key_vault_reference_identity_id                = azurerm_user_assigned_identity.main.id

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.main.id]
  }

  site_config {
    minimum_tls_version     = "1.2"
    scm_minimum_tls_version = "1.2"
    http2_enabled           = true
    # Sets APPLICATIONINSIGHTS_CONNECTION_STRING.
    application_insights_connection_string = azurerm_application_insights.main.connection_string
  }

  app_settings = {
    # Identity-based storage; the connection-string form stays empty so nothing falls back to account keys.
    AzureWebJobsStorage                       = ""
    AzureWebJobsStorage__blobServiceUri       = azurerm_storage_account.main.primary_blob_endpoint
    AzureWebJobsStorage__queueServiceUri      = azurerm_storage_account.main.primary_queue_endpoint
    AzureWebJobsStorage__tableServiceUri      = azurerm_storage_account.main.primary_table_endpoint
    AzureWebJobsStorage__credential           = "managedidentity"
    AzureWebJobsStorage__clientId             = azurerm_user_assigned_identity.main.client_id
    CUSTOMVISION_TRAINING_KEY                 = local.training_key_reference
    CUSTOMVISION_PREDICTION_KEY               = local.prediction_key_reference
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING = "ClientId=${azurerm_user_assigned_identity.main.client_id};Authorization=AAD"
  }

  depends_on = [
    azurerm_role_assignment.identity_blob_owner,
    azurerm_role_assignment.identity_queue_contributor,
    azurerm_role_assignment.identity_table_contributor,
    azurerm_role_assignment.identity_secrets_user,
    azurerm_role_assignment.identity_metrics_publisher,
  ]
}

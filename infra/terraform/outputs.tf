# The same outputs as infra/main.bicep, in UPPER_SNAKE (azd reads them into its environment; scripts can too).
output "AZURE_LOCATION" {
  value = azurerm_resource_group.main.location
}

output "AZURE_TENANT_ID" {
  value = data.azurerm_client_config.current.tenant_id
}

output "AZURE_RESOURCE_GROUP" {
  value = azurerm_resource_group.main.name
}

output "AZURE_CLIENT_ID" {
  value = azurerm_user_assigned_identity.main.client_id
}

output "AZURE_STORAGE_ACCOUNT_NAME" {
  value = azurerm_storage_account.main.name
}

output "AZURE_EVENTGRID_SYSTEM_TOPIC_NAME" {
  value = azurerm_eventgrid_system_topic.storage.name
}

output "AZURE_KEY_VAULT_NAME" {
  value = azurerm_key_vault.main.name
}

output "AZURE_CONTAINER_REGISTRY_NAME" {
  value = azurerm_container_registry.main.name
}

output "AZURE_CONTAINER_REGISTRY_ENDPOINT" {
  value = azurerm_container_registry.main.login_server
}

output "AZURE_FUNCTION_APP_NAME" {
  value = azurerm_function_app_flex_consumption.api.name
}

output "AZURE_FUNCTION_APP_URL" {
  value = "https://${azurerm_function_app_flex_consumption.api.default_hostname}"
}

output "AZURE_CONTAINER_APPS_ENVIRONMENT_NAME" {
  value = azapi_resource.container_env.name
}

output "AZURE_TRAINER_JOB_NAME" {
  value = azapi_resource.trainer_job.name
}

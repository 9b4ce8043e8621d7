# The training and prediction keys, read by the Function app through Key Vault references (Key Vault Secrets User).
resource "azurerm_key_vault" "main" {
  #checkov:skip=CKV_AZURE_109: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (Azure RBAC)
  #checkov:skip=CKV_AZURE_189: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (Azure RBAC)
  #checkov:skip=CKV2_AZURE_32: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (Azure RBAC)
  #checkov:skip=CKV_AZURE_110: purge protection would keep the vault name reserved after terraform destroy; both keys are regenerable
  #checkov:skip=CKV_AZURE_42: soft delete is on (7 days); purge protection is off so that teardown removes everything
  name                          = local.names.key_vault
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  tenant_id                     = data.azurerm_client_config.current.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  soft_delete_retention_days    = 7
  public_network_access_enabled = true
  tags                          = local.tags

  network_acls {
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

resource "random_password" "training_key" {
  length  = 40
  special = false
}

resource "random_password" "prediction_key" {
  length  = 40
  special = false
}

locals {
  training_key   = coalesce(var.training_key, random_password.training_key.result)
  prediction_key = coalesce(var.prediction_key, random_password.prediction_key.result)
}

# Written through Azure Resource Manager like the Bicep flavour: no data-plane role has to propagate first.
resource "azapi_resource" "training_key" {
  type      = "Microsoft.KeyVault/vaults/secrets@2023-07-01"
  name      = "training-key"
  parent_id = azurerm_key_vault.main.id
  body = {
    properties = {
      value       = local.training_key
      contentType = "text/plain"
    }
  }
}

resource "azapi_resource" "prediction_key" {
  type      = "Microsoft.KeyVault/vaults/secrets@2023-07-01"
  name      = "prediction-key"
  parent_id = azurerm_key_vault.main.id
  body = {
    properties = {
      value       = local.prediction_key
      contentType = "text/plain"
    }
  }
}

locals {
  training_key_reference   = "@Microsoft.KeyVault(VaultName=${azurerm_key_vault.main.name};SecretName=${azapi_resource.training_key.name})"
  prediction_key_reference = "@Microsoft.KeyVault(VaultName=${azurerm_key_vault.main.name};SecretName=${azapi_resource.prediction_key.name})"
}

# The storage account every part shares: blob containers, queues (with their poison queues) and tables named by
# cvcore/layout.py, blob versioning and soft delete for the training images, and the Event Grid system topic that
# delivers BlobCreated events to the uploads blob trigger (Flex Consumption has no polling blob trigger).
resource "azurerm_storage_account" "main" {
  #checkov:skip=CKV_AZURE_35: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (shared keys are off)
  #checkov:skip=CKV_AZURE_59: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (shared keys are off)
  #checkov:skip=CKV2_AZURE_33: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (shared keys are off)
  #checkov:skip=CKV_AZURE_206: replication is the storage_sku variable, Standard_ZRS unless changed
  #checkov:skip=CKV_AZURE_33: classic Storage Analytics logging writes with account keys, which are off
  #checkov:skip=CKV2_AZURE_1: Microsoft-managed keys; customer-managed keys need a purge-protected vault that teardown cannot remove
  name                             = local.names.storage
  location                         = azurerm_resource_group.main.location
  resource_group_name              = azurerm_resource_group.main.name
  account_kind                     = "StorageV2"
  account_tier                     = "Standard"
  account_replication_type         = trimprefix(var.storage_sku, "Standard_")
  access_tier                      = "Hot"
  min_tls_version                  = "TLS1_2"
  https_traffic_only_enabled       = true
  shared_access_key_enabled        = false
  default_to_oauth_authentication  = true
  allow_nested_items_to_be_public  = false
  cross_tenant_replication_enabled = false
  public_network_access_enabled    = true
  tags                             = local.tags

  network_rules {
    default_action = "Allow"
    bypass         = ["AzureServices"]
  }

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = var.soft_delete_days
    }

    container_delete_retention_policy {
      days = var.soft_delete_days
    }
  }
}

resource "azurerm_storage_container" "main" {
  #checkov:skip=CKV2_AZURE_21: classic Storage Analytics logging writes with account keys, which are off
  for_each              = toset(concat(local.containers, [local.names.deployment_container]))
  name                  = each.value
  storage_account_id    = azurerm_storage_account.main.id
  container_access_type = "private"
}

resource "azurerm_storage_queue" "main" {
  for_each           = toset(local.queues)
  name               = each.value
  storage_account_id = azurerm_storage_account.main.id
}

resource "azurerm_storage_table" "main" {
  #checkov:skip=CKV2_AZURE_20: classic Storage Analytics logging writes with account keys, which are off
  for_each           = toset(local.tables)
  name               = each.value
  storage_account_id = azurerm_storage_account.main.id
}

# Versioning keeps every overwritten or deleted blob; old versions go after version_retention_days.
resource "azurerm_storage_management_policy" "main" {
  storage_account_id = azurerm_storage_account.main.id

  rule {
    name    = "expire-previous-versions"
    enabled = true

    filters {
      blob_types = ["blockBlob"]
    }

    actions {
      version {
        delete_after_days_since_creation = var.version_retention_days
      }
    }
  }
}

resource "azurerm_eventgrid_system_topic" "storage" {
  name                = local.names.system_topic
  location            = azurerm_resource_group.main.location
  resource_group_name = azurerm_resource_group.main.name
  source_resource_id  = azurerm_storage_account.main.id
  topic_type          = "Microsoft.Storage.StorageAccounts"
  tags                = local.tags
}

# The registry the trainer image is built into (ACR Tasks, deploy.tf) and the job pulls from (AcrPull, no passwords).
resource "azurerm_container_registry" "main" {
  #checkov:skip=CKV_AZURE_139: Basic SKU (a few dollars a month idle) has no private endpoints; pulls and pushes need Entra ID
  #checkov:skip=CKV_AZURE_163: image scanning is Microsoft Defender for Containers, a paid plan enabled per subscription
  #checkov:skip=CKV_AZURE_164: content trust is Premium-only; the one image is built by ACR Tasks from this repository
  #checkov:skip=CKV_AZURE_165: geo-replication is Premium-only; one region runs the trainer
  #checkov:skip=CKV_AZURE_166: quarantine is Premium-only; the one image is built by ACR Tasks from this repository
  #checkov:skip=CKV_AZURE_167: untagged-manifest retention is Premium-only; every push is tagged
  #checkov:skip=CKV_AZURE_233: zone redundancy is Premium-only; a lost registry is rebuilt by the next deploy
  #checkov:skip=CKV_AZURE_237: dedicated data endpoints are Premium-only
  name                          = local.names.registry
  location                      = azurerm_resource_group.main.location
  resource_group_name           = azurerm_resource_group.main.name
  sku                           = "Basic"
  admin_enabled                 = false
  anonymous_pull_enabled        = false
  public_network_access_enabled = true
  tags                          = local.tags
}

// The training and prediction keys, read by the Function app through Key Vault references (Key Vault Secrets User).
param name string
param location string
param tags object

@secure()
param trainingKey string

@secure()
param predictionKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (Azure RBAC)
  // checkov:skip=CKV_AZURE_189: no virtual network in this deployment; Flex Consumption, Event Grid and the Container Apps job use the public endpoint, Entra ID only (Azure RBAC)
  // checkov:skip=CKV_AZURE_110: purge protection would keep the vault name reserved after azd down --purge; both keys are regenerable
  // checkov:skip=CKV_AZURE_42: soft delete is on (7 days); purge protection is off so that teardown removes everything
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource trainingSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: an API key that expired would lock every client out; rotate by setting a new value and redeploying
  parent: vault
  name: 'training-key'
  properties: {
    value: trainingKey
    contentType: 'text/plain'
  }
}

resource predictionSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: an API key that expired would lock every client out; rotate by setting a new value and redeploying
  parent: vault
  name: 'prediction-key'
  properties: {
    value: predictionKey
    contentType: 'text/plain'
  }
}

output name string = vault.name
output trainingKeyReference string = '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${trainingSecret.name})'
output predictionKeyReference string = '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${predictionSecret.name})'

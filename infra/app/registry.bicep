// The registry the trainer image is built into (azd remote build) and the job pulls from (AcrPull, no passwords).
param name string
param location string
param tags object

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  // checkov:skip=CKV_AZURE_139: Basic SKU (a few dollars a month idle) has no private endpoints; pulls and pushes need Entra ID
  // checkov:skip=CKV_AZURE_163: image scanning is Microsoft Defender for Containers, a paid plan enabled per subscription
  // checkov:skip=CKV_AZURE_166: quarantine is Premium-only; the one image is built by ACR Tasks from this repository
  // checkov:skip=CKV_AZURE_233: zone redundancy is Premium-only; a lost registry is rebuilt by the next deploy
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Basic'
  }
  properties: {
    adminUserEnabled: false
    anonymousPullEnabled: false
    publicNetworkAccess: 'Enabled'
  }
}

output name string = registry.name
output loginServer string = registry.properties.loginServer

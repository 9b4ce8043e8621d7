// The whole system in one deployment: `azd up` provisions this, deploys the two services named in azure.yaml,
// then infra/hooks/postdeploy.sh subscribes the uploads blob trigger (infra/app/upload-subscription.bicep).
// infra/terraform/ declares the same resources, names and settings; tests/infra checks that they agree.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment: names the resource group and seeds every other resource name.')
param environmentName string

@minLength(1)
@description('Region of every resource; it must offer Flex Consumption and serverless GPUs (e.g. swedencentral, westus3, australiaeast).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
@description('Serverless GPU the trainer job runs on: one T4 (8 vCPU, 56 GiB) or one A100 (24 vCPU, 220 GiB).')
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'

@minValue(1)
@maxValue(20)
@description('Most trainer executions running at once (one per queued training job).')
param trainerMaxExecutions int = 2

@minValue(600)
@maxValue(86400)
@description('Seconds one trainer execution may run before it is stopped (Advanced training budgets count against it).')
param trainerTimeoutSeconds int = 14400

@minValue(1)
@maxValue(1000)
@description('Most Function app instances Flex Consumption may scale out to.')
param functionMaxInstances int = 40

@allowed([
  2048
  4096
])
@description('Memory of each Function app instance in MB.')
param functionInstanceMemoryMB int = 2048

@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_GZRS'
  'Standard_RAGRS'
  'Standard_RAGZRS'
])
@description('Replication of the storage account that holds images, models and metadata.')
param storageSku string = 'Standard_ZRS'

@minValue(1)
@maxValue(365)
@description('Days a deleted blob or container can still be restored (soft delete).')
param softDeleteDays int = 7

@minValue(1)
@maxValue(3650)
@description('Days a previous blob version is kept before the lifecycle policy deletes it.')
param versionRetentionDays int = 30

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps logs and Application Insights telemetry.')
param logRetentionDays int = 30

@secure()
@minLength(16)
@description('Key clients send as Training-Key. azd generates one on first provision and reads it back from Key Vault later.')
param trainingKey string

@secure()
@minLength(16)
@description('Key clients send as Prediction-Key. azd generates one on first provision and reads it back from Key Vault later.')
param predictionKey string

@description('Object id of whoever deploys (azd sets it): may read the keys in Key Vault and upload to the storage account. Empty: nobody.')
param principalId string = ''

@description('Trainer image; azd sets it after building gpu_trainer/Dockerfile. Empty: a public placeholder until the first deploy.')
param trainerImage string = ''

var token = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// Every resource name, one place; infra/terraform/main.tf builds the same names from the same pattern.
var names = {
  resourceGroup: 'rg-${environmentName}'
  identity: 'id-${token}'
  storage: 'st${token}'
  logAnalytics: 'log-${token}'
  appInsights: 'appi-${token}'
  keyVault: 'kv-${token}'
  registry: 'cr${token}'
  plan: 'plan-${token}'
  functionApp: 'func-${token}'
  containerEnv: 'cae-${token}'
  trainerJob: 'caj-trainer-${token}'
  systemTopic: 'evgt-${token}'
  deploymentContainer: 'app-package-${token}'
}

// The storage layout the contracts module (cvcore/layout.py) names; tests/infra checks both flavours against it.
var containers = [
  'images'
  'models'
  'predictions'
  'uploads'
  'rejected'
]
var queues = [
  'training-jobs'
  'training-events'
  'project-imports'
  'webhook-deliveries'
  'training-jobs-poison'
  'training-events-poison'
  'project-imports-poison'
  'webhook-deliveries-poison'
]
var tables = [
  'projects'
  'tags'
  'images'
  'iterations'
  'predictions'
]
var trainingJobsQueue = 'training-jobs'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    location: location
    tags: tags
    retentionDays: logRetentionDays
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSku
    containers: concat(containers, [names.deploymentContainer])
    queues: queues
    tables: tables
    softDeleteDays: softDeleteDays
    versionRetentionDays: versionRetentionDays
    systemTopicName: names.systemTopic
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: names.keyVault
    location: location
    tags: tags
    trainingKey: trainingKey
    predictionKey: predictionKey
  }
}

module registry 'app/registry.bicep' = {
  name: 'registry'
  scope: rg
  params: {
    name: names.registry
    location: location
    tags: tags
  }
}

module roles 'app/roles.bicep' = {
  name: 'roles'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    storageAccountName: storage.outputs.name
    registryName: registry.outputs.name
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module functions 'app/functions.bicep' = {
  name: 'functions'
  scope: rg
  dependsOn: [
    roles
  ]
  params: {
    planName: names.plan
    name: names.functionApp
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    deploymentContainer: names.deploymentContainer
    trainingKeyReference: keyVault.outputs.trainingKeyReference
    predictionKeyReference: keyVault.outputs.predictionKeyReference
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maxInstances: functionMaxInstances
    instanceMemoryMB: functionInstanceMemoryMB
  }
}

module trainer 'app/trainer.bicep' = {
  name: 'trainer'
  scope: rg
  dependsOn: [
    roles
  ]
  params: {
    environmentName: names.containerEnv
    jobName: names.trainerJob
    location: location
    tags: tags
    logAnalyticsName: monitoring.outputs.logAnalyticsName
    gpuProfileType: gpuProfileType
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    registryLoginServer: registry.outputs.loginServer
    image: trainerImage
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    tableEndpoint: storage.outputs.tableEndpoint
    trainingJobsQueue: trainingJobsQueue
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    maxExecutions: trainerMaxExecutions
    timeoutSeconds: trainerTimeoutSeconds
  }
}

// Outputs become azd environment values (hooks and `azd env get-values` read them).
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_EVENTGRID_SYSTEM_TOPIC_NAME string = storage.outputs.systemTopicName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_CONTAINER_REGISTRY_NAME string = registry.outputs.name
output AZURE_CONTAINER_REGISTRY_ENDPOINT string = registry.outputs.loginServer
output AZURE_FUNCTION_APP_NAME string = functions.outputs.name
output AZURE_FUNCTION_APP_URL string = functions.outputs.url
output AZURE_CONTAINER_APPS_ENVIRONMENT_NAME string = trainer.outputs.environmentName
output AZURE_TRAINER_JOB_NAME string = trainer.outputs.jobName

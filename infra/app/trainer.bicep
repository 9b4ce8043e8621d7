// The trainer: an event-driven Container Apps job on a serverless GPU workload profile. The KEDA azure-queue rule
// watches `training-jobs` with the managed identity and starts one execution per message; each execution runs
// `python -m gpu_trainer --once` (the image entrypoint) and exits. GPU time is billed only while one runs.
param environmentName string
param jobName string
param location string
param tags object
param logAnalyticsName string
param gpuProfileType string
param identityId string
param identityClientId string
param registryLoginServer string
param image string
param storageAccountName string
param blobEndpoint string
param queueEndpoint string
param tableEndpoint string
param trainingJobsQueue string
param appInsightsConnectionString string
param maxExecutions int
param timeoutSeconds int

// A whole GPU per execution: the replica takes the full size of the profile.
var gpuSizes = {
  'Consumption-GPU-NC8as-T4': {
    cpu: 8
    memory: '56Gi'
  }
  'Consumption-GPU-NC24-A100': {
    cpu: 24
    memory: '220Gi'
  }
}
var gpuProfileName = 'gpu'
// Until azd deploys the trainer image, a public sample image stands in.
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart-jobs:latest'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsName
}

resource environment 'Microsoft.App/managedEnvironments@2025-01-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
    workloadProfiles: [
      {
        name: 'Consumption'
        workloadProfileType: 'Consumption'
      }
      {
        name: gpuProfileName
        workloadProfileType: gpuProfileType
      }
    ]
  }
}

resource job 'Microsoft.App/jobs@2025-01-01' = {
  name: jobName
  location: location
  tags: union(tags, {
    'azd-service-name': 'trainer'
  })
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: environment.id
    workloadProfileName: gpuProfileName
    configuration: {
      triggerType: 'Event'
      replicaTimeout: timeoutSeconds
      // No in-place retry: the message of a crashed execution becomes visible again and KEDA starts a new execution;
      // the trainer itself reports the iteration Failed after 5 attempts (gpu_trainer/worker.py).
      replicaRetryLimit: 0
      registries: [
        {
          server: registryLoginServer
          identity: identityId
        }
      ]
      eventTriggerConfig: {
        parallelism: 1
        replicaCompletionCount: 1
        scale: {
          minExecutions: 0
          maxExecutions: maxExecutions
          pollingInterval: 30
          rules: [
            {
              name: 'training-jobs'
              type: 'azure-queue'
              metadata: {
                accountName: storageAccountName
                queueName: trainingJobsQueue
                queueLength: '1'
              }
              identity: identityId
            }
          ]
        }
      }
    }
    template: {
      containers: [
        {
          name: 'trainer'
          image: empty(image) ? placeholderImage : image
          resources: {
            cpu: gpuSizes[gpuProfileType].cpu
            memory: gpuSizes[gpuProfileType].memory
          }
          env: [
            {
              name: 'AzureWebJobsStorage__blobServiceUri'
              value: blobEndpoint
            }
            {
              name: 'AzureWebJobsStorage__queueServiceUri'
              value: queueEndpoint
            }
            {
              name: 'AzureWebJobsStorage__tableServiceUri'
              value: tableEndpoint
            }
            {
              name: 'AzureWebJobsStorage__credential'
              value: 'managedidentity'
            }
            {
              name: 'AzureWebJobsStorage__clientId'
              value: identityClientId
            }
            {
              name: 'AZURE_CLIENT_ID'
              value: identityClientId
            }
            {
              name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
              value: appInsightsConnectionString
            }
            {
              name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
              value: 'ClientId=${identityClientId};Authorization=AAD'
            }
          ]
        }
      ]
    }
  }
}

output environmentName string = environment.name
output jobName string = job.name

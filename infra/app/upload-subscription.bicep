// Subscribes the uploads blob trigger to the Event Grid system topic of the storage account. Deployed after the code
// (infra/hooks/postdeploy.sh for azd; infra/terraform/deploy.tf for Terraform): the webhook needs the
// blobs_extension system key of the host, which exists only once the Functions host has loaded the blob trigger.
@description('Function app that hosts the blob trigger.')
param functionAppName string

@description('Event Grid system topic on the storage account (main.bicep output AZURE_EVENTGRID_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('Python function name of the blob trigger with source=EventGrid (functions/blob_ingest.py).')
param functionName string = 'ingest_upload'

@description('Container the blob trigger watches (cvcore/layout.py UPLOADS).')
param uploadsContainer string = 'uploads'

resource app 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

var blobsExtensionKey = listKeys('${app.id}/host/default', '2024-04-01').systemKeys.blobs_extension

resource uploads 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: 'uploads-ingest'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${app.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${uploadsContainer}/blobs/'
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

#!/bin/sh
# azd postdeploy hook: once the Functions code is live, subscribe its uploads blob trigger to Event Grid.
# azd exports main.bicep's outputs as environment variables; the Azure CLI must be signed in (`az login`).
set -eu
here=$(dirname "$0")
: "${AZURE_RESOURCE_GROUP:?run through azd (azd up / azd deploy)}"
: "${AZURE_FUNCTION_APP_NAME:?missing azd output}"
: "${AZURE_EVENTGRID_SYSTEM_TOPIC_NAME:?missing azd output}"

"$here/../scripts/wait-blobs-key.sh" "$AZURE_RESOURCE_GROUP" "$AZURE_FUNCTION_APP_NAME"
az deployment group create \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --name upload-subscription \
  --template-file "$here/../app/upload-subscription.bicep" \
  --parameters functionAppName="$AZURE_FUNCTION_APP_NAME" systemTopicName="$AZURE_EVENTGRID_SYSTEM_TOPIC_NAME" \
  --output none
echo "uploads/ is subscribed to the ingest_upload blob trigger"

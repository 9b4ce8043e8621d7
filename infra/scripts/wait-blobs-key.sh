#!/bin/sh
# wait-blobs-key.sh RESOURCE_GROUP FUNCTION_APP: wait until the Functions host has created its blobs_extension
# system key (it does so when it loads a blob trigger with source=EventGrid), so the Event Grid webhook can use it.
set -eu
rg=$1
app=$2
host=$(az functionapp show --resource-group "$rg" --name "$app" --query defaultHostName --output tsv)
tries=0
while :; do
  # Any request starts an instance; the host then loads the triggers and writes its keys.
  curl --silent --output /dev/null --max-time 30 "https://$host/" || true
  key=$(az functionapp keys list --resource-group "$rg" --name "$app" \
    --query "systemKeys.blobs_extension" --output tsv 2>/dev/null || true)
  if [ -n "$key" ]; then
    exit 0
  fi
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "the Functions host of $app has no blobs_extension key after $tries tries; is the code deployed?" >&2
    exit 1
  fi
  sleep 10
done

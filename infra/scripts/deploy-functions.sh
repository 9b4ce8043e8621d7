#!/bin/sh
# deploy-functions.sh RESOURCE_GROUP FUNCTION_APP: package the Functions app, deploy it (remote build on Flex
# Consumption) and wait for the blobs_extension key the Event Grid subscription needs. Terraform runs this.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$root/infra/scripts/stage.py" functions "$tmp/functions.zip"
az functionapp deployment source config-zip --resource-group "$1" --name "$2" \
  --src "$tmp/functions.zip" --build-remote true --output none
"$root/infra/scripts/wait-blobs-key.sh" "$1" "$2"

#!/bin/sh
# build-trainer.sh REGISTRY IMAGE: build gpu_trainer/Dockerfile in the registry (ACR Tasks, no local Docker) from a
# context that holds only what the Dockerfile copies. Terraform runs this; azd builds the same image itself.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$root/infra/scripts/stage.py" trainer "$tmp/context"
az acr build --registry "$1" --image "$2" --file gpu_trainer/Dockerfile "$tmp/context" --output none

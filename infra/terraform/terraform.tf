terraform {
  required_version = ">= 1.9"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.50"
    }
    # Container Apps environment with a serverless GPU profile, the job (KEDA rule with a managed identity) and the
    # Key Vault secrets (written through Azure Resource Manager, so no data-plane role has to propagate first).
    azapi = {
      source  = "Azure/azapi"
      version = "~> 2.5"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }
}

provider "azurerm" {
  # Shared-key access is off on the storage account, so the provider talks to it with Entra ID.
  storage_use_azuread = true

  features {
    key_vault {
      # `terraform destroy` leaves no soft-deleted vault behind to block the next apply with the same name.
      purge_soft_delete_on_destroy = true
    }
    resource_group {
      prevent_deletion_if_contains_resources = false
    }
  }
}

provider "azapi" {}

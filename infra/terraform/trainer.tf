# The trainer: an event-driven Container Apps job on a serverless GPU workload profile. KEDA's azure-queue rule
# watches `training-jobs` with the managed identity and starts one execution per message; each execution runs
# `python -m gpu_trainer --once` (the image's entrypoint) and exits. GPU time is billed only while one runs.
# azapi: azurerm's container app resources take neither serverless GPU profiles nor a scale rule identity.
locals {
  # A whole GPU per execution: the replica takes the profile's full size.
  gpu_sizes = {
    "Consumption-GPU-NC8as-T4" = {
      cpu    = 8
      memory = "56Gi"
    }
    "Consumption-GPU-NC24-A100" = {
      cpu    = 24
      memory = "220Gi"
    }
  }
  gpu_profile_name = "gpu"
  trainer_image    = "${azurerm_container_registry.main.login_server}/cv-trainer:${local.trainer_tag}"
}

resource "azapi_resource" "container_env" {
  type      = "Microsoft.App/managedEnvironments@2025-01-01"
  name      = local.names.container_env
  location  = azurerm_resource_group.main.location
  parent_id = azurerm_resource_group.main.id
  tags      = local.tags

  body = {
    properties = {
      appLogsConfiguration = {
        destination = "log-analytics"
        logAnalyticsConfiguration = {
          customerId = azurerm_log_analytics_workspace.main.workspace_id
          sharedKey  = azurerm_log_analytics_workspace.main.primary_shared_key
        }
      }
      workloadProfiles = [
        {
          name                = "Consumption"
          workloadProfileType = "Consumption"
        },
        {
          name                = local.gpu_profile_name
          workloadProfileType = var.gpu_profile_type
        },
      ]
    }
  }
}

resource "azapi_resource" "trainer_job" {
  type      = "Microsoft.App/jobs@2025-01-01"
  name      = local.names.trainer_job
  location  = azurerm_resource_group.main.location
  parent_id = azurerm_resource_group.main.id
  tags      = merge(local.tags, { "azd-service-name" = "trainer" })

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.main.id]
  }

  body = {
    properties = {
      environmentId       = azapi_resource.container_env.id
      workloadProfileName = local.gpu_profile_name
      configuration = {
        triggerType    = "Event"
        replicaTimeout = var.trainer_timeout_seconds
        # No in-place retry: a crashed execution's message becomes visible again and KEDA starts a new execution;
        # the trainer itself reports the iteration Failed after 5 attempts (gpu_trainer/worker.py).
        replicaRetryLimit = 0
        registries = [
          {
            server   = azurerm_container_registry.main.login_server
            identity = azurerm_user_assigned_identity.main.id
          },
        ]
        eventTriggerConfig = {
          parallelism            = 1
          replicaCompletionCount = 1
          scale = {
            minExecutions   = 0
            maxExecutions   = var.trainer_max_executions
            pollingInterval = 30
            rules = [
              {
                name = "training-jobs"
                type = "azure-queue"
                metadata = {
                  accountName = azurerm_storage_account.main.name
                  queueName   = local.training_jobs_queue
                  queueLength = "1"
                }
                identity = azurerm_user_assigned_identity.main.id
              },
            ]
          }
        }
      }
      template = {
        containers = [
          {
            name  = "trainer"
            image = local.trainer_image
            resources = {
              cpu    = local.gpu_sizes[var.gpu_profile_type].cpu
              memory = local.gpu_sizes[var.gpu_profile_type].memory
            }
            env = [
              { name = "AzureWebJobsStorage__blobServiceUri", value = azurerm_storage_account.main.primary_blob_endpoint },
              { name = "AzureWebJobsStorage__queueServiceUri", value = azurerm_storage_account.main.primary_queue_endpoint },
              { name = "AzureWebJobsStorage__tableServiceUri", value = azurerm_storage_account.main.primary_table_endpoint },
              { name = "AzureWebJobsStorage__credential", value = "managedidentity" },
              { name = "AzureWebJobsStorage__clientId", value = azurerm_user_assigned_identity.main.client_id },
              { name = "AZURE_CLIENT_ID", value = azurerm_user_assigned_identity.main.client_id },
              { name = "APPLICATIONINSIGHTS_CONNECTION_STRING", value = azurerm_application_insights.main.connection_string },
              { name = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING", value = "ClientId=${azurerm_user_assigned_identity.main.client_id};Authorization=AAD" },
            ]
          },
        ]
      }
    }
  }

  depends_on = [
    terraform_data.trainer_image,
    azurerm_role_assignment.identity_acr_pull,
    azurerm_role_assignment.identity_queue_contributor,
  ]
}

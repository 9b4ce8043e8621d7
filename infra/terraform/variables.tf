variable "environment_name" {
  type        = string
  description = "Name of the deployment: names the resource group and seeds every other resource name."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9-]{0,63}$", var.environment_name))
    error_message = "environment_name: 1 to 64 letters, digits or hyphens, starting with a letter or digit."
  }
}

variable "location" {
  type        = string
  description = "Region of every resource; it must offer Flex Consumption and serverless GPUs (e.g. swedencentral, westus3, australiaeast)."
  default     = "swedencentral"
}

variable "gpu_profile_type" {
  type        = string
  description = "Serverless GPU the trainer job runs on: one T4 (8 vCPU, 56 GiB) or one A100 (24 vCPU, 220 GiB)."
  default     = "Consumption-GPU-NC8as-T4"

  validation {
    condition     = contains(["Consumption-GPU-NC8as-T4", "Consumption-GPU-NC24-A100"], var.gpu_profile_type)
    error_message = "gpu_profile_type: Consumption-GPU-NC8as-T4 or Consumption-GPU-NC24-A100."
  }
}

variable "trainer_max_executions" {
  type        = number
  description = "Most trainer executions running at once (one per queued training job)."
  default     = 2

  validation {
    condition     = var.trainer_max_executions >= 1 && var.trainer_max_executions <= 20
    error_message = "trainer_max_executions: 1 to 20."
  }
}

variable "trainer_timeout_seconds" {
  type        = number
  description = "Seconds one trainer execution may run before it is stopped (Advanced training budgets count against it)."
  default     = 14400

  validation {
    condition     = var.trainer_timeout_seconds >= 600 && var.trainer_timeout_seconds <= 86400
    error_message = "trainer_timeout_seconds: 600 to 86400."
  }
}

variable "function_max_instances" {
  type        = number
  description = "Most Function app instances Flex Consumption may scale out to."
  default     = 40

  validation {
    condition     = var.function_max_instances >= 1 && var.function_max_instances <= 1000
    error_message = "function_max_instances: 1 to 1000."
  }
}

variable "function_instance_memory_mb" {
  type        = number
  description = "Memory of each Function app instance in MB."
  default     = 2048

  validation {
    condition     = contains([2048, 4096], var.function_instance_memory_mb)
    error_message = "function_instance_memory_mb: 2048 or 4096."
  }
}

variable "storage_sku" {
  type        = string
  description = "Replication of the storage account that holds images, models and metadata."
  default     = "Standard_ZRS"

  validation {
    condition = contains(["Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS", "Standard_RAGRS",
    "Standard_RAGZRS"], var.storage_sku)
    error_message = "storage_sku: Standard_LRS, _ZRS, _GRS, _GZRS, _RAGRS or _RAGZRS."
  }
}

variable "soft_delete_days" {
  type        = number
  description = "Days a deleted blob or container can still be restored (soft delete)."
  default     = 7

  validation {
    condition     = var.soft_delete_days >= 1 && var.soft_delete_days <= 365
    error_message = "soft_delete_days: 1 to 365."
  }
}

variable "version_retention_days" {
  type        = number
  description = "Days a previous blob version is kept before the lifecycle policy deletes it."
  default     = 30

  validation {
    condition     = var.version_retention_days >= 1 && var.version_retention_days <= 3650
    error_message = "version_retention_days: 1 to 3650."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Days Log Analytics keeps logs and Application Insights telemetry."
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days: 30 to 730."
  }
}

variable "training_key" {
  type        = string
  description = "Key clients send as Training-Key. Null: a random one is generated and kept in the state."
  default     = null
  sensitive   = true

  validation {
    condition     = var.training_key == null || length(coalesce(var.training_key, "x")) >= 16
    error_message = "training_key: at least 16 characters."
  }
}

variable "prediction_key" {
  type        = string
  description = "Key clients send as Prediction-Key. Null: a random one is generated and kept in the state."
  default     = null
  sensitive   = true

  validation {
    condition     = var.prediction_key == null || length(coalesce(var.prediction_key, "x")) >= 16
    error_message = "prediction_key: at least 16 characters."
  }
}

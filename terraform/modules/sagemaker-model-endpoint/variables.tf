# Inputs derived from the kernel's contract (model_metadata.json).
# `shim tf vars KERNEL_DIR --image REF@sha256:... --module sagemaker` emits every variable in this
# file; tests/iac/test_tfvars_agreement.py fails if the two sides drift apart.
# Platform inputs that Ops choose per account (network, role, instance type) live in
# variables_platform.tf.
#
# Validations only refer to the variable they belong to, so a bad value fails at plan time,
# before any provider is contacted.

variable "model_name" {
  description = "Model name from the contract (`name`). Names the SageMaker endpoint (and prefixes the model and endpoint configuration): a DNS-1123 label."
  type        = string

  validation {
    condition     = length(var.model_name) <= 63 && can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.model_name))
    error_message = "The model_name must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63 characters."
  }
}

variable "model_version" {
  description = "Semantic version of the model from the contract (`version`), e.g. 1.2.0. Carried as the ModelVersion tag."
  type        = string

  validation {
    condition     = can(regex("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)([-+][0-9A-Za-z.+-]+)?$", var.model_version))
    error_message = "The model_version must be a semantic version such as 1.2.0."
  }
}

variable "image" {
  description = "Level-2 image of the kernel in ECR (SageMaker pulls from ECR), pinned by digest: REGISTRY/REPOSITORY@sha256:<64 hex> (a tag may precede the digest)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$", var.image))
    error_message = "The image must be pinned by digest, e.g. registry.example.com/models/iris@sha256:<64 hex digits>; a tag alone can move and is not accepted."
  }
}

variable "cost_center" {
  description = "Cost center billed for serving the model (contract `cost_center`). Becomes the required CostCenter tag."
  type        = string

  validation {
    condition     = length(trimspace(var.cost_center)) > 0
    error_message = "The cost_center must not be empty: every endpoint is billed to a cost center."
  }

  validation {
    condition     = length(var.cost_center) <= 256 && can(regex("^[A-Za-z0-9 _.:/=+@-]+$", var.cost_center))
    error_message = "The cost_center must be a valid AWS tag value: at most 256 letters, digits, spaces and _ . : / = + @ -."
  }
}

variable "data_classification" {
  description = "Data classification of what the model serves (contract label `data-classification`): public, internal, confidential or restricted."
  type        = string

  validation {
    condition     = contains(["public", "internal", "confidential", "restricted"], var.data_classification)
    error_message = "The data_classification must be one of public, internal, confidential, restricted."
  }
}

variable "tags" {
  description = "Extra tags from the contract (`labels`), added to every resource. The required tags (CostCenter, ManagedBy, DataClassification) always win over these."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.tags :
      length(key) >= 1 && length(key) <= 128 && length(value) <= 256 && substr(lower(key), 0, 4) != "aws:"
    ])
    error_message = "Every tag key must have 1-128 characters and not start with aws:, every value at most 256 characters."
  }
}

variable "gpu" {
  description = "NVIDIA GPUs one instance must have (contract `resources.gpu`). instance_type must be a GPU instance type when this is above 0; the plan gate checks the exact count."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu >= 0 && var.gpu <= 8 && floor(var.gpu) == var.gpu
    error_message = "The gpu count must be a whole number from 0 to 8 (the platform cap per replica)."
  }
}

variable "environment" {
  description = "Environment variables of the model container, e.g. the contract's batching settings (KERNELSHIM_MAX_BATCH_SIZE, KERNELSHIM_MAX_QUEUE_DELAY_US)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.environment) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", key))])
    error_message = "Environment variable names must match ^[A-Za-z_][A-Za-z0-9_]*$."
  }
}

variable "measured_memory_peak_bytes" {
  description = "Peak resident memory (bytes) the validator measured while running the kernel's golden samples (`shim validate`; carried by `shim tf vars`). Reported as the output measured_memory_peak_bytes, so the plan shows what one instance must hold (not a tag: the figure would change every resource's tags on each new measurement). null: not measured."
  type        = number
  default     = null

  validation {
    condition     = var.measured_memory_peak_bytes == null || try(var.measured_memory_peak_bytes >= 0 && floor(var.measured_memory_peak_bytes) == var.measured_memory_peak_bytes, false)
    error_message = "The measured_memory_peak_bytes must be null or a whole number of bytes (0 or more)."
  }
}

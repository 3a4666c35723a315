# Inputs derived from the kernel's contract (model_metadata.json).
# `shim tf vars KERNEL_DIR --image REF@sha256:... --module k8s` emits every variable in this file;
# tests/iac/test_tfvars_agreement.py fails if the two sides drift apart.
# Platform inputs that Ops choose per cluster live in variables_platform.tf.
#
# Validations only refer to the variable they belong to, so a bad value fails at plan time,
# before any provider is contacted.

variable "model_name" {
  description = "Model name from the contract (`name`). Names the Deployment, Service, InferenceService and every other object: a DNS-1035 label (a Service name and KServe's InferenceService name must start with a letter)."
  type        = string

  # DNS-1035, not DNS-1123: Kubernetes rejects a Service name starting with a digit, and KServe's
  # admission webhook rejects such an InferenceService name, so the leading letter is needed in
  # both serving modes. Checked here so the plan fails before any provider is contacted.
  validation {
    condition     = length(var.model_name) <= 63 && can(regex("^[a-z]([-a-z0-9]*[a-z0-9])?$", var.model_name))
    error_message = "The model_name must be a DNS-1035 label: lower-case letters, digits and '-', starting with a letter and ending with a letter or digit, at most 63 characters (Kubernetes Service and KServe InferenceService names cannot start with a digit). Rename the kernel in model_metadata.json."
  }
}

variable "model_version" {
  description = "Semantic version of the model from the contract (`version`), e.g. 1.2.0. Carried as the app.kubernetes.io/version label."
  type        = string

  validation {
    condition     = can(regex("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)([-+][0-9A-Za-z.+-]+)?$", var.model_version))
    error_message = "The model_version must be a semantic version such as 1.2.0."
  }
}

variable "image" {
  description = "Level-2 image of the kernel, pinned by digest: REGISTRY/REPOSITORY@sha256:<64 hex> (a tag may precede the digest)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@sha256:[a-f0-9]{64}$", var.image))
    error_message = "The image must be pinned by digest, e.g. registry.example.com/models/iris@sha256:<64 hex digits>; a tag alone can move and is not accepted."
  }
}

variable "cost_center" {
  description = "Cost center billed for serving the model (contract `cost_center`). Becomes the required cost-center label."
  type        = string

  validation {
    condition     = length(trimspace(var.cost_center)) > 0
    error_message = "The cost_center must not be empty: every endpoint is billed to a cost center."
  }

  validation {
    condition     = length(var.cost_center) <= 63 && can(regex("^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$", var.cost_center))
    error_message = "The cost_center must be a valid Kubernetes label value: at most 63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit."
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

variable "labels" {
  description = "Extra labels from the contract (`labels`), added to every object. The required labels (cost-center, managed-by, data-classification) always win over these."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.labels :
      can(regex("^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", key)) &&
      length(value) <= 63 && can(regex("^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$", value))
    ])
    error_message = "Every label must be a valid Kubernetes label: key like team or example.com/team, value at most 63 letters, digits, '-', '_' or '.'."
  }
}

variable "cpu" {
  description = "CPU request and limit of one replica in Kubernetes notation (contract `resources.cpu`), e.g. \"2\" or \"500m\"."
  type        = string
  default     = "1"

  validation {
    condition     = can(regex("^([0-9]+(\\.[0-9]+)?|[0-9]+m)$", var.cpu))
    error_message = "The cpu must be a Kubernetes CPU quantity such as \"2\", \"0.5\" or \"500m\"."
  }
}

variable "memory" {
  description = "Memory request and limit of one replica in Kubernetes notation (contract `resources.memory`), e.g. \"2Gi\"."
  type        = string
  default     = "1Gi"

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$", var.memory))
    error_message = "The memory must be a Kubernetes memory quantity such as \"512Mi\" or \"2Gi\"."
  }
}

variable "gpu" {
  description = "NVIDIA GPUs per replica (contract `resources.gpu`), requested as nvidia.com/gpu. At most 8: larger pods do not fit one node."
  type        = number
  default     = 0

  validation {
    condition     = var.gpu >= 0 && var.gpu <= 8 && floor(var.gpu) == var.gpu
    error_message = "The gpu count must be a whole number from 0 to 8 (the platform cap per replica)."
  }
}

variable "environment" {
  description = "Environment variables for the shim container, e.g. the contract's batching settings (KERNELSHIM_MAX_BATCH_SIZE, KERNELSHIM_MAX_QUEUE_DELAY_US)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for key in keys(var.environment) : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", key))])
    error_message = "Environment variable names must match ^[A-Za-z_][A-Za-z0-9_]*$."
  }
}

variable "measured_memory_peak_bytes" {
  description = "Peak resident memory (bytes) the validator measured while running the kernel's golden samples (`shim validate`; carried by `shim tf vars`). Surfaced as the annotation kernelshim.io/measured-memory-peak-bytes so the plan gate can check that the memory request and limit cover it. null: not measured."
  type        = number
  default     = null

  validation {
    condition     = var.measured_memory_peak_bytes == null || try(var.measured_memory_peak_bytes >= 0 && floor(var.measured_memory_peak_bytes) == var.measured_memory_peak_bytes, false)
    error_message = "The measured_memory_peak_bytes must be null or a whole number of bytes (0 or more)."
  }
}

variable "monitoring_enabled" {
  description = "True when the kernel's contract has a `monitoring` block: the endpoint must then be scraped by Prometheus and ship its alert rules. Surfaced as the annotation kernelshim.io/monitoring so the plan gate can require the scrape annotations and a PrometheusRule."
  type        = bool
  default     = false

  validation {
    condition     = var.monitoring_enabled != null
    error_message = "The monitoring_enabled must be true or false."
  }
}

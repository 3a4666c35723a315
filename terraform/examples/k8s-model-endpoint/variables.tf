# Contract-derived inputs: `shim tf vars KERNEL_DIR --image REF@sha256:... --module k8s
# > endpoint.auto.tfvars.json` fills them. They are passed straight to the module, which
# validates them; tests/iac check that these names and types match the module's variables.tf.

variable "model_name" {
  description = "Model name from the kernel's contract."
  type        = string
}

variable "model_version" {
  description = "Model version from the kernel's contract."
  type        = string
}

variable "image" {
  description = "Level-2 image of the kernel, pinned by digest."
  type        = string
}

variable "cost_center" {
  description = "Cost center from the kernel's contract."
  type        = string
}

variable "data_classification" {
  description = "Data classification from the kernel's contract (label data-classification)."
  type        = string
}

variable "labels" {
  description = "Extra labels from the kernel's contract."
  type        = map(string)
  default     = {}
}

variable "cpu" {
  description = "CPU per replica from the kernel's contract."
  type        = string
  default     = "1"
}

variable "memory" {
  description = "Memory per replica from the kernel's contract."
  type        = string
  default     = "1Gi"
}

variable "gpu" {
  description = "GPUs per replica from the kernel's contract."
  type        = number
  default     = 0
}

variable "environment" {
  description = "Environment for the shim container (batching settings from the contract)."
  type        = map(string)
  default     = {}
}

variable "measured_memory_peak_bytes" {
  description = "Peak memory (bytes) the validator measured on the kernel's golden samples; null when not measured."
  type        = number
  default     = null
}

variable "monitoring_enabled" {
  description = "True when the kernel's contract has a monitoring block."
  type        = bool
  default     = false
}

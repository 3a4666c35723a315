# The k8s module's contract-derived inputs (terraform/modules/k8s-model-endpoint/variables.tf),
# as `shim tf vars --module k8s` and `shim deploy` write them.

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

  validation {
    condition     = can(regex("@sha256:[a-f0-9]{64}$", var.image))
    error_message = "The image must be pinned by digest (REF@sha256:<64 hex digits>)."
  }
}

variable "cost_center" {
  description = "Cost center from the kernel's contract."
  type        = string
}

variable "data_classification" {
  description = "Data classification from the kernel's contract."
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
  description = "Environment for the shim container."
  type        = map(string)
  default     = {}
}

variable "measured_memory_peak_bytes" {
  description = "Peak memory the validator measured; null when not measured."
  type        = number
  default     = null
}

variable "monitoring_enabled" {
  description = "True when the kernel's contract has a monitoring block."
  type        = bool
  default     = false
}

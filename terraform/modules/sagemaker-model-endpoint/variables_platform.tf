# Platform inputs: Ops choose these per AWS account and environment. They do not come from the
# kernel's contract, so `shim tf vars` does not emit them; the example root supplies them.

variable "execution_role_arn" {
  description = "IAM role SageMaker assumes to pull the image from ECR and write logs and metrics. Its account also owns the KMS key."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$", var.execution_role_arn))
    error_message = "The execution_role_arn must be an IAM role ARN such as arn:aws:iam::123456789012:role/sagemaker-execution."
  }
}

variable "vpc_subnet_ids" {
  description = "Private subnets the model containers run in (at least two, in different availability zones)."
  type        = list(string)

  validation {
    condition     = length(var.vpc_subnet_ids) >= 2 && alltrue([for id in var.vpc_subnet_ids : can(regex("^subnet-[0-9a-f]+$", id))])
    error_message = "The vpc_subnet_ids must list at least two subnet IDs (subnet-...) so the endpoint survives the loss of one availability zone."
  }
}

variable "vpc_security_group_ids" {
  description = "Security groups attached to the model containers' network interfaces."
  type        = list(string)

  validation {
    condition     = length(var.vpc_security_group_ids) >= 1 && alltrue([for id in var.vpc_security_group_ids : can(regex("^sg-[0-9a-f]+$", id))])
    error_message = "The vpc_security_group_ids must list at least one security group ID (sg-...)."
  }
}

variable "instance_type" {
  description = "SageMaker hosting instance type, e.g. ml.m5.large (CPU) or ml.g5.xlarge (1 GPU)."
  type        = string
  default     = "ml.m5.large"

  validation {
    condition     = can(regex("^ml\\.[a-z0-9-]+\\.[a-z0-9]+$", var.instance_type))
    error_message = "The instance_type must be a SageMaker instance type such as ml.m5.large."
  }
}

variable "variant_name" {
  description = "Name of the endpoint's production variant."
  type        = string
  default     = "primary"

  validation {
    condition     = can(regex("^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", var.variant_name))
    error_message = "The variant_name must be 1-63 letters, digits or '-'."
  }
}

variable "min_capacity" {
  description = "Fewest instances Application Auto Scaling keeps (also the initial instance count)."
  type        = number
  default     = 2

  validation {
    condition     = var.min_capacity >= 1 && floor(var.min_capacity) == var.min_capacity
    error_message = "The min_capacity must be a whole number of at least 1."
  }
}

variable "max_capacity" {
  description = "Most instances Application Auto Scaling may run. GPUs at full scale are the instance type's GPUs x max_capacity; the plan gate caps their total."
  type        = number
  default     = 4

  validation {
    condition     = var.max_capacity >= 1 && var.max_capacity <= 100 && floor(var.max_capacity) == var.max_capacity
    error_message = "The max_capacity must be a whole number from 1 to 100."
  }
}

variable "target_invocations_per_instance" {
  description = "Invocations per instance per minute the target-tracking policy aims for (SageMakerVariantInvocationsPerInstance)."
  type        = number
  default     = 100

  validation {
    condition     = var.target_invocations_per_instance > 0
    error_message = "The target_invocations_per_instance must be above 0."
  }
}

variable "latency_threshold_ms" {
  description = "p99 model latency (milliseconds) above which the latency alarm fires."
  type        = number
  default     = 1000

  validation {
    condition     = var.latency_threshold_ms > 0
    error_message = "The latency_threshold_ms must be above 0."
  }
}

variable "alarm_actions" {
  description = "ARNs (e.g. SNS topics) notified when an alarm fires or recovers."
  type        = list(string)
  default     = []
}

variable "kms_key_deletion_window_days" {
  description = "Days a deleted KMS key waits before it is destroyed (7-30)."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_days >= 7 && var.kms_key_deletion_window_days <= 30
    error_message = "The kms_key_deletion_window_days must be from 7 to 30."
  }
}

variable "kms_key_rotation_period_days" {
  description = "Days between automatic rotations of the KMS key (90-2560)."
  type        = number
  default     = 365

  validation {
    condition     = var.kms_key_rotation_period_days >= 90 && var.kms_key_rotation_period_days <= 2560
    error_message = "The kms_key_rotation_period_days must be from 90 to 2560."
  }
}

variable "traffic_shift_mode" {
  description = "How an update shifts traffic from the old (blue) fleet to the new (green) one: CANARY (traffic_shift_percent first, then the rest), LINEAR (steps of traffic_shift_percent) or ALL_AT_ONCE. Any alarm of the module firing during the shift rolls the update back."
  type        = string
  default     = "CANARY"

  validation {
    condition     = contains(["CANARY", "LINEAR", "ALL_AT_ONCE"], var.traffic_shift_mode)
    error_message = "The traffic_shift_mode must be CANARY, LINEAR or ALL_AT_ONCE."
  }
}

variable "traffic_shift_percent" {
  description = "Percent of the capacity moved per step: the canary's size (CANARY) or each step (LINEAR). Ignored for ALL_AT_ONCE."
  type        = number
  default     = 10

  validation {
    condition     = var.traffic_shift_percent >= 1 && var.traffic_shift_percent <= 99 && floor(var.traffic_shift_percent) == var.traffic_shift_percent
    error_message = "The traffic_shift_percent must be a whole number from 1 to 99."
  }
}

variable "traffic_shift_wait_seconds" {
  description = "Seconds SageMaker watches the alarms after each traffic step before the next (the baking time)."
  type        = number
  default     = 600

  validation {
    condition     = var.traffic_shift_wait_seconds >= 0 && var.traffic_shift_wait_seconds <= 3600 && floor(var.traffic_shift_wait_seconds) == var.traffic_shift_wait_seconds
    error_message = "The traffic_shift_wait_seconds must be a whole number from 0 to 3600."
  }
}

variable "traffic_shift_termination_wait_seconds" {
  description = "Seconds the old fleet is kept after all traffic moved, so a late alarm can still roll back."
  type        = number
  default     = 600

  validation {
    condition     = var.traffic_shift_termination_wait_seconds >= 0 && var.traffic_shift_termination_wait_seconds <= 3600 && floor(var.traffic_shift_termination_wait_seconds) == var.traffic_shift_termination_wait_seconds
    error_message = "The traffic_shift_termination_wait_seconds must be a whole number from 0 to 3600."
  }
}

variable "traffic_shift_timeout_seconds" {
  description = "Longest a blue/green update may run (600-14400 s) before SageMaker rolls it back."
  type        = number
  default     = 3600

  validation {
    condition     = var.traffic_shift_timeout_seconds >= 600 && var.traffic_shift_timeout_seconds <= 14400 && floor(var.traffic_shift_timeout_seconds) == var.traffic_shift_timeout_seconds
    error_message = "The traffic_shift_timeout_seconds must be a whole number from 600 to 14400."
  }
}

# Platform inputs of this AWS account: put them in platform.auto.tfvars (see README.md).

variable "region" {
  description = "AWS region of the endpoint."
  type        = string
}

variable "execution_role_arn" {
  description = "IAM role SageMaker assumes for the endpoint."
  type        = string
}

variable "vpc_subnet_ids" {
  description = "Private subnets of the model containers."
  type        = list(string)
}

variable "vpc_security_group_ids" {
  description = "Security groups of the model containers."
  type        = list(string)
}

variable "instance_type" {
  description = "SageMaker hosting instance type."
  type        = string
  default     = "ml.m5.large"
}

variable "alarm_actions" {
  description = "SNS topics notified by the endpoint's alarms."
  type        = list(string)
  default     = []
}

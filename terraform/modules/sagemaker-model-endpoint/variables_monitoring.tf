# SageMaker data capture (monitoring.tf): request and response payloads written to S3 for
# SageMaker Model Monitor or offline analysis. Off unless data_capture_s3_uri is set. kernelshim's
# own drift monitoring runs inside the container and needs none of this.

variable "data_capture_s3_uri" {
  description = "S3 URI (s3://bucket/prefix) receiving captured requests and responses; null turns data capture off."
  type        = string
  default     = null

  validation {
    condition     = var.data_capture_s3_uri == null || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", var.data_capture_s3_uri))
    error_message = "The data_capture_s3_uri must be an s3://bucket[/prefix] URI, or null."
  }
}

variable "data_capture_sampling_percentage" {
  description = "Percentage of requests captured (1-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.data_capture_sampling_percentage >= 1 && var.data_capture_sampling_percentage <= 100 && floor(var.data_capture_sampling_percentage) == var.data_capture_sampling_percentage
    error_message = "The data_capture_sampling_percentage must be a whole number from 1 to 100."
  }
}

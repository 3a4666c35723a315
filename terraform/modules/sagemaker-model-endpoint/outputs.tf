output "endpoint_name" {
  description = "Name of the SageMaker endpoint (the model name)."
  value       = aws_sagemaker_endpoint.this.name
}

output "endpoint_arn" {
  description = "ARN of the SageMaker endpoint."
  value       = aws_sagemaker_endpoint.this.arn
}

output "model_name" {
  description = "Name of the current SageMaker model (changes with the image)."
  value       = aws_sagemaker_model.this.name
}

output "kms_key_arn" {
  description = "ARN of the rotating KMS key that encrypts the endpoint's storage."
  value       = aws_kms_key.endpoint.arn
}

output "alarm_arns" {
  description = "ARNs of the 5xx and latency alarms."
  value       = [aws_cloudwatch_metric_alarm.errors_5xx.arn, aws_cloudwatch_metric_alarm.latency_p99.arn]
}

output "tags" {
  description = "Tags put on every resource, including the required CostCenter, ManagedBy and DataClassification."
  value       = local.tags
}

output "measured_memory_peak_bytes" {
  description = "Peak memory (bytes) the validator measured on the kernel's golden samples (null: not measured): what one instance of instance_type must hold besides the server."
  value       = var.measured_memory_peak_bytes
}

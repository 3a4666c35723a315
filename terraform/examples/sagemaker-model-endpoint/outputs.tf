output "endpoint_name" {
  description = "Name of the SageMaker endpoint."
  value       = module.endpoint.endpoint_name
}

output "kms_key_arn" {
  description = "KMS key encrypting the endpoint's storage."
  value       = module.endpoint.kms_key_arn
}

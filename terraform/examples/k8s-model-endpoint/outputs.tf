output "service_url" {
  description = "In-cluster URL of the endpoint's v2 API (deployment mode)."
  value       = module.endpoint.service_url
}

output "labels" {
  description = "Labels on every object of the endpoint."
  value       = module.endpoint.labels
}

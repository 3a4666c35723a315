output "service_url" {
  description = "In-cluster URL of the endpoint's v2 API (deployment mode)."
  value       = module.endpoint.service_url
}

output "grpc_target" {
  description = "In-cluster gRPC target (host:port) of the endpoint's v2 API (deployment mode, gRPC on)."
  value       = module.endpoint.grpc_target
}

output "labels" {
  description = "Labels on every object of the endpoint."
  value       = module.endpoint.labels
}

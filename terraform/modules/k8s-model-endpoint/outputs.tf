output "name" {
  description = "Name shared by the endpoint's Kubernetes objects (the model name)."
  value       = var.model_name
}

output "namespace" {
  description = "Namespace of the endpoint."
  value       = var.namespace
}

output "serving_mode" {
  description = "\"deployment\" or \"kserve\"."
  value       = var.serving_mode
}

output "service_url" {
  description = "In-cluster base URL of the Open Inference Protocol (v2) API in deployment mode; null in kserve mode (see the InferenceService status)."
  value       = local.kserve ? null : "http://${kubernetes_service_v1.endpoint[0].metadata[0].name}.${var.namespace}.svc.cluster.local"
}

output "grpc_target" {
  description = "In-cluster gRPC target (host:port) of the Open Inference Protocol in deployment mode; null in kserve mode (KServe's predictor Service carries the h2c port) or when grpc_port is 0."
  value       = local.kserve || !local.grpc ? null : "${kubernetes_service_v1.endpoint[0].metadata[0].name}.${var.namespace}.svc.cluster.local:${local.grpc_port}"
}

output "labels" {
  description = "Labels put on every object, including the required cost-center, managed-by and data-classification."
  value       = local.labels
}

output "gpus_at_max_scale" {
  description = "NVIDIA GPUs the endpoint claims at max_replicas."
  value       = var.gpu * var.max_replicas
}

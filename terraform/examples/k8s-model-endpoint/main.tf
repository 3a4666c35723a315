# Root configuration: one Kubernetes model endpoint from a kernel's generated tfvars.
#
#   shim tf vars ../../../examples/kernels/iris-classifier \
#     --image registry.example.com/models/iris-classifier@sha256:<digest> --module k8s \
#     > endpoint.auto.tfvars.json
#   shim tf apply .

provider "kubernetes" {
  config_path    = var.kubeconfig_path
  config_context = var.kube_context
}

module "endpoint" {
  source = "../../modules/k8s-model-endpoint"

  model_name          = var.model_name
  model_version       = var.model_version
  image               = var.image
  cost_center         = var.cost_center
  data_classification = var.data_classification
  labels              = var.labels
  cpu                 = var.cpu
  memory              = var.memory
  gpu                 = var.gpu
  environment         = var.environment

  measured_memory_peak_bytes = var.measured_memory_peak_bytes
  monitoring_enabled         = var.monitoring_enabled

  namespace                  = var.namespace
  serving_mode               = var.serving_mode
  grpc_port                  = var.grpc_port
  min_replicas               = 2
  max_replicas               = 4
  allowed_ingress_namespaces = ["ingress-nginx", "monitoring"]
}

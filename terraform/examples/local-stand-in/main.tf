# A provider-free stand-in environment for `shim deploy`: it takes exactly the variables the
# k8s module takes from `shim tf vars` (so the deploy's tfvars, image digest included, go through
# a real terraform plan, the policy gate and apply) but manages no resources, so it needs no
# provider download. It shows what the endpoint would be given; nothing is deployed. The real
# environments are terraform/examples/k8s-model-endpoint and sagemaker-model-endpoint, which need
# the hashicorp/kubernetes or hashicorp/aws provider.
#
#   shim deploy examples/kernels/iris-classifier --env terraform/examples/local-stand-in --dry-run

terraform {
  required_version = ">= 1.0.0"
}

locals {
  # The same pinning rule as the modules' variable validation, checked again at plan time.
  pinned = can(regex("@sha256:[a-f0-9]{64}$", var.image))
}

output "endpoint" {
  description = "What the k8s module would deploy with these values."
  value = {
    model_name                 = var.model_name
    model_version              = var.model_version
    image                      = var.image
    image_pinned               = local.pinned
    cost_center                = var.cost_center
    data_classification        = var.data_classification
    resources                  = { cpu = var.cpu, memory = var.memory, gpu = var.gpu }
    measured_memory_peak_bytes = var.measured_memory_peak_bytes
    monitoring_enabled         = var.monitoring_enabled
  }
}

output "image" {
  description = "The image the endpoint would run, pinned by the digest the deploy pushed."
  value       = var.image
}

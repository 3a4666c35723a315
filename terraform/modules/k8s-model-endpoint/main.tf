# Shared names and labels. Every object carries the required labels (cost-center, managed-by,
# data-classification); the plan gate (policies/plan_policy.yaml) rejects plans without them.

locals {
  kserve = var.serving_mode == "kserve"

  required_labels = {
    "cost-center"         = var.cost_center
    "managed-by"          = "kernelshim"
    "data-classification" = var.data_classification
  }

  # Stable selector: never changes for the life of the endpoint (a Deployment selector is immutable).
  selector_labels = {
    "app.kubernetes.io/name"     = var.model_name
    "app.kubernetes.io/instance" = var.model_name
  }

  labels = merge(
    var.labels,
    local.selector_labels,
    {
      # '+' (semver build metadata) is not allowed in a label value.
      "app.kubernetes.io/version"    = replace(var.model_version, "+", "_")
      "app.kubernetes.io/component"  = "model-endpoint"
      "app.kubernetes.io/managed-by" = "terraform"
    },
    local.required_labels,
  )

  # KServe labels the predictor pods with the InferenceService name; plain mode uses our selector.
  pod_selector_labels = local.kserve ? { "serving.kserve.io/inferenceservice" = var.model_name } : local.selector_labels

  environment = merge(var.environment, {
    KERNELSHIM_MODEL_NAME    = var.model_name
    KERNELSHIM_MODEL_VERSION = var.model_version
    KERNELSHIM_PORT          = tostring(var.port)
  })

  gpu_resources = var.gpu > 0 ? { "nvidia.com/gpu" = tostring(var.gpu) } : {}

  container_resources = merge({ cpu = var.cpu, memory = var.memory }, local.gpu_resources)

  annotations = {
    "prometheus.io/scrape" = "true"
    "prometheus.io/port"   = tostring(var.port)
    "prometheus.io/path"   = "/metrics"
  }
}

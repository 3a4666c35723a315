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

  # The Open Inference Protocol over gRPC next to REST, on grpc_port (0: off). Knative, which runs
  # KServe's Knative mode (formerly Serverless), routes a single container port, so there the
  # endpoint is REST only and the server is told so (KERNELSHIM_GRPC_PORT=0) rather than listening where nothing routes.
  grpc_port = local.kserve && var.kserve_deployment_mode == "Knative" ? 0 : var.grpc_port
  grpc      = local.grpc_port > 0

  environment = merge(var.environment, {
    KERNELSHIM_MODEL_NAME         = var.model_name
    KERNELSHIM_MODEL_VERSION      = var.model_version
    KERNELSHIM_PORT               = tostring(var.port)
    KERNELSHIM_GRPC_PORT          = tostring(local.grpc_port)
    KERNELSHIM_DRAIN_S            = tostring(var.drain_seconds)
    KERNELSHIM_GRACEFUL_TIMEOUT_S = tostring(var.graceful_timeout_seconds)
  })

  # SIGTERM: the shim drains (drain_seconds), then finishes in-flight requests
  # (graceful_timeout_seconds); the kubelet's SIGKILL must come after both, with a margin for the
  # process to exit. Kubernetes' default of 30 s would cut a 30 s graceful timeout short.
  termination_grace_period_seconds = var.drain_seconds + var.graceful_timeout_seconds + 5

  # The InferenceService's container ports, the way KServe reads them: the first is the HTTP port
  # (the predictor Service's port 80); gRPC is a port named "h2c" (HTTP/2 cleartext), which
  # Standard mode publishes on the predictor Service under its own number. Every port is named:
  # a Service with several ports needs names.
  kserve_ports = concat(
    [{ name = "http1", containerPort = var.port, protocol = "TCP" }],
    local.grpc ? [{ name = "h2c", containerPort = local.grpc_port, protocol = "TCP" }] : [],
  )

  # What the NetworkPolicy admits callers to.
  serving_ports = local.grpc ? [var.port, local.grpc_port] : [var.port]

  gpu_resources = var.gpu > 0 ? { "nvidia.com/gpu" = tostring(var.gpu) } : {}

  container_resources = merge({ cpu = var.cpu, memory = var.memory }, local.gpu_resources)

  annotations = merge({
    "prometheus.io/scrape" = "true"
    "prometheus.io/port"   = tostring(var.port)
    "prometheus.io/path"   = "/metrics"
  }, local.contract_annotations)

  # What the validator measured and the contract asks for, carried into the plan so the plan gate
  # (policies/plan_policy.yaml) can check the pod against it from the plan JSON alone.
  contract_annotations = merge(
    var.measured_memory_peak_bytes == null ? {} : {
      "kernelshim.io/measured-memory-peak-bytes" = format("%d", var.measured_memory_peak_bytes)
    },
    { "kernelshim.io/monitoring" = var.monitoring_enabled ? "true" : "false" },
  )
}

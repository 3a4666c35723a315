# Platform inputs: Ops choose these per cluster and environment. They do not come from the
# kernel's contract, so `shim tf vars` does not emit them; each has a safe default.

variable "namespace" {
  description = "Namespace the endpoint is deployed into. It must exist; the module does not create it."
  type        = string
  default     = "models"

  validation {
    condition     = var.namespace != "default" && length(var.namespace) <= 63 && can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace))
    error_message = "The namespace must be a DNS-1123 label other than \"default\"."
  }
}

variable "serving_mode" {
  description = "\"deployment\": a plain Deployment, Service and HorizontalPodAutoscaler. \"kserve\": a KServe InferenceService that runs the shim image as a custom Open Inference Protocol (v2) runtime (needs KServe's CRDs in the cluster)."
  type        = string
  default     = "deployment"

  validation {
    condition     = contains(["deployment", "kserve"], var.serving_mode)
    error_message = "The serving_mode must be \"deployment\" or \"kserve\"."
  }
}

variable "port" {
  description = "Port the shim server listens on inside the container."
  type        = number
  default     = 8080

  validation {
    condition     = var.port >= 1024 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "The port must be an unprivileged port (1024-65535): the container runs as non-root."
  }
}

variable "drain_seconds" {
  description = "After SIGTERM the shim keeps answering, each response closing its connection, until clients go quiet or this many seconds pass (Kubernetes still routes to a terminating pod for a moment). Passed as KERNELSHIM_DRAIN_S; counted into the pod's termination grace period."
  type        = number
  default     = 2

  validation {
    condition     = var.drain_seconds >= 0 && var.drain_seconds <= 600 && floor(var.drain_seconds) == var.drain_seconds
    error_message = "The drain_seconds must be a whole number from 0 to 600."
  }
}

variable "graceful_timeout_seconds" {
  description = "How long the shim lets in-flight requests finish once it stops accepting. Passed as KERNELSHIM_GRACEFUL_TIMEOUT_S; the pod's termination grace period is drain_seconds + graceful_timeout_seconds + 5, so the kubelet never kills a draining server."
  type        = number
  default     = 30

  validation {
    condition     = var.graceful_timeout_seconds >= 0 && var.graceful_timeout_seconds <= 3600 && floor(var.graceful_timeout_seconds) == var.graceful_timeout_seconds
    error_message = "The graceful_timeout_seconds must be a whole number from 0 to 3600."
  }
}

variable "grpc_port" {
  description = "Port the shim's gRPC endpoint (the Open Inference Protocol over gRPC, plus grpc.health.v1) listens on inside the container; 8081 is KServe's gRPC port. 0 turns gRPC off. Not served in KServe Knative mode, which routes one port (REST)."
  type        = number
  default     = 8081

  validation {
    condition     = var.grpc_port == 0 || (var.grpc_port >= 1024 && var.grpc_port <= 65535 && floor(var.grpc_port) == var.grpc_port)
    error_message = "The grpc_port must be 0 (gRPC off) or an unprivileged port (1024-65535): the container runs as non-root."
  }
}

variable "min_replicas" {
  description = "Fewest replicas the autoscaler keeps."
  type        = number
  default     = 2

  validation {
    condition     = var.min_replicas >= 1 && floor(var.min_replicas) == var.min_replicas
    error_message = "The min_replicas must be a whole number of at least 1."
  }
}

variable "max_replicas" {
  description = "Most replicas the autoscaler may run. GPUs claimed at full scale are gpu x max_replicas; the plan gate caps their total."
  type        = number
  default     = 4

  validation {
    condition     = var.max_replicas >= 1 && var.max_replicas <= 100 && floor(var.max_replicas) == var.max_replicas
    error_message = "The max_replicas must be a whole number from 1 to 100."
  }
}

variable "target_cpu_utilization_percent" {
  description = "Average CPU utilization (percent of the request) the autoscaler aims for."
  type        = number
  default     = 70

  validation {
    condition     = var.target_cpu_utilization_percent >= 10 && var.target_cpu_utilization_percent <= 95
    error_message = "The target_cpu_utilization_percent must be between 10 and 95."
  }
}

variable "allowed_ingress_namespaces" {
  description = "Namespaces (besides the endpoint's own) whose pods may call the endpoint, e.g. the ingress controller's and the monitoring namespace. All other ingress is denied by the NetworkPolicy."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for ns in var.allowed_ingress_namespaces : can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", ns))])
    error_message = "Every entry of allowed_ingress_namespaces must be a namespace name (DNS-1123 label)."
  }
}

variable "service_account_name" {
  description = "Service account the pods run as. The shim needs no Kubernetes API access; its token is not mounted."
  type        = string
  default     = "default"
}

variable "kserve_deployment_mode" {
  description = "KServe deployment mode when serving_mode is \"kserve\": Standard (a Deployment + HPA that KServe manages; called RawDeployment before KServe 0.16) or Knative (Knative Serving, scale to zero and canary traffic; called Serverless before 0.16)."
  type        = string
  default     = "Standard"

  validation {
    condition     = contains(["Standard", "Knative"], var.kserve_deployment_mode)
    error_message = "The kserve_deployment_mode must be Standard or Knative (KServe 0.16 renamed RawDeployment to Standard and Serverless to Knative; use the new names)."
  }
}

variable "kserve_canary_traffic_percent" {
  description = "KServe canary rollout: percent of traffic (0-100) the newest revision receives; the rest stays on the last ready revision. 100 (the default) sends all traffic to the new revision once it is ready. Below 100 needs kserve_deployment_mode = \"Knative\" (Standard mode has no revisions to split between). Promote by raising it to 100 once the readiness probe (golden samples) and the alert rules stay green; set 0 to roll back."
  type        = number
  default     = 100

  validation {
    condition     = var.kserve_canary_traffic_percent >= 0 && var.kserve_canary_traffic_percent <= 100 && floor(var.kserve_canary_traffic_percent) == var.kserve_canary_traffic_percent
    error_message = "The kserve_canary_traffic_percent must be a whole number from 0 to 100."
  }
}

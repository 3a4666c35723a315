# Platform inputs of this cluster.

variable "kubeconfig_path" {
  description = "kubeconfig used to reach the cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kube_context" {
  description = "kubeconfig context of the target cluster; null uses the current context."
  type        = string
  default     = null
}

variable "namespace" {
  description = "Namespace the endpoint is deployed into."
  type        = string
  default     = "models"
}

variable "serving_mode" {
  description = "\"deployment\" or \"kserve\"."
  type        = string
  default     = "deployment"
}

variable "grpc_port" {
  description = "Container port of the shim's gRPC endpoint (KServe's 8081); 0 serves REST only."
  type        = number
  default     = 8081
}

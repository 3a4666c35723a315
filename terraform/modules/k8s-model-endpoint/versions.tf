terraform {
  # 1.3: optional object attributes in callers; variable validations and preconditions.
  required_version = ">= 1.3.0"

  required_providers {
    kubernetes = {
      source = "hashicorp/kubernetes"
      # kubernetes_horizontal_pod_autoscaler_v2 and the *_v1 resources need 2.16+ (2.16.1 is the lowest release the provider-schema test checks).
      version = ">= 2.16.1, < 3.0.0"
    }
  }
}

# Objects shared by both serving modes: a PodDisruptionBudget and a default-deny NetworkPolicy.

resource "kubernetes_pod_disruption_budget_v1" "endpoint" {
  metadata {
    name      = var.model_name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    # max_unavailable (not min_available) so a single-replica endpoint never blocks a node drain.
    max_unavailable = "1"
    selector {
      match_labels = local.pod_selector_labels
    }
  }
}

resource "kubernetes_network_policy_v1" "endpoint" {
  metadata {
    name      = var.model_name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    pod_selector {
      match_labels = local.pod_selector_labels
    }
    policy_types = ["Ingress", "Egress"]

    # Callers: pods in the endpoint's own namespace and in the allowed namespaces, on the serving
    # ports only (REST, and gRPC unless it is off).
    ingress {
      from {
        pod_selector {}
      }

      dynamic "from" {
        for_each = var.allowed_ingress_namespaces
        content {
          namespace_selector {
            match_labels = {
              "kubernetes.io/metadata.name" = from.value
            }
          }
        }
      }

      dynamic "ports" {
        for_each = local.serving_ports
        content {
          port     = tostring(ports.value)
          protocol = "TCP"
        }
      }
    }

    # The model is inside the image: the shim needs no egress except DNS.
    egress {
      to {
        namespace_selector {
          match_labels = {
            "kubernetes.io/metadata.name" = "kube-system"
          }
        }
      }
      ports {
        port     = "53"
        protocol = "UDP"
      }
      ports {
        port     = "53"
        protocol = "TCP"
      }
    }
  }
}

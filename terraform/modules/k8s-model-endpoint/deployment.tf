# serving_mode = "deployment": the shim image as a plain Deployment.

resource "kubernetes_deployment_v1" "endpoint" {
  count = local.kserve ? 0 : 1

  metadata {
    name      = var.model_name
    namespace = var.namespace
    labels    = local.labels
  }

  wait_for_rollout = true

  spec {
    # The HorizontalPodAutoscaler owns the replica count after creation (see ignore_changes).
    replicas               = var.min_replicas
    revision_history_limit = 5

    selector {
      match_labels = local.selector_labels
    }

    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = "25%"
        max_unavailable = "0"
      }
    }

    template {
      metadata {
        labels      = local.labels
        annotations = merge(local.annotations, local.monitoring_annotations)
      }

      spec {
        service_account_name             = var.service_account_name
        automount_service_account_token  = false
        enable_service_links             = false
        termination_grace_period_seconds = local.termination_grace_period_seconds

        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          # checkov:skip=CKV_K8S_14: var.image has no default so checkov cannot read it; its validation (variables.tf) requires a digest and the plan gate (KS605) checks the planned value.
          # checkov:skip=CKV_K8S_43: same as CKV_K8S_14: digest pinning is enforced by the variable validation and the plan gate.
          # checkov:skip=CKV_K8S_15: the image is pinned by digest (validated), so IfNotPresent cannot run another image; Always would only add a registry round trip to every pod start.
          name              = "shim"
          image             = var.image
          image_pull_policy = "IfNotPresent"

          port {
            name           = "http"
            container_port = var.port
            protocol       = "TCP"
          }

          # The Open Inference Protocol over gRPC (and grpc.health.v1); the probes stay on REST.
          dynamic "port" {
            for_each = local.grpc ? [local.grpc_port] : []
            content {
              name           = "grpc"
              container_port = port.value
              protocol       = "TCP"
            }
          }

          dynamic "env" {
            for_each = local.environment
            content {
              name  = env.key
              value = env.value
            }
          }

          resources {
            # Written out (not merge()) so static analysis (checkov CKV_K8S_10-13) can read the keys.
            requests = var.gpu > 0 ? { cpu = var.cpu, memory = var.memory, "nvidia.com/gpu" = tostring(var.gpu) } : { cpu = var.cpu, memory = var.memory }
            limits   = var.gpu > 0 ? { cpu = var.cpu, memory = var.memory, "nvidia.com/gpu" = tostring(var.gpu) } : { cpu = var.cpu, memory = var.memory }
          }

          # Loading a large model can take minutes: the startup probe holds off liveness until then.
          startup_probe {
            http_get {
              path = "/v2/health/live"
              port = "http"
            }
            period_seconds    = 5
            failure_threshold = 60
            timeout_seconds   = 2
          }

          liveness_probe {
            http_get {
              path = "/v2/health/live"
              port = "http"
            }
            period_seconds    = 10
            failure_threshold = 3
            timeout_seconds   = 2
          }

          readiness_probe {
            http_get {
              path = "/v2/health/ready"
              port = "http"
            }
            period_seconds    = 5
            failure_threshold = 2
            timeout_seconds   = 2
          }

          security_context {
            run_as_non_root            = true
            run_as_user                = 10001
            run_as_group               = 10001
            read_only_root_filesystem  = true
            allow_privilege_escalation = false
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }

          # The root filesystem is read-only; the server and runtimes may need scratch space.
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "1Gi"
          }
        }

        dynamic "toleration" {
          for_each = var.gpu > 0 ? [1] : []
          content {
            key      = "nvidia.com/gpu"
            operator = "Exists"
            effect   = "NoSchedule"
          }
        }
      }
    }
  }

  lifecycle {
    ignore_changes = [spec[0].replicas]

    precondition {
      condition     = !local.grpc || local.grpc_port != var.port
      error_message = "The grpc_port must differ from port (or be 0 to turn gRPC off)."
    }
  }
}

resource "kubernetes_service_v1" "endpoint" {
  count = local.kserve ? 0 : 1

  metadata {
    name      = var.model_name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    type     = "ClusterIP"
    selector = local.selector_labels

    port {
      name        = "http"
      port        = 80
      target_port = "http"
      protocol    = "TCP"
    }

    # gRPC on its own number (as KServe's Standard mode publishes it); appProtocol tells meshes,
    # ingress controllers and cloud load balancers to speak HTTP/2 to it.
    dynamic "port" {
      for_each = local.grpc ? [local.grpc_port] : []
      content {
        name         = "grpc"
        port         = port.value
        target_port  = "grpc"
        protocol     = "TCP"
        app_protocol = "grpc"
      }
    }
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "endpoint" {
  count = local.kserve ? 0 : 1

  metadata {
    name      = var.model_name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    min_replicas = var.min_replicas
    max_replicas = var.max_replicas

    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.endpoint[0].metadata[0].name
    }

    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = var.target_cpu_utilization_percent
        }
      }
    }

    behavior {
      scale_down {
        stabilization_window_seconds = 300
        select_policy                = "Max"
        policy {
          type           = "Pods"
          value          = 1
          period_seconds = 60
        }
      }
      scale_up {
        stabilization_window_seconds = 0
        select_policy                = "Max"
        policy {
          type           = "Percent"
          value          = 100
          period_seconds = 30
        }
      }
    }
  }
}

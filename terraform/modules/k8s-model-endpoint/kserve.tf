# serving_mode = "kserve": a KServe InferenceService whose predictor runs the shim image as a
# custom Open Inference Protocol (v2) runtime. KServe then owns the Deployment, Service and
# autoscaler; the PodDisruptionBudget and NetworkPolicy (disruption.tf) still apply.
# kubernetes_manifest reads the CRD schema at plan time, so KServe must be installed first.
# gRPC: in Standard mode the container declares a second port named "h2c" (local.kserve_ports), the
# way KServe's custom predictors expose gRPC; KServe's predictor Service then carries it. Knative
# accepts one port, so that mode is REST only. The probes stay on REST.
# Autoscaling: KServe (0.15+) reads the CPU target from spec.predictor.scaleMetric/scaleTarget; the
# older serving.kserve.io/metric and targetUtilizationPercentage annotations are ignored.
# Rollout: canaryTrafficPercent (Knative mode) sends that share to the new revision; the rest stays
# on the last ready one until it is raised to 100 (see the module README, "Rollouts").

resource "kubernetes_manifest" "inference_service" {
  count = local.kserve ? 1 : 0

  manifest = {
    apiVersion = "serving.kserve.io/v1beta1"
    kind       = "InferenceService"
    metadata = {
      name      = var.model_name
      namespace = var.namespace
      labels    = local.labels
      # KServe copies the InferenceService's annotations to the predictor pods, so the Prometheus
      # scrape annotations reach them as in deployment mode.
      annotations = merge(local.annotations, local.monitoring_annotations, {
        "serving.kserve.io/deploymentMode"  = var.kserve_deployment_mode
        "serving.kserve.io/autoscalerClass" = "hpa"
      })
    }
    spec = {
      predictor = {
        # Only a real canary (below 100) is written: null leaves the field out of the object the
        # provider sends, and KServe reads an absent field as "all traffic to the newest ready
        # revision" (Standard mode has no revisions to split).
        canaryTrafficPercent          = var.kserve_canary_traffic_percent < 100 ? var.kserve_canary_traffic_percent : null
        scaleMetric                   = "cpu"
        scaleTarget                   = var.target_cpu_utilization_percent
        minReplicas                   = var.min_replicas
        maxReplicas                   = var.max_replicas
        serviceAccountName            = var.service_account_name
        automountServiceAccountToken  = false
        terminationGracePeriodSeconds = local.termination_grace_period_seconds
        labels                        = local.labels
        securityContext = {
          runAsNonRoot = true
          runAsUser    = 10001
          runAsGroup   = 10001
          fsGroup      = 10001
          seccompProfile = {
            type = "RuntimeDefault"
          }
        }
        tolerations = var.gpu > 0 ? [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }] : []
        containers = [
          {
            # KServe requires this name for a custom predictor container.
            name            = "kserve-container"
            image           = var.image
            imagePullPolicy = "IfNotPresent"
            ports           = local.kserve_ports
            env             = [for key, value in local.environment : { name = key, value = value }]
            resources = {
              requests = local.container_resources
              limits   = local.container_resources
            }
            livenessProbe = {
              httpGet          = { path = "/v2/health/live", port = var.port }
              periodSeconds    = 10
              failureThreshold = 3
              timeoutSeconds   = 2
            }
            readinessProbe = {
              httpGet          = { path = "/v2/health/ready", port = var.port }
              periodSeconds    = 5
              failureThreshold = 2
              timeoutSeconds   = 2
            }
            securityContext = {
              runAsNonRoot             = true
              readOnlyRootFilesystem   = true
              allowPrivilegeEscalation = false
              privileged               = false
              capabilities             = { drop = ["ALL"] }
            }
            volumeMounts = [{ name = "tmp", mountPath = "/tmp" }]
          }
        ]
        volumes = [{ name = "tmp", emptyDir = { sizeLimit = "1Gi" } }]
      }
    }
  }

  wait {
    condition {
      type   = "Ready"
      status = "True"
    }
  }

  timeouts {
    create = "20m"
    update = "20m"
  }

  lifecycle {
    precondition {
      condition     = !local.grpc || local.grpc_port != var.port
      error_message = "The grpc_port must differ from port (or be 0 to turn gRPC off)."
    }

    precondition {
      condition     = var.kserve_canary_traffic_percent == 100 || var.kserve_deployment_mode == "Knative"
      error_message = "kserve_canary_traffic_percent below 100 needs kserve_deployment_mode = \"Knative\": Standard mode keeps no previous revision to split traffic with."
    }
  }
}


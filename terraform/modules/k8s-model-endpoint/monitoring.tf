# Monitoring of the endpoint: Prometheus scrape annotations, a ServiceMonitor and a PrometheusRule
# over the metrics `shim serve` exports (README, Monitoring): drift against the kernel's training
# profile (shim_drift_alert), live accuracy from feedback (shim_live_accuracy_alert), the 5xx rate,
# p99 latency and readiness. kubernetes_manifest reads the CRD schema at plan time, so the
# Prometheus Operator's CRDs must be installed before service_monitor or prometheus_rule is set.

locals {
  # Merged over local.annotations on the pod template: false turns annotation-based scraping off.
  monitoring_annotations = var.prometheus_scrape ? {
    "prometheus.io/scrape" = "true"
    "prometheus.io/port"   = tostring(var.port)
    "prometheus.io/path"   = "/metrics"
  } : { "prometheus.io/scrape" = "false" }

  alert_selector = "model=\"${var.model_name}\""
  alert_labels   = merge({ model = var.model_name, namespace = var.namespace }, var.alert_labels)

  prometheus_alerts = [
    {
      alert       = "KernelshimFeatureDrift"
      expr        = "max by (model, feature) (shim_drift_alert{${local.alert_selector}}) == 1"
      "for"       = var.alert_drift_for
      labels      = merge({ severity = "warning" }, local.alert_labels)
      annotations = { summary = "Model {{ $labels.model }}: feature {{ $labels.feature }} drifts from the training profile", description = "shim_drift_alert has been 1 for ${var.alert_drift_for}; see GET /v2/models/${var.model_name}/monitoring and the server log." }
    },
    {
      alert       = "KernelshimLiveAccuracyDrop"
      expr        = "max by (model) (shim_live_accuracy_alert{${local.alert_selector}}) == 1"
      "for"       = var.alert_accuracy_for
      labels      = merge({ severity = "critical" }, local.alert_labels)
      annotations = { summary = "Model {{ $labels.model }}: live accuracy below the contract's expected figure", description = "Feedback-joined accuracy (shim_live_accuracy) is worse than monitoring.expected by more than its tolerance." }
    },
    {
      alert       = "KernelshimHigh5xxRate"
      expr        = "sum(rate(shim_inference_requests_total{${local.alert_selector},code=~\"5..\"}[5m])) / clamp_min(sum(rate(shim_inference_requests_total{${local.alert_selector}}[5m])), 1e-9) > ${var.alert_5xx_ratio}"
      "for"       = "5m"
      labels      = merge({ severity = "critical" }, local.alert_labels)
      annotations = { summary = "Model {{ $labels.model }}: more than ${var.alert_5xx_ratio * 100}% of inference requests fail with 5xx", description = "See the server log for 'model raised' and out-of-memory lines." }
    },
    {
      alert       = "KernelshimHighP99Latency"
      expr        = "histogram_quantile(0.99, sum by (le) (rate(shim_request_duration_seconds_bucket{${local.alert_selector}}[5m]))) > ${var.alert_p99_latency_seconds}"
      "for"       = "10m"
      labels      = merge({ severity = "warning" }, local.alert_labels)
      annotations = { summary = "Model {{ $labels.model }}: p99 latency above ${var.alert_p99_latency_seconds}s", description = "Check shim_queue_duration_seconds (queueing) against shim_compute_duration_seconds (the model)." }
    },
    {
      alert       = "KernelshimNotReady"
      expr        = "min by (model) (shim_model_ready{${local.alert_selector}}) == 0"
      "for"       = var.alert_not_ready_for
      labels      = merge({ severity = "critical" }, local.alert_labels)
      annotations = { summary = "Model {{ $labels.model }} is not ready", description = "The readiness endpoint gives the reason (load error, failing golden sample)." }
    },
  ]
}

resource "kubernetes_manifest" "service_monitor" {
  count = var.service_monitor && !local.kserve ? 1 : 0

  manifest = {
    apiVersion = "monitoring.coreos.com/v1"
    kind       = "ServiceMonitor"
    metadata = {
      name      = var.model_name
      namespace = var.namespace
      labels    = local.labels
    }
    spec = {
      selector = { matchLabels = local.selector_labels }
      endpoints = [{
        port     = "http"
        path     = "/metrics"
        interval = var.scrape_interval
      }]
    }
  }
}

resource "kubernetes_manifest" "prometheus_rule" {
  count = var.prometheus_rule ? 1 : 0

  manifest = {
    apiVersion = "monitoring.coreos.com/v1"
    kind       = "PrometheusRule"
    metadata = {
      name      = "${var.model_name}-alerts"
      namespace = var.namespace
      labels    = local.labels
    }
    spec = {
      groups = [{
        name  = "kernelshim-${var.model_name}"
        rules = local.prometheus_alerts
      }]
    }
  }
}

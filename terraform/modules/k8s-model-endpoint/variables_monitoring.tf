# Monitoring choices Ops make per environment (monitoring.tf). All optional; with the defaults the
# pods carry the Prometheus scrape annotations and nothing else is created.

variable "prometheus_scrape" {
  description = "Annotate the pods for annotation-based Prometheus scraping (prometheus.io/scrape, port, path). false writes prometheus.io/scrape = \"false\"."
  type        = bool
  default     = true
}

variable "service_monitor" {
  description = "Create a Prometheus Operator ServiceMonitor for the endpoint's Service (deployment mode; needs the monitoring.coreos.com CRDs)."
  type        = bool
  default     = false
}

variable "scrape_interval" {
  description = "How often the ServiceMonitor scrapes /metrics, e.g. 30s."
  type        = string
  default     = "30s"

  validation {
    condition     = can(regex("^[0-9]+(ms|s|m)$", var.scrape_interval))
    error_message = "The scrape_interval must be a Prometheus duration such as 15s, 30s or 1m."
  }
}

variable "prometheus_rule" {
  description = "Create a Prometheus Operator PrometheusRule alerting on drift, live accuracy, 5xx rate, p99 latency and readiness (needs the monitoring.coreos.com CRDs)."
  type        = bool
  default     = false
}

variable "alert_labels" {
  description = "Extra labels on every alert of the PrometheusRule (routing, e.g. team or severity overrides)."
  type        = map(string)
  default     = {}
}

variable "alert_drift_for" {
  description = "How long shim_drift_alert must be 1 before the drift alert fires."
  type        = string
  default     = "10m"
}

variable "alert_accuracy_for" {
  description = "How long shim_live_accuracy_alert must be 1 before the live accuracy alert fires."
  type        = string
  default     = "15m"
}

variable "alert_5xx_ratio" {
  description = "Fraction of inference requests answered 5xx (over 5 minutes) above which the error alert fires."
  type        = number
  default     = 0.05

  validation {
    condition     = var.alert_5xx_ratio > 0 && var.alert_5xx_ratio <= 1
    error_message = "The alert_5xx_ratio must be in (0, 1]."
  }
}

variable "alert_p99_latency_seconds" {
  description = "p99 inference latency (seconds, over 5 minutes) above which the latency alert fires."
  type        = number
  default     = 0.5

  validation {
    condition     = var.alert_p99_latency_seconds > 0
    error_message = "The alert_p99_latency_seconds must be positive."
  }
}

variable "alert_not_ready_for" {
  description = "How long the model may report not ready (shim_model_ready == 0) before the readiness alert fires."
  type        = string
  default     = "5m"
}

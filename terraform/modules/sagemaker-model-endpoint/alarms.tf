# Alarms on the variant: more than 10 server errors in 5 minutes, and p99 model latency. They name
# the endpoint by var.model_name (its name), not by the endpoint resource: the endpoint's blue/green
# deployment_config lists them for automatic rollback, so they must not depend on it.

resource "aws_cloudwatch_metric_alarm" "errors_5xx" {
  alarm_name          = "${var.model_name}-5xx-errors"
  alarm_description   = "More than 10 Invocation5XXErrors in 5 minutes on SageMaker endpoint ${var.model_name}."
  namespace           = "AWS/SageMaker"
  metric_name         = "Invocation5XXErrors"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 10
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    EndpointName = var.model_name
    VariantName  = var.variant_name
  }

  tags = local.tags
}

resource "aws_cloudwatch_metric_alarm" "latency_p99" {
  alarm_name          = "${var.model_name}-model-latency-p99"
  alarm_description   = "p99 ModelLatency above ${var.latency_threshold_ms} ms for 3 of 5 minutes on SageMaker endpoint ${var.model_name}."
  namespace           = "AWS/SageMaker"
  metric_name         = "ModelLatency"
  extended_statistic  = "p99"
  period              = 60
  evaluation_periods  = 5
  datapoints_to_alarm = 3
  # ModelLatency is reported in microseconds.
  threshold           = var.latency_threshold_ms * 1000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
  ok_actions          = var.alarm_actions

  dimensions = {
    EndpointName = var.model_name
    VariantName  = var.variant_name
  }

  tags = local.tags
}

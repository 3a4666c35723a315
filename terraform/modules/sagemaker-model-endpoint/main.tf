# The "secure model endpoint" pattern: a SageMaker model inside a VPC with network isolation,
# an endpoint configuration encrypted with a rotating customer-managed KMS key, the endpoint,
# target-tracking autoscaling on invocations, and alarms on 5xx errors and latency.

locals {
  # Account and partition of the execution role: the KMS key policy grants its account, so
  # planning needs no API call (no aws_caller_identity data source).
  role_arn_parts = split(":", var.execution_role_arn)
  partition      = local.role_arn_parts[1]
  account_id     = local.role_arn_parts[4]

  required_tags = {
    CostCenter         = var.cost_center
    ManagedBy          = "kernelshim"
    DataClassification = var.data_classification
  }

  tags = merge(var.tags, { ModelName = var.model_name, ModelVersion = var.model_version }, local.required_tags)


  environment = merge(var.environment, {
    KERNELSHIM_MODEL_NAME    = var.model_name
    KERNELSHIM_MODEL_VERSION = var.model_version
  })

  # SageMaker models and endpoint configurations are immutable: a new image or instance setting
  # creates new ones (create_before_destroy) and the endpoint switches over in place.
  # The suffix keeps their names unique per content; names are limited to 63 characters.
  model_suffix  = substr(sha256(jsonencode([var.image, local.environment, var.vpc_subnet_ids, var.vpc_security_group_ids])), 0, 8)
  model_name    = "${substr(var.model_name, 0, 54)}-${local.model_suffix}"
  config_suffix = substr(sha256(jsonencode([local.model_name, var.instance_type, var.min_capacity, var.variant_name])), 0, 8)
  config_name   = "${substr(var.model_name, 0, 54)}-${local.config_suffix}"

  gpu_instance = can(regex("^ml\\.(g4dn|g5|g6|g6e|gr6|p3|p3dn|p4d|p4de|p5|p5e|p5en)\\.", var.instance_type))
}

resource "aws_kms_key" "endpoint" {
  description             = "Encrypts the storage volumes of SageMaker endpoint ${var.model_name}"
  enable_key_rotation     = true
  rotation_period_in_days = var.kms_key_rotation_period_days
  deletion_window_in_days = var.kms_key_deletion_window_days

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "SageMakerExecutionRoleUse"
        Effect    = "Allow"
        Principal = { AWS = var.execution_role_arn }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
      },
    ]
  })

  tags = local.tags
}

resource "aws_kms_alias" "endpoint" {
  name          = "alias/sagemaker/${var.model_name}"
  target_key_id = aws_kms_key.endpoint.key_id
}

resource "aws_sagemaker_model" "this" {
  name                     = local.model_name
  execution_role_arn       = var.execution_role_arn
  enable_network_isolation = true

  primary_container {
    image       = var.image
    mode        = "SingleModel"
    environment = local.environment
  }

  vpc_config {
    subnets            = var.vpc_subnet_ids
    security_group_ids = var.vpc_security_group_ids
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true

    precondition {
      condition     = var.gpu == 0 || local.gpu_instance
      error_message = "The kernel needs ${var.gpu} GPU(s) per instance but instance_type ${var.instance_type} has none: choose a GPU instance type (ml.g5.*, ml.p4d.*, ...)."
    }
  }
}

resource "aws_sagemaker_endpoint_configuration" "this" {
  name        = local.config_name
  kms_key_arn = aws_kms_key.endpoint.arn

  production_variants {
    variant_name           = var.variant_name
    model_name             = aws_sagemaker_model.this.name
    instance_type          = var.instance_type
    initial_instance_count = var.min_capacity
    initial_variant_weight = 1
  }

  # Optional request/response capture to S3 (monitoring.tf).
  dynamic "data_capture_config" {
    for_each = local.data_capture
    content {
      enable_capture              = true
      destination_s3_uri          = data_capture_config.value.destination_s3_uri
      initial_sampling_percentage = data_capture_config.value.initial_sampling_percentage
      kms_key_id                  = aws_kms_key.endpoint.arn
      capture_options {
        capture_mode = "Input"
      }
      capture_options {
        capture_mode = "Output"
      }
      capture_content_type_header {
        json_content_types = ["application/json"]
      }
    }
  }

  tags = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

# A new image or setting creates a new endpoint configuration; SageMaker then moves traffic to a new
# (green) fleet in steps (CANARY: one step of traffic_shift_percent, then the rest; LINEAR: equal
# steps of traffic_shift_percent), waits traffic_shift_wait_seconds after each, and rolls back to
# the old (blue) fleet by itself if the module's 5xx or latency alarm fires meanwhile.
resource "aws_sagemaker_endpoint" "this" {
  name                 = var.model_name
  endpoint_config_name = aws_sagemaker_endpoint_configuration.this.name

  deployment_config {
    blue_green_update_policy {
      termination_wait_in_seconds          = var.traffic_shift_termination_wait_seconds
      maximum_execution_timeout_in_seconds = var.traffic_shift_timeout_seconds

      traffic_routing_configuration {
        type                     = var.traffic_shift_mode
        wait_interval_in_seconds = var.traffic_shift_wait_seconds

        dynamic "canary_size" {
          for_each = var.traffic_shift_mode == "CANARY" ? [var.traffic_shift_percent] : []
          content {
            type  = "CAPACITY_PERCENT"
            value = canary_size.value
          }
        }

        dynamic "linear_step_size" {
          for_each = var.traffic_shift_mode == "LINEAR" ? [var.traffic_shift_percent] : []
          content {
            type  = "CAPACITY_PERCENT"
            value = linear_step_size.value
          }
        }
      }
    }

    auto_rollback_configuration {
      alarms {
        alarm_name = aws_cloudwatch_metric_alarm.errors_5xx.alarm_name
      }
      alarms {
        alarm_name = aws_cloudwatch_metric_alarm.latency_p99.alarm_name
      }
    }
  }

  tags = local.tags
}

# Data capture of the endpoint (variables_monitoring.tf), encrypted with the endpoint's KMS key.
# aws_sagemaker_endpoint_configuration (main.tf) renders local.data_capture as its
# data_capture_config block: none when data_capture_s3_uri is null.

locals {
  data_capture = var.data_capture_s3_uri == null ? [] : [{
    destination_s3_uri          = var.data_capture_s3_uri
    initial_sampling_percentage = var.data_capture_sampling_percentage
  }]
}

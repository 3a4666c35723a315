# Root configuration: one secure SageMaker endpoint from a kernel's generated tfvars.
#
#   shim tf vars ../../../examples/kernels/iris-classifier \
#     --image 123456789012.dkr.ecr.eu-west-1.amazonaws.com/models/iris-classifier@sha256:<digest> \
#     --module sagemaker > endpoint.auto.tfvars.json
#   shim tf apply .

provider "aws" {
  region = var.region
}

module "endpoint" {
  source = "../../modules/sagemaker-model-endpoint"

  model_name          = var.model_name
  model_version       = var.model_version
  image               = var.image
  cost_center         = var.cost_center
  data_classification = var.data_classification
  tags                = var.tags
  gpu                 = var.gpu
  environment         = var.environment

  measured_memory_peak_bytes = var.measured_memory_peak_bytes

  execution_role_arn     = var.execution_role_arn
  vpc_subnet_ids         = var.vpc_subnet_ids
  vpc_security_group_ids = var.vpc_security_group_ids
  instance_type          = var.instance_type
  min_capacity           = 2
  max_capacity           = 4
  alarm_actions          = var.alarm_actions
}

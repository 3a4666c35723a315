terraform {
  # 1.3: preconditions and optional object attributes.
  required_version = ">= 1.3.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_kms_key.rotation_period_in_days first appears in the 5.49.0 schema (tests/iac/
      # test_provider_schemas.py checks every argument at both ends of this range).
      version = ">= 5.49.0, < 7.0.0"
    }
  }
}

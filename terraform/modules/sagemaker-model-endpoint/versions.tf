terraform {
  # 1.3: preconditions and optional object attributes.
  required_version = ">= 1.3.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_kms_key.rotation_period_in_days needs 5.38+.
      version = ">= 5.38.0, < 7.0.0"
    }
  }
}

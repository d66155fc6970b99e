terraform {
  required_providers {
    autoheal = {
      source  = "autoheal/autoheal"
      version = "~> 0.1"
    }
  }
}

# Every argument, for reference: most configurations need only region (or none).
provider "autoheal" {
  region      = "ap-southeast-2"
  profile     = "ops"
  max_retries = 25

  assume_role {
    role_arn     = "arn:aws:iam::123456789012:role/deployer"
    session_name = "terraform-autoheal"
    external_id  = "ops-2024"
  }

  # Emulators and private (VPC) endpoints only; omit for AWS's public endpoints.
  endpoints {
    autoscaling = "https://autoscaling.ap-southeast-2.amazonaws.com"
    cloudwatch  = "https://monitoring.ap-southeast-2.amazonaws.com"
    ec2         = "https://ec2.ap-southeast-2.amazonaws.com"
    events      = "https://events.ap-southeast-2.amazonaws.com"
    iam         = "https://iam.amazonaws.com"
    lambda      = "https://lambda.ap-southeast-2.amazonaws.com"
    logs        = "https://logs.ap-southeast-2.amazonaws.com"
    sts         = "https://sts.ap-southeast-2.amazonaws.com"
  }

  default_tags {
    tags = {
      Owner      = "platform-team"
      CostCenter = "cc-1234"
    }
  }
}

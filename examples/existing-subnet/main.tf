# A self-healing instance in a subnet you already have. The provider creates no
# VPC and no subnet here (and takes no CIDRs); it adds its own security group,
# data volume, Elastic IP, Auto Scaling group and healing Lambda.
#
# The subnet must be a public one (a route to an internet gateway) for the
# Elastic IP to be reachable, and availability_zone must be the subnet's zone.

terraform {
  required_version = ">= 1.0"

  required_providers {
    autoheal = {
      source  = "autoheal/autoheal"
      version = "~> 0.1"
    }
  }
}

provider "autoheal" {
  region = var.region
}

resource "autoheal_instance" "app" {
  name              = var.name
  availability_zone = var.availability_zone
  subnet_id         = var.subnet_id
  ami               = var.ami
  instance_type     = "t3.small"

  # SSH only from the given ranges; the default is no SSH at all.
  ssh_ingress_cidrs = var.ssh_ingress_cidrs

  volume_size       = 20
  volume_on_destroy = "snapshot"

  tags = {
    Environment = "demo"
    Application = var.name
  }
}

output "public_ip" {
  description = "The Elastic IP: it stays the same when the instance is replaced."
  value       = autoheal_instance.app.public_ip
}

output "vpc_id" {
  description = "The VPC of the subnet."
  value       = autoheal_instance.app.vpc_id
}

output "volume_id" {
  description = "The data volume that follows the instance."
  value       = autoheal_instance.app.volume_id
}

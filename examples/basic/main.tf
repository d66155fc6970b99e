# One EC2 instance that heals itself: if it dies, the Auto Scaling group starts a
# new one and the lifecycle-hook Lambda moves the data volume and the Elastic IP
# over, so the instance keeps its data and its public address.
#
# This example lets the provider create the network too (a VPC, a public subnet
# and an internet gateway), using the default CIDRs 10.0.0.0/16 and 10.0.1.0/24.

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
  availability_zone = "${var.region}a"
  ami               = var.ami
  instance_type     = var.instance_type

  tags = {
    Environment = "demo"
    Application = var.name
  }
}

output "public_ip" {
  description = "The Elastic IP: it stays the same when the instance is replaced."
  value       = autoheal_instance.app.public_ip
}

output "instance_id" {
  description = "The instance running right now (it changes when the instance heals)."
  value       = autoheal_instance.app.instance_id
}

output "volume_id" {
  description = "The data volume that follows the instance."
  value       = autoheal_instance.app.volume_id
}

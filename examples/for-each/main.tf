# Three self-healing instances from one resource block, one per entry of a map.
# Each entry is a stack of its own (VPC, subnet, data volume, Elastic IP, Auto
# Scaling group, healing Lambda) named "<name_prefix>-<key>", so adding or
# removing a key in var.instances adds or destroys exactly that stack and leaves
# the others alone.
#
# Each stack creates its own VPC with the default CIDRs (10.0.0.0/16 and
# 10.0.1.0/24); the VPCs are separate, so the ranges may repeat. Mind the
# account's VPC quota (5 per region unless raised).

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
  for_each = var.instances

  name              = "${var.name_prefix}-${each.key}"
  availability_zone = "${var.region}${each.value.zone}"
  ami               = var.ami
  instance_type     = each.value.instance_type
  volume_size       = each.value.volume_size

  tags = {
    Environment = "demo"
    Application = each.key
  }
}

output "public_ips" {
  description = "The Elastic IP of each instance, by key of var.instances."
  value       = { for key, app in autoheal_instance.app : key => app.public_ip }
}

output "volume_ids" {
  description = "The data volume of each instance, by key of var.instances."
  value       = { for key, app in autoheal_instance.app : key => app.volume_id }
}

# A licensed application that must keep its machine identity: the licence server
# binds to a MAC address and a private IP, clients reach it on its own port, the
# instance reads its configuration with an instance profile, and the operators are
# told when a heal fails or nothing serves.
#
# - persistent_network_interface: one network interface for the life of the stack
#   (fixed MAC and private IP, the Elastic IP on it), attached by the Lambda to
#   every instance as its second interface (eth1/ens6): bind the licence to it.
# - alarm_actions: the SNS topic below gets "heal failed" and "no instance in
#   service" alarms (and their return to OK).
# - ingress: the application's port, from the clients' network only; SSH stays
#   closed.
# - iam_instance_profile: an existing profile for the application (the deployer
#   needs iam:PassRole on its role, see README "Permissions").

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

resource "autoheal_instance" "licensed" {
  name              = var.name
  availability_zone = "${var.region}a"
  ami               = var.ami
  instance_type     = var.instance_type

  persistent_network_interface = true

  alarm_actions               = [var.alarm_topic_arn]
  alarm_no_in_service_minutes = 15

  ingress {
    description = "licensed application"
    protocol    = "tcp"
    from_port   = var.app_port
    to_port     = var.app_port
    cidr_blocks = var.client_cidrs
  }

  iam_instance_profile = var.instance_profile

  volume_size       = 20
  volume_on_destroy = "snapshot"

  tags = {
    Application = var.name
  }
}

output "public_ip" {
  description = "The Elastic IP, on the persistent interface: the same for every instance."
  value       = autoheal_instance.licensed.public_ip
}

output "licence_mac_address" {
  description = "The MAC address to bind the licence to (the instance's second interface)."
  value       = autoheal_instance.licensed.network_interface_mac_address
}

output "licence_private_ip" {
  description = "The private IP of the persistent interface."
  value       = autoheal_instance.licensed.network_interface_private_ip
}

output "alarm_arns" {
  description = "The CloudWatch alarms that notify alarm_topic_arn."
  value = [
    autoheal_instance.licensed.heal_failure_alarm_arn,
    autoheal_instance.licensed.no_in_service_alarm_arn,
  ]
}

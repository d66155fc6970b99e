# Tags set once in the provider block and added to every AWS object of every
# autoheal_instance: the provider's default_tags are merged with each resource's
# own tags, and a resource's tag wins when both set the same key (Environment
# below). The merged set is the resource's tags_all attribute.

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

  default_tags {
    tags = {
      Owner       = var.owner
      CostCenter  = var.cost_center
      Environment = "shared"
    }
  }
}

resource "autoheal_instance" "app" {
  name              = var.name
  availability_zone = "${var.region}a"
  ami               = var.ami
  instance_type     = "t3.micro"

  tags = {
    Environment = "demo"
    Application = var.name
  }
}

output "tags_all" {
  description = "Every tag the stack's AWS objects carry (besides Name and autoheal:stack, which the provider adds)."
  value       = autoheal_instance.app.tags_all
}

output "public_ip" {
  description = "The Elastic IP: it stays the same when the instance is replaced."
  value       = autoheal_instance.app.public_ip
}

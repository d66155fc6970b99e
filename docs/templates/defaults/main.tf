# Not an example: tools/gen-docs plans this configuration to learn the defaults the provider
# fills in, which `terraform providers schema -json` does not carry. Each resource type
# appears once, named "defaults", and sets exactly its required arguments (the generator
# refuses anything more, which would pass for a default). The plan makes no AWS call.

terraform {
  required_providers {
    autoheal = {
      source = "autoheal/autoheal"
    }
  }
}

provider "autoheal" {
  region = "ap-southeast-2"
}

resource "autoheal_instance" "defaults" {
  name              = "defaults"
  availability_zone = "ap-southeast-2a"
  ami               = "ami-0720cb7af233b0529"
}

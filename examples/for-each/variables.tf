variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "ap-southeast-2"
}

variable "name_prefix" {
  description = "Start of every stack's name: each instance is named \"<name_prefix>-<key>\"."
  type        = string
  default     = "demo"
}

variable "ami" {
  description = "AMI to boot. The default is Amazon Linux 2023 (x86_64) in ap-southeast-2: AMI IDs differ per region, so change it together with the region."
  type        = string
  default     = "ami-0720cb7af233b0529"
}

variable "instances" {
  description = "One entry per instance: the key names it, zone is the letter of its availability zone in the region."
  type = map(object({
    zone          = string
    instance_type = string
    volume_size   = number
  }))
  default = {
    billing = { zone = "a", instance_type = "t3.micro", volume_size = 10 }
    ledger  = { zone = "b", instance_type = "t3.small", volume_size = 20 }
    reports = { zone = "c", instance_type = "t3.micro", volume_size = 50 }
  }
}

variable "subnet_id" {
  description = "ID of the existing subnet to run the instance in, e.g. subnet-0123456789abcdef0."
  type        = string
}

variable "availability_zone" {
  description = "The subnet's availability zone."
  type        = string
  default     = "ap-southeast-2a"
}

variable "region" {
  description = "AWS region of the subnet."
  type        = string
  default     = "ap-southeast-2"
}

variable "name" {
  description = "Name of the instance; also the prefix of every AWS object the provider creates."
  type        = string
  default     = "demo-app"
}

variable "ami" {
  description = "AMI to boot. The default is Amazon Linux 2023 (x86_64) in ap-southeast-2."
  type        = string
  default     = "ami-0720cb7af233b0529"
}

variable "ssh_ingress_cidrs" {
  description = "CIDR ranges allowed to reach port 22. Empty: no SSH."
  type        = list(string)
  default     = []
}

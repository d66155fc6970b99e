variable "region" {
  description = "AWS region to deploy into. The instance goes into its \"a\" availability zone."
  type        = string
  default     = "ap-southeast-2"
}

variable "name" {
  description = "Name of the instance; also the prefix of every AWS object the provider creates."
  type        = string
  default     = "demo-app"
}

variable "ami" {
  description = "AMI to boot. The default is Amazon Linux 2023 (x86_64) in ap-southeast-2: AMI IDs differ per region, so change it together with the region."
  type        = string
  default     = "ami-0720cb7af233b0529"
}

variable "instance_type" {
  description = "EC2 instance type. Changing it rolls the instance: a new launch template version, then a replacement that gets the data volume and the Elastic IP through the heal path."
  type        = string
  default     = "t3.micro"
}

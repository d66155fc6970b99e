variable "region" {
  description = "AWS region to deploy into. The instance goes into its \"a\" availability zone."
  type        = string
  default     = "ap-southeast-2"
}

variable "name" {
  description = "Name of the stack; also the prefix of every AWS object the provider creates."
  type        = string
  default     = "licensed-app"
}

variable "ami" {
  description = "AMI to boot. The default is Amazon Linux 2023 (x86_64) in ap-southeast-2, whose network scripts configure a second interface by themselves; AMI IDs differ per region."
  type        = string
  default     = "ami-0720cb7af233b0529"
}

variable "instance_type" {
  description = "EC2 instance type (it must allow two network interfaces: every current type does)."
  type        = string
  default     = "t3.small"
}

variable "app_port" {
  description = "The TCP port the licensed application listens on."
  type        = number
  default     = 27000
}

variable "client_cidrs" {
  description = "IPv4 networks of the application's clients."
  type        = list(string)
  default     = ["10.20.0.0/16"]
}

variable "alarm_topic_arn" {
  description = "SNS topic for the alarms. Its access policy must let cloudwatch.amazonaws.com publish."
  type        = string
  default     = "arn:aws:sns:ap-southeast-2:123456789012:licensed-app-alarms"
}

variable "instance_profile" {
  description = "Name of an existing IAM instance profile for the application (for example to read its configuration from S3 or to run the SSM agent)."
  type        = string
  default     = "licensed-app"
}

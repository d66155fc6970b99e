//! `terraform providers schema -json` with every Terraform version: what editors, docs
//! generators and linters see of the provider.

use serde_json::Value;
use terraform_tests::{
    example_dir, terraform_versions, Terraform, PROVIDER_ADDRESS, RESOURCE_TYPE,
};

const RESOURCE_INPUTS: &[&str] = &[
    "name",
    "availability_zone",
    "subnet_id",
    "vpc_cidr",
    "subnet_cidr",
    "existing_allocation_id",
    "existing_volume_id",
    "volume_snapshot_id",
    "ami",
    "instance_type",
    "key_name",
    "ssh_ingress_cidrs",
    "user_data",
    "volume_size",
    "volume_type",
    "volume_iops",
    "volume_throughput",
    "volume_kms_key_id",
    "device_name",
    "mount_point",
    "filesystem",
    "volume_on_destroy",
    "allow_unencrypted_volume",
    "force_detach",
    "health_check_grace_period",
    "lifecycle_hook_timeout",
    "lambda_memory_size",
    "lambda_timeout",
    "lambda_architecture",
    "lambda_reserved_concurrency",
    "log_retention_days",
    "handler_zip",
    "tags",
];

const RESOURCE_COMPUTED: &[&str] = &[
    "id",
    "vpc_id",
    "security_group_id",
    "volume_id",
    "allocation_id",
    "public_ip",
    "launch_template_id",
    "autoscaling_group_name",
    "lifecycle_hook_name",
    "event_rule_arn",
    "lambda_function_arn",
    "lambda_role_arn",
    "log_group_name",
    "handler_sha256",
    "instance_id",
    "tags_all",
];

const REQUIRED: &[&str] = &["name", "availability_zone", "ami"];

/// Every attribute under a schema block (nested blocks and nested attribute types included),
/// as (path, attribute JSON).
fn all_attributes<'a>(path: &str, block: &'a Value, out: &mut Vec<(String, &'a Value)>) {
    if let Some(attrs) = block["attributes"].as_object() {
        for (name, attr) in attrs {
            let p = format!("{path}.{name}");
            if let Some(nested) = attr.get("nested_type") {
                all_attributes(&p, nested, out);
            }
            out.push((p, attr));
        }
    }
    if let Some(blocks) = block["block_types"].as_object() {
        for (name, b) in blocks {
            all_attributes(&format!("{path}.{name}"), &b["block"], out);
        }
    }
}

/// The names inside `name` in `block`, whether it is a nested block or a nested attribute.
fn child_names(block: &Value, name: &str) -> Option<Vec<String>> {
    let inner = if let Some(b) = block["block_types"].get(name) {
        &b["block"]["attributes"]
    } else {
        &block["attributes"].get(name)?["nested_type"]["attributes"]
    };
    Some(inner.as_object()?.keys().cloned().collect())
}

fn has_member(block: &Value, name: &str) -> bool {
    block["attributes"].get(name).is_some() || block["block_types"].get(name).is_some()
}

#[test]
fn providers_schema_json_describes_the_provider_and_its_resource() {
    for tf in terraform_versions() {
        eprintln!("=== {}: terraform providers schema -json", tf.name);
        let terraform = Terraform::new(tf.options(example_dir("basic"))).unwrap();
        terraform
            .init()
            .unwrap_or_else(|e| panic!("{}: init failed: {e:#}", tf.name));
        let schema = terraform
            .providers_schema_json()
            .unwrap_or_else(|e| panic!("{}: {e:#}", tf.name));
        let providers = &schema["provider_schemas"];
        let ours = providers.get(PROVIDER_ADDRESS).unwrap_or_else(|| {
            panic!(
                "{}: {PROVIDER_ADDRESS} not in provider_schemas (keys: {:?})",
                tf.name,
                providers.as_object().map(|o| o.keys().collect::<Vec<_>>())
            )
        });

        // The resource.
        let resource = &ours["resource_schemas"][RESOURCE_TYPE]["block"];
        assert!(
            resource.is_object(),
            "{}: no {RESOURCE_TYPE} in resource_schemas: {}",
            tf.name,
            ours["resource_schemas"]
        );
        let attrs = &resource["attributes"];
        let mut missing: Vec<&str> = RESOURCE_INPUTS
            .iter()
            .chain(RESOURCE_COMPUTED)
            .copied()
            .filter(|n| attrs.get(*n).is_none())
            .collect();
        missing.sort_unstable();
        assert!(
            missing.is_empty(),
            "{}: {RESOURCE_TYPE} lacks attributes {missing:?}",
            tf.name
        );
        for name in REQUIRED {
            assert_eq!(
                attrs[*name]["required"],
                Value::Bool(true),
                "{}: {name} must be required: {}",
                tf.name,
                attrs[*name]
            );
        }
        for name in RESOURCE_COMPUTED {
            assert_eq!(
                attrs[*name]["computed"],
                Value::Bool(true),
                "{}: {name} must be computed: {}",
                tf.name,
                attrs[*name]
            );
            assert_ne!(
                attrs[*name]["required"],
                Value::Bool(true),
                "{}: {name} is computed, not required",
                tf.name
            );
        }
        let mut timeouts = child_names(resource, "timeouts")
            .unwrap_or_else(|| panic!("{}: {RESOURCE_TYPE} has no timeouts", tf.name));
        timeouts.sort();
        assert_eq!(timeouts, ["create", "delete", "update"], "{}", tf.name);

        // The provider configuration.
        let provider = &ours["provider"]["block"];
        for name in [
            "region",
            "profile",
            "max_retries",
            "assume_role",
            "endpoints",
            "default_tags",
        ] {
            assert!(
                has_member(provider, name),
                "{}: the provider schema lacks {name}: {provider}",
                tf.name
            );
        }
        let mut endpoints = child_names(provider, "endpoints")
            .unwrap_or_else(|| panic!("{}: endpoints has no members: {provider}", tf.name));
        endpoints.sort();
        assert_eq!(
            endpoints,
            [
                "autoscaling",
                "cloudwatch",
                "ec2",
                "events",
                "iam",
                "lambda",
                "logs",
                "sts"
            ],
            "{}",
            tf.name
        );

        // Every attribute documented.
        let mut everything = Vec::new();
        all_attributes(RESOURCE_TYPE, resource, &mut everything);
        all_attributes("provider", provider, &mut everything);
        assert!(
            everything.len() > 50,
            "{}: the walk found only {} attributes",
            tf.name,
            everything.len()
        );
        let undocumented: Vec<&str> = everything
            .iter()
            .filter(|(_, a)| {
                a["description"]
                    .as_str()
                    .is_none_or(|d| d.trim().is_empty())
            })
            .map(|(p, _)| p.as_str())
            .collect();
        assert!(
            undocumented.is_empty(),
            "{}: attributes without a description in `providers schema -json`: {undocumented:?}",
            tf.name
        );
    }
}

//! Every IAM policy document the provider writes, linted two ways:
//!
//! - by parliament, a real IAM policy linter (pinned in tools/install-tools, installed into
//!   `.tools/venv`), with its community auditors and every severity down to INFO. The only
//!   findings allowed are the ones listed in [`explained`], each a known limitation of
//!   parliament with the reason it does not apply to our documents; the test also requires
//!   each of them to still be reported, so the list cannot outlive the limitation;
//! - by our own rules: no mutating action on `Resource: "*"`, and every mutating action on
//!   instances only in a statement that lists instance ARNs alone and carries the condition
//!   on the group's `aws:autoscaling:groupName` tag.
//!
//! The documents are rendered by the provider's own functions, the way create and update
//! render them: the trust policy, and the Lambda role's inline policy for a new volume and
//! address (EBS default key), a volume encrypted with `volume_kms_key_id`, an existing volume
//! and address, and a GovCloud stack (another ARN partition).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use autoheal_provider::autoheal_instance::create::policy_scope;
use autoheal_provider::autoheal_instance::names::AUTOSCALING_GROUP;
use autoheal_provider::autoheal_instance::policy::{
    attach_policy, grammar_problems, is_instance_arn, is_read_only_action, lambda_trust_policy,
    mutating_actions_with_star, tag_conditions_outside_instance_statements, GROUP_TAG,
};
use autoheal_provider::autoheal_instance::schema::schema;
use autoheal_provider::autoheal_instance::spec::Spec;
use autoheal_provider::aws::volume::VolumeInfo;
use autoheal_provider::plugin::value::Value;
use serde_json::{json, Value as Json};

const STACK: &str = "web";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

/// One inline policy as the provider renders it for one kind of stack.
struct Variant {
    /// File name stem, also the label in failure messages.
    name: &'static str,
    /// Whether the policy must carry the KMS statements.
    kms: bool,
    policy: Json,
}

/// A configuration as Terraform sends it: every attribute present, unset ones null.
fn config(pairs: &[(&str, &str)]) -> Value {
    let mut v = Value::null_object(&schema().value_type());
    v.set_attr("name", STACK.into());
    v.set_attr("availability_zone", "ap-southeast-2a".into());
    v.set_attr("ami", "ami-0123456789abcdef0".into());
    for (k, x) in pairs {
        v.set_attr(k, (*x).into());
    }
    v
}

/// The data volume as DescribeVolumes reports it: EBS always names the key ARN, the
/// AWS-managed `aws/ebs` key's when the user named none.
fn volume(id: &str, kms_key_arn: Option<&str>) -> VolumeInfo {
    VolumeInfo {
        volume_id: id.into(),
        state: "available".into(),
        availability_zone: "ap-southeast-2a".into(),
        size: 10,
        volume_type: "gp3".into(),
        iops: Some(3000),
        throughput: Some(125),
        encrypted: true,
        kms_key_id: kms_key_arn.map(str::to_string),
        snapshot_id: None,
        attachments: Vec::new(),
        tags: BTreeMap::new(),
    }
}

fn render(
    role_arn: &str,
    region: &str,
    config: &Value,
    volume: &VolumeInfo,
    allocation_id: &str,
    interface: Option<&str>,
) -> Json {
    let spec = Spec::from_value(config);
    let scope = policy_scope(role_arn, region, &spec, volume, allocation_id, interface)
        .expect("the role ARN has the shape IAM returns");
    assert_eq!(scope.problems(), Vec::<String>::new());
    attach_policy(&scope)
}

fn variants() -> Vec<Variant> {
    let role = "arn:aws:iam::111122223333:role/web-ap-southeast-2-attach";
    let region = "ap-southeast-2";
    let ebs_default_key =
        "arn:aws:kms:ap-southeast-2:111122223333:key/0000aaaa-00aa-00aa-00aa-000000aaaaaa";
    let cmk = format!("arn:aws:kms:ap-southeast-2:111122223333:key/{KEY_ID}");
    let gov_cmk = format!("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/{KEY_ID}");
    vec![
        Variant {
            name: "inline-persistent-network-interface",
            // The address rides on the interface: AssociateAddress names the interface, and
            // AttachNetworkInterface the interface and the group's instances.
            kms: true,
            policy: render(
                role,
                region,
                &config(&[]),
                &volume("vol-0123456789abcdef0", Some(ebs_default_key)),
                "eipalloc-0123456789abcdef0",
                Some("eni-0123456789abcdef0"),
            ),
        },
        Variant {
            name: "inline-new-volume-new-address",
            // The policy names the key EBS reports for the volume, whichever it is: the
            // provider cannot tell the account's default (AWS-managed or a customer key set as
            // the EBS default) from a customer key without KMS access of its own.
            kms: true,
            policy: render(
                role,
                region,
                &config(&[]),
                &volume("vol-0123456789abcdef0", Some(ebs_default_key)),
                "eipalloc-0123456789abcdef0",
                None,
            ),
        },
        Variant {
            name: "inline-volume-kms-key",
            kms: true,
            policy: render(
                role,
                region,
                // An alias: the policy must name the key ARN EBS reports, never the alias.
                &config(&[("volume_kms_key_id", "alias/data")]),
                &volume("vol-0123456789abcdef0", Some(&cmk)),
                "eipalloc-0123456789abcdef0",
                None,
            ),
        },
        Variant {
            name: "inline-existing-volume-and-address",
            // A user's volume may be encrypted with any key: the policy names that one.
            kms: true,
            policy: render(
                role,
                region,
                &config(&[
                    ("existing_volume_id", "vol-0fedcba9876543210"),
                    ("existing_allocation_id", "eipalloc-0fedcba9876543210"),
                ]),
                &volume("vol-0fedcba9876543210", Some(ebs_default_key)),
                "eipalloc-0fedcba9876543210",
                None,
            ),
        },
        Variant {
            name: "inline-govcloud-kms-key",
            kms: true,
            policy: render(
                "arn:aws-us-gov:iam::111122223333:role/web-us-gov-west-1-attach",
                "us-gov-west-1",
                &config(&[
                    ("availability_zone", "us-gov-west-1a"),
                    ("volume_kms_key_id", KEY_ID),
                ]),
                &volume("vol-0123456789abcdef0", Some(&gov_cmk)),
                "eipalloc-0123456789abcdef0",
                None,
            ),
        },
    ]
}

// ---------------------------------------------------------------------------------------
// Our rules.
// ---------------------------------------------------------------------------------------

fn list(v: Option<&Json>) -> Vec<&str> {
    match v {
        Some(Json::String(s)) => vec![s.as_str()],
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
        _ => Vec::new(),
    }
}

fn statements(doc: &Json) -> &[Json] {
    doc["Statement"].as_array().map_or(&[], Vec::as_slice)
}

/// Problems with the instance half of the policy: every Allow statement that grants a
/// mutating action on instances (an instance ARN, or `*`) must list instance ARNs only and
/// carry exactly `StringEquals {aws:ResourceTag/aws:autoscaling:groupName: <group>}`.
/// Answers also the mutating actions granted on the group's instances, so the caller can
/// check the rule did not pass by granting nothing.
fn instance_rule_problems(doc: &Json, group: &str) -> (Vec<String>, Vec<String>) {
    let mut problems = Vec::new();
    let mut granted = Vec::new();
    let want = json!({ "StringEquals": { format!("aws:ResourceTag/{GROUP_TAG}"): group } });
    for (i, s) in statements(doc).iter().enumerate() {
        if s["Effect"] != "Allow" {
            continue;
        }
        let resources = list(s.get("Resource"));
        let mutating: Vec<&str> = list(s.get("Action"))
            .into_iter()
            .filter(|a| !is_read_only_action(a))
            .collect();
        let on_instances = resources.iter().any(|r| *r == "*" || is_instance_arn(r));
        if mutating.is_empty() || !on_instances {
            continue;
        }
        let at = format!("statement {i} ({})", s["Sid"]);
        if !resources.iter().all(|r| is_instance_arn(r)) {
            problems.push(format!(
                "{at}: instances listed with other resources {resources:?}"
            ));
        }
        if s.get("Condition") != Some(&want) {
            problems.push(format!(
                "{at}: {mutating:?} on instances with condition {:?}, not {want}",
                s.get("Condition")
            ));
        } else {
            granted.extend(mutating.iter().map(|a| a.to_string()));
        }
    }
    granted.sort();
    (problems, granted)
}

#[test]
fn our_rules_hold_for_every_variant() {
    let group = AUTOSCALING_GROUP.for_stack(STACK);
    for v in variants() {
        let doc = &v.policy;
        assert_eq!(
            grammar_problems(doc, false),
            Vec::<String>::new(),
            "{}",
            v.name
        );
        assert_eq!(
            mutating_actions_with_star(doc),
            Vec::<String>::new(),
            "{}",
            v.name
        );
        assert_eq!(
            tag_conditions_outside_instance_statements(doc),
            Vec::<String>::new(),
            "{}",
            v.name
        );
        let (problems, granted) = instance_rule_problems(doc, &group);
        assert_eq!(problems, Vec::<String>::new(), "{}", v.name);
        // The handler's two instance calls are granted, and only on the group's instances:
        // with a persistent interface, the address goes to the interface, never to an
        // instance, and the interface is attached to the instance.
        let expected: &[&str] = if v.name.contains("network-interface") {
            &["ec2:AttachNetworkInterface", "ec2:AttachVolume"]
        } else {
            &["ec2:AssociateAddress", "ec2:AttachVolume"]
        };
        assert_eq!(granted, expected, "{}", v.name);
        let has_kms = statements(doc)
            .iter()
            .any(|s| list(s.get("Action")).iter().any(|a| a.starts_with("kms:")));
        assert_eq!(has_kms, v.kms, "{}: KMS statements", v.name);
    }
    let trust = lambda_trust_policy();
    assert_eq!(grammar_problems(&trust, true), Vec::<String>::new());
    assert_eq!(mutating_actions_with_star(&trust), Vec::<String>::new());
}

/// The instance rule catches what it is for: no condition, another group's condition, an
/// instance ARN beside the volume, and `*`.
#[test]
fn the_instance_rule_can_fail() {
    let bad = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "NoCondition", "Effect": "Allow", "Action": "ec2:AttachVolume",
         "Resource": "arn:aws:ec2:r:111122223333:instance/*"},
        {"Sid": "OtherGroup", "Effect": "Allow", "Action": "ec2:AssociateAddress",
         "Resource": "arn:aws:ec2:r:111122223333:instance/*",
         "Condition": {"StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": "other-asg"}}},
        {"Sid": "Mixed", "Effect": "Allow", "Action": "ec2:AttachVolume",
         "Resource": ["arn:aws:ec2:r:111122223333:volume/vol-1", "arn:aws:ec2:r:111122223333:instance/*"],
         "Condition": {"StringEquals": {"aws:ResourceTag/aws:autoscaling:groupName": "web-asg"}}},
        {"Sid": "Star", "Effect": "Allow", "Action": "ec2:DetachVolume", "Resource": "*"},
        {"Sid": "ReadOnly", "Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"}
    ]});
    let (problems, granted) = instance_rule_problems(&bad, "web-asg");
    let text = problems.join("\n");
    for sid in ["NoCondition", "OtherGroup", "Mixed", "Star"] {
        assert!(text.contains(sid), "{sid} not reported:\n{text}");
    }
    assert!(!text.contains("ReadOnly"), "{text}");
    assert_eq!(
        granted,
        ["ec2:AttachVolume"],
        "only Mixed has the right condition"
    );
}

// ---------------------------------------------------------------------------------------
// parliament.
// ---------------------------------------------------------------------------------------

/// Why a parliament finding is allowed, for each finding that is. Keys are
/// [`finding_key`]s; anything else parliament reports fails the test.
fn explained(key: &str) -> Option<&'static str> {
    match key {
        // parliament checks identity policies; a role's trust policy is a resource policy
        // that IAM refuses *with* a Resource element. Its source says so next to the
        // Principal check ("IAM role trust policies ... don't have Resource elements"), and
        // its issue #14 (check IAM and resource policies differently) is open. Everything it
        // checks before the Resource element (Principal, Effect, Sid, Action) did pass.
        "MALFORMED: Statement contains neither Resource nor NotResource" => Some(
            "trust policies have no Resource; parliament only knows identity policies",
        ),
        // ec2:AttachVolume needs both an instance and a volume. IAM authorizes a
        // multi-resource call resource by resource, each against any statement, so the
        // volume may be allowed in one statement and the instance in another; that is how
        // AWS's own EC2 examples write it, and it is the only way to put the group-tag
        // condition on the instance alone (policy.rs explains why it must be). parliament
        // wants every required resource type in one statement (its open issue #3, "misses
        // cases where resources are allowed for actions in separate statements").
        "RESOURCE_MISMATCH: AttachThisVolume: ec2:AttachVolume needs arn:*:ec2:*:*:instance/*"
        | "RESOURCE_MISMATCH: AttachAndAssociateToGroupInstances: ec2:AttachVolume needs arn:*:ec2:*:*:volume/*" => {
            Some("AttachVolume's volume and instance are allowed in separate statements")
        }
        // The same for AttachNetworkInterface (the persistent interface and the instance),
        // in the variant with `persistent_network_interface`.
        "RESOURCE_MISMATCH: AttachAndAddressThisInterface: ec2:AttachNetworkInterface needs arn:*:ec2:*:*:instance/*"
        | "RESOURCE_MISMATCH: AttachAndAssociateToGroupInstances: ec2:AttachVolume needs arn:*:ec2:*:*:volume/*, ec2:AttachNetworkInterface needs arn:*:ec2:*:*:network-interface/*" => {
            Some("AttachVolume's and AttachNetworkInterface's two resources are allowed in separate statements")
        }
        // A community auditor that lists every "permissions management" action whatever its
        // conditions. Attaching an encrypted volume makes EC2 create a grant on the
        // caller's behalf, and `kms:GrantIsForAWSResource = true` limits CreateGrant to
        // grants an AWS service asks for, on this one key.
        "PERMISSIONS_MANAGEMENT_ACTIONS: kms:creategrant" => {
            Some("kms:CreateGrant, needed to attach an encrypted volume, limited to AWS services")
        }
        _ => None,
    }
}

/// What one finding says, in a form stable across runs: the issue, the statement's Sid when
/// the finding points at a statement, and the detail.
fn finding_key(finding: &Json, document: &str) -> String {
    let issue = finding["issue"].as_str().unwrap_or("?");
    let location = &finding["location"];
    match issue {
        "RESOURCE_MISMATCH" => {
            let sid = location["line"]
                .as_u64()
                .and_then(|line| sid_at_line(document, line as usize))
                .unwrap_or_else(|| "?".into());
            let details: Vec<String> = finding["detail"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|x| {
                            format!(
                                "{} needs {}",
                                x["action"].as_str().unwrap_or("?"),
                                x["required_format"].as_str().unwrap_or("?")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            format!("{issue}: {sid}: {}", details.join(", "))
        }
        "PERMISSIONS_MANAGEMENT_ACTIONS" => {
            format!("{issue}: {}", list(location.get("actions")).join(", "))
        }
        _ => match finding["detail"].as_str() {
            Some(detail) if !detail.is_empty() => format!("{issue}: {detail}"),
            _ => format!("{issue}: {finding}"),
        },
    }
}

/// The Sid of the statement that starts at 1-based `line` of a pretty-printed document:
/// the first `"Sid"` from there on (every statement of ours has one).
fn sid_at_line(document: &str, line: usize) -> Option<String> {
    document
        .lines()
        .skip(line.saturating_sub(1))
        .find_map(|l| l.trim().strip_prefix("\"Sid\": \""))
        .map(|rest| rest.trim_end_matches([',', '"']).to_string())
}

/// The parliament executable: from `$AUTOHEAL_VENV` (tools/test sources .tools/env.sh, which
/// sets it), else from the repository's `.tools/venv`. Missing is a failure either way: a
/// lint that silently does not run would pass any policy.
fn parliament() -> PathBuf {
    let (venv, from_env) = match std::env::var_os("AUTOHEAL_VENV") {
        Some(v) => (PathBuf::from(v), true),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv"),
            false,
        ),
    };
    let bin = venv.join("bin/parliament");
    if !bin.is_file() {
        if from_env {
            panic!(
                "parliament is missing from AUTOHEAL_VENV={}: tools/install-tools installs it \
                 (VENV_PACKAGES); run tools/install-tools",
                venv.display()
            );
        }
        panic!(
            "parliament not found at {}: run tools/install-tools (it installs the pinned IAM \
             policy linter into .tools/venv), or source .tools/env.sh",
            bin.display()
        );
    }
    bin
}

/// Runs parliament once over every `.json` file of `dir`; its findings by file name.
fn run_parliament(dir: &Path) -> BTreeMap<String, Vec<Json>> {
    let out = Command::new(parliament())
        .arg("--directory")
        .arg(dir)
        .args(["--include_policy_extension", ".json"])
        .args(["--json", "--minimum_severity", "INFO"])
        .arg("--include-community-auditors")
        // parliament reads a policy from stdin when stdin is not a terminal, and refuses
        // that together with other inputs; an empty stdin keeps it on the directory.
        .stdin(Stdio::null())
        .output()
        .expect("run parliament");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // 0: no findings; 1: findings (printed one JSON object per line); anything else broke.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "parliament failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut by_file: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        let finding: Json = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("parliament printed a non-JSON line ({e}): {line}"));
        let file = finding["location"]["filepath"]
            .as_str()
            .and_then(|p| Path::new(p).file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| panic!("finding without a file: {finding}"));
        by_file.entry(file).or_default().push(finding);
    }
    by_file
}

#[test]
fn parliament_finds_nothing_but_its_known_limitations() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut documents = BTreeMap::new();
    documents.insert("trust.json".to_string(), lambda_trust_policy());
    let mut kms = BTreeMap::new();
    for v in variants() {
        kms.insert(format!("{}.json", v.name), v.kms);
        documents.insert(format!("{}.json", v.name), v.policy);
    }
    let mut texts = BTreeMap::new();
    for (file, doc) in &documents {
        let text = serde_json::to_string_pretty(doc).expect("JSON");
        std::fs::write(dir.path().join(file), &text).expect("write policy");
        texts.insert(file.clone(), text);
    }
    // A control in the same run: a policy parliament must fault (a misspelt action, a
    // mutating action on "*"). Without its findings the run proves nothing about the others.
    let canary = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ec2:AttachVolumes", "Resource": "*"}
    ]});
    std::fs::write(dir.path().join("canary.json"), canary.to_string()).expect("write canary");

    let mut findings = run_parliament(dir.path());
    let canary_findings = findings.remove("canary.json").unwrap_or_default();
    assert!(
        canary_findings
            .iter()
            .any(|f| f["issue"] == "UNKNOWN_ACTION"),
        "parliament did not fault the control policy: {canary_findings:?}"
    );

    let mut unexplained = Vec::new();
    for (file, text) in &texts {
        let mut got: Vec<String> = findings
            .remove(file)
            .unwrap_or_default()
            .iter()
            .map(|f| finding_key(f, text))
            .collect();
        got.sort();
        for key in &got {
            match explained(key) {
                Some(reason) => eprintln!("{file}: known parliament limitation: {key} ({reason})"),
                None => unexplained.push(format!("{file}: {key}")),
            }
        }
        // Each explained finding must still be there: if parliament stops reporting one, its
        // entry in `explained` goes (and if the policy changes shape, this says so).
        let mut expected: Vec<String> = if file == "trust.json" {
            vec!["MALFORMED: Statement contains neither Resource nor NotResource".into()]
        } else {
            let mut e = vec![
                "RESOURCE_MISMATCH: AttachThisVolume: ec2:AttachVolume needs arn:*:ec2:*:*:instance/*".to_string(),
            ];
            if file.contains("network-interface") {
                e.push("RESOURCE_MISMATCH: AttachAndAddressThisInterface: ec2:AttachNetworkInterface needs arn:*:ec2:*:*:instance/*".into());
                e.push("RESOURCE_MISMATCH: AttachAndAssociateToGroupInstances: ec2:AttachVolume needs arn:*:ec2:*:*:volume/*, ec2:AttachNetworkInterface needs arn:*:ec2:*:*:network-interface/*".into());
            } else {
                e.push("RESOURCE_MISMATCH: AttachAndAssociateToGroupInstances: ec2:AttachVolume needs arn:*:ec2:*:*:volume/*".into());
            }
            if kms[file] {
                e.push("PERMISSIONS_MANAGEMENT_ACTIONS: kms:creategrant".into());
            }
            e
        };
        expected.sort();
        if unexplained.is_empty() {
            assert_eq!(got, expected, "{file}:\n{text}");
        }
    }
    assert!(
        unexplained.is_empty(),
        "parliament findings that are not known limitations (fix the policy in \
         provider/src/autoheal_instance/policy.rs):\n{}",
        unexplained.join("\n")
    );
    assert!(
        findings.is_empty(),
        "findings on unknown files: {findings:?}"
    );
}

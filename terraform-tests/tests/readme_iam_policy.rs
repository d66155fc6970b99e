//! The IAM policy README.md gives for the caller of `terraform apply` stays true to the code:
//! every AWS operation the provider calls (`clients.<service>.<operation>()` in
//! provider/src) has its action in the policy, the policy allows nothing else but the
//! actions AWS checks on the caller's behalf (listed below, each with its reason), and the
//! scoped statements match the names the provider derives (names.rs). No AWS and no Terraform:
//! this reads files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use autoheal_provider::autoheal_instance::names;
use terraform_tests::workspace_root;

/// Actions the provider never calls itself but AWS checks on its caller, with why.
const CHECKED_ON_BEHALF: &[(&str, &str)] = &[
    (
        "ec2:RunInstances",
        "Auto Scaling checks that the caller may launch from the launch template",
    ),
    (
        "iam:CreateServiceLinkedRole",
        "the account's first Auto Scaling group creates AWSServiceRoleForAutoScaling",
    ),
    (
        "iam:PassRole",
        "CreateFunction hands the Lambda its execution role",
    ),
];

/// The `Sid`s whose actions are scoped to a stack's objects, and one ARN of such an object
/// for the stack "web" in ap-southeast-2, built from names.rs; the statement's resources must
/// match it.
fn scoped_examples() -> BTreeMap<&'static str, String> {
    let (name, region, account) = ("web", "ap-southeast-2", "123456789012");
    let role = format!(
        "arn:aws:iam::{account}:role/{}",
        names::lambda_role_name(name, region)
    );
    let function = format!(
        "arn:aws:lambda:{region}:{account}:function:{}",
        names::LAMBDA_FUNCTION.for_stack(name)
    );
    let log_group = format!(
        "arn:aws:logs:{region}:{account}:log-group:{}",
        names::LOG_GROUP.for_stack(name)
    );
    let rule = format!(
        "arn:aws:events:{region}:{account}:rule/{}",
        names::EVENT_RULE.for_stack(name)
    );
    let group = format!(
        "arn:aws:autoscaling:{region}:{account}:autoScalingGroup:\
         0f3e8c1a-1111-4222-8333-944455556666:autoScalingGroupName/{}",
        names::AUTOSCALING_GROUP.for_stack(name)
    );
    BTreeMap::from([
        ("LambdaRoleOfEachStack", role.clone()),
        ("PassThatRoleToLambdaOnly", role),
        ("AttachmentFunction", function),
        ("FunctionLogGroup", log_group),
        ("LaunchRule", rule),
        ("AutoScalingGroupOfEachStack", group),
    ])
}

/// The first ```json block in README.md after the "On a real AWS account" heading.
fn readme_policy() -> serde_json::Value {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split_once("### On a real AWS account")
        .expect("README.md has a section \"### On a real AWS account\"")
        .1;
    let block = section
        .split_once("```json\n")
        .expect("that section has a ```json block")
        .1
        .split_once("```")
        .expect("the ```json block is closed")
        .0;
    serde_json::from_str(block).unwrap_or_else(|e| panic!("README's policy is not JSON: {e}"))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().expect("a string").to_string())
            .collect(),
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

/// `describe_volumes` -> `DescribeVolumes`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `ident` at the start of `s` (after whitespace), and the rest.
fn ident(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

fn dot(s: &str) -> Option<&str> {
    s.trim_start().strip_prefix('.')
}

/// Every `clients.<service>.<operation>()` in the Rust source, as `service:Operation`.
fn called_actions(source: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("clients") {
        let after = &rest[at + "clients".len()..];
        rest = after;
        let call = (|| {
            let (service, after) = ident(dot(after)?)?;
            let (operation, after) = ident(dot(after)?)?;
            after.trim_start().strip_prefix("()")?;
            // Methods of the client itself, not operations.
            if matches!(operation, "clone" | "config") {
                return None;
            }
            Some(format!("{service}:{}", pascal(operation)))
        })();
        found.extend(call);
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn provider_actions() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("provider/src"), &mut files);
    let mut actions = BTreeSet::new();
    for file in files {
        actions.extend(called_actions(&std::fs::read_to_string(&file).unwrap()));
    }
    actions
}

/// `*` matches any run of characters (IAM's ARN wildcard; `?` is not used in the policy).
fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_readme_policy_allows_every_call_of_the_provider_and_nothing_else() {
    let policy = readme_policy();
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().expect("a Statement list") {
        assert_eq!(statement["Effect"], "Allow", "{statement}");
        allowed.extend(strings(&statement["Action"]));
    }
    let called = provider_actions();
    // The scan must find the provider's calls at all, or the comparison proves nothing.
    for known in [
        "ec2:CreateVolume",
        "lambda:CreateFunction",
        "iam:PutRolePolicy",
    ] {
        assert!(
            called.contains(known),
            "the scan of provider/src missed {known}: {called:?}"
        );
    }
    let missing: Vec<&String> = called.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "README.md's IAM policy lacks actions the provider calls: {missing:?}"
    );
    let on_behalf: BTreeSet<String> = CHECKED_ON_BEHALF
        .iter()
        .map(|(a, _)| a.to_string())
        .collect();
    let unexplained: Vec<&String> = allowed
        .iter()
        .filter(|a| !called.contains(*a) && !on_behalf.contains(*a))
        .collect();
    assert!(
        unexplained.is_empty(),
        "README.md's IAM policy allows actions the provider does not call: {unexplained:?}"
    );
    for action in &on_behalf {
        assert!(
            allowed.contains(action),
            "README.md's IAM policy should allow {action}"
        );
    }
}

#[test]
fn the_readme_policy_scopes_match_the_derived_names() {
    let policy = readme_policy();
    let statements = policy["Statement"].as_array().unwrap();
    for (sid, arn) in scoped_examples() {
        let statement = statements
            .iter()
            .find(|s| s["Sid"] == sid)
            .unwrap_or_else(|| panic!("README.md's policy has no statement {sid}"));
        let resources = strings(&statement["Resource"]);
        assert!(
            !resources.iter().any(|r| r == "*"),
            "{sid} should be scoped: {resources:?}"
        );
        assert!(
            resources.iter().any(|r| glob_matches(r, &arn)),
            "{sid}'s resources {resources:?} do not match {arn}"
        );
        // And not everything: another stack's kind of object stays out.
        let foreign = arn.replace(arn.rsplit(['/', ':']).next().unwrap(), "unrelated-object");
        assert!(
            !resources.iter().any(|r| glob_matches(r, &foreign)),
            "{sid}'s resources {resources:?} also match {foreign}"
        );
    }
    let pass_role = statements
        .iter()
        .find(|s| s["Sid"] == "PassThatRoleToLambdaOnly")
        .unwrap();
    assert_eq!(
        pass_role["Condition"]["StringEquals"]["iam:PassedToService"],
        "lambda.amazonaws.com"
    );
}

#[test]
fn the_call_scan_and_the_glob_work() {
    let source = "ctx.clients\n    .ec2\n    .describe_volumes()\n    .send();\n\
                  let x = clients.lambda.create_function();\n\
                  self.clients.iam; // not a call\n\
                  clients.logs.clone(); clients.events.put_rule ();";
    assert_eq!(
        called_actions(source),
        BTreeSet::from([
            "ec2:DescribeVolumes".to_string(),
            "lambda:CreateFunction".to_string(),
            "events:PutRule".to_string(),
        ])
    );
    assert!(glob_matches(
        "arn:aws:iam::*:role/*-attach",
        "arn:aws:iam::1:role/a-b-attach"
    ));
    assert!(!glob_matches(
        "arn:aws:iam::*:role/*-attach",
        "arn:aws:iam::1:role/a-b-attach2"
    ));
    assert!(glob_matches("*", "anything"));
    assert!(!glob_matches("a*b*c", "acb"));
}

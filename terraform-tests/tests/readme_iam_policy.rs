//! The IAM policies README.md gives for the caller of `terraform apply` stay true to the code
//! and cannot be escalated:
//!
//! - every AWS operation the provider calls (`clients.<service>.<operation>()` in
//!   provider/src) has its action in the policy, but for the few docs/deployer-policy.md
//!   denies on purpose; the policy allows nothing else but the actions AWS checks on the
//!   caller's behalf (listed below, each with its reason); the scoped statements match the
//!   names the provider derives (names.rs);
//! - the escalation chain is closed: the Lambda's role is created and written only under the
//!   permissions boundary, nothing lifts or edits that boundary, IAM reaches only roles under
//!   `/autoheal/`, `iam:PassRole` goes to one service;
//! - tag conditions sit wherever AWS supports them: creates that the provider tags require
//!   `aws:RequestTag/autoheal:stack`, changes and deletes `aws:ResourceTag/autoheal:stack`,
//!   and every condition key is one the action supports, per parliament's copy of AWS's
//!   service authorization reference; the rest is in docs/deployer-policy.md with a reason;
//! - the boundary holds the inline policy the provider writes for a stack.
//!
//! No AWS and no Terraform: this reads files (parliament's data file included: it is installed
//! by tools/install-tools into .tools/venv).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use autoheal_provider::autoheal_instance::names;
use autoheal_provider::autoheal_instance::policy::{attach_policy, PolicyScope};
use autoheal_provider::aws::iam_role::ROLE_PATH;
use serde_json::{json, Value};
use terraform_tests::workspace_root;

/// The tag every object of a stack carries.
const STACK_TAG: &str = names::STACK_TAG;

/// The most a managed policy may hold, in characters without whitespace.
const MANAGED_POLICY_MAX_CHARS: usize = 6_144;

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
        "arn:aws:iam::{account}:role{ROLE_PATH}{}",
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
        ("LambdaRoleCreatedUnderTheBoundary", role.clone()),
        ("LambdaRoleTaggedWhenCreated", role.clone()),
        ("LambdaRolePermissionsOnlyUnderTheBoundary", role.clone()),
        ("LambdaRoleOfEachStack", role.clone()),
        ("ReadLambdaRoles", role.clone()),
        ("PassThatRoleToLambdaOnly", role),
        ("AttachmentFunctionCreatedWithTheStackTag", function.clone()),
        ("AttachmentFunction", function.clone()),
        ("OnlyEventBridgeMayInvokeTheFunction", function.clone()),
        ("ReadAttachmentFunction", function),
        ("FunctionLogGroupCreatedWithTheStackTag", log_group.clone()),
        ("FunctionLogGroup", log_group.clone()),
        ("ReadFunctionLogGroup", log_group),
        ("LaunchRuleCreatedWithTheStackTag", rule.clone()),
        ("LaunchRule", rule.clone()),
        ("LaunchRuleTargets", rule.clone()),
        ("ReadLaunchRule", rule),
        ("AutoScalingGroupCreatedWithTheStackTag", group.clone()),
        ("AutoScalingGroupOfEachStack", group),
    ])
}

/// The README's section "On a real AWS account", up to the next heading of its level.
fn readme_section() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split_once("### On a real AWS account")
        .expect("README.md has a section \"### On a real AWS account\"")
        .1;
    section
        .split_once("\n### ")
        .map_or(section, |(s, _)| s)
        .to_string()
}

/// The ```json blocks of `text` marked `<!-- policy: <marker> -->` (the line before each),
/// as text.
fn marked_blocks(text: &str, marker: &str) -> Vec<String> {
    let mark = format!("<!-- policy: {marker} -->\n```json\n");
    text.split(&mark)
        .skip(1)
        .map(|after| {
            after
                .split_once("```")
                .expect("the ```json block is closed")
                .0
                .to_string()
        })
        .collect()
}

fn parse(block: &str, what: &str) -> Value {
    serde_json::from_str(block).unwrap_or_else(|e| panic!("README's {what} is not JSON: {e}"))
}

/// The deployer's policy: the statements of every block marked `deployer`, in one document.
fn readme_policy() -> Value {
    let blocks = marked_blocks(&readme_section(), "deployer");
    assert!(
        !blocks.is_empty(),
        "README's section has no ```json block marked <!-- policy: deployer -->"
    );
    let mut statements = Vec::new();
    for block in &blocks {
        let doc = parse(block, "deployer policy");
        assert_eq!(doc["Version"], "2012-10-17");
        statements.extend(
            doc["Statement"]
                .as_array()
                .expect("a Statement list")
                .clone(),
        );
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The one block marked `marker`.
fn readme_document(marker: &str) -> Value {
    let blocks = marked_blocks(&readme_section(), marker);
    assert_eq!(
        blocks.len(),
        1,
        "README's section should have one ```json block marked <!-- policy: {marker} -->"
    );
    parse(&blocks[0], marker)
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

/// Every `clients.<service>.<operation>()` in the Rust source, as `service:Operation`, with
/// the source that follows the call.
fn calls(source: &str) -> Vec<(String, &str)> {
    let mut found = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find("clients") {
        let after = &rest[at + "clients".len()..];
        rest = after;
        let call = (|| {
            let (service, after) = ident(dot(after)?)?;
            let (operation, after) = ident(dot(after)?)?;
            let after = after.trim_start().strip_prefix("()")?;
            // Methods of the client itself, not operations.
            if matches!(operation, "clone" | "config") {
                return None;
            }
            Some((format!("{service}:{}", pascal(operation)), after))
        })();
        found.extend(call);
    }
    found
}

/// Every `clients.<service>.<operation>()` in the Rust source, as `service:Operation`.
fn called_actions(source: &str) -> BTreeSet<String> {
    calls(source).into_iter().map(|(a, _)| a).collect()
}

/// The calls whose request carries tags: `tag_specifications(..)`, `set_tags(..)` or
/// `.tags(..)` in the builder chain, up to its `.send()`.
fn called_with_tags(source: &str) -> BTreeSet<String> {
    calls(source)
        .into_iter()
        .filter(|(_, after)| {
            let chain = after.split_once(".send()").map_or(*after, |(c, _)| c);
            let chain = &chain[..chain.len().min(2_000)];
            ["tag_specifications(", "set_tags(", ".tags("]
                .iter()
                .any(|t| chain.contains(t))
        })
        .map(|(a, _)| a)
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn provider_sources() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("provider/src"), &mut files);
    files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect()
}

fn provider_actions() -> BTreeSet<String> {
    provider_sources()
        .iter()
        .flat_map(|s| called_actions(s))
        .collect()
}

fn provider_actions_with_tags() -> BTreeSet<String> {
    provider_sources()
        .iter()
        .flat_map(|s| called_with_tags(s))
        .collect()
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
    let denied = not_allowed_on_purpose();
    for action in denied.keys() {
        assert!(
            !allowed.contains(action),
            "README.md's IAM policy allows {action}, which docs/deployer-policy.md says it denies"
        );
    }
    let missing: Vec<&String> = called
        .difference(&allowed)
        .filter(|a| !denied.contains_key(*a))
        .collect();
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
    let tagged = "clients.ec2.create_volume().size(1).tag_specifications(spec).send();\n\
                  clients.ec2.detach_volume().volume_id(v).send(); x.tags(t);\n\
                  clients.iam.create_role()\n    .set_tags(Some(t))\n    .send()";
    assert_eq!(
        called_with_tags(tagged),
        BTreeSet::from(["ec2:CreateVolume".to_string(), "iam:CreateRole".to_string()])
    );
    assert!(!glob_matches("a*b*c", "acb"));
}

// ---------------------------------------------------------------------------------------
// docs/deployer-policy.md: what AWS cannot scope, and what is denied on purpose.
// ---------------------------------------------------------------------------------------

fn deployer_doc() -> String {
    std::fs::read_to_string(workspace_root().join("docs/deployer-policy.md"))
        .expect("docs/deployer-policy.md")
}

/// The cells of each row of the first table after `heading` (header and separator skipped).
fn table_rows(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let after = doc
        .split_once(heading)
        .unwrap_or_else(|| panic!("docs/deployer-policy.md has no {heading:?}"))
        .1;
    after
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The `code` spans of a table cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// "What AWS cannot scope, and why": (action, Sid) -> why.
fn cannot_scope() -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for row in table_rows(&deployer_doc(), "## What AWS cannot scope, and why") {
        assert_eq!(row.len(), 3, "a row of three cells: {row:?}");
        let (actions, sids) = (code_spans(&row[0]), code_spans(&row[1]));
        assert!(
            !actions.is_empty() && !sids.is_empty() && !row[2].is_empty(),
            "a row names actions, statements and why: {row:?}"
        );
        for a in &actions {
            for sid in &sids {
                out.insert((a.clone(), sid.clone()), row[2].clone());
            }
        }
    }
    out
}

/// "Not allowed on purpose": action -> why.
fn not_allowed_on_purpose() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for row in table_rows(&deployer_doc(), "## Not allowed on purpose") {
        assert_eq!(row.len(), 2, "a row of two cells: {row:?}");
        assert!(!row[1].is_empty(), "no reason in {row:?}");
        for a in code_spans(&row[0]) {
            out.insert(a, row[1].clone());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// AWS's service authorization reference, as parliament carries it.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct ActionInfo {
    access_level: String,
    /// The condition keys the action's rows list (lowercase).
    row_keys: BTreeSet<String>,
    /// The condition keys of the resource types the action names (lowercase).
    resource_keys: BTreeSet<String>,
}

const REQUEST_TAG: &str = "aws:requesttag/${tagkey}";
const RESOURCE_TAG: &str = "aws:resourcetag/${tagkey}";

impl ActionInfo {
    fn mutating(&self) -> bool {
        matches!(
            self.access_level.as_str(),
            "Write" | "Tagging" | "Permissions management"
        )
    }

    fn supports_request_tag(&self) -> bool {
        self.row_keys.contains(REQUEST_TAG)
    }

    fn supports_resource_tag(&self) -> bool {
        self.row_keys.contains(RESOURCE_TAG) || self.resource_keys.contains(RESOURCE_TAG)
    }

    /// Whether IAM sets condition key `key` for this action: a key it does not set makes
    /// every condition on it but `Null: true` fail, so the statement would deny.
    fn supports(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        let generic = match key.split_once('/') {
            Some((prefix, _)) => format!("{prefix}/${{tagkey}}"),
            None => key.clone(),
        };
        match generic.as_str() {
            RESOURCE_TAG => self.supports_resource_tag(),
            REQUEST_TAG | "aws:tagkeys" => self.row_keys.contains(&generic),
            // The other global keys (aws:PrincipalAccount, aws:SourceIp, ...) are in every request.
            g if g.starts_with("aws:") => true,
            g => self.row_keys.contains(g),
        }
    }
}

/// parliament's iam_definition.json: from `$AUTOHEAL_VENV` (tools/test sets it), else the
/// repository's `.tools/venv`. Missing is a failure: a check that silently does not run
/// would pass any policy.
fn authorization_reference() -> BTreeMap<String, ActionInfo> {
    let venv = std::env::var_os("AUTOHEAL_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/venv"));
    let lib = venv.join("lib");
    let file = std::fs::read_dir(&lib)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run tools/install-tools (it installs parliament, whose data file \
                 this test reads, into .tools/venv)",
                lib.display()
            )
        })
        .map(|e| {
            e.unwrap()
                .path()
                .join("site-packages/parliament/iam_definition.json")
        })
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "parliament's iam_definition.json not found under {}: run tools/install-tools",
                lib.display()
            )
        });
    let services: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let lower = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect()
    };
    let mut actions: BTreeMap<String, ActionInfo> = BTreeMap::new();
    for service in services.as_array().expect("a list of services") {
        let prefix = service["prefix"].as_str().unwrap();
        let resources: BTreeMap<&str, BTreeSet<String>> = service["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| (r["resource"].as_str().unwrap(), lower(&r["condition_keys"])))
            .collect();
        for privilege in service["privileges"].as_array().into_iter().flatten() {
            let name = format!("{prefix}:{}", privilege["privilege"].as_str().unwrap());
            let info = actions.entry(name.to_ascii_lowercase()).or_default();
            info.access_level = privilege["access_level"].as_str().unwrap().to_string();
            for row in privilege["resource_types"].as_array().into_iter().flatten() {
                info.row_keys.extend(lower(&row["condition_keys"]));
                let kind = row["resource_type"].as_str().unwrap().trim_end_matches('*');
                if let Some(keys) = resources.get(kind) {
                    info.resource_keys.extend(keys.iter().cloned());
                }
            }
        }
    }
    assert!(
        actions.contains_key("ec2:createvolume") && actions.contains_key("iam:createrole"),
        "{} does not look like AWS's authorization reference",
        file.display()
    );
    actions
}

fn info<'a>(sar: &'a BTreeMap<String, ActionInfo>, action: &str) -> Option<&'a ActionInfo> {
    sar.get(&action.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------------------
// The checks.
// ---------------------------------------------------------------------------------------

fn statements(policy: &Value) -> &[Value] {
    policy["Statement"].as_array().map_or(&[], Vec::as_slice)
}

/// `strings`, but an absent element is an empty list.
fn list(v: &Value) -> Vec<String> {
    if v.is_null() {
        Vec::new()
    } else {
        strings(v)
    }
}

fn label(i: usize, s: &Value) -> String {
    format!("statement {i} ({})", s["Sid"].as_str().unwrap_or("no Sid"))
}

/// Every condition key of a statement, whatever its operator.
fn condition_keys(s: &Value) -> Vec<String> {
    s["Condition"]
        .as_object()
        .into_iter()
        .flat_map(|ops| ops.values())
        .filter_map(Value::as_object)
        .flat_map(|keys| keys.keys().cloned())
        .collect()
}

/// Whether the statement allows only requests in which `key` is present: `Null` false, or a
/// string comparison on it.
fn requires_present(s: &Value, key: &str) -> bool {
    let c = &s["Condition"];
    c["Null"][key] == "false"
        || ["StringEquals", "StringLike"]
            .iter()
            .any(|op| c[op][key].is_string())
}

/// The boundary a statement requires of the role, if it requires exactly one.
fn required_boundary(s: &Value) -> Option<String> {
    ["StringEquals", "ArnEquals"]
        .iter()
        .filter_map(|op| s["Condition"][op]["iam:PermissionsBoundary"].as_str())
        .find(|arn| arn.contains(":policy/") && !arn.contains(['*', '?']))
        .map(str::to_string)
}

/// Actions that would create, write or lift a role's permissions: allowed only when the
/// role's boundary is the one boundary.
const BOUNDARY_GATED: &[&str] = &[
    "iam:CreateRole",
    "iam:PutRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:AttachRolePolicy",
];

/// Actions that lift the boundary or edit a managed policy (the boundary among them).
const NEVER: &[&str] = &[
    "iam:DeleteRolePermissionsBoundary",
    "iam:CreatePolicy",
    "iam:CreatePolicyVersion",
    "iam:SetDefaultPolicyVersion",
    "iam:DeletePolicyVersion",
];

/// How the deployer's policy could be escalated through IAM: the problems, empty when the
/// chain is closed.
fn escalation_problems(policy: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut boundaries = BTreeSet::new();
    for (i, s) in statements(policy).iter().enumerate() {
        let at = label(i, s);
        if s["Effect"] != "Allow" {
            problems.push(format!("{at}: only Allow statements are expected"));
        }
        for element in ["NotAction", "NotResource", "NotPrincipal"] {
            if s.get(element).is_some() {
                problems.push(format!(
                    "{at}: {element} allows everything it does not name"
                ));
            }
        }
        let actions = list(&s["Action"]);
        let resources = list(&s["Resource"]);
        for a in &actions {
            if a.contains(['*', '?']) {
                problems.push(format!("{at}: wildcard action {a}"));
            }
            if NEVER.iter().any(|n| n.eq_ignore_ascii_case(a)) {
                problems.push(format!("{at}: allows {a}"));
            }
            if BOUNDARY_GATED.iter().any(|g| g.eq_ignore_ascii_case(a)) {
                match required_boundary(s) {
                    Some(arn) => {
                        boundaries.insert(arn);
                    }
                    None => problems.push(format!(
                        "{at}: allows {a} without requiring iam:PermissionsBoundary"
                    )),
                }
            }
        }
        // IAM reaches roles under the path only (AWS's own service-linked role aside). Reads
        // are the exception: before a role exists (the create's first look), the request
        // names no path, so the read of `role/NAME` must match too; a read grants nothing.
        let iam_actions: Vec<&String> = actions.iter().filter(|a| a.starts_with("iam:")).collect();
        let reads_only = !iam_actions.is_empty()
            && iam_actions
                .iter()
                .all(|a| a.starts_with("iam:Get") || a.starts_with("iam:List"));
        let service_linked_only = !iam_actions.is_empty()
            && iam_actions
                .iter()
                .all(|a| *a == "iam:CreateServiceLinkedRole");
        for r in &resources {
            let is_iam = r.contains(":iam::") || (r == "*" && !iam_actions.is_empty());
            if !is_iam {
                continue;
            }
            if service_linked_only && r.contains(":role/aws-service-role/") {
                continue;
            }
            if reads_only {
                continue;
            }
            let under_path = r
                .split_once(":role")
                .is_some_and(|(_, rest)| rest.starts_with(ROLE_PATH));
            if !under_path {
                problems.push(format!(
                    "{at}: {iam_actions:?} on {r}, outside roles under {ROLE_PATH}"
                ));
            }
        }
        if actions.iter().any(|a| a == "iam:PassRole") {
            let service = s["Condition"]["StringEquals"]["iam:PassedToService"].as_str();
            if service.is_none_or(|svc| svc.contains(['*', '?'])) {
                problems.push(format!(
                    "{at}: iam:PassRole without iam:PassedToService naming one service"
                ));
            }
        }
    }
    if boundaries.len() > 1 {
        problems.push(format!(
            "more than one boundary is accepted: {boundaries:?}"
        ));
    }
    problems
}

/// Where the policy lacks a tag condition AWS supports, uses a condition key an action does
/// not support, or leaves an action on `*` or unconditioned without a row in
/// docs/deployer-policy.md (and rows there that no longer apply).
fn tag_problems(
    policy: &Value,
    sar: &BTreeMap<String, ActionInfo>,
    created_with_tags: &BTreeSet<String>,
    reasons: &BTreeMap<(String, String), String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut explained = BTreeSet::new();
    let mut with_request_tag = BTreeSet::new();
    let mut allowed = BTreeSet::new();
    let resource_tag = format!("aws:ResourceTag/{STACK_TAG}");
    let request_tag = format!("aws:RequestTag/{STACK_TAG}");
    for (i, s) in statements(policy).iter().enumerate() {
        let at = label(i, s);
        let sid = s["Sid"].as_str().unwrap_or_default().to_string();
        let on_star = list(&s["Resource"]).iter().any(|r| r == "*");
        let has_resource_tag = requires_present(s, &resource_tag);
        let has_request_tag = requires_present(s, &request_tag);
        let create_action = s["Condition"]["StringEquals"]["ec2:CreateAction"] != Value::Null;
        for a in list(&s["Action"]) {
            allowed.insert(a.clone());
            let Some(info) = info(sar, &a) else {
                problems.push(format!("{at}: {a} is not in AWS's authorization reference"));
                continue;
            };
            for key in condition_keys(s) {
                if !info.supports(&key) {
                    problems.push(format!(
                        "{at}: {a} does not support the condition key {key}: IAM would deny it"
                    ));
                }
            }
            let by_request = has_request_tag && info.supports_request_tag();
            if by_request {
                with_request_tag.insert(a.clone());
            }
            let scoped = (has_resource_tag && info.supports_resource_tag())
                || by_request
                || (create_action && a == "ec2:CreateTags");
            let row = (a.clone(), sid.clone());
            if !scoped && (on_star || info.mutating()) {
                if reasons.contains_key(&row) {
                    explained.insert(row);
                } else {
                    let what = if on_star {
                        "on *"
                    } else {
                        "without a tag condition"
                    };
                    problems.push(format!(
                        "{at}: {a} {what}, and docs/deployer-policy.md does not say why"
                    ));
                }
            }
        }
    }
    for a in created_with_tags {
        let Some(info) = info(sar, a) else { continue };
        let create = info.access_level == "Write" && info.supports_request_tag();
        if create && allowed.contains(a) && !with_request_tag.contains(a) {
            problems.push(format!(
                "{a}: the provider tags it in the create, but no statement requires \
                 {request_tag}"
            ));
        }
    }
    for row in reasons.keys() {
        if !explained.contains(row) {
            problems.push(format!(
                "docs/deployer-policy.md explains {} in {}, which is not on * nor without a \
                 tag condition there (the row is stale)",
                row.0, row.1
            ));
        }
    }
    problems
}

/// A copy of the policy with the statement `sid` changed by `change`.
fn with_statement(policy: &Value, sid: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut copy = policy.clone();
    let statement = copy["Statement"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid}"));
    change(statement);
    copy
}

#[test]
fn the_readme_policy_cannot_be_escalated() {
    let policy = readme_policy();
    assert_eq!(escalation_problems(&policy), Vec::<String>::new());
    // The gated actions are there at all (or the check passed by allowing nothing).
    let allowed: BTreeSet<String> = statements(&policy)
        .iter()
        .flat_map(|s| list(&s["Action"]))
        .collect();
    for a in ["iam:CreateRole", "iam:PutRolePolicy", "iam:PassRole"] {
        assert!(allowed.contains(a), "{a}");
    }
}

#[test]
fn the_readme_policy_has_tag_conditions_wherever_aws_supports_them() {
    let created = provider_actions_with_tags();
    // The scan sees the tags of the creates, or the check proves nothing.
    for known in [
        "ec2:CreateVolume",
        "iam:CreateRole",
        "lambda:CreateFunction",
    ] {
        assert!(
            created.contains(known),
            "the tag scan missed {known}: {created:?}"
        );
    }
    assert!(!created.contains("ec2:DetachVolume"), "{created:?}");
    let problems = tag_problems(
        &readme_policy(),
        &authorization_reference(),
        &created,
        &cannot_scope(),
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checks_catch_an_escalatable_policy() {
    let policy = readme_policy();
    let sar = authorization_reference();
    let created = provider_actions_with_tags();
    let reasons = cannot_scope();
    let remove = |key: &'static str| {
        move |s: &mut Value| {
            s["Condition"].as_object_mut().unwrap().remove(key);
        }
    };
    let add_action = |action: &'static str| {
        move |s: &mut Value| {
            let mut actions = list(&s["Action"]);
            actions.push(action.to_string());
            s["Action"] = json!(actions);
        }
    };
    let cases = [
        (
            with_statement(
                &policy,
                "LambdaRoleCreatedUnderTheBoundary",
                remove("StringEquals"),
            ),
            "allows iam:CreateRole without requiring iam:PermissionsBoundary",
        ),
        (
            with_statement(&policy, "LambdaRolePermissionsOnlyUnderTheBoundary", |s| {
                s["Condition"]["StringEquals"]["iam:PermissionsBoundary"] =
                    json!("arn:aws:iam::*:policy/*");
            }),
            "allows iam:PutRolePolicy without requiring iam:PermissionsBoundary",
        ),
        (
            with_statement(
                &policy,
                "LambdaRoleOfEachStack",
                add_action("iam:DeleteRolePermissionsBoundary"),
            ),
            "allows iam:DeleteRolePermissionsBoundary",
        ),
        (
            with_statement(&policy, "LambdaRoleOfEachStack", |s| {
                s["Resource"] = json!("arn:aws:iam::*:role/*-attach");
            }),
            "outside roles under /autoheal/",
        ),
        (
            with_statement(&policy, "PassThatRoleToLambdaOnly", remove("StringEquals")),
            "iam:PassRole without iam:PassedToService",
        ),
        (
            with_statement(&policy, "ReadLambdaRoles", |s| s["Action"] = json!("iam:*")),
            "wildcard action iam:*",
        ),
        (
            with_statement(&policy, "Ec2ChangeOnlyStackObjects", |s| {
                s.as_object_mut().unwrap().remove("Condition");
            }),
            "ec2:DeleteVolume without a tag condition",
        ),
        (
            with_statement(
                &policy,
                "Ec2CreateVpcOrVolumeOnlyWithTheStackTag",
                remove("Null"),
            ),
            "ec2:CreateVolume: the provider tags it in the create",
        ),
        (
            // iam:TagRole carries no iam:PermissionsBoundary: in the CreateRole statement,
            // tagging the new role would be denied.
            with_statement(
                &policy,
                "LambdaRoleCreatedUnderTheBoundary",
                add_action("iam:TagRole"),
            ),
            "iam:TagRole does not support the condition key iam:PermissionsBoundary",
        ),
        (
            with_statement(&policy, "Ec2RunInstancesCheckedByAutoScaling", |s| {
                s["Action"] = json!(["ec2:RunInstances", "ec2:TerminateInstances"]);
            }),
            "ec2:TerminateInstances on *, and docs/deployer-policy.md does not say why",
        ),
    ];
    for (bad, expected) in cases {
        let mut problems = escalation_problems(&bad);
        problems.extend(tag_problems(&bad, &sar, &created, &reasons));
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem containing {expected:?}, got {problems:#?}"
        );
    }
}

/// The boundary holds every statement of the inline policy the provider writes (with and
/// without a KMS key), so the handler works under it; it allows nothing mutating on `*`, and
/// every condition key it uses is one the action supports. The deployer's policy requires
/// this boundary by name.
#[test]
fn the_boundary_holds_the_inline_policy_of_a_stack() {
    let boundary = readme_document("boundary");
    let sar = authorization_reference();
    let mut problems = Vec::new();
    for (i, s) in statements(&boundary).iter().enumerate() {
        let at = label(i, s);
        assert_eq!(s["Effect"], "Allow", "{at}");
        let on_star = list(&s["Resource"]).iter().any(|r| r == "*");
        for a in list(&s["Action"]) {
            let info = info(&sar, &a).unwrap_or_else(|| panic!("{at}: unknown action {a}"));
            if on_star && info.mutating() {
                problems.push(format!("{at}: {a} on *"));
            }
            for key in condition_keys(s) {
                if !info.supports(&key) {
                    problems.push(format!("{at}: {a} does not support {key}"));
                }
            }
            if ["iam:", "sts:", "lambda:"].iter().any(|p| a.starts_with(p)) {
                problems.push(format!("{at}: {a} has no place in the handler's boundary"));
            }
        }
        // Tag conditions only on tags the stack's objects carry.
        for key in condition_keys(s) {
            if let Some(tag) = key.strip_prefix("aws:ResourceTag/") {
                if tag != STACK_TAG && tag != "aws:autoscaling:groupName" {
                    problems.push(format!("{at}: condition on tag {tag}"));
                }
            }
        }
    }
    let stack = "web";
    for (kms_key_arn, network_interface_id, scheduled_snapshots) in [
        (None, None, false),
        (
            Some(
                "arn:aws:kms:ap-southeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            None,
            false,
        ),
        (None, Some("eni-0123456789abcdef0"), false),
        (None, None, true),
    ] {
        let scope = PolicyScope {
            partition: "aws".into(),
            region: "ap-southeast-2".into(),
            account_id: "123456789012".into(),
            volume_id: "vol-0123456789abcdef0".into(),
            allocation_id: "eipalloc-0123456789abcdef0".into(),
            autoscaling_group_name: names::AUTOSCALING_GROUP.for_stack(stack),
            log_group_name: names::LOG_GROUP.for_stack(stack),
            network_interface_id: network_interface_id.map(str::to_string),
            scheduled_snapshots,
            // The zone failover rides with the scheduled snapshots it restores.
            restored_volumes: scheduled_snapshots,
            kms_key_arn: kms_key_arn.map(str::to_string),
        };
        let mut documents = vec![attach_policy(&scope)];
        if scheduled_snapshots {
            let failover = autoheal_provider::autoheal_instance::policy::FailoverScope {
                zones: vec!["ap-southeast-2a".into(), "ap-southeast-2b".into()],
                subnets: vec![
                    "subnet-0123456789abcdef0".into(),
                    "subnet-0123456789abcdef1".into(),
                ],
                log_group_name: names::FAILOVER_LOG_GROUP.for_stack(stack),
            };
            documents.push(
                autoheal_provider::autoheal_instance::policy::failover_policy(&scope, &failover),
            );
        }
        for s in documents.iter().flat_map(statements) {
            for a in list(&s["Action"]) {
                for r in list(&s["Resource"]) {
                    let held = statements(&boundary).iter().any(|b| {
                        list(&b["Action"]).contains(&a)
                            && list(&b["Resource"]).iter().any(|p| glob_matches(p, &r))
                    });
                    if !held {
                        problems.push(format!(
                            "the inline policy's {a} on {r} is outside the boundary"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The boundary the deployer's policy requires is the one README tells to create.
    let policy = readme_policy();
    let required: BTreeSet<String> = statements(&policy)
        .iter()
        .filter_map(required_boundary)
        .collect();
    assert_eq!(required.len(), 1, "{required:?}");
    let name = required
        .first()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        readme_section().contains(&format!("--policy-name\n{name} "))
            || readme_section().contains(&format!("--policy-name {name} ")),
        "README should tell to create the boundary as {name}"
    );
}

/// Each document fits what IAM accepts for a customer managed policy, and the deployer's
/// statements have distinct `Sid`s.
#[test]
fn each_readme_policy_fits_a_managed_policy() {
    let section = readme_section();
    let mut documents = marked_blocks(&section, "deployer");
    documents.extend(marked_blocks(&section, "boundary"));
    documents.extend(marked_blocks(&section, "instance-profile"));
    for block in &documents {
        let size = block.chars().filter(|c| !c.is_whitespace()).count();
        assert!(
            size <= MANAGED_POLICY_MAX_CHARS,
            "a README policy has {size} characters, more than a managed policy may hold \
             ({MANAGED_POLICY_MAX_CHARS}):\n{block}"
        );
    }
    let policy = readme_policy();
    let mut sids = BTreeSet::new();
    for s in statements(&policy) {
        let sid = s["Sid"].as_str().expect("every statement has a Sid");
        assert!(sid.chars().all(|c| c.is_ascii_alphanumeric()), "{sid}");
        assert!(sids.insert(sid), "duplicate Sid {sid}");
    }
}

/// The statement for `iam_instance_profile` passes a role to EC2 only.
#[test]
fn the_instance_profile_statement_passes_to_ec2_only() {
    let doc = readme_document("instance-profile");
    for s in statements(&doc) {
        assert_eq!(list(&s["Action"]), ["iam:PassRole"], "{s}");
        assert_eq!(
            s["Condition"]["StringEquals"]["iam:PassedToService"], "ec2.amazonaws.com",
            "{s}"
        );
    }
}

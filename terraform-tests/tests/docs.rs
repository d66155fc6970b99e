//! docs/ must be what `tools/gen-docs` generates now from the provider in the filesystem mirror
//! and docs/templates/: an attribute added to the schema, a changed description or default,
//! or an edited template fails here until docs/ is regenerated. Every tested Terraform version
//! must render the same pages (the generator uses Terraform 1.0.3).

use terraform_tests::docs;
use terraform_tests::{terraform_versions, workspace_root, Terraform};

#[test]
fn docs_are_generated_from_the_current_schema_and_templates() {
    let root = workspace_root();
    for tf in terraform_versions() {
        eprintln!("=== {}: docs/ against the schema", tf.name);
        let inputs = docs::collect(&tf, &root).unwrap_or_else(|e| panic!("{}: {e:#}", tf.name));
        let pages = docs::render(&inputs, &root)
            .unwrap_or_else(|e| panic!("{}: cannot render docs/: {e:#}", tf.name));
        let paths: Vec<String> = pages.iter().map(|p| p.path.display().to_string()).collect();
        assert_eq!(
            paths,
            ["docs/index.md", "docs/resources/instance.md"],
            "{}",
            tf.name
        );
        let problems = docs::check(&pages, &root).unwrap();
        assert!(
            problems.is_empty(),
            "{}: docs/ is out of date; run tools/gen-docs and commit the result.\n\n{}",
            tf.name,
            problems.join("\n\n")
        );
    }
}

/// A resource that uses the provider: without one, Terraform prunes the provider from
/// `validate` and never asks it to validate its block.
const USES_THE_PROVIDER: &str = r#"
resource "autoheal_instance" "uses_the_provider" {
  name              = "uses-the-provider"
  availability_zone = "ap-southeast-2a"
  ami               = "ami-0720cb7af233b0529"
}
"#;

/// The provider example on docs/index.md sets every argument (the generator checks that);
/// here the provider validates it, so the page never shows a configuration the provider
/// refuses. The control (the same example with a bad region) must fail, which shows that the
/// provider did see the block.
#[test]
fn the_provider_example_with_every_argument_is_valid() {
    let dir = workspace_root().join("docs/templates/provider");
    for tf in terraform_versions() {
        for control in [false, true] {
            eprintln!(
                "=== {}: docs/templates/provider (control: {control})",
                tf.name
            );
            let terraform = Terraform::new(tf.options(&dir)).unwrap();
            let wd = terraform.working_dir();
            std::fs::write(wd.join("uses_the_provider.tf"), USES_THE_PROVIDER).unwrap();
            if control {
                // The region line of the provider block, whatever its alignment.
                let main = std::fs::read_to_string(wd.join("main.tf")).unwrap();
                let region_lines: Vec<&str> = main
                    .lines()
                    .filter(|l| l.trim_start().starts_with("region "))
                    .collect();
                assert_eq!(region_lines.len(), 1, "one region line in {main}");
                let bad = main.replace(region_lines[0], "  region = \"nowhere\"");
                std::fs::write(wd.join("main.tf"), bad).unwrap();
            }
            terraform
                .init()
                .unwrap_or_else(|e| panic!("{}: init failed: {e:#}", tf.name));
            let validate = terraform.run(&["validate", "-no-color"], false).unwrap();
            if control {
                assert_eq!(validate.exit_code, 1, "{}: {validate}", tf.name);
                assert!(
                    validate.combined().contains("Invalid AWS region"),
                    "{}: the provider should refuse the control's region: {validate}",
                    tf.name
                );
            } else {
                assert_eq!(validate.exit_code, 0, "{}: {validate}", tf.name);
                assert!(
                    validate.stdout.contains("The configuration is valid"),
                    "{}: {validate}",
                    tf.name
                );
            }
        }
    }
}

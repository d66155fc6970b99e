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

/// The provider example on docs/index.md sets every argument (the generator checks that);
/// here Terraform validates it, so the page never shows a configuration the provider refuses.
#[test]
fn the_provider_example_with_every_argument_is_valid() {
    let dir = workspace_root().join("docs/templates/provider");
    for tf in terraform_versions() {
        eprintln!("=== {}: docs/templates/provider", tf.name);
        let terraform = Terraform::new(tf.options(&dir)).unwrap();
        terraform
            .init()
            .unwrap_or_else(|e| panic!("{}: init failed: {e:#}", tf.name));
        let validate = terraform
            .validate()
            .unwrap_or_else(|e| panic!("{}: validate failed: {e:#}", tf.name));
        assert!(
            validate.stdout.contains("The configuration is valid"),
            "{}: {validate}",
            tf.name
        );
    }
}

//! Reading Terraform's human-readable output (`-no-color`): diagnostics and plan text.

/// One `Error:` or `Warning:` diagnostic as Terraform prints it:
///
/// ```text
/// Error: Invalid CIDR block
///
///   with autoheal_instance.app,
///   on main.tf line 12, in resource "autoheal_instance" "app":
///   12:   vpc_cidr = "10.0.0/16"
///
/// "10.0.0/16" is not a CIDR block ...
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// "Error" or "Warning".
    pub severity: String,
    pub summary: String,
    /// The file and line of "on FILE line N", when Terraform showed the source.
    pub file: Option<String>,
    pub line: Option<usize>,
    /// The source text of line N from the snippet (without the "N:" prefix).
    pub source_line: Option<String>,
    /// Every line of the diagnostic after the summary, for messages.
    pub body: String,
}

/// All diagnostics in `output` (stdout and stderr together, in any order), in order.
pub fn diagnostics(output: &str) -> Vec<Diagnostic> {
    let lines: Vec<&str> = output.lines().map(strip_box).collect();
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("Error: ") || l.starts_with("Warning: "))
        .map(|(i, _)| i)
        .collect();
    let mut out = Vec::new();
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(lines.len());
        let (severity, summary) = lines[start].split_once(": ").expect("matched above");
        let body_lines = &lines[start + 1..end];
        let mut file = None;
        let mut line = None;
        let mut source_line = None;
        for (i, l) in body_lines.iter().enumerate() {
            let t = l.trim_start();
            let Some(rest) = t.strip_prefix("on ") else {
                continue;
            };
            let Some((f, after)) = rest.split_once(" line ") else {
                continue;
            };
            let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
            let Ok(n) = digits.parse::<usize>() else {
                continue;
            };
            file = Some(f.to_string());
            line = Some(n);
            let prefix = format!("{n}:");
            source_line = body_lines[i + 1..]
                .iter()
                .map(|l| l.trim_start())
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .map(|s| s.trim().to_string());
            break;
        }
        out.push(Diagnostic {
            severity: severity.to_string(),
            summary: summary.trim().to_string(),
            file,
            line,
            source_line,
            body: body_lines.join("\n"),
        });
    }
    out
}

/// Only the errors.
pub fn errors(output: &str) -> Vec<Diagnostic> {
    diagnostics(output)
        .into_iter()
        .filter(|d| d.severity == "Error")
        .collect()
}

/// Terraform draws boxes around diagnostics on terminals ("╷", "│ ", "╵"); without colour
/// it should not, but accept both.
fn strip_box(line: &str) -> &str {
    let l = line.strip_prefix('│').unwrap_or(line);
    let l = l.strip_prefix(' ').unwrap_or(l);
    if l == "╷" || l == "╵" {
        ""
    } else {
        l
    }
}

/// The planned value of a top-level attribute of the first resource in a plan, as Terraform
/// prints it: `+ volume_type = "gp3"` gives `"gp3"`, `+ id = (known after apply)` gives
/// `(known after apply)`. None when the plan does not show the attribute (it is null).
pub fn planned_attribute(plan_stdout: &str, name: &str) -> Option<String> {
    let mut in_resource = false;
    let mut depth = 0usize;
    for line in plan_stdout.lines() {
        let t = line.trim();
        if !in_resource {
            if t.contains(" resource \"") && t.ends_with('{') {
                in_resource = true;
                depth = 1;
            }
            continue;
        }
        if depth == 1 {
            let body = t
                .strip_prefix("+ ")
                .or_else(|| t.strip_prefix("~ "))
                .or_else(|| t.strip_prefix("- "))
                .unwrap_or(t);
            if let Some((key, value)) = body.split_once('=') {
                if key.trim().trim_matches('"') == name {
                    return Some(value.trim().to_string());
                }
            }
        }
        depth += t.matches(['{', '[']).count();
        depth = depth.saturating_sub(t.matches(['}', ']']).count());
        if depth == 0 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Terraform 1.0.3 printed for a provider's attribute error (shape copied from a real
    /// run; Terraform 1.11 prints the same without -no-color boxes).
    const PLAN_ERRORS: &str = "\
Warning: Something odd

  on main.tf line 3, in provider \"autoheal\":
   3:   region = \"x\"

Details.

Error: Invalid CIDR block

  with autoheal_instance.app,
  on main.tf line 12, in resource \"autoheal_instance\" \"app\":
  11:   name     = \"demo-app\"
  12:   vpc_cidr = \"10.0.0/16\"

\"10.0.0/16\" is not a valid CIDR block.

Error: Something without a source
";

    #[test]
    fn finds_diagnostics_and_their_source_lines() {
        let all = diagnostics(PLAN_ERRORS);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].severity, "Warning");
        assert_eq!(all[0].line, Some(3));
        assert_eq!(all[0].source_line.as_deref(), Some("region = \"x\""));
        let errs = errors(PLAN_ERRORS);
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].summary, "Invalid CIDR block");
        assert_eq!(errs[0].file.as_deref(), Some("main.tf"));
        assert_eq!(errs[0].line, Some(12));
        assert_eq!(
            errs[0].source_line.as_deref(),
            Some("vpc_cidr = \"10.0.0/16\"")
        );
        assert!(errs[0].body.contains("is not a valid CIDR"));
        assert_eq!(errs[1].summary, "Something without a source");
        assert_eq!(errs[1].line, None);
        assert_eq!(errs[1].source_line, None);
    }

    #[test]
    fn reads_boxed_diagnostics_too() {
        let boxed = "╷\n│ Error: Bad\n│ \n│   on main.tf line 2:\n│    2:   a = 1\n│ \n╵\n";
        let errs = errors(boxed);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, Some(2));
        assert_eq!(errs[0].source_line.as_deref(), Some("a = 1"));
    }

    const PLAN: &str = r#"
Terraform will perform the following actions:

  # autoheal_instance.app will be created
  + resource "autoheal_instance" "app" {
      + ami                = "ami-0720cb7af233b0529"
      + id                 = (known after apply)
      + tags               = {
          + "Environment" = "demo"
          + "volume_type" = "nested, not top-level"
        }
      + volume_type        = "gp3"

      + timeouts {
          + create = "30m"
        }
    }

Plan: 1 to add, 0 to change, 0 to destroy.

Changes to Outputs:
  + public_ip   = (known after apply)
"#;

    #[test]
    fn reads_planned_attributes() {
        assert_eq!(
            planned_attribute(PLAN, "ami").as_deref(),
            Some("\"ami-0720cb7af233b0529\"")
        );
        assert_eq!(
            planned_attribute(PLAN, "id").as_deref(),
            Some("(known after apply)")
        );
        assert_eq!(
            planned_attribute(PLAN, "volume_type").as_deref(),
            Some("\"gp3\"")
        );
        assert_eq!(planned_attribute(PLAN, "tags").as_deref(), Some("{"));
        assert_eq!(
            planned_attribute(PLAN, "Environment"),
            None,
            "nested, not top-level"
        );
        assert_eq!(planned_attribute(PLAN, "create"), None, "inside a block");
        assert_eq!(
            planned_attribute(PLAN, "public_ip"),
            None,
            "outputs are not the resource"
        );
        assert_eq!(planned_attribute(PLAN, "subnet_id"), None);
    }
}

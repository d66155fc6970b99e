//! A line diff of a committed page against the page generated now, for the message of a
//! failed check: which lines the schema would change, with a little context.

/// Lines of context shown around each change.
const CONTEXT: usize = 2;
/// At most this many lines of diff are shown; the rest is counted.
const MAX_LINES: usize = 80;

/// One line of the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line<'a> {
    Same(&'a str),
    /// Only in the committed file.
    Removed(&'a str),
    /// Only in the generated page.
    Added(&'a str),
}

/// A unified-style diff of `old` (the committed file) and `new` (the generated page), with
/// `-` for committed lines that would go and `+` for generated lines that are missing, `@@
/// line N @@` before each hunk (N: the line in the committed file). Empty when they are equal.
pub fn diff(old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let lines = edit_script(&a, &b);

    // Which lines to show: every change and CONTEXT lines either side of it.
    let changed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !matches!(l, Line::Same(_)))
        .map(|(i, _)| i)
        .collect();
    let mut show = vec![false; lines.len()];
    for &i in &changed {
        let from = i.saturating_sub(CONTEXT);
        let to = (i + CONTEXT).min(lines.len() - 1);
        show[from..=to].iter_mut().for_each(|s| *s = true);
    }

    let mut out = Vec::new();
    let mut old_line = 0usize;
    let mut previous_shown = false;
    for (i, line) in lines.iter().enumerate() {
        if show[i] {
            if !previous_shown {
                out.push(format!("@@ line {} @@", old_line + 1));
            }
            out.push(match line {
                Line::Same(l) => format!("  {l}"),
                Line::Removed(l) => format!("- {l}"),
                Line::Added(l) => format!("+ {l}"),
            });
        }
        previous_shown = show[i];
        if !matches!(line, Line::Added(_)) {
            old_line += 1;
        }
    }
    if old.ends_with('\n') != new.ends_with('\n') {
        out.push("(the files differ in their final newline)".to_string());
    }
    if out.len() > MAX_LINES {
        let hidden = out.len() - MAX_LINES;
        out.truncate(MAX_LINES);
        out.push(format!("... and {hidden} more diff lines"));
    }
    out.join("\n")
}

/// The shortest edit script from `a` to `b` by longest common subsequence (pages are a few
/// hundred lines, so the quadratic table is small).
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Line<'a>> {
    // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push(Line::Same(a[i]));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            out.push(Line::Removed(a[i]));
            i += 1;
        } else {
            out.push(Line::Added(b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| Line::Removed(l)));
    out.extend(b[j..].iter().map(|l| Line::Added(l)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(diff("a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn shows_changed_lines_with_context_and_where() {
        let old: String = (1..=12).map(|i| format!("{i}\n")).collect();
        let new = old.replace("5\n", "five\n") + "thirteen\n";
        assert_eq!(
            diff(&old, &new),
            "@@ line 3 @@\n  3\n  4\n- 5\n+ five\n  6\n  7\n@@ line 11 @@\n  11\n  12\n+ thirteen"
        );
    }

    #[test]
    fn an_added_attribute_shows_as_one_added_line() {
        let old = "- `a` (String) A.\n- `c` (String) C.\n";
        let new = "- `a` (String) A.\n- `b` (String) B.\n- `c` (String) C.\n";
        assert_eq!(
            diff(old, new),
            "@@ line 1 @@\n  - `a` (String) A.\n+ - `b` (String) B.\n  - `c` (String) C."
        );
    }

    #[test]
    fn reports_a_missing_final_newline_and_long_diffs_are_cut() {
        assert_eq!(
            diff("a\n", "a"),
            "(the files differ in their final newline)"
        );
        let new: String = (0..200).map(|i| format!("{i}\n")).collect();
        let d = diff("0\n", &new);
        assert_eq!(d.lines().count(), MAX_LINES + 1, "{d}");
        // The hunk header, "  0" and 199 added lines: 201, of which 80 are shown.
        assert!(d.ends_with("... and 121 more diff lines"), "{d}");
    }
}

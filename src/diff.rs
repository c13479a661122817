//! A line diff for small texts (drop-ins, config files): what a dry run shows
//! and what a change reports, as unified-diff lines without hunk headers.

/// `old` → `new` as `-`/`+`/` ` lines, after `--- a` / `+++ b` headers; empty
/// when the texts are equal. Quadratic in lines: meant for files of at most
/// a few thousand lines.
pub fn unified(old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut out = String::from("--- a\n+++ b\n");
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!(" {}\n", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_lines_are_marked() {
        let d = unified(
            "[Service]\nNice=5\nUser=a\n",
            "[Service]\nNice=10\nUser=a\n",
        );
        assert_eq!(d, "--- a\n+++ b\n [Service]\n-Nice=5\n+Nice=10\n User=a\n");
        assert_eq!(unified("x\n", "x\n"), "");
        assert_eq!(unified("", "a\n"), "--- a\n+++ b\n+a\n");
    }
}

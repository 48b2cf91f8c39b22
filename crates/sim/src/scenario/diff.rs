//! A line diff for mismatched outputs: common lines with two spaces,
//! expected-only lines with `-`, actual-only lines with `+`.

/// The diff from `expected` to `actual`, one line each, by longest common
/// subsequence (outputs are short; quadratic is fine).
pub fn lines(expected: &[String], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    // common[i][j]: the longest common subsequence of expected[i..], actual[j..].
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if expected[i] == actual[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        let line = if i < n && j < m && expected[i] == actual[j] {
            i += 1;
            j += 1;
            format!("  {}", expected[i - 1])
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            i += 1;
            format!("-{}", expected[i - 1])
        } else {
            j += 1;
            format!("+{}", actual[j - 1])
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn marks_removed_and_added_lines() {
        let d = lines(&v(&["a", "b", "c"]), &v(&["a", "x", "c", "d"]));
        assert_eq!(d, "  a\n-b\n+x\n  c\n+d\n");
    }
}

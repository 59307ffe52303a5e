//! Choosing cases: `--only` / `--skip` glob patterns and the expectations file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::case::Case;

/// Whether `text` matches the glob `pattern`: `*` matches any run of characters (also `/`),
/// `?` any one character; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// Cases disabled by the implementer, each with a written reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expectations {
    /// Case id or glob pattern → reason.
    pub disabled: BTreeMap<String, String>,
}

impl Expectations {
    /// Parses an expectations file:
    ///
    /// ```toml
    /// [disabled]
    /// "LINK-7/auth-deadline" = "our relay uses a 30 s deadline; tracked in issue 12"
    /// "LINK-24/*" = "idle timeout is configured to 300 s in this deployment"
    /// ```
    ///
    /// Every key must match at least one case of `catalogue`, and every value must be a
    /// non-empty reason.
    ///
    /// # Errors
    /// A usage error: bad TOML, an unknown section, a case without a reason, or a key that
    /// matches no case.
    pub fn parse(text: &str, catalogue: &[Case]) -> Result<Self, String> {
        let value: toml::Table = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
        let mut disabled = BTreeMap::new();
        for (section, body) in &value {
            if section != "disabled" {
                return Err(format!(
                    "unknown section [{section}]; the file has one section, [disabled], mapping case ids to reasons"
                ));
            }
            let table = body
                .as_table()
                .ok_or_else(|| "[disabled] must be a table of case id = \"reason\"".to_owned())?;
            for (id, reason) in table {
                let reason = reason.as_str().map(str::trim).unwrap_or_default();
                if reason.is_empty() {
                    return Err(format!(
                        "disabled case {id:?} has no reason: write why it is disabled (\"{id}\" = \"why\")"
                    ));
                }
                if !catalogue.iter().any(|c| glob_match(id, c.id)) {
                    return Err(format!("disabled case {id:?} matches no case (see --list)"));
                }
                disabled.insert(id.clone(), reason.to_owned());
            }
        }
        Ok(Self { disabled })
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// As [`Expectations::parse`], or the file cannot be read.
    pub fn load(path: &Path, catalogue: &[Case]) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text, catalogue).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The reason `id` is disabled, if it is.
    pub fn reason(&self, id: &str) -> Option<&str> {
        self.disabled
            .iter()
            .find(|(pat, _)| glob_match(pat, id))
            .map(|(_, r)| r.as_str())
    }
}

/// The cases of `catalogue` that `only` (if not empty) and `skip` select, in catalogue
/// order.
pub fn select<'a>(catalogue: &'a [Case], only: &[String], skip: &[String]) -> Vec<&'a Case> {
    catalogue
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|p| glob_match(p, c.id)))
        .filter(|c| !skip.iter().any(|p| glob_match(p, c.id)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("LINK-5/*", "LINK-5/oversize-frame"));
        assert!(glob_match("LINK-*", "LINK-17/cross-workspace"));
        assert!(glob_match("*/oversize*", "LINK-6/oversize-before-ready"));
        assert!(glob_match("LINK-?/x", "LINK-5/x"));
        assert!(!glob_match("LINK-?/x", "LINK-15/x"));
        assert!(!glob_match("LINK-1", "LINK-17/cross-workspace"));
        assert!(glob_match("LINK-1*", "LINK-17/cross-workspace"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b", "ac"));
        assert!(glob_match("a*b*c", "a-b-b-c"));
    }

    #[test]
    fn expectations_need_reasons() {
        let cat = crate::cases::catalogue();
        let ok = Expectations::parse("[disabled]\n\"LINK-7/*\" = \"30 s deadline here\"\n", &cat)
            .unwrap();
        assert_eq!(
            ok.reason("LINK-7/auth-deadline"),
            Some("30 s deadline here")
        );
        assert_eq!(ok.reason("LINK-5/oversize-frame"), None);

        let e =
            Expectations::parse("[disabled]\n\"LINK-7/auth-deadline\" = \"\"\n", &cat).unwrap_err();
        assert!(e.contains("no reason"), "{e}");
        let e = Expectations::parse("[disabled]\n\"LINK-7/auth-deadline\" = \"  \"\n", &cat)
            .unwrap_err();
        assert!(e.contains("no reason"), "{e}");
        let e =
            Expectations::parse("[disabled]\n\"LINK-7/auth-deadline\" = true\n", &cat).unwrap_err();
        assert!(e.contains("no reason"), "{e}");
        let e = Expectations::parse("[disabled]\n\"LINK-99/nothing\" = \"x\"\n", &cat).unwrap_err();
        assert!(e.contains("matches no case"), "{e}");
        let e = Expectations::parse("[skip]\n", &cat).unwrap_err();
        assert!(e.contains("unknown section"), "{e}");
        assert!(Expectations::parse("[disabled\n", &cat).is_err());
    }

    #[test]
    fn selection() {
        let cat = crate::cases::catalogue();
        let all = select(&cat, &[], &[]);
        assert_eq!(all.len(), cat.len());
        let five = select(&cat, &["LINK-5/*".to_owned()], &[]);
        assert!(!five.is_empty());
        assert!(five.iter().all(|c| c.id.starts_with("LINK-5/")));
        let none = select(&cat, &["LINK-5/*".to_owned()], &["*".to_owned()]);
        assert!(none.is_empty());
    }
}

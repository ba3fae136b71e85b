//! kube-apiserver's static token file (`--token-auth-file`): one user per line,
//! `token,user,uid[,"group1,group2"]`, `#` comments and blank lines ignored. Errors name the
//! file and the line, never the token.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::UserInfo;

/// The users of a token file, by token.
#[derive(Default)]
pub struct TokenFile {
    users: HashMap<String, UserInfo>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are secrets: only how many there are.
        f.debug_struct("TokenFile")
            .field("users", &self.users.len())
            .finish()
    }
}

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("--token-auth-file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--token-auth-file {} line {line}: {problem}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        problem: &'static str,
    },
}

impl TokenFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<TokenFile, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        TokenFile::parse(&text).map_err(|(line, problem)| TokenFileError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })
    }

    /// Parses the file's text; a refusal is (line number, what is wrong).
    pub fn parse(text: &str) -> Result<TokenFile, (usize, &'static str)> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = csv_fields(line).ok_or((i + 1, "an unterminated quoted field"))?;
            let [token, name, uid, rest @ ..] = fields.as_slice() else {
                return Err((i + 1, "expected at least token,user,uid"));
            };
            if token.is_empty() || name.is_empty() {
                return Err((i + 1, "the token and the user name must not be empty"));
            }
            let groups = rest
                .first()
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            let user = UserInfo {
                name: name.clone(),
                uid: uid.clone(),
                groups,
            };
            if users.insert(token.clone(), user).is_some() {
                return Err((i + 1, "a token already given on an earlier line"));
            }
        }
        Ok(TokenFile { users })
    }

    /// The user whose token `presented` is (every token compared in constant time).
    pub fn user(&self, presented: &str) -> Option<&UserInfo> {
        let mut found = None;
        for (token, user) in &self.users {
            if super::constant_time_eq(token, presented) {
                found = Some(user);
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The fields of one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote); None when a quote
/// is left open.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    if quoted {
        return None;
    }
    fields.push(field);
    Some(fields.into_iter().map(|f| f.trim().to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_with_quoted_groups() {
        let file = TokenFile::parse(
            "# comment\n\ntok-a,alice,u1,\"dev,ops\"\ntok-b,bob,u2\ntok-c,carol,u3,viewers\n",
        )
        .expect("parses");
        assert_eq!(file.len(), 3);
        let alice = file.user("tok-a").expect("alice");
        assert_eq!((alice.name.as_str(), alice.uid.as_str()), ("alice", "u1"));
        assert_eq!(alice.groups, ["dev", "ops"]);
        assert!(file.user("tok-b").expect("bob").groups.is_empty());
        assert_eq!(file.user("tok-c").expect("carol").groups, ["viewers"]);
        assert!(file.user("tok-").is_none());
        assert!(file.user("").is_none());
    }

    #[test]
    fn refusals_name_the_line_not_the_token() {
        let err = TokenFile::parse("ok,a,1\nsecret-token,bob\n").expect_err("refused");
        assert_eq!(err, (2, "expected at least token,user,uid"));
        let err = TokenFile::parse("t,a,1,\"dev\n").expect_err("refused");
        assert_eq!(err.0, 1);
        let err = TokenFile::parse("t,a,1\nt,b,2\n").expect_err("refused");
        assert_eq!(err, (2, "a token already given on an earlier line"));
        let path = std::path::Path::new("/nonexistent/tokens.csv");
        let shown = TokenFile::read(path).expect_err("missing").to_string();
        assert!(
            shown.starts_with("--token-auth-file /nonexistent/tokens.csv:"),
            "{shown}"
        );
    }
}

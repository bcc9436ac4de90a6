//! Answers for the console: is a cell complete, or does it need more lines?

use jupyter_protocol::IsCompleteReply;

/// `complete` when every bracket is closed, `incomplete` (with an indent for the next line)
/// while one is open, `invalid` when one closes that never opened. Strings, character
/// literals and comments are skipped, so `"{"` does not count as an open brace.
pub fn is_complete(code: &str) -> IsCompleteReply {
    match bracket_depth(code) {
        Some(0) => IsCompleteReply::complete(),
        Some(depth) => IsCompleteReply::incomplete("    ".repeat(depth)),
        None => IsCompleteReply::invalid(),
    }
}

fn bracket_depth(code: &str) -> Option<usize> {
    let mut stack = Vec::new();
    let mut chars = code.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                chars.by_ref().take_while(|&c| c != '\n').for_each(drop);
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match (escaped, c) {
                        (false, '\\') => escaped = true,
                        (false, '"') => break,
                        _ => escaped = false,
                    }
                }
            }
            // A char literal like '{' or '\''; a lifetime ('a) has no closing quote nearby.
            '\'' => {
                let rest: String = chars.clone().take(4).collect();
                if let Some(end) = rest.get(1..).and_then(|r| r.find('\'')) {
                    if rest.starts_with('\\') || end == 0 {
                        (0..=end + 1).for_each(|_| {
                            chars.next();
                        });
                    }
                }
            }
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = stack.pop()?;
                if !matches!((open, c), ('(', ')') | ('[', ']') | ('{', '}')) {
                    return None;
                }
            }
            _ => {}
        }
    }
    Some(stack.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: &str) -> String {
        serde_json::to_value(is_complete(code)).unwrap()["status"].as_str().unwrap().to_owned()
    }

    #[test]
    fn balanced_code_is_complete() {
        assert_eq!(status("let x = vec![1, 2];"), "complete");
        assert_eq!(status("fn f() { if true { 1 } else { 2 }; }"), "complete");
        assert_eq!(status(""), "complete");
    }

    #[test]
    fn an_open_block_is_incomplete_with_indent() {
        let reply = serde_json::to_value(is_complete("fn f() {\n    if x {")).unwrap();
        assert_eq!(reply["status"], "incomplete");
        assert_eq!(reply["indent"], "        ");
    }

    #[test]
    fn brackets_in_strings_chars_and_comments_do_not_count() {
        assert_eq!(status(r#"let s = "{ (";"#), "complete");
        assert_eq!(status("let c = '{';"), "complete");
        assert_eq!(status("let c = '\\'';"), "complete");
        assert_eq!(status("// {\nlet x = 1;"), "complete");
        assert_eq!(status("/* ( */ let x = 1;"), "complete");
        assert_eq!(status("fn f<'a>(x: &'a str) -> &'a str { x }"), "complete");
    }

    #[test]
    fn a_stray_closer_is_invalid() {
        assert_eq!(status("let x = 1; }"), "invalid");
        assert_eq!(status("(]"), "invalid");
    }
}

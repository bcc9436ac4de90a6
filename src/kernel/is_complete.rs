//! Answers for the console: is a cell complete, or does it need more lines?

use jupyter_protocol::IsCompleteReply;

/// `incomplete` (with an indent for the next line) while a bracket is open or the code stops
/// mid-statement, `invalid` when a bracket closes that never opened or the code does not
/// parse as Rust statements, else `complete`. `:command` and `?name` lines are not Rust and
/// are left out of the parse.
pub fn is_complete(code: &str) -> IsCompleteReply {
    let rust: String = code.lines().filter(|l| !l.trim_start().starts_with([':', '?'])).collect::<Vec<_>>().join("\n");
    match bracket_depth(&rust) {
        None => IsCompleteReply::invalid(),
        Some(depth) if depth > 0 => IsCompleteReply::incomplete("    ".repeat(depth)),
        Some(_) => match syn::parse::Parser::parse_str(syn::Block::parse_within, &rust) {
            Ok(_) => IsCompleteReply::complete(),
            Err(e) if e.to_string().contains("end of input") => IsCompleteReply::incomplete(String::new()),
            Err(_) => IsCompleteReply::invalid(),
        },
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
    fn a_real_parse_tells_unfinished_from_garbage() {
        assert_eq!(status("let x = 1 +"), "incomplete");
        assert_eq!(status("let x = = 2;"), "invalid");
        assert_eq!(status("println!(\"hi\");\n6 * 7"), "complete");
        assert_eq!(status(":seed 3\nlet y = 2;"), "complete");
        assert_eq!(status("struct P { x: f32 }\nimpl P { fn n(&self) -> f32 { self.x } }"), "complete");
    }

    #[test]
    fn a_stray_closer_is_invalid() {
        assert_eq!(status("let x = 1; }"), "invalid");
        assert_eq!(status("(]"), "invalid");
    }
}

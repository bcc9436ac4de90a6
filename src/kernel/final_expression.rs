//! A cell's final expression, handed to `glassbox::show_result!` so that its value is shown
//! by type in one compilation (see `glassbox::display::result`), rather than by evcxr's
//! display, which needs a second compilation for most values and fails on an integer
//! variable (`let x = 40 + 2; x`).

use proc_macro2::LineColumn;
use syn::spanned::Spanned;
use syn::{MacroDelimiter, Stmt};

const OPEN: &str = "glassbox::show_result!(";
const CLOSE: &str = ");";

/// Where the rewrite moved the user's text: on `line` (1-based, of the cell part), every
/// character from `column` (1-based) on moved right by `by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shift {
    pub line: usize,
    pub column: usize,
    pub by: usize,
}

impl Shift {
    /// The column the user wrote, of a column in the rewritten code.
    pub fn column_in_cell(&self, line: usize, column: usize) -> usize {
        if line == self.line && column >= self.column + self.by {
            column - self.by
        } else {
            column
        }
    }
}

/// The code with its final expression `E` written as `glassbox::show_result!(E);`, and the
/// shift that puts columns back; `None` when the code does not end in an expression or does
/// not parse (evcxr then reports or handles it as before).
pub fn show_final_expression(code: &str) -> Option<(String, Shift)> {
    let statements = syn::parse::Parser::parse_str(syn::Block::parse_within, code).ok()?;
    let span = match statements.last()? {
        Stmt::Expr(expr, None) => expr.span(),
        Stmt::Macro(m) if m.semi_token.is_none() && !matches!(m.mac.delimiter, MacroDelimiter::Brace(_)) => m.span(),
        _ => return None,
    };
    let (start, end) = (byte_at(code, span.start())?, byte_at(code, span.end())?);
    let rewritten = format!("{}{OPEN}{}{CLOSE}{}", &code[..start], &code[start..end], &code[end..]);
    Some((rewritten, Shift { line: span.start().line, column: span.start().column + 1, by: OPEN.chars().count() }))
}

/// The byte offset of a line (1-based) and column (0-based, in characters) of `code`.
fn byte_at(code: &str, at: LineColumn) -> Option<usize> {
    let line_start: usize = code.split_inclusive('\n').take(at.line.checked_sub(1)?).map(str::len).sum();
    let line = &code[line_start..];
    let within = line.char_indices().nth(at.column).map_or(line.len(), |(i, _)| i);
    Some(line_start + within)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(code: &str) -> Option<String> {
        show_final_expression(code).map(|(c, _)| c)
    }

    #[test]
    fn the_last_expression_is_shown() {
        assert_eq!(rewritten("let x = 40 + 2; x").unwrap(), "let x = 40 + 2; glassbox::show_result!(x);");
        assert_eq!(rewritten("1").unwrap(), "glassbox::show_result!(1);");
        assert_eq!(
            rewritten("let t = 1;\nt.pow(2) // squared\n").unwrap(),
            "let t = 1;\nglassbox::show_result!(t.pow(2)); // squared\n"
        );
        assert_eq!(
            rewritten("for i in 0..2 {\n    println!(\"{i}\");\n}").unwrap(),
            "glassbox::show_result!(for i in 0..2 {\n    println!(\"{i}\");\n});"
        );
        assert_eq!(rewritten("vec![1, 2]").unwrap(), "glassbox::show_result!(vec![1, 2]);");
        assert_eq!(rewritten("let s = \"é\"; s.len()").unwrap(), "let s = \"é\"; glassbox::show_result!(s.len());");
    }

    #[test]
    fn statements_items_and_what_does_not_parse_are_left_alone() {
        assert_eq!(rewritten("let x = 1;"), None);
        assert_eq!(rewritten("println!(\"a\");"), None);
        assert_eq!(rewritten("fn f() -> i32 { 1 }"), None);
        assert_eq!(rewritten("thread_local! { static A: u8 = 1; }"), None);
        assert_eq!(rewritten(":dep foo = \"1\""), None);
        assert_eq!(rewritten("let a = 1\nlet b = 2"), None);
        assert_eq!(rewritten(""), None);
    }

    #[test]
    fn columns_after_the_insertion_are_moved_back() {
        let (_, shift) = show_final_expression("let x = 1; x.foo()").unwrap();
        assert_eq!(shift, Shift { line: 1, column: 12, by: OPEN.len() });
        assert_eq!(shift.column_in_cell(1, 12 + OPEN.len() + 2), 14);
        assert_eq!(shift.column_in_cell(1, 5), 5);
        assert_eq!(shift.column_in_cell(2, 40), 40);
    }
}

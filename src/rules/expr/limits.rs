//! Size and depth bounds on rule expressions, checked before anything recursive sees them.
//!
//! evalexpr's parser recurses once per pending operator on the right spine of its tree, our
//! compiler, evaluator, fact analysis and `Drop` once per tree level. A 100,000-deep input
//! overflowed the stack in all of them (`rules check` aborted, a live reload killed the
//! service). So the text is bounded first (bytes, tokens, bracket nesting: cheap, linear, no
//! recursion), which bounds how deep evalexpr can recurse; then the tree evalexpr built is
//! measured without recursion before our compiler walks it. The limits are far above any sane
//! rule (the default pack's longest expression is about 200 bytes, 30 tokens, 6 levels).

use evalexpr::{DefaultNumericTypes, Node};

/// Most bytes in one expression (`when`, `reset`, `first`, `then`, `fire`, an aggregate).
pub const MAX_EXPR_BYTES: usize = 4096;
/// Most tokens (names, literals, operators, brackets, commas) in one expression: bounds
/// evalexpr's recursion, which is at most one frame per token.
pub const MAX_EXPR_TOKENS: usize = 512;
/// Most levels in an expression's tree: brackets, function calls, `!`/`-`, and each `&&`,
/// `||`, comparison or arithmetic operator of a chain add one.
pub const MAX_EXPR_DEPTH: usize = 64;

/// Refuse text that is too long, has too many tokens or brackets nested too deep. Linear,
/// without recursion; a bound on evalexpr's tokens, not a lexer: a two-character operator
/// counts twice, and the words and brackets of strings and comments count too.
pub fn check_text(src: &str) -> Result<(), LimitError> {
    if src.len() > MAX_EXPR_BYTES {
        return Err(LimitError::Bytes(src.len()));
    }
    // Quotes are not followed: evalexpr also has comments (`/* " */`), so any notion of
    // "inside a string" that differs from its lexer could hide brackets from this count.
    // Counting string and comment contents too over-counts (a bound must), only for text no
    // rule needs.
    let b = src.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    let (mut i, mut tokens, mut depth, mut deepest) = (0usize, 0usize, 0usize, 0usize);
    while i < b.len() {
        let c = b[i];
        i += 1;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => continue,
            b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            // A run of prefix operators nests like brackets (`!!!a` is three levels) and is
            // what evalexpr recurses deepest on: 511 `!` overflowed a 256 KiB stack in a
            // debug build. Whitespace inside the run does not break it.
            b'!' | b'-' => {
                let mut run = 1;
                while i < b.len() && matches!(b[i], b'!' | b'-' | b' ' | b'\t' | b'\n' | b'\r') {
                    run += usize::from(matches!(b[i], b'!' | b'-'));
                    tokens += usize::from(matches!(b[i], b'!' | b'-'));
                    i += 1;
                }
                deepest = deepest.max(depth + run);
            }
            c if word(c) => {
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
            }
            _ => {}
        }
        tokens += 1;
    }
    if tokens > MAX_EXPR_TOKENS {
        return Err(LimitError::Tokens(tokens));
    }
    if deepest > MAX_EXPR_DEPTH {
        return Err(LimitError::Depth(deepest));
    }
    Ok(())
}

/// Refuse a parsed tree deeper than [`MAX_EXPR_DEPTH`], measured without recursion.
pub fn check_tree(root: &Node<DefaultNumericTypes>) -> Result<(), LimitError> {
    let mut stack = vec![(root, 1usize)];
    while let Some((n, d)) = stack.pop() {
        if d > MAX_EXPR_DEPTH {
            return Err(LimitError::Depth(d));
        }
        stack.extend(n.children().iter().map(|c| (c, d + 1)));
    }
    Ok(())
}

/// An expression over one of the bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("expression is {0} bytes long; the limit is {MAX_EXPR_BYTES}")]
    Bytes(usize),
    #[error("expression has {0} tokens; the limit is {MAX_EXPR_TOKENS}")]
    Tokens(usize),
    /// Nested at least this deep.
    #[error(
        "expression is nested more than {MAX_EXPR_DEPTH} levels deep (at least {0}; brackets, \
         calls, `!`, and each operator of a chain add a level: list values with one_of(), or \
         split the condition into several rules)"
    )]
    Depth(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bounds() {
        assert!(check_text(r#"approved && one_of(response_code, "55", "75")"#).is_ok());
        let long = format!("amount > {}", "9".repeat(MAX_EXPR_BYTES));
        assert!(check_text(&long)
            .unwrap_err()
            .to_string()
            .contains("bytes long"));
        let many = vec!["approved"; 300].join(" || ");
        assert!(check_text(&many)
            .unwrap_err()
            .to_string()
            .contains("tokens"));
        let deep = format!("{}approved{}", "(".repeat(65), ")".repeat(65));
        assert!(check_text(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested more than 64"));
        // Brackets behind a quote are counted: a comment can make the quote no string.
        let hidden = format!("/* \" */ {}1{} > 0", "(".repeat(2000), ")".repeat(2000));
        assert!(check_text(&hidden).is_err());
        let hidden = format!("// \"\n{}approved", "!".repeat(1000));
        assert!(check_text(&hidden).is_err());
        assert!(check_text(r#"merchant == "M (north) \"A\"""#).is_ok());
    }

    #[test]
    fn tree_bounds() {
        let chain = vec!["approved"; 70].join(" || ");
        let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(&chain).unwrap();
        assert!(check_tree(&tree)
            .unwrap_err()
            .to_string()
            .contains("nested more than 64"));
        let nots = format!("{}approved", "!".repeat(100));
        let tree = evalexpr::build_operator_tree::<DefaultNumericTypes>(&nots).unwrap();
        assert!(check_tree(&tree).is_err());
        let ok = evalexpr::build_operator_tree::<DefaultNumericTypes>("!(a && (b || c))").unwrap();
        assert!(check_tree(&ok).is_ok());
    }
}

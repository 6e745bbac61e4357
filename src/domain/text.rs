//! Normalization of untrusted seller and user text.
//!
//! The design's inbound validation layer: everything a client types is
//! trimmed, has its whitespace collapsed, loses control and invisible
//! formatting characters, and loses markup, before it is checked against
//! limits or stored. Clients render our text as text; stripping tags here
//! means a careless client cannot be turned into an XSS vector by a seller.

/// One-line text (names, brands, tags): no line breaks survive.
pub fn single_line(raw: &str) -> String {
    // Invisible characters go first: removed after markup stripping, one
    // could join `<` and a letter into a tag that survives ("<\u{202E}a").
    let visible: String = raw.chars().filter(|&c| !is_invisible(c)).collect();
    let stripped = strip_markup(&visible);
    let mut out = String::with_capacity(stripped.len());
    let mut pending_space = false;
    for ch in stripped.chars() {
        if ch.is_whitespace() || ch.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(ch);
        }
    }
    out
}

/// Multi-line text (descriptions): keeps paragraph breaks (at most one blank
/// line in a row), collapses every other run of whitespace to one space.
pub fn multi_line(raw: &str) -> String {
    let stripped = strip_markup(raw).replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<String> = stripped.split('\n').map(single_line).collect();
    let mut out = String::with_capacity(stripped.len());
    let mut blank_run = 0;
    for line in lines {
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&line);
    }
    out
}

/// Number of characters (Unicode scalar values), the unit of every length limit.
pub fn char_len(text: &str) -> usize {
    text.chars().count()
}

/// Zero-width and bidirectional-override characters: invisible, and a
/// classic way to make one name look like another.
fn is_invisible(ch: char) -> bool {
    matches!(ch, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Removes HTML/XML tags and comments, keeping the text between them.
///
/// A `<` that does not open a tag (`a < b`, `<3`) is kept. This is not an
/// HTML parser and does not need to be: the output is plain text, never
/// interpreted as markup, so the only goal is that no tag survives.
fn strip_markup(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let opens_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        if !opens_tag {
            out.push('<');
            rest = after;
            continue;
        }
        let end = if after.starts_with("!--") {
            after.find("-->").map(|i| i + 3)
        } else {
            after.find('>').map(|i| i + 1)
        };
        match end {
            Some(end) => {
                // A tag separates words: "<p>a</p><p>b</p>" reads "a b".
                out.push(' ');
                rest = &after[end..];
            }
            // An unterminated tag swallows the rest: keeping "<script src=..."
            // as text would keep exactly what we want gone.
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_trims_collapses_and_strips() {
        assert_eq!(single_line("  Wireless \t\n Mouse  "), "Wireless Mouse");
        assert_eq!(
            single_line("<b>Bold</b> deal<script>x</script>"),
            "Bold deal x"
        );
        assert_eq!(single_line("a\u{0007}b\u{202E}c"), "a bc");
        assert_eq!(single_line("2 < 3 and <3"), "2 < 3 and <3");
        assert_eq!(single_line("<img src=x onerror=alert(1)"), "");
        assert_eq!(single_line("<!-- hidden --> shown"), "shown");
        assert_eq!(
            single_line("<\u{202E}script>x"),
            " x".trim(),
            "found by proptest"
        );
    }

    #[test]
    fn multi_line_keeps_paragraphs() {
        assert_eq!(
            multi_line(" one \r\n\r\n\r\n two  \n three "),
            "one\n\ntwo\nthree"
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn no_tag_survives(text: &str) -> bool {
        text.as_bytes().windows(2).all(|w| {
            !(w[0] == b'<' && (w[1].is_ascii_alphabetic() || matches!(w[1], b'/' | b'!' | b'?')))
        })
    }

    proptest! {
        #[test]
        fn single_line_output_is_clean(raw in "(\\PC|[<>/!\\t\\n\\r\\u{0}\\u{7}\\u{202E}\\u{200B} ]){0,80}") {
            let out = single_line(&raw);
            prop_assert!(!out.chars().any(|c| c.is_control() || is_invisible(c)));
            prop_assert_eq!(out.trim(), out.as_str());
            prop_assert!(!out.contains("  "));
            prop_assert!(no_tag_survives(&out), "{:?} -> {:?}", raw, out);
            prop_assert_eq!(single_line(&out), out.clone(), "normalizing twice changes nothing");
        }

        #[test]
        fn multi_line_output_is_clean(raw in "(\\PC|[<>a\\n\\r\\t ]){0,80}") {
            let out = multi_line(&raw);
            prop_assert!(!out.chars().any(|c| c != '\n' && (c.is_control() || is_invisible(c))));
            prop_assert!(!out.contains("\n\n\n"));
            prop_assert!(no_tag_survives(&out));
        }
    }
}

//! Colour for the human reports (`--color`): severities in red and yellow.
//!
//! The reports themselves stay plain text; [`Paint`] wraps the writer they write to and colours
//! each line's severity where a finding starts: `error[` and `warning[` at the start of a line
//! (a finding, as [`crate::Finding`]'s `Display` writes it) or after `not repairable: `.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};

/// Error severities: bold red.
const ERROR: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Red)));
/// Warning severities: yellow.
const WARNING: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));

/// Whether to colour: `--color`, with `auto` deciding from the terminal and `NO_COLOR`.
pub fn wanted(when: crate::cli::ColorWhen, stdout_terminal: bool, no_color: bool) -> bool {
    match when {
        crate::cli::ColorWhen::Always => true,
        crate::cli::ColorWhen::Never => false,
        crate::cli::ColorWhen::Auto => stdout_terminal && !no_color,
    }
}

/// A writer that colours the severities of the lines written through it (whole lines: the
/// last, unfinished one is written on [`Write::flush`] or drop).
pub struct Paint<'a> {
    inner: &'a mut dyn Write,
    line: Vec<u8>,
}

impl<'a> Paint<'a> {
    /// Wraps `inner`.
    pub fn new(inner: &'a mut dyn Write) -> Self {
        Paint {
            inner,
            line: Vec::new(),
        }
    }

    /// Writes the buffered line, its severity coloured.
    fn emit(&mut self) -> io::Result<()> {
        let line = std::mem::take(&mut self.line);
        let (lead, rest) = match line.strip_prefix(b"not repairable: ") {
            Some(rest) => (&line[..line.len() - rest.len()], rest),
            None => (&line[..0], &line[..]),
        };
        let styled = [("error[", ERROR), ("warning[", WARNING)]
            .into_iter()
            .find(|(word, _)| rest.starts_with(word.as_bytes()));
        match styled {
            Some((word, style)) => {
                let n = word.len() - 1;
                self.inner.write_all(lead)?;
                write!(self.inner, "{}", style.render())?;
                self.inner.write_all(&rest[..n])?;
                write!(self.inner, "{}", style.render_reset())?;
                self.inner.write_all(&rest[n..])
            }
            None => self.inner.write_all(&line),
        }
    }
}

impl Write for Paint<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for chunk in buf.split_inclusive(|&b| b == b'\n') {
            self.line.extend_from_slice(chunk);
            if chunk.ends_with(b"\n") {
                self.emit()?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.line.is_empty() {
            self.emit()?;
        }
        self.inner.flush()
    }
}

impl Drop for Paint<'_> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(text: &str) -> String {
        let mut out = Vec::new();
        {
            let mut p = Paint::new(&mut out);
            // In pieces that split lines, as a formatter writes.
            for piece in text.as_bytes().chunks(5) {
                p.write_all(piece).unwrap();
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn severities_are_coloured_and_nothing_else() {
        assert_eq!(
            paint(
                "error[blob_corrupt] x: y\nwarning[empty_repository] e: z\ninfo[orphan_blob] o\nresult: error[x]\nnot repairable: error[a] b\ntail"
            ),
            "\x1b[1m\x1b[31merror\x1b[0m[blob_corrupt] x: y\n\x1b[33mwarning\x1b[0m[empty_repository] e: z\ninfo[orphan_blob] o\nresult: error[x]\nnot repairable: \x1b[1m\x1b[31merror\x1b[0m[a] b\ntail"
        );
    }

    #[test]
    fn auto_needs_a_terminal_and_no_no_color() {
        use crate::cli::ColorWhen::*;
        assert!(wanted(Auto, true, false));
        assert!(!wanted(Auto, true, true));
        assert!(!wanted(Auto, false, false));
        assert!(wanted(Always, false, true));
        assert!(!wanted(Never, true, false));
    }
}

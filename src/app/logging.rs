//! The log subscriber. In the human format every field value passes through
//! [`crate::text::escape_controls`]: values such as `user` and
//! `calling_station_id` are bytes a RADIUS client chose, and written raw a
//! CR/LF forges a whole audit line and ESC or BEL reach the terminal of
//! whoever reads the log. The JSON format escapes them by itself (RFC 8259
//! §7: control characters must be escaped in strings).

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

use crate::config::LogFormat;
use crate::text::EscapingWriter;

/// Installs the tracing subscriber: `RUST_LOG` wins over `[log] level`; logs go to stderr.
pub fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.fmt_fields(EscapedFields).try_init(),
    };
    // Already installed (tests): keep the first.
    let _ = result;
}

/// [`DefaultFields`] with every value escaped.
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'a> MakeVisitor<Writer<'a>> for EscapedFields {
    type Visitor = Escaping<DefaultVisitor<'a>>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        Escaping(DefaultFields::new().make_visitor(target))
    }
}

/// Wraps a visitor so that what it writes of each value is escaped.
pub struct Escaping<V>(V);

/// A value whose `Debug` output is escaped as it is written.
struct Escape<'a>(&'a dyn fmt::Debug);

impl fmt::Debug for Escape<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        write!(EscapingWriter(f), "{:?}", self.0)
    }
}

// Every `record_*` method defaults to `record_debug`, so this one method
// covers strings, numbers, errors and `%Display` values alike.
impl<V: Visit> Visit for Escaping<V> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.record_debug(field, &Escape(value));
    }
}

impl<V: VisitOutput<fmt::Result>> VisitOutput<fmt::Result> for Escaping<V> {
    fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

impl<V: VisitFmt> VisitFmt for Escaping<V> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        self.0.writer()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_forged_line_stays_on_its_own_line() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        let user = "bob\r\n2026-12-07T00:00:00Z  INFO decision user=admin outcome=\"accept\"";
        let station = "\u{1b}]0;owned\u{7}\u{0}";
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(user = %user, station, "decision {}", user);
        });
        let out = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\r') && !out.contains('\u{1b}') && !out.contains('\u{7}'));
        assert!(!out.contains('\u{0}'), "{out}");
        assert!(out.contains("user=bob\\u{d}\\u{a}2026"), "{out}");
    }
}

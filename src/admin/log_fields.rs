//! The text log's field formatter: the lines of tracing-subscriber's default one, written
//! with fewer instructions.
//!
//! The text subscriber formats a span's fields into a string when the span is made and
//! again on each `record`, so every request pays for its span's `id`, `front` and `user`
//! (bench/FINDINGS.md, session 6). The default formatter writes each as `name="value"`
//! through `Debug`, which escapes the value one character at a time through the
//! `core::fmt` machinery: about a thousand instructions per field. [`TextFields`] writes a
//! plain string value (printable ASCII without quotes or backslashes, so `Debug` would
//! change nothing) with three `write_str` calls, and hands every other field to the
//! default formatter, so the lines read exactly as before.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// Formats fields as tracing-subscriber's `DefaultFields` does, plain strings faster.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = TextVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes plain string fields itself and every other field through a `DefaultVisitor`
/// over the same writer, keeping the separating spaces in step with it.
struct TextVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl TextVisitor<'_> {
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut inner = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut inner);
        self.result = inner.finish();
        // The default visitor skips `log.*` fields (metadata of bridged `log` records).
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }

    fn write_plain(&mut self, field: &Field, value: &str) -> fmt::Result {
        if !std::mem::take(&mut self.is_empty) {
            self.writer.write_str(" ")?;
        }
        self.writer.write_str(field.name())?;
        self.writer.write_str("=\"")?;
        self.writer.write_str(value)?;
        self.writer.write_str("\"")
    }
}

/// Returns whether `Debug` writes `value` as itself between quotes.
fn is_plain(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for TextVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        let own = !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
            && is_plain(value);
        if !own {
            self.delegate(field, |inner| inner.record_str(field, value));
        } else if self.result.is_ok() {
            self.result = self.write_plain(field, value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(field, |inner| inner.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.delegate(field, |inner| inner.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Formats the fields of one event with a formatter, as the text log does.
    fn line_with<N>(fields: N, ansi: bool) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::layer::SubscriberExt as _;
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(fields)
            .with_ansi(ansi)
            .without_time()
            .with_writer(move || sink.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                id = "0f3c-uuid",
                front = "grpc",
                user = tracing::field::Empty
            );
            span.record("user", "agent1");
            span.record("user", "quote\"d");
            let _entered = span.enter();
            let error = std::io::Error::other("boom");
            tracing::info!(
                code = 5,
                plain = "a b",
                odd = "tab\there",
                ok = true,
                error = &error as &dyn std::error::Error,
                "request failed \u{1b}[31m"
            );
        });
        String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_read_as_the_default_formatters() {
        for ansi in [false, true] {
            assert_eq!(
                line_with(TextFields, ansi),
                line_with(tracing_subscriber::fmt::format::DefaultFields::new(), ansi),
            );
        }
        let line = line_with(TextFields, false);
        assert!(
            line.contains(r#"request{id="0f3c-uuid" front="grpc" user="agent1" user="quote\"d"}"#),
            "{line}"
        );
    }
}

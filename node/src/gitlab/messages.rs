//! What GitLab's `/post_receive` asks the node to show the pusher (merge
//! request links, warnings), laid out for an 80-column terminal where git
//! prefixes each line with `remote: `, as upstream lays it out: a blank line
//! before each message, alerts boxed by `=` rules with centred, wrapped text.

use serde::Deserialize;

/// A terminal is at least this wide.
const TERMINAL_WIDTH: usize = 80;
/// What is left after git's `remote: ` prefix.
const MESSAGE_WIDTH: usize = TERMINAL_WIDTH - "remote: ".len();
/// Alert text keeps two columns free on either side.
const TEXT_WIDTH: usize = MESSAGE_WIDTH - 2 * 2;

/// One message of a `/post_receive` answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PostReceiveMessage {
    #[serde(default)]
    pub message: String,
    /// `basic` or `alert`.
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A message of a type the node does not know how to show.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid message type: {0}")]
pub struct InvalidMessageType(pub String);

/// The text to write to the hook's stdout. Messages before an invalid one
/// are kept, as upstream wrote them before failing.
pub fn format(messages: &[PostReceiveMessage]) -> (Vec<u8>, Option<InvalidMessageType>) {
    let mut out = Vec::new();
    for m in messages {
        out.push(b'\n');
        match m.kind.as_str() {
            "basic" => out.extend_from_slice(m.message.as_bytes()),
            "alert" => alert(&m.message, &mut out),
            other => return (out, Some(InvalidMessageType(other.to_owned()))),
        }
        out.extend_from_slice(b"\n\n");
    }
    (out, None)
}

fn alert(text: &str, out: &mut Vec<u8>) {
    let rule = "=".repeat(MESSAGE_WIDTH);
    out.extend_from_slice(rule.as_bytes());
    out.extend_from_slice(b"\n\n");
    let mut line = String::new();
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > TEXT_WIDTH {
            centre(&line, out);
            out.push(b'\n');
            line.clear();
        }
        line.push_str(word);
        line.push(' ');
    }
    centre(&line, out);
    out.extend_from_slice(b"\n\n");
    out.extend_from_slice(rule.as_bytes());
}

fn centre(line: &str, out: &mut Vec<u8>) {
    let line = line.trim();
    let padding = MESSAGE_WIDTH.saturating_sub(line.len()) / 2;
    out.extend(std::iter::repeat_n(b' ', padding));
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &str, message: &str) -> PostReceiveMessage {
        PostReceiveMessage { message: message.into(), kind: kind.into() }
    }

    #[test]
    fn basic_messages_are_separated_by_blank_lines() {
        let (out, err) = format(&[msg("basic", "To create a merge request, visit:\n  http://x/mr")]);
        assert_eq!(err, None);
        assert_eq!(String::from_utf8(out).expect("utf-8"), "\nTo create a merge request, visit:\n  http://x/mr\n\n");
    }

    #[test]
    fn alerts_are_boxed_centred_and_wrapped() {
        let long = "word ".repeat(20);
        let (out, err) = format(&[msg("alert", "Short alert"), msg("alert", &long)]);
        assert_eq!(err, None);
        let rule = "=".repeat(72);
        let line1 = format!("{}{}", " ".repeat(4), ["word"; 13].join(" "));
        let line2 = format!("{}{}", " ".repeat(19), ["word"; 7].join(" "));
        let expected = format!(
            "\n{rule}\n\n{}Short alert\n\n{rule}\n\n\n{rule}\n\n{line1}\n{line2}\n\n{rule}\n\n",
            " ".repeat(30)
        );
        assert_eq!(String::from_utf8(out).expect("utf-8"), expected);
    }

    #[test]
    fn unknown_types_stop_the_output() {
        let (out, err) = format(&[msg("basic", "a"), msg("fancy", "b"), msg("basic", "c")]);
        assert_eq!(String::from_utf8(out).expect("utf-8"), "\na\n\n\n");
        assert_eq!(err, Some(InvalidMessageType("fancy".into())));
    }
}

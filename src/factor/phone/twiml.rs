//! The TwiML documents of a verification call (twilio.com/docs/voice/twiml).
//!
//! Every inserted value is XML-escaped (XML 1.0 §2.4, §3.3.3: `&`, `<`, `>`
//! and both quotes), and characters XML 1.0 does not allow at all (§2.2: C0
//! controls other than tab, LF, CR; U+FFFE, U+FFFF) are dropped: the spoken
//! message contains the NAS's Calling-Station-Id, which a client chooses.

/// Seconds `<Gather>` waits for the key after the message.
pub const GATHER_SECS: u32 = 15;

/// Escapes `text` for an XML attribute value or element content.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// How `<Say>` speaks: optional `voice` and `language` attributes.
#[derive(Debug, Clone, Default)]
pub struct Voice {
    /// e.g. `alice`, `Polly.Joanna`.
    pub voice: Option<String>,
    /// e.g. `en-US`.
    pub language: Option<String>,
}

impl Voice {
    /// `<Say ...>text</Say>` with this voice.
    pub fn say(&self, text: &str) -> String {
        let mut out = String::from("<Say");
        if let Some(voice) = &self.voice {
            out.push_str(&format!(" voice=\"{}\"", xml_escape(voice)));
        }
        if let Some(language) = &self.language {
            out.push_str(&format!(" language=\"{}\"", xml_escape(language)));
        }
        out.push('>');
        out.push_str(&xml_escape(text));
        out.push_str("</Say>");
        out
    }
}

/// The call: read `message`, collect one key and POST it to `action`; with
/// no key, say goodbye (the call then ends and the status callback reports
/// `completed` without a gather).
///
/// `finishOnKey=""` makes `#` an ordinary digit, so `Digits` is `#` when the
/// user approves (Twilio `<Gather>`: "finishOnKey ... and '' (the empty
/// string)"); `numDigits="1"` submits after the first key.
pub fn gather(action: &str, message: &str, voice: &Voice) -> String {
    format!(
        "<Response><Gather action=\"{action}\" method=\"POST\" numDigits=\"1\" finishOnKey=\"\" timeout=\"{GATHER_SECS}\">{say}</Gather>{goodbye}</Response>",
        action = xml_escape(action),
        say = voice.say(&format!(
            "{message} Press pound to approve. Press 9 to deny and report fraud. Any other key denies."
        )),
        goodbye = voice.say("No input. Goodbye."),
    )
}

/// The call of a user with a PIN (`[phone] pin`): read `message`, collect
/// the PIN up to `#` and POST it to `action`; with no key, say goodbye.
///
/// `numDigits` is left unset and `finishOnKey="#"`, so Twilio collects any
/// number of keys until `#` (or `timeout` seconds of silence) and sends them
/// in `Digits` without the `#` (Twilio `<Gather>`: "finishOnKey ... The
/// value of finishOnKey is not included in the Digits"). The PIN itself is
/// never part of the document: only rampart's callback sees the digits.
pub fn gather_pin(action: &str, message: &str, voice: &Voice) -> String {
    format!(
        "<Response><Gather action=\"{action}\" method=\"POST\" finishOnKey=\"#\" timeout=\"{GATHER_SECS}\">{say}</Gather>{goodbye}</Response>",
        action = xml_escape(action),
        say = voice.say(&format!(
            "{message} To approve, enter your PIN followed by pound. If this was not you, press 9 then pound to deny and report fraud."
        )),
        goodbye = voice.say("No PIN entered. Goodbye."),
    )
}

/// A document that says `text` and hangs up (the answer to the gather POST).
pub fn say_and_hang_up(text: &str, voice: &Voice) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{}<Hangup/></Response>",
        voice.say(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden_characters() {
        assert_eq!(
            xml_escape("a<b>&\"c\"'d'\u{1}\u{7}\te\u{FFFF}"),
            "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;\te"
        );
    }

    #[test]
    fn gather_document_escapes_every_value() {
        let voice = Voice {
            voice: Some("Polly.\"x\"".into()),
            language: Some("en-US".into()),
        };
        let doc = gather(
            "https://mfa.example.com/oob/v1/twilio/gather/ab?x=1&y=2",
            "Sign-in as <alice> from \"</Say><Hangup/>\" & co",
            &voice,
        );
        assert_eq!(
            doc,
            "<Response><Gather action=\"https://mfa.example.com/oob/v1/twilio/gather/ab?x=1&amp;y=2\" \
             method=\"POST\" numDigits=\"1\" finishOnKey=\"\" timeout=\"15\">\
             <Say voice=\"Polly.&quot;x&quot;\" language=\"en-US\">Sign-in as &lt;alice&gt; from \
             &quot;&lt;/Say&gt;&lt;Hangup/&gt;&quot; &amp; co Press pound to approve. Press 9 to deny \
             and report fraud. Any other key denies.</Say></Gather>\
             <Say voice=\"Polly.&quot;x&quot;\" language=\"en-US\">No input. Goodbye.</Say></Response>"
        );
        // Exactly one Gather and no injected verb.
        assert_eq!(doc.matches("<Gather").count(), 1);
        assert_eq!(doc.matches("<Hangup").count(), 0);
    }

    #[test]
    fn pin_document_collects_until_pound_and_holds_no_pin() {
        let doc = gather_pin(
            "https://mfa.example.com/oob/v1/twilio/gather/ab",
            "Sign-in as <bob> to vpn",
            &Voice::default(),
        );
        assert_eq!(
            doc,
            "<Response><Gather action=\"https://mfa.example.com/oob/v1/twilio/gather/ab\" \
             method=\"POST\" finishOnKey=\"#\" timeout=\"15\">\
             <Say>Sign-in as &lt;bob&gt; to vpn To approve, enter your PIN followed by pound. \
             If this was not you, press 9 then pound to deny and report fraud.</Say></Gather>\
             <Say>No PIN entered. Goodbye.</Say></Response>"
        );
        // No numDigits: a 1-key limit would cut the PIN short.
        assert!(!doc.contains("numDigits"));
        assert_eq!(doc.matches("<Gather").count(), 1);
    }

    #[test]
    fn plain_voice_has_no_attributes() {
        assert_eq!(Voice::default().say("Hi"), "<Say>Hi</Say>");
        assert_eq!(
            say_and_hang_up("Approved.", &Voice::default()),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Approved.</Say><Hangup/></Response>"
        );
    }
}

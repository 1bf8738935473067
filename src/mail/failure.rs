//! The mail that tells the administrator a backup unit failed.

use crate::key::Passphrase;

/// What the message says.
pub struct FailureReport<'a> {
    pub host: &'a str,
    pub to: &'a str,
    pub unit: &'a str,
    /// The units whose journal is quoted: the unit, and the units it ran.
    pub journal_units: &'a [&'a str],
    /// systemd's Result= of the unit (`exit-code`, `signal`, `timeout`, …).
    pub result: &'a str,
    pub journal: &'a str,
    /// What is known to be wrong, said before the journal.
    pub cause: Option<&'a str>,
    /// RFC 2822 date.
    pub date: &'a str,
}

/// An address the message may go to: one word with an `@`, nothing a
/// header or a unit file would misread.
pub fn valid_address(address: &str) -> bool {
    let mut parts = address.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && address
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+=".contains(c) || c == '@')
}

/// Replaces every occurrence of the passphrase, should one ever reach the
/// journal, before it goes into a mail.
pub fn redact(text: &str, passphrase: Option<&Passphrase>) -> String {
    let Some(p) = passphrase else {
        return text.to_owned();
    };
    let secret = p.to_env_value();
    match secret.to_str() {
        Some(s) if !s.is_empty() => text.replace(s, "<redacted>"),
        _ => text.to_owned(),
    }
}

/// The whole message, headers and body, for `sendmail -t`.
pub fn failure_mail(r: &FailureReport<'_>) -> String {
    let journal: String = r.journal.lines().map(|l| format!("    {l}\n")).collect();
    let see: String = r.journal_units.iter().map(|u| format!(" -u {u}")).collect();
    let cause = r
        .cause
        .map(|c| format!("Cause: {c}.\n\n"))
        .unwrap_or_default();
    format!(
        "From: mailbackup <root@{host}>\n\
         To: {to}\n\
         Subject: [{host}] {unit} failed ({result})\n\
         Date: {date}\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         Auto-Submitted: auto-generated\n\
         \n\
         {unit} failed on {host} with result \"{result}\".\n\
         \n\
         {cause}\
         The mail services run again (started if the backup had stopped them).\n\
         Until this is fixed, new mail is not backed up.\n\
         \n\
         The last lines of its journal:\n\
         \n\
         {journal}\n\
         To see more: journalctl{see}\n\
         To try again: systemctl start {unit}\n",
        host = r.host,
        to = r.to,
        unit = r.unit,
        result = r.result,
        date = r.date,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert!(valid_address("administrator@box.example.com"));
        assert!(valid_address("ops+backup@example.org"));
        for bad in [
            "",
            "root",
            "a@",
            "@b",
            "a@b@c",
            "a b@c",
            "a@b\nBcc: x@y",
            "a@b,c@d",
        ] {
            assert!(!valid_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_mail_names_the_unit_its_result_and_its_journal() {
        let m = failure_mail(&FailureReport {
            host: "box.example.com",
            to: "administrator@box.example.com",
            unit: "mailbackup.service",
            journal_units: &["mailbackup.service", "mailbackup-snapshot.service"],
            result: "exit-code",
            journal: "line one\nline two",
            cause: None,
            date: "Thu, 26 Nov 2026 07:00:00 +0000",
        });
        assert!(m.starts_with(
            "From: mailbackup <root@box.example.com>\nTo: administrator@box.example.com\n"
        ));
        assert!(m.contains("Subject: [box.example.com] mailbackup.service failed (exit-code)\n"));
        assert!(m.contains("\n\nmailbackup.service failed on box.example.com"));
        assert!(m.contains("    line one\n    line two\n"));
        assert!(!m.contains("Cause:"));
        assert!(m.contains(
            "To see more: journalctl -u mailbackup.service -u mailbackup-snapshot.service\n"
        ));
        let m = failure_mail(&FailureReport {
            host: "box.example.com",
            to: "administrator@box.example.com",
            unit: "mailbackup.service",
            journal_units: &["mailbackup.service"],
            result: "exit-code",
            journal: "line one",
            cause: Some("the backup key /k is missing"),
            date: "Thu, 26 Nov 2026 07:00:00 +0000",
        });
        assert!(m.contains("\"exit-code\".\n\nCause: the backup key /k is missing.\n\nThe mail"));
    }

    #[test]
    fn secrets_are_redacted() {
        let p = Passphrase::from_key_file_bytes(b"s3cret").unwrap();
        assert_eq!(redact("a s3cret b", Some(&p)), "a <redacted> b");
        assert_eq!(redact("a s3cret b", None), "a s3cret b");
    }
}

//! Handing one message to the box's own mail server over SMTP: from a
//! sandbox that may not run the set-gid `sendmail`, the local port 25 is
//! the way in.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The message as SMTP's DATA carries it: CRLF line ends, a line that
/// starts with a dot doubled, and the closing dot.
pub fn data_block(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 64);
    for line in message.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// One reply of the server: its code and its text, all lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

/// Reads one (possibly multi-line) reply.
fn read_reply(from: &mut impl BufRead) -> Result<Reply> {
    let mut text = Vec::new();
    loop {
        let mut line = String::new();
        if from.read_line(&mut line)? == 0 {
            bail!("the mail server closed the connection");
        }
        let line = line.trim_end();
        let (Some(code), sep) = (line.get(..3).and_then(|c| c.parse().ok()), line.get(3..4)) else {
            bail!("the mail server answered {line:?}, which is not SMTP");
        };
        text.push(line.get(4..).unwrap_or("").to_owned());
        if sep != Some("-") {
            return Ok(Reply {
                code,
                text: text.join(" "),
            });
        }
    }
}

/// Sends `message` from `from` to `to` through the SMTP server at `server`.
pub fn send(server: &str, helo: &str, from: &str, to: &str, message: &str) -> Result<()> {
    let addr = server
        .to_socket_addrs()
        .with_context(|| format!("Failed to resolve {server}"))?
        .next()
        .with_context(|| format!("{server} names no address"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(30))
        .with_context(|| format!("Failed to reach the mail server on {server}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    stream.set_write_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut step = |command: Option<String>, want: u16| -> Result<()> {
        if let Some(c) = &command {
            writer.write_all(c.as_bytes())?;
            writer.flush()?;
        }
        let reply = read_reply(&mut reader)?;
        if reply.code != want {
            let what = command
                .as_deref()
                .and_then(|c| c.split_whitespace().next())
                .unwrap_or("the greeting")
                .to_owned();
            bail!(
                "the mail server on {server} answered {what} with {} {}",
                reply.code,
                reply.text
            );
        }
        Ok(())
    };
    step(None, 220)?;
    step(Some(format!("HELO {helo}\r\n")), 250)?;
    step(Some(format!("MAIL FROM:<{from}>\r\n")), 250)?;
    step(Some(format!("RCPT TO:<{to}>\r\n")), 250)?;
    step(Some("DATA\r\n".to_owned()), 354)?;
    step(Some(data_block(message)), 250)?;
    let _ = step(Some("QUIT\r\n".to_owned()), 221);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_crlf_and_dot_stuffed() {
        assert_eq!(
            data_block("Subject: x\n\n.hidden\nline\n"),
            "Subject: x\r\n\r\n..hidden\r\nline\r\n.\r\n"
        );
    }

    #[test]
    fn replies() {
        let mut r = std::io::Cursor::new(
            b"250-box.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n".to_vec(),
        );
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply {
                code: 250,
                text: "box.example.com PIPELINING 8BITMIME".into()
            }
        );
        let mut r = std::io::Cursor::new(b"554 5.7.1 Relay access denied\r\n".to_vec());
        assert_eq!(read_reply(&mut r).unwrap().code, 554);
        assert!(read_reply(&mut std::io::Cursor::new(b"hello\r\n".to_vec())).is_err());
        assert!(read_reply(&mut std::io::Cursor::new(Vec::new())).is_err());
    }

    #[test]
    fn a_dialogue_with_a_server() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = String::new();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            s.write_all(b"220 hi\r\n").unwrap();
            for answer in ["250 ok", "250 ok", "250 ok", "354 go"] {
                reader.read_line(&mut got).unwrap();
                s.write_all(format!("{answer}\r\n").as_bytes()).unwrap();
            }
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                got.push_str(&line);
                if line == ".\r\n" {
                    break;
                }
            }
            s.write_all(b"250 queued\r\n221 bye\r\n").unwrap();
            let _ = reader.read_to_string(&mut got);
            got
        });
        send(
            &addr,
            "box",
            "root@box",
            "admin@box",
            "Subject: s\n\n.dot\n",
        )
        .unwrap();
        let got = server.join().unwrap();
        assert!(
            got.starts_with("HELO box\r\nMAIL FROM:<root@box>\r\nRCPT TO:<admin@box>\r\nDATA\r\n"),
            "{got}"
        );
        assert!(got.contains("Subject: s\r\n\r\n..dot\r\n.\r\n"), "{got}");
    }
}

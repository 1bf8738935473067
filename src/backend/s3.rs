//! A bucket on an S3-compatible server: `s3://[REGION@]HOST[:PORT]/BUCKET[/PREFIX]`
//! (https), or `s3+http://…` for a plain-http endpoint. The key id and the
//! secret are `target_user` and `target_pass`.
//!
//! duplicity reaches it through boto3 (`boto3+s3://BUCKET/PREFIX` with
//! `--s3-endpoint-url`: on Debian's 0.8 plain `s3://` is the old boto2
//! backend, which reads the bucket as a host); mailbackup lists it itself,
//! page by page with ListObjectsV2: rusty-s3 makes the URLs and reads the
//! answers, AWS's own aws-sigv4 signs the requests in their headers, as
//! boto3 does (moto, the test server, checks no other kind of signature).

use std::ffi::OsString;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, UrlStyle};

use super::{Cause, Secret, Unusable};
use crate::duplicity::inventory::{Entry, Inventory, InventoryBuilder};

/// The region requests are signed for when neither the URL nor the host
/// name says; S3-compatible servers other than AWS mostly ignore it.
const DEFAULT_REGION: &str = "us-east-1";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3 {
    https: bool,
    /// As written in the URL, if it was.
    region: Option<String>,
    /// `HOST[:PORT]`.
    host: String,
    bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's top.
    prefix: String,
    key_id: String,
    secret: Secret,
}

impl S3 {
    /// Parses what follows `s3://` (`https`) or `s3+http://`.
    pub fn parse(
        https: bool,
        rest: &str,
        key_id: Option<String>,
        secret: Option<Secret>,
    ) -> Result<S3, String> {
        let scheme = if https { "s3" } else { "s3+http" };
        let form = format!("{scheme}://[REGION@]HOST[:PORT]/BUCKET[/PREFIX]");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (region, host) = match authority.rsplit_once('@') {
            Some((region, host)) => (Some(region.to_owned()), host),
            None => (None, authority),
        };
        if region.as_deref().is_some_and(|r| {
            r.is_empty() || !r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        }) {
            return Err(format!(
                "the region in target {scheme}://…@{host} is not a region name like eu-central-1: write {form}"
            ));
        }
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            && host
                .rsplit_once(':')
                .filter(|(h, _)| !h.ends_with(':') && !h.starts_with('['))
                .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p != 0));
        if !host_ok {
            return Err(format!(
                "target {scheme}://{host}/… has no valid endpoint host: write {form}"
            ));
        }
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let Some(bucket) = parts.next() else {
            return Err(format!(
                "target {scheme}://{host} names no bucket: write {form}"
            ));
        };
        // Buckets made before 2018 in us-east-1 may have capitals and
        // underscores, and up to 255 characters.
        if !(3..=255).contains(&bucket.len())
            || !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(format!(
                "the bucket {bucket:?} in target {scheme}://{host}/{bucket} is not a bucket name \
                 (3 to 63 letters, digits, dots and hyphens)"
            ));
        }
        let prefix = parts.collect::<Vec<_>>().join("/");
        if prefix.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "the prefix {prefix:?} in target {scheme}://{host}/{bucket}/… holds spaces or control characters"
            ));
        }
        let key_id = key_id
            .filter(|k| !k.trim().is_empty())
            .ok_or_else(|| format!("target {scheme}:// needs the access key id as target_user"))?;
        let secret = secret.filter(|s| !s.expose().is_empty()).ok_or_else(|| {
            format!("target {scheme}:// needs the secret access key as target_pass")
        })?;
        Ok(S3 {
            https,
            region,
            host: host.to_owned(),
            bucket: bucket.to_owned(),
            prefix,
            key_id: key_id.trim().to_owned(),
            secret,
        })
    }

    fn endpoint(&self) -> String {
        format!(
            "{}://{}",
            if self.https { "https" } else { "http" },
            self.host
        )
    }

    /// The region: as written, else from an AWS host name
    /// (`s3.eu-central-1.amazonaws.com`, `s3-eu-west-1.amazonaws.com`).
    fn region(&self) -> String {
        if let Some(r) = &self.region {
            return r.clone();
        }
        let name = self.host.split(':').next().unwrap_or_default();
        name.strip_suffix(".amazonaws.com")
            .and_then(|s| {
                s.strip_prefix("s3.")
                    .or_else(|| s.strip_prefix("s3-"))
                    .or_else(|| s.strip_prefix("s3.dualstack."))
            })
            .filter(|r| !r.is_empty() && !r.contains('.'))
            .unwrap_or(DEFAULT_REGION)
            .to_owned()
    }

    pub fn url(&self) -> OsString {
        if self.prefix.is_empty() {
            format!("boto3+s3://{}", self.bucket).into()
        } else {
            format!("boto3+s3://{}/{}", self.bucket, self.prefix).into()
        }
    }

    pub fn describe(&self) -> String {
        let scheme = if self.https { "s3" } else { "s3+http" };
        let region = self
            .region
            .as_deref()
            .map(|r| format!("{r}@"))
            .unwrap_or_default();
        let mut d = format!("{scheme}://{region}{}/{}", self.host, self.bucket);
        if !self.prefix.is_empty() {
            d.push('/');
            d.push_str(&self.prefix);
        }
        d
    }

    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    pub fn duplicity_options(&self) -> Vec<OsString> {
        vec![format!("--s3-endpoint-url={}", self.endpoint()).into()]
    }

    pub fn environment(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("AWS_ACCESS_KEY_ID", self.key_id.clone().into()),
            ("AWS_SECRET_ACCESS_KEY", self.secret.expose().into()),
            ("AWS_DEFAULT_REGION", self.region().into()),
            // boto3 >= 1.36 sends and demands checksums that many
            // S3-compatible servers do not know.
            ("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_REQUIRED".into()),
            ("AWS_RESPONSE_CHECKSUM_VALIDATION", "WHEN_REQUIRED".into()),
        ]
    }

    /// The key prefix of the backup's files, `PREFIX/` or empty.
    fn key_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    fn client(&self) -> Result<Client<'_>> {
        let endpoint = self
            .endpoint()
            .parse()
            .map_err(|e| anyhow!("{}: the endpoint is not a URL: {e}", self.describe()))?;
        // Path style, as boto3 uses with an endpoint URL: no DNS name per
        // bucket needed, and bucket names with dots work over https.
        let bucket = Bucket::new(endpoint, UrlStyle::Path, self.bucket.clone(), self.region())
            .map_err(|e| anyhow!("{}: {e}", self.describe()))?;
        let agent = http_agent();
        Ok(Client {
            target: self,
            bucket,
            agent,
        })
    }

    pub fn inventory(&self) -> Result<Inventory> {
        let client = self.client()?;
        let prefix = self.key_prefix();
        let mut builder = InventoryBuilder::default();
        let mut token: Option<String> = None;
        loop {
            let page = client.list(&prefix, token.as_deref(), None)?;
            for object in &page.contents {
                let name = object.key.strip_prefix(&prefix).unwrap_or(&object.key);
                builder.add(Entry {
                    name: name.as_bytes(),
                    size: object.size,
                    // Deeper keys are not duplicity's.
                    is_file: !name.is_empty() && !name.contains('/'),
                });
            }
            match page.next_continuation_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(builder.finish())
    }

    pub fn check(&self) -> Result<String> {
        let client = self.client()?;
        let prefix = self.key_prefix();
        client.list(&prefix, None, Some(1))?;
        let key = format!("{prefix}{}", super::check_file_name());
        client.put(&key, b"mailbackup check\n")?;
        client.delete(&key)?;
        let inventory = self.inventory()?;
        Ok(format!(
            "{} backups; a test file was written and deleted",
            inventory.backups.len()
        ))
    }
}

/// Signed requests to one bucket.
struct Client<'a> {
    target: &'a S3,
    bucket: Bucket,
    agent: ureq::Agent,
}

impl Client<'_> {
    fn list(
        &self,
        prefix: &str,
        token: Option<&str>,
        max_keys: Option<usize>,
    ) -> Result<rusty_s3::actions::ListObjectsV2Response> {
        let mut url = self.bucket.base_url().clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("list-type", "2");
            query.append_pair("encoding-type", "url");
            if !prefix.is_empty() {
                query.append_pair("prefix", prefix);
            }
            if let Some(t) = token {
                query.append_pair("continuation-token", t);
            }
            if let Some(n) = max_keys {
                query.append_pair("max-keys", &n.to_string());
            }
        }
        let body = self.send("GET", url.as_str(), b"", "cannot be listed")?;
        ListObjectsV2::parse_response(&body).map_err(|e| {
            anyhow!(
                "{} cannot be listed: the server's answer is not a bucket listing ({e})",
                self.target.describe()
            )
        })
    }

    fn put(&self, key: &str, content: &[u8]) -> Result<()> {
        let url = self.object_url(key)?;
        self.send("PUT", &url, content, "cannot be written")?;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let url = self.object_url(key)?;
        self.send("DELETE", &url, b"", "does not let a file be deleted")?;
        Ok(())
    }

    fn object_url(&self, key: &str) -> Result<String> {
        self.bucket
            .object_url(key)
            .map(|u| u.to_string())
            .map_err(|e| anyhow!("{}: {e}", self.target.describe()))
    }

    /// Sends one request, signed in its headers as boto3 (and so
    /// duplicity) signs them; the body of a successful answer, or else the
    /// cause of the failure.
    fn send(&self, method: &str, url: &str, body: &[u8], doing: &str) -> Result<String> {
        let t = self.target;
        let what = t.describe();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let identity = Credentials::new(
            t.key_id.clone(),
            t.secret.expose().to_owned(),
            None,
            None,
            "custom.yaml",
        )
        .into();
        let region = t.region();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| anyhow!("{what}: cannot sign the request: {e}"))?
            .into();
        let signable =
            SignableRequest::new(method, url, std::iter::empty(), SignableBody::Bytes(body))
                .map_err(|e| anyhow!("{what}: cannot sign the request: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| anyhow!("{what}: cannot sign the request: {e}"))?
            .into_parts();
        let mut request = ureq::http::Request::builder().method(method).uri(url);
        for header in instructions.headers() {
            request = request.header(header.0, header.1);
        }
        let request = request
            .body(body.to_vec())
            .map_err(|e| anyhow!("{what}: {e}"))?;
        let unusable = |(cause, text): (Cause, String)| {
            Unusable::error(cause, format!("{what} {doing}: {text}"))
        };
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| unusable(transport_failure(&e, &t.host)))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| unusable(transport_failure(&e, &t.host)))?;
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(unusable(http_failure(status, &text, t)))
    }
}

/// A failure to reach the server: its cause, from ureq's error variant and
/// the I/O error inside it, and the message for people.
fn transport_failure(e: &ureq::Error, host: &str) -> (Cause, String) {
    transport_failure_with(e, host, "s3+http:// is plain http")
}

/// `transport_failure` for any HTTP target: `plain_http` says how a
/// plain-http endpoint is written, for a failed TLS handshake.
pub(super) fn transport_failure_with(
    e: &ureq::Error,
    host: &str,
    plain_http: &str,
) -> (Cause, String) {
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let port = host
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(443);
    let cause = match Cause::of_transport(e) {
        // std's failed name lookup has no kind of its own: look again (the
        // port matters little: a connection there or not is unreachable).
        Cause::Other if matches!(e, ureq::Error::Io(_)) => super::cause::probe(name, port)
            .err()
            .map_or(Cause::Unreachable, |u| u.cause()),
        cause => cause,
    };
    let text = match cause {
        Cause::NameNotResolved => format!("name not resolved: {name} is not a known host name"),
        Cause::NoNetwork => super::NO_NETWORK.to_owned(),
        Cause::TlsFailure => {
            let why: &dyn std::fmt::Display = match e {
                ureq::Error::Io(io) => io,
                e => e,
            };
            format!("TLS with {host} failed ({why}): is it an https endpoint? ({plain_http})")
        }
        _ => match e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("unreachable: {host} refused the connection")
            }
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                format!("unreachable: no answer from {host}")
            }
            ureq::Error::Io(io) => format!("unreachable: {host}: {io}"),
            ureq::Error::Timeout(_) => format!("unreachable: no answer from {host}"),
            ureq::Error::ConnectionFailed => format!("unreachable: no connection to {host}"),
            _ => format!("{host}: {e}"),
        },
    };
    (cause, text)
}

/// The cause of an S3 error answer: its `<Code>`, else its HTTP status.
fn s3_cause(status: u16, code: &str) -> Cause {
    match code {
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken"
        | "ExpiredToken"
        | "InvalidSecurity" => Cause::BadCredentials,
        "NoSuchBucket" => Cause::NoSuchBucket,
        "AccessDenied" | "AllAccessDisabled" => Cause::AccessDenied,
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => Cause::WrongRegion,
        _ => match status {
            403 => Cause::AccessDenied,
            404 => Cause::NoSuchBucket,
            _ => Cause::Other,
        },
    }
}

/// An S3 error answer: its cause (`s3_cause`) and the message for people.
fn http_failure(status: u16, body: &str, t: &S3) -> (Cause, String) {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        body.split_once(&open)
            .and_then(|(_, rest)| rest.split_once(&close))
            .map(|(v, _)| v.trim().to_owned())
    };
    let code = tag("Code").unwrap_or_default();
    let message = tag("Message").unwrap_or_default();
    let cause = s3_cause(status, &code);
    let text = match cause {
        Cause::BadCredentials => format!(
            "bad credentials: {} refused the access key id {} or its secret \
             (target_user and target_pass in custom.yaml) [{code}]",
            t.host, t.key_id
        ),
        Cause::NoSuchBucket if code == "NoSuchBucket" => format!(
            "no such bucket: there is no bucket {} on {}: create it (duplicity does not)",
            t.bucket, t.host
        ),
        Cause::NoSuchBucket => format!(
            "no such bucket: {} answered 404 for bucket {} {code}",
            t.host, t.bucket
        ),
        Cause::AccessDenied if !matches!(code.as_str(), "AccessDenied" | "AllAccessDisabled") => {
            format!(
                "bad credentials or access denied: {} answered 403 {code} {message}",
                t.host
            )
        }
        Cause::AccessDenied => format!(
            "access denied: the key {} may not do this in bucket {} [{code}]",
            t.key_id, t.bucket
        ),
        Cause::WrongRegion => format!(
            "wrong region: bucket {} is in another region than {}; write it in the URL, \
             s3://REGION@{}/{}",
            t.bucket,
            t.region(),
            t.host,
            t.bucket
        ),
        _ => format!("{} answered HTTP {status} {code} {message}", t.host)
            .trim_end()
            .to_owned(),
    };
    (cause, text)
}

/// The HTTP client of the object stores (S3, B2): an answer's status is
/// read, not an error; 20 s to connect, 5 minutes for a request.
pub(super) fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(https: bool, rest: &str) -> Result<S3, String> {
        S3::parse(
            https,
            rest,
            Some("AKIAEXAMPLE".into()),
            Some(Secret::new("s3cr3t/+x".into())),
        )
    }

    #[test]
    fn urls_options_and_environment() {
        let t = parse(true, "s3.eu-central-1.amazonaws.com/my-bucket/some/prefix/").unwrap();
        assert_eq!(t.url(), "boto3+s3://my-bucket/some/prefix");
        assert_eq!(
            t.duplicity_options(),
            ["--s3-endpoint-url=https://s3.eu-central-1.amazonaws.com"]
        );
        assert_eq!(t.region(), "eu-central-1");
        assert_eq!(t.key_prefix(), "some/prefix/");
        let env = t.environment();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("AWS_ACCESS_KEY_ID").unwrap(), "AKIAEXAMPLE");
        assert_eq!(get("AWS_SECRET_ACCESS_KEY").unwrap(), "s3cr3t/+x");
        assert_eq!(get("AWS_DEFAULT_REGION").unwrap(), "eu-central-1");
        assert_eq!(
            get("AWS_REQUEST_CHECKSUM_CALCULATION").unwrap(),
            "WHEN_REQUIRED"
        );
        assert_eq!(
            get("AWS_RESPONSE_CHECKSUM_VALIDATION").unwrap(),
            "WHEN_REQUIRED"
        );
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert!(!t.describe().contains("s3cr3t"));

        // No prefix, a region, a port, plain http.
        let t = parse(false, "garage@127.0.0.1:9000/backups").unwrap();
        assert_eq!(t.url(), "boto3+s3://backups");
        assert_eq!(t.key_prefix(), "");
        assert_eq!(
            t.duplicity_options(),
            ["--s3-endpoint-url=http://127.0.0.1:9000"]
        );
        assert_eq!(t.region(), "garage");
        assert_eq!(t.describe(), "s3+http://garage@127.0.0.1:9000/backups");
        assert_eq!(parse(true, "minio.lan/b-1/").unwrap().region(), "us-east-1");
    }

    #[test]
    fn bad_urls_and_missing_keys_are_refused() {
        for bad in [
            "",
            "host",
            "host/",
            "host/ab",
            "host/b!d",
            "host:99999/bucket",
            "@host/bucket",
            "re gion@host/bucket",
            "host/bucket/with space",
        ] {
            assert!(parse(true, bad).is_err(), "{bad}");
        }
        let e = S3::parse(true, "h/bucket", None, Some(Secret::new("x".into()))).unwrap_err();
        assert!(e.contains("target_user"), "{e}");
        let e = S3::parse(true, "h/bucket", Some("k".into()), None).unwrap_err();
        assert!(e.contains("target_pass"), "{e}");
    }

    #[test]
    fn server_errors_are_named_by_cause() {
        let t = parse(false, "127.0.0.1:9000/bucket").unwrap();
        let body = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        for (status, code, cause, words) in [
            (
                403,
                "SignatureDoesNotMatch",
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                403,
                "InvalidAccessKeyId",
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                400,
                "ExpiredToken",
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                404,
                "NoSuchBucket",
                Cause::NoSuchBucket,
                "no such bucket: there is no bucket",
            ),
            (
                404,
                "",
                Cause::NoSuchBucket,
                "no such bucket: 127.0.0.1:9000 answered 404",
            ),
            (403, "AccessDenied", Cause::AccessDenied, "access denied:"),
            (
                403,
                "",
                Cause::AccessDenied,
                "bad credentials or access denied:",
            ),
            (
                301,
                "PermanentRedirect",
                Cause::WrongRegion,
                "wrong region:",
            ),
            (
                400,
                "AuthorizationHeaderMalformed",
                Cause::WrongRegion,
                "wrong region:",
            ),
            (301, "", Cause::Other, "127.0.0.1:9000 answered HTTP 301"),
            (
                500,
                "InternalError",
                Cause::Other,
                "127.0.0.1:9000 answered HTTP 500",
            ),
        ] {
            let text = if code.is_empty() {
                "oops".to_owned()
            } else {
                body(code)
            };
            let (got, message) = http_failure(status, &text, &t);
            assert_eq!(got, cause, "{status} {code}");
            assert!(message.starts_with(words), "{status} {code}: {message}");
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn https_to_a_plain_http_endpoint_says_which_to_write() {
        // What rustls's stream returns when a plain-http server answers its hello.
        let tls = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let (cause, text) = transport_failure(&ureq::Error::Io(io), "127.0.0.1:9000");
        assert_eq!(cause, Cause::TlsFailure);
        assert!(
            text.starts_with("TLS with 127.0.0.1:9000 failed") && text.contains("s3+http://"),
            "{text}"
        );
    }

    #[test]
    fn transport_failures_are_named_by_cause() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        for (e, cause, words) in [
            (
                ureq::Error::HostNotFound,
                Cause::NameNotResolved,
                "name not resolved: h.example",
            ),
            (
                ureq::Error::Io(refused),
                Cause::Unreachable,
                "unreachable: h.example:9000 refused",
            ),
            (
                ureq::Error::ConnectionFailed,
                Cause::Unreachable,
                "unreachable: no connection",
            ),
            (
                ureq::Error::Io(std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
                Cause::NoNetwork,
                "no network here",
            ),
        ] {
            let (got, text) = transport_failure(&e, "h.example:9000");
            assert_eq!(got, cause, "{e}");
            assert!(text.starts_with(words), "{text}");
        }
    }
}

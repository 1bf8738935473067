//! A Backblaze B2 bucket, as Mail-in-a-Box writes it:
//! `b2://KEYID:KEY@BUCKET[/PREFIX]`, the application key URL-quoted.
//!
//! duplicity reaches it through its own b2 backend (b2sdk, B2's native
//! API), which takes master application keys as well as restricted ones
//! (B2's S3-compatible API refuses a master key). Its URL carries the key
//! id only, `b2://KEYID@BUCKET/PREFIX`; the key goes in its environment:
//! duplicity 0.8 reads `FTP_PASSWORD`, 2.x and later `BACKEND_PASSWORD`.
//!
//! mailbackup lists and checks the bucket itself through the native API:
//! `b2_authorize_account`, `b2_list_buckets` (the bucket's id, and whether
//! it exists: duplicity would create a missing bucket), then
//! `b2_list_file_names` page by page; `check` also writes and deletes a
//! file (`b2_get_upload_url`, `b2_upload_file`, `b2_delete_file_version`).

use std::ffi::OsString;

use anyhow::{anyhow, Result};
use base64::Engine;
use serde_json::{json, Value};

use super::s3::{http_agent, transport_failure_with};
use super::{Cause, Secret, Unusable};
use crate::duplicity::inventory::{Entry, Inventory, InventoryBuilder};

/// Where every B2 account is authorized.
const PRODUCTION_API: &str = "https://api.backblazeb2.com";

/// Tests only: the base URL of a local server speaking B2's native API,
/// instead of `PRODUCTION_API`.
pub const API_URL_VARIABLE: &str = "MAILBACKUP_B2_API_URL";

/// The most names `b2_list_file_names` returns in one answer.
const PAGE: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2 {
    key_id: String,
    key: Secret,
    bucket: String,
    /// Without leading or trailing `/`; empty for the bucket's top.
    prefix: String,
}

const FORM: &str = "b2://KEYID:KEY@BUCKET[/PATH] (the key URL-quoted)";

impl B2 {
    /// Parses what follows `b2://`. An error never repeats the key.
    pub fn parse(rest: &str) -> Result<B2, String> {
        let Some((credentials, place)) = rest.split_once('@') else {
            return Err(format!(
                "target b2://… names no application key: write {FORM}"
            ));
        };
        let (key_id, quoted_key) = credentials.split_once(':').unwrap_or((credentials, ""));
        if key_id.is_empty() || !key_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "the key id in target b2://…@{place} is not a B2 application key id \
                 (letters and digits): write {FORM}"
            ));
        }
        let key = percent_encoding::percent_decode_str(quoted_key)
            .decode_utf8()
            .map_err(|_| format!("the application key in target b2://{key_id}:… is not URL-quoted UTF-8: write {FORM}"))?
            .into_owned();
        if key.is_empty() || key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "target b2://…@{place} has no usable application key: write {FORM}"
            ));
        }
        let (bucket, prefix) = place.split_once('/').unwrap_or((place, ""));
        // B2's rule: 6 to 63 letters, digits and hyphens.
        if !(6..=63).contains(&bucket.len())
            || !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!(
                "the bucket {bucket:?} in target b2://{key_id}:…@{bucket} is not a B2 bucket name \
                 (6 to 63 letters, digits and hyphens)"
            ));
        }
        let prefix = prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        // duplicity reads `@` as the end of the key id, and pastes the
        // path into its own URL.
        if prefix
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "@?#%\\".contains(c))
        {
            return Err(format!(
                "the path {prefix:?} in target b2://{key_id}:…@{bucket}/… holds spaces, \
                 control characters or one of @ ? # % \\"
            ));
        }
        Ok(B2 {
            key_id: key_id.to_owned(),
            key: Secret::new(key),
            bucket: bucket.to_owned(),
            prefix,
        })
    }

    pub fn url(&self) -> OsString {
        let mut url = format!("b2://{}@{}", self.key_id, self.bucket);
        if !self.prefix.is_empty() {
            url.push('/');
            url.push_str(&self.prefix);
        }
        url.into()
    }

    pub fn describe(&self) -> String {
        // The URL without the key is the key id's: no secret in it.
        self.url().to_string_lossy().into_owned()
    }

    pub fn secret(&self) -> &Secret {
        &self.key
    }

    pub fn environment(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("FTP_PASSWORD", self.key.expose().into()),
            ("BACKEND_PASSWORD", self.key.expose().into()),
        ]
    }

    /// The name prefix of the backup's files, `PREFIX/` or empty.
    fn name_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    pub fn inventory(&self) -> Result<Inventory> {
        let session = Session::open(self)?;
        session.inventory(&self.name_prefix())
    }

    pub fn check(&self) -> Result<String> {
        let session = Session::open(self)?;
        let prefix = self.name_prefix();
        session.list_page(&prefix, None, 1)?;
        let name = format!("{prefix}{}", super::check_file_name());
        let file_id = session.upload(&name, b"mailbackup check\n")?;
        session.call(
            "b2_delete_file_version",
            &json!({"fileName": name, "fileId": file_id}),
            "does not let a file be deleted",
        )?;
        let inventory = session.inventory(&prefix)?;
        Ok(format!(
            "{} backups; a test file was written and deleted",
            inventory.backups.len()
        ))
    }
}

/// An authorized account and the bucket's id.
struct Session<'a> {
    target: &'a B2,
    agent: ureq::Agent,
    api_url: String,
    token: String,
    bucket_id: String,
}

impl<'a> Session<'a> {
    /// Authorizes the key and finds the bucket: an error when the key is
    /// refused, may not reach the bucket, or the bucket does not exist.
    fn open(target: &'a B2) -> Result<Session<'a>> {
        let base = std::env::var(API_URL_VARIABLE).unwrap_or_else(|_| PRODUCTION_API.to_owned());
        let agent = http_agent();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            target.key_id,
            target.key.expose()
        ));
        let url = format!("{base}/b2api/v3/b2_authorize_account");
        let request = ureq::http::Request::get(&url)
            .header("Authorization", format!("Basic {basic}"))
            .body(Vec::new())
            .map_err(|e| anyhow!("{}: {e}", target.describe()))?;
        let answer = send(&agent, request, &base, target, "cannot be reached", true)?;
        let storage = &answer["apiInfo"]["storageApi"];
        let (Some(account), Some(token), Some(api_url)) = (
            answer["accountId"].as_str(),
            answer["authorizationToken"].as_str(),
            storage["apiUrl"].as_str(),
        ) else {
            return Err(anyhow!(
                "{}: {base} answered b2_authorize_account without an account, token or API URL",
                target.describe()
            ));
        };
        if let Some(only) = storage["bucketName"]
            .as_str()
            .filter(|b| *b != target.bucket)
        {
            return Err(Unusable::error(
                Cause::AccessDenied,
                format!(
                    "{} cannot be reached: access denied: the application key {} may reach only \
                     bucket {only}",
                    target.describe(),
                    target.key_id
                ),
            ));
        }
        let mut session = Session {
            target,
            agent,
            api_url: api_url.to_owned(),
            token: token.to_owned(),
            bucket_id: String::new(),
        };
        session.bucket_id = session.find_bucket(account)?;
        Ok(session)
    }

    /// The bucket's id; an error naming the cause when it does not exist.
    fn find_bucket(&self, account: &str) -> Result<String> {
        let t = self.target;
        let answer = self.call(
            "b2_list_buckets",
            &json!({"accountId": account, "bucketName": t.bucket}),
            "cannot be listed",
        )?;
        let id = answer["buckets"].as_array().and_then(|buckets| {
            buckets
                .iter()
                .find(|b| b["bucketName"].as_str() == Some(&t.bucket))
                .and_then(|b| b["bucketId"].as_str())
        });
        match id {
            Some(id) => Ok(id.to_owned()),
            None => Err(Unusable::error(
                Cause::NoSuchBucket,
                format!(
                    "{} cannot be listed: no such bucket: there is no bucket {} in the account \
                     of key {}: create it at Backblaze (mailbackup does not, so that a typing \
                     error makes no new bucket)",
                    t.describe(),
                    t.bucket,
                    t.key_id
                ),
            )),
        }
    }

    /// One call of the native API with a JSON body; its JSON answer.
    fn call(&self, name: &str, body: &Value, doing: &str) -> Result<Value> {
        let url = format!("{}/b2api/v3/{name}", self.api_url);
        let request = ureq::http::Request::post(&url)
            .header("Authorization", &self.token)
            .header("Content-Type", "application/json")
            .body(body.to_string().into_bytes())
            .map_err(|e| anyhow!("{}: {e}", self.target.describe()))?;
        send(
            &self.agent,
            request,
            &self.api_url,
            self.target,
            doing,
            false,
        )
    }

    fn list_page(&self, prefix: &str, start: Option<&str>, count: u32) -> Result<Value> {
        let mut body = json!({"bucketId": self.bucket_id, "maxFileCount": count});
        if !prefix.is_empty() {
            body["prefix"] = json!(prefix);
        }
        if let Some(start) = start {
            body["startFileName"] = json!(start);
        }
        self.call("b2_list_file_names", &body, "cannot be listed")
    }

    fn inventory(&self, prefix: &str) -> Result<Inventory> {
        let mut builder = InventoryBuilder::default();
        let mut start: Option<String> = None;
        loop {
            let page = self.list_page(prefix, start.as_deref(), PAGE)?;
            let files = page["files"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            for file in files {
                let Some(full) = file["fileName"].as_str() else {
                    continue;
                };
                let name = full.strip_prefix(prefix).unwrap_or(full);
                builder.add(Entry {
                    name: name.as_bytes(),
                    size: file["contentLength"].as_u64().unwrap_or(0),
                    // Deeper names and unfinished large files are not duplicity's.
                    is_file: file["action"].as_str() == Some("upload")
                        && !name.is_empty()
                        && !name.contains('/'),
                });
            }
            match page["nextFileName"].as_str() {
                Some(next) if !files.is_empty() => start = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(builder.finish())
    }

    /// Uploads a small file; its file id.
    fn upload(&self, name: &str, content: &[u8]) -> Result<String> {
        let doing = "cannot be written";
        let place = self.call(
            "b2_get_upload_url",
            &json!({"bucketId": self.bucket_id}),
            doing,
        )?;
        let (Some(url), Some(token)) = (
            place["uploadUrl"].as_str(),
            place["authorizationToken"].as_str(),
        ) else {
            return Err(anyhow!(
                "{} {doing}: b2_get_upload_url gave no upload URL",
                self.target.describe()
            ));
        };
        let quoted = percent_encoding::utf8_percent_encode(name, NAME_QUOTING).to_string();
        let request = ureq::http::Request::post(url)
            .header("Authorization", token)
            .header("X-Bz-File-Name", quoted)
            .header("Content-Type", "text/plain")
            // B2's documented way to skip the checksum of a file this small.
            .header("X-Bz-Content-Sha1", "do_not_verify")
            .body(content.to_vec())
            .map_err(|e| anyhow!("{}: {e}", self.target.describe()))?;
        let answer = send(&self.agent, request, url, self.target, doing, false)?;
        answer["fileId"].as_str().map(str::to_owned).ok_or_else(|| {
            anyhow!(
                "{} {doing}: b2_upload_file gave no file id",
                self.target.describe()
            )
        })
    }
}

/// Everything but letters, digits and `-._~/` is percent-quoted in a file name.
const NAME_QUOTING: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Sends one request; the JSON answer, or else the cause of the failure.
fn send(
    agent: &ureq::Agent,
    request: ureq::http::Request<Vec<u8>>,
    base: &str,
    t: &B2,
    doing: &str,
    authorizing: bool,
) -> Result<Value> {
    let what = t.describe();
    let host = host_of(base);
    let unusable = |(cause, text): (Cause, String)| {
        Unusable::error(cause, t.key.redact(&format!("{what} {doing}: {text}")))
    };
    let plain_http = "B2's API is https only: is a proxy in the way?";
    let mut response = agent
        .run(request)
        .map_err(|e| unusable(transport_failure_with(&e, host, plain_http)))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| unusable(transport_failure_with(&e, host, plain_http)))?;
    let answer: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        return answer.ok_or_else(|| anyhow!("{what} {doing}: {host} answered with no JSON"));
    }
    let code = answer
        .as_ref()
        .and_then(|a| a["code"].as_str())
        .unwrap_or_default();
    let message = answer
        .as_ref()
        .and_then(|a| a["message"].as_str())
        .unwrap_or_default();
    Err(unusable(http_failure(
        status,
        code,
        message,
        authorizing,
        t,
    )))
}

/// `HOST[:PORT]` of a URL.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The cause of a B2 error answer, by its status and `code`: any 401 while
/// authorizing is the key refused; later, a token refused is too, while
/// `unauthorized` is a key that may not do this.
fn b2_cause(status: u16, code: &str, authorizing: bool) -> Cause {
    match (status, code) {
        (401, _) if authorizing => Cause::BadCredentials,
        (401, "bad_auth_token" | "expired_auth_token") => Cause::BadCredentials,
        (401, _) | (403, "access_denied") => Cause::AccessDenied,
        (404, _) => Cause::NoSuchBucket,
        _ => Cause::Other,
    }
}

/// A B2 error answer: its cause (`b2_cause`) and the message for people.
fn http_failure(
    status: u16,
    code: &str,
    message: &str,
    authorizing: bool,
    t: &B2,
) -> (Cause, String) {
    let cause = b2_cause(status, code, authorizing);
    let text = match cause {
        Cause::BadCredentials => format!(
            "bad credentials: B2 refused the application key id {} or its key \
             (target in custom.yaml) [{code}]",
            t.key_id
        ),
        Cause::AccessDenied => format!(
            "access denied: the application key {} may not do this in bucket {} [{code}] {message}",
            t.key_id, t.bucket
        ),
        Cause::NoSuchBucket => format!(
            "no such bucket: B2 answered 404 for bucket {} [{code}] {message}",
            t.bucket
        ),
        _ => format!("B2 answered HTTP {status} [{code}] {message}"),
    };
    (cause, text.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_in_a_box_urls_parse_and_the_key_stays_out_of_the_url() {
        let t = B2::parse("0012ab34cd:K001a%2Fb%2Bc%3D@my-bucket/box/mail/").unwrap();
        assert_eq!(t.url(), "b2://0012ab34cd@my-bucket/box/mail");
        assert_eq!(t.describe(), "b2://0012ab34cd@my-bucket/box/mail");
        assert_eq!(t.name_prefix(), "box/mail/");
        assert!(t.key.occurs_in("K001a/b+c="));
        let env = t.environment();
        for name in ["FTP_PASSWORD", "BACKEND_PASSWORD"] {
            let value = env.iter().find(|(n, _)| *n == name).unwrap();
            assert_eq!(value.1, "K001a/b+c=", "{name}");
        }
        assert!(!format!("{t:?}").contains("K001a"));
        let t = B2::parse("0012ab34cd:plainkey@my-bucket").unwrap();
        assert_eq!(t.url(), "b2://0012ab34cd@my-bucket");
        assert_eq!(t.name_prefix(), "");
    }

    #[test]
    fn bad_urls_are_refused_without_the_key() {
        for bad in [
            "my-bucket/box",
            ":K001secret@my-bucket",
            "id-1:K001secret@my-bucket",
            "0012ab:@my-bucket",
            "0012ab:K001secret@bkt",
            "0012ab:K001secret@my_bucket",
            "0012ab:K001secret@my-bucket/a b",
            "0012ab:K001secret@my-bucket/a@b",
            "0012ab:K001secret%FF@my-bucket",
        ] {
            let e = B2::parse(bad).unwrap_err();
            assert!(!e.contains("K001secret"), "{bad}: {e}");
            assert!(e.contains("b2://"), "{bad}: {e}");
        }
    }

    #[test]
    fn server_errors_are_named_by_cause() {
        let t = B2::parse("0012ab:K001secret@my-bucket").unwrap();
        for (status, code, authorizing, cause, words) in [
            (
                401,
                "unauthorized",
                true,
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                401,
                "bad_auth_token",
                true,
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                401,
                "bad_auth_token",
                false,
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                401,
                "expired_auth_token",
                false,
                Cause::BadCredentials,
                "bad credentials:",
            ),
            (
                401,
                "unauthorized",
                false,
                Cause::AccessDenied,
                "access denied:",
            ),
            (
                403,
                "access_denied",
                false,
                Cause::AccessDenied,
                "access denied:",
            ),
            (
                404,
                "not_found",
                false,
                Cause::NoSuchBucket,
                "no such bucket:",
            ),
            (
                400,
                "bad_request",
                false,
                Cause::Other,
                "B2 answered HTTP 400",
            ),
            (
                503,
                "service_unavailable",
                false,
                Cause::Other,
                "B2 answered HTTP 503",
            ),
            (
                403,
                "cap_exceeded",
                false,
                Cause::Other,
                "B2 answered HTTP 403",
            ),
        ] {
            let (got, text) = http_failure(status, code, "m", authorizing, &t);
            assert_eq!(got, cause, "{status} {code}");
            assert!(text.starts_with(words), "{status} {code}: {text}");
            assert!(!text.contains("K001secret"), "{text}");
        }
    }

    #[test]
    fn hosts_of_urls() {
        assert_eq!(
            host_of("https://api.backblazeb2.com"),
            "api.backblazeb2.com"
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080/b2api/v3/x"),
            "127.0.0.1:8080"
        );
    }
}

//! The channels: email over SMTP (lettre) and webhooks over HTTPS
//! (reqwest), both on rustls with the ring provider. Each send is bounded
//! by the channel's timeout as a whole (lettre's own timeout covers only the
//! connect) and reports whether it was delivered, should be retried, or can
//! never succeed.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate as SmtpCertificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use ring::hmac;

use super::config::{EmailChannel, Filter, NotifyConfig, SmtpTls, WebhookChannel, WebhookFormat};
use super::message::{self, Message};

/// The outcome of one send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendResult {
    Delivered(String),
    /// Worth trying again; `after` is the receiver's own wish (Retry-After).
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// Will never succeed as it is.
    Dead(String),
}

use crate::input::secret as read_secret;

fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, String> {
    crate::input::read(path, crate::input::MAX_CERT_FILE)
        .map_err(|e| format!("{}: cannot read the CA file: {e}", path.display()))
}

pub struct EmailSender {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
}

impl EmailSender {
    pub fn new(c: &EmailChannel) -> Result<EmailSender, String> {
        let ctx = |m: String| format!("email channel '{}': {m}", c.name);
        let port = c.port.unwrap_or(match c.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Implicit => 465,
            SmtpTls::None => 25,
        });
        let tls = match c.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(c.host.clone());
                if let Some(ca) = &c.ca_file {
                    let pem = read_ca(ca).map_err(ctx)?;
                    let cert = SmtpCertificate::from_pem(&pem).map_err(|e| {
                        ctx(format!("{}: not a PEM certificate ({e})", ca.display()))
                    })?;
                    params = params.add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| ctx(format!("TLS setup: {e}")))?;
                if mode == SmtpTls::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let timeout = Duration::from_secs(c.timeout_seconds.into());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some(user) = &c.username {
            let password = read_secret(
                c.password_file.as_deref(),
                c.password_env.as_deref(),
                "SMTP password",
            )
            .map_err(ctx)?
            .unwrap_or_default();
            builder = builder.credentials(Credentials::new(user.clone(), password.to_string()));
        }
        let parse = |a: &str| a.parse::<Mailbox>().map_err(|e| ctx(format!("'{a}': {e}")));
        Ok(EmailSender {
            name: c.name.clone(),
            transport: builder.build(),
            from: parse(&c.from)?,
            to: c.to.iter().map(|a| parse(a)).collect::<Result<_, _>>()?,
            timeout,
        })
    }

    fn build(&self, m: &Message) -> Result<lettre::Message, String> {
        let mut b = lettre::Message::builder()
            .from(self.from.clone())
            .subject(m.subject.clone())
            .message_id(Some(format!(
                "<{}.{}@certroll>",
                m.event_id,
                self.name.replace([' ', '@', '<', '>'], "-")
            )))
            .user_agent(format!("certroll/{}", env!("CARGO_PKG_VERSION")))
            .header(ContentType::TEXT_PLAIN)
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Certroll-Event-Id"),
                m.event_id.clone(),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Certroll-Event"),
                m.kind.clone(),
            ));
        for to in &self.to {
            b = b.to(to.clone());
        }
        b.body(m.body.clone())
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    pub async fn send(&self, m: &Message) -> SendResult {
        let email = match self.build(m) {
            Ok(e) => e,
            Err(e) => return SendResult::Dead(e),
        };
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Err(_) => SendResult::Retry {
                error: format!("no answer within {} s", self.timeout.as_secs()),
                after: None,
            },
            Ok(Ok(resp)) => SendResult::Delivered(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Ok(Err(e)) if e.is_permanent() => {
                SendResult::Dead(format!("refused by the mail server: {e}"))
            }
            Ok(Err(e)) => SendResult::Retry {
                error: format!("{e}"),
                after: None,
            },
        }
    }
}

pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    format: WebhookFormat,
    secret: Option<hmac::Key>,
    timeout: Duration,
}

/// rustls with ring, Mozilla's roots and the channel's own CA, if any.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = read_ca(path)?;
        let text = String::from_utf8_lossy(&pem);
        let blocks = crate::cert::pem::parse_blocks(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut n = 0;
        for b in blocks.into_iter().filter(|b| b.label == "CERTIFICATE") {
            roots
                .add(rustls::pki_types::CertificateDer::from(b.der))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            n += 1;
        }
        if n == 0 {
            return Err(format!("{}: no certificate in the CA file", path.display()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `sha256=<hex HMAC-SHA256 of body>`, as GitHub's X-Hub-Signature-256.
pub fn signature(key: &hmac::Key, body: &[u8]) -> String {
    format!(
        "sha256={}",
        crate::cert::x509::hex_upper(hmac::sign(key, body).as_ref()).to_ascii_lowercase()
    )
}

/// Seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(24 * 3600)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

impl WebhookSender {
    pub fn new(c: &WebhookChannel) -> Result<WebhookSender, String> {
        let ctx = |m: String| format!("webhook channel '{}': {m}", c.name);
        let timeout = Duration::from_secs(c.timeout_seconds.into());
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config(c.ca_file.as_deref()).map_err(ctx)?)
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(format!("certroll/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ctx(format!("HTTP client: {e}")))?;
        let secret = read_secret(
            c.secret_file.as_deref(),
            c.secret_env.as_deref(),
            "webhook secret",
        )
        .map_err(ctx)?
        .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes()));
        Ok(WebhookSender {
            client,
            url: c.url.clone(),
            format: c.format,
            secret,
            timeout,
        })
    }

    pub async fn send(&self, m: &Message) -> SendResult {
        let body = match self.format {
            WebhookFormat::Json => m.json.to_string(),
            WebhookFormat::Slack => message::slack(m).to_string(),
            WebhookFormat::Teams => message::teams(m).to_string(),
        };
        let mut req = self
            .client
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Certroll-Event-Id", &m.event_id)
            .header("X-Certroll-Event", &m.kind);
        if let Some(key) = &self.secret {
            req = req.header("X-Certroll-Signature-256", signature(key, body.as_bytes()));
        }
        let sent =
            tokio::time::timeout(self.timeout + Duration::from_secs(1), req.body(body).send())
                .await;
        let resp = match sent {
            Err(_) => {
                return SendResult::Retry {
                    error: format!("no answer within {} s", self.timeout.as_secs()),
                    after: None,
                };
            }
            Ok(Err(e)) => {
                let mut text = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    text.push_str(&format!(": {s}"));
                    src = s.source();
                }
                return SendResult::Retry {
                    error: text,
                    after: None,
                };
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        let after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let detail = format!(
            "HTTP {}{}",
            status.as_u16(),
            if text.is_empty() {
                String::new()
            } else {
                format!(": {}", text.trim())
            }
        );
        if status.is_success() {
            SendResult::Delivered(format!("HTTP {}", status.as_u16()))
        } else if status.as_u16() == 429 || status.is_server_error() {
            SendResult::Retry {
                error: detail,
                after,
            }
        } else {
            SendResult::Dead(detail)
        }
    }
}

pub enum Sender {
    Email(EmailSender),
    Webhook(WebhookSender),
}

/// A configured channel: name, filter and sender.
pub struct Channel {
    pub name: String,
    pub kind: &'static str,
    pub filter: Filter,
    pub sender: Sender,
}

impl Channel {
    pub async fn send(&self, m: &Message) -> SendResult {
        match &self.sender {
            Sender::Email(s) => s.send(m).await,
            Sender::Webhook(s) => s.send(m).await,
        }
    }
}

/// Builds every configured channel (reading their secrets and CA files).
pub fn channels(cfg: &NotifyConfig) -> Result<Vec<Arc<Channel>>, String> {
    let mut out = Vec::new();
    for c in &cfg.email {
        out.push(Arc::new(Channel {
            name: c.name.clone(),
            kind: "email",
            filter: c.filter.clone(),
            sender: Sender::Email(EmailSender::new(c)?),
        }));
    }
    for c in &cfg.webhook {
        out.push(Arc::new(Channel {
            name: c.name.clone(),
            kind: "webhook",
            filter: c.filter.clone(),
            sender: Sender::Webhook(WebhookSender::new(c)?),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_github_convention() {
        // Test vector from GitHub's webhook documentation.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"It's a Secret to Everybody");
        assert_eq!(
            signature(&key, b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("junk"), None);
        let later = chrono::Utc::now() + chrono::Duration::seconds(90);
        let d = retry_after(&later.to_rfc2822()).unwrap();
        assert!(d.as_secs() >= 85 && d.as_secs() <= 90, "{d:?}");
    }
}

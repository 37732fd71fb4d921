//! Real peers on loopback for the alert tests: an SMTP server (Debian's
//! python3-aiosmtpd, writing a Maildir; with STARTTLS required when given a
//! certificate) and an HTTP receiver that checks the HMAC signature and
//! answers from a script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::util::*;

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running aiosmtpd on `port`, delivering into a Maildir.
pub struct Smtp {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl Smtp {
    /// Starts the server; with `tls` (cert, key) it requires STARTTLS.
    pub fn start(dir: &Path, port: u16, tls: Option<(&Path, &Path)>) -> Smtp {
        let maildir = dir.join(format!("maildir-{port}"));
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")]);
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(&maildir);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (apt-get install python3-aiosmtpd)");
        let smtp = Smtp {
            child,
            port,
            maildir,
        };
        wait_until(20, "the SMTP server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        smtp
    }

    /// Starts a server that requires STARTTLS and a login as `user` with
    /// `password` (tests/support/smtp_auth.py).
    pub fn start_with_login(
        dir: &Path,
        port: u16,
        cert: &Path,
        key: &Path,
        user: &str,
        password: &str,
    ) -> Smtp {
        let maildir = dir.join(format!("maildir-{port}"));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_auth.py");
        let child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(cert)
            .arg(key)
            .args([user, password])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3-aiosmtpd (apt-get install python3-aiosmtpd)");
        let smtp = Smtp {
            child,
            port,
            maildir,
        };
        wait_until(20, "the SMTP server to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        smtp
    }

    /// The messages received so far, decoded.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        if !self.maildir.join("new").exists() {
            return Vec::new();
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/read_maildir.py");
        let out = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&self.maildir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a certificate for localhost signed by it, as PEM files in
/// `dir`: (ca.pem, server.pem, server.key).
pub fn test_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=certroll test mail CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            "server.pem",
            "-extfile",
            "san.ext",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// One request the HTTP receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    pub signature_ok: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP receiver on loopback: answers each request with the next status
/// of `script` (the last one repeats), and records what it got.
pub struct Receiver {
    pub port: u16,
    pub got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub fn start(secret: &'static [u8], script: Vec<u16>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let n = sink.lock().unwrap().len();
                let status = *script.get(n).or(script.last()).unwrap_or(&200);
                if let Some(r) = serve_one(stream, secret, status) {
                    sink.lock().unwrap().push(r);
                }
            }
        });
        Receiver { port, got }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn serve_one(stream: TcpStream, secret: &[u8], status: u16) -> Option<Received> {
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).ok()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let expected = format!(
        "sha256={}",
        ring::hmac::sign(&key, &body)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let signature_ok = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("x-certroll-signature-256") && *v == expected);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        429 => "Too Many Requests",
        _ => "Server Error",
    };
    let answer = format!("{{\"status\":{status}}}");
    let retry = if status == 429 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let mut out = stream;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{answer}",
        answer.len()
    );
    let _ = out.flush();
    Some(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status,
        signature_ok,
    })
}

/// An HTTPS receiver (rustls, the given certificate and key) answering 200
/// and recording the requests: for webhooks to a private CA.
pub fn start_tls_receiver(cert_pem: &Path, key_pem: &Path) -> (u16, Arc<Mutex<Vec<Received>>>) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let pem = |p: &Path, label: &str| -> Vec<Vec<u8>> {
        certroll::cert::pem::parse_blocks(&std::fs::read_to_string(p).unwrap())
            .unwrap()
            .into_iter()
            .filter(|b| b.label == label)
            .map(|b| b.der)
            .collect()
    };
    let certs: Vec<CertificateDer<'static>> = pem(cert_pem, "CERTIFICATE")
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        pem(key_pem, "PRIVATE KEY").remove(0),
    ));
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            if !head.ends_with(b"\r\n\r\n") {
                // The handshake failed or the client went away: no request.
                continue;
            }
            let text = String::from_utf8_lossy(&head).into_owned();
            let headers: Vec<(String, String)> = text
                .lines()
                .skip(1)
                .filter_map(|l| {
                    l.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                })
                .collect();
            let len: usize = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            if tls.read_exact(&mut body).is_err() {
                continue;
            }
            let _ =
                tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = tls.flush();
            tls.conn.send_close_notify();
            let _ = tls.flush();
            sink.lock().unwrap().push(Received {
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                status: 200,
                signature_ok: false,
            });
        }
    });
    (port, got)
}

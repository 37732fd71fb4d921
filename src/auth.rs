//! Accounts of the HTTP API and console: roles, password hashes (Argon2id,
//! RFC 9106, as a PHC string), API tokens and session secrets. Pure but for
//! the system random number generator; the store keeps only hashes.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use base64ct::{Base64Unpadded, Base64UrlUnpadded, Encoding};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// What an account may do. Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but private keys (which never leave over HTTP).
    Viewer,
    /// Also imports, assigns, schedules, rolls, cancels, retries, requests
    /// and rolls back.
    Operator,
    /// Also manages accounts.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Result<Role, AuthError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| AuthError::Role(s.to_string()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown role '{0}' (expected viewer, operator or admin)")]
    Role(String),
    #[error(
        "account name '{0}': use 1 to 64 letters, digits and . _ @ - (starting with a letter or digit)"
    )]
    Name(String),
    #[error("the password is too short: at least {MIN_PASSWORD} characters")]
    PasswordShort,
    #[error("the password is too long: at most {MAX_PASSWORD} bytes")]
    PasswordLong,
    #[error("the system random number generator failed")]
    Random,
    #[error("a stored password hash is damaged")]
    Damaged,
}

pub const MIN_PASSWORD: usize = 12;
/// Argon2 reads the whole password; a bound keeps a login cheap to refuse.
pub const MAX_PASSWORD: usize = 1024;

/// Checks an account name: short, printable, no separators a log or a
/// header could misread.
pub fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Name(crate::text::escape(name).into_owned()))
    }
}

pub fn check_password(password: &str) -> Result<(), AuthError> {
    if password.len() > MAX_PASSWORD {
        return Err(AuthError::PasswordLong);
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AuthError::PasswordShort);
    }
    Ok(())
}

/// OWASP's first Argon2id setting: 19 MiB, 2 passes, 1 lane.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;

fn argon2(m: u32, t: u32, p: u32) -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|_| AuthError::Damaged)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| AuthError::Random)?;
    Ok(b)
}

/// The PHC string of `password`: `$argon2id$v=19$m=19456,t=2,p=1$SALT$HASH`.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    check_password(password)?;
    let salt: [u8; 16] = random()?;
    let mut out = Zeroizing::new([0u8; 32]);
    argon2(M_COST, T_COST, P_COST)?
        .hash_password_into(password.as_bytes(), &salt, out.as_mut())
        .map_err(|_| AuthError::Damaged)?;
    Ok(format!(
        "$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}",
        Base64Unpadded::encode_string(&salt),
        Base64Unpadded::encode_string(out.as_ref())
    ))
}

/// Whether `password` matches the PHC string `phc` (made by
/// [`hash_password`], whose cost it reads back, within bounds).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, AuthError> {
    if password.len() > MAX_PASSWORD {
        return Ok(false);
    }
    let parts: Vec<&str> = phc.split('$').collect();
    let [_, "argon2id", "v=19", params, salt, hash] = parts.as_slice() else {
        return Err(AuthError::Damaged);
    };
    let mut cost = [0u32; 3];
    for (i, (kv, key)) in params.split(',').zip(["m", "t", "p"]).enumerate() {
        let value = kv
            .strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .ok_or(AuthError::Damaged)?;
        cost[i] = value;
    }
    // A damaged or hostile row cannot make a login cost more than 4 times
    // the default.
    if cost[0] > 4 * M_COST || cost[1] > 4 * T_COST || cost[2] > 4 {
        return Err(AuthError::Damaged);
    }
    let salt = Base64Unpadded::decode_vec(salt).map_err(|_| AuthError::Damaged)?;
    let want = Base64Unpadded::decode_vec(hash).map_err(|_| AuthError::Damaged)?;
    if want.len() != 32 {
        return Err(AuthError::Damaged);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    argon2(cost[0], cost[1], cost[2])?
        .hash_password_into(password.as_bytes(), &salt, out.as_mut())
        .map_err(|_| AuthError::Damaged)?;
    Ok(constant_time_eq(out.as_ref(), &want))
}

/// Equal bytes, in a time that depends only on the length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 in hex: how the store keeps tokens and session ids (they are
/// random and long, so a fast hash is enough).
pub fn secret_hash(secret: &str) -> String {
    crate::cert::x509::sha256_hex(secret.as_bytes())
}

/// A fresh random secret of 32 bytes, base64url.
pub fn new_secret() -> Result<Zeroizing<String>, AuthError> {
    Ok(Zeroizing::new(Base64UrlUnpadded::encode_string(&random::<
        32,
    >()?)))
}

/// An API token as handed to its owner once: `certroll_ID_SECRET`. The id
/// names it in listings and revocations; the store keeps the hash of the
/// whole token.
pub struct NewToken {
    pub id: String,
    pub token: Zeroizing<String>,
}

pub fn new_token() -> Result<NewToken, AuthError> {
    let id = crate::cert::x509::hex_upper(&random::<4>()?).to_lowercase();
    let secret = new_secret()?;
    Ok(NewToken {
        token: Zeroizing::new(format!("certroll_{id}_{}", secret.as_str())),
        id,
    })
}

/// The id of a token as presented (`certroll_ID_SECRET`), if it has that
/// shape.
pub fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("certroll_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()) && secret.len() >= 40).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_wrong_ones_do_not() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h).unwrap());
        assert!(!verify_password("correct horse batterY", &h).unwrap());
        // Salted: the same password hashes differently.
        assert_ne!(h, hash_password("correct horse battery").unwrap());
    }

    #[test]
    fn damaged_or_costly_hashes_are_refused() {
        let h = hash_password("correct horse battery").unwrap();
        for bad in [
            h.replace("argon2id", "argon2i"),
            h.replace("m=19456", "m=999999"),
            h.replace("t=2", "t=100"),
            h[..h.len() - 4].to_string(),
            "plain".to_string(),
        ] {
            assert!(
                verify_password("correct horse battery", &bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_and_long_passwords_are_refused() {
        assert!(matches!(
            hash_password("short"),
            Err(AuthError::PasswordShort)
        ));
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD + 1)),
            Err(AuthError::PasswordLong)
        ));
    }

    #[test]
    fn tokens_name_their_id() {
        let t = new_token().unwrap();
        assert_eq!(token_id(&t.token), Some(t.id.as_str()));
        assert_eq!(token_id("certroll_zzzzzzzz_abc"), None);
        assert_eq!(token_id("Bearer x"), None);
    }

    #[test]
    fn names_and_roles() {
        for ok in ["alice", "ops.team", "a@contoso.com", "x-1_2"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "-x", "a b", "a:b", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(Role::parse("operator").unwrap(), Role::Operator);
        assert!(Role::parse("root").is_err());
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
    }
}

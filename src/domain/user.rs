//! Accounts: users, their roles and addresses, and the rules for each field.

use super::text::{char_len, single_line};
use super::{FieldErrors, Timestamp};

/// What a user may do. Any signed-in user may shop; only sellers list items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Role {
    /// Shops: carts, checkout, orders.
    Buyer,
    /// Shops, and lists items.
    Seller,
}

impl Role {
    /// Parses the API spelling (`buyer`, `seller`).
    pub fn parse(raw: &str) -> Option<Role> {
        match raw {
            "buyer" => Some(Role::Buyer),
            "seller" => Some(Role::Seller),
            _ => None,
        }
    }

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
        }
    }
}

/// A postal address, normalized.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Address {
    /// Street and number.
    pub line1: String,
    /// Apartment, suite, etc.
    pub line2: Option<String>,
    /// City or town.
    pub city: String,
    /// State, province or region.
    pub state: Option<String>,
    /// Postal or ZIP code.
    pub postal_code: String,
    /// Country name or ISO code.
    pub country: String,
}

/// A stored user account.
#[derive(Debug, Clone, bincode::Encode, bincode::Decode)]
pub struct User {
    /// Server-chosen id.
    pub id: String,
    /// Normalized (lower-case) email, unique.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Buyer or seller.
    pub role: Role,
    /// Argon2id PHC string; never leaves the server.
    pub password_hash: String,
    /// Shipping addresses.
    pub addresses: Vec<Address>,
    /// When the account was created.
    pub created_at: Timestamp,
    /// Last profile change.
    pub updated_at: Timestamp,
}

/// A signed-in session. Stored under the SHA-256 of its token, so a copy of
/// the database does not hand out working tokens.
#[derive(Debug, Clone, bincode::Encode, bincode::Decode)]
pub struct Session {
    /// The session's user.
    pub user_id: String,
    /// The user's role, copied so authenticating a request is one read.
    pub role: Role,
    /// When the session was opened.
    pub created_at: Timestamp,
    /// When the token stops working.
    pub expires_at: Timestamp,
}

/// Maximum addresses per user.
pub const MAX_ADDRESSES: usize = 10;
/// Minimum password length in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum password length in bytes: bounds the hashing work one request can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Where the account of the email `raw` lives (its placement key): the
/// same for every spelling [`parse_email`] takes as one address, so sign-up
/// and sign-in for it reach one node, which keeps the address unique.
pub fn email_placement_key(raw: &str) -> u16 {
    super::ids::key_of_text(&raw.trim().to_lowercase())
}

/// Validates and normalizes an email address (lower-cased, trimmed).
///
/// Deliberately simple: one `@`, a non-empty local part, a dotted domain, no
/// spaces, at most 254 characters. Real verification is a confirmation mail.
pub fn parse_email(raw: &str) -> Result<String, &'static str> {
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err("is required");
    }
    if email.len() > 254 {
        return Err("must be at most 254 characters");
    }
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err("is not a valid email address")
    }
}

/// Checks a new password's length rules.
pub fn check_password(password: &str) -> Result<(), String> {
    if char_len(password) < MIN_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// Normalizes a display name: 1..=100 characters after normalization.
pub fn parse_name(raw: &str) -> Result<String, &'static str> {
    let name = single_line(raw);
    if name.is_empty() {
        Err("must not be empty")
    } else if char_len(&name) > 100 {
        Err("must be at most 100 characters")
    } else {
        Ok(name)
    }
}

/// An address as a client sent it, before validation.
#[derive(Debug, Default, Clone)]
pub struct AddressInput {
    /// See [`Address::line1`].
    pub line1: Option<String>,
    /// See [`Address::line2`].
    pub line2: Option<String>,
    /// See [`Address::city`].
    pub city: Option<String>,
    /// See [`Address::state`].
    pub state: Option<String>,
    /// See [`Address::postal_code`].
    pub postal_code: Option<String>,
    /// See [`Address::country`].
    pub country: Option<String>,
}

/// Validates a list of addresses, naming bad fields as `addresses[i].field`.
pub fn parse_addresses(inputs: Vec<AddressInput>, errors: &mut FieldErrors) -> Vec<Address> {
    if inputs.len() > MAX_ADDRESSES {
        errors.add("addresses", format!("at most {MAX_ADDRESSES} addresses"));
        return Vec::new();
    }
    inputs
        .into_iter()
        .enumerate()
        .filter_map(|(i, input)| parse_address(input, &format!("addresses[{i}]"), errors))
        .collect()
}

/// Validates one address, naming bad fields as `{path}.field`.
pub fn parse_address(input: AddressInput, path: &str, errors: &mut FieldErrors) -> Option<Address> {
    let mut field = |name: &str, value: Option<String>, required: bool, max: usize| {
        let path = format!("{path}.{name}");
        let value = value.map(|v| single_line(&v)).filter(|v| !v.is_empty());
        match value {
            None if required => {
                errors.add(path, "is required");
                None
            }
            Some(v) if char_len(&v) > max => {
                errors.add(path, format!("must be at most {max} characters"));
                None
            }
            other => other,
        }
    };
    let line1 = field("line1", input.line1, true, 200);
    let line2 = field("line2", input.line2, false, 200);
    let city = field("city", input.city, true, 100);
    let state = field("state", input.state, false, 100);
    let postal_code = field("postalCode", input.postal_code, true, 20);
    let country = field("country", input.country, true, 60);
    Some(Address {
        line1: line1?,
        line2,
        city: city?,
        state,
        postal_code: postal_code?,
        country: country?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(
            parse_email("  Asha@Example.COM ").unwrap(),
            "asha@example.com"
        );
        for bad in [
            "",
            "no-at-sign",
            "a@b",
            "a@@b.com",
            "@b.com",
            "a b@c.com",
            "a@.com",
        ] {
            assert!(parse_email(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn address_errors_name_the_field() {
        let mut errors = FieldErrors::new();
        let input = AddressInput {
            line1: Some("1 Road".into()),
            city: Some(" ".into()),
            ..Default::default()
        };
        assert!(parse_addresses(vec![input], &mut errors).is_empty());
        assert!(errors.as_map().contains_key("addresses[0].city"));
        assert!(errors.as_map().contains_key("addresses[0].postalCode"));
    }
}

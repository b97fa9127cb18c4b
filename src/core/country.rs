//! The country of an outside number, as GWS participant objects show it (spec §5.2):
//! `country {name, code, callingCode}` and `location`.
//!
//! The calling code and the region come from libphonenumber's metadata (the `phonenumber`
//! crate), the region's English short name from ISO 3166-1 (`rust_iso3166`), rather than
//! from a table written here that would age. Decisions where GWS is not documented:
//! - `name` is the ISO 3166-1 short name (`United States of America`, where the GWS sample
//!   shows `United States`).
//! - `location` is the country's name too: GWS fills it from libphonenumber's geocoder,
//!   which answers with a place inside the country when it has data for the number's area
//!   code and with the country's name otherwise; the gateway carries no area data, so it
//!   always gives that second answer.
//! - Internal DNs and numbers that libphonenumber cannot place get neither field.

use std::sync::Arc;

/// The country of a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country {
    /// English short name (ISO 3166-1), e.g. `United States of America`.
    pub name: Arc<str>,
    /// ISO 3166-1 alpha-2 code, e.g. `US`.
    pub code: Arc<str>,
    /// International calling code without `+`, e.g. `1`.
    pub calling_code: Arc<str>,
}

impl Country {
    /// Finds the country of an E.164 number (`+` and digits); `None` when the number is
    /// not valid for any region libphonenumber knows.
    pub fn of_e164(e164: &str) -> Option<Self> {
        let number = phonenumber::parse(None, e164).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        let id = number.country().id()?;
        let code: &str = id.as_ref();
        let name = rust_iso3166::from_alpha2(code)?.name;
        Some(Self {
            name: name.into(),
            code: code.into(),
            calling_code: number.country().code().to_string().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_numbers_get_their_country_and_unknown_ones_none() {
        let us = Country::of_e164("+19165550104").expect("a US number");
        assert_eq!(
            (&*us.name, &*us.code, &*us.calling_code),
            ("United States of America", "US", "1")
        );
        let fr = Country::of_e164("+33142685300").expect("a French number");
        assert_eq!((&*fr.code, &*fr.calling_code), ("FR", "33"));
        assert_eq!(Country::of_e164("+15000"), None);
        assert_eq!(Country::of_e164("not a number"), None);
    }
}

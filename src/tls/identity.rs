//! Which service account a client certificate stands for (mutual TLS on the gRPC listener).
//!
//! The certificate has already been verified against `tls.client_ca_file` by the handshake;
//! here it is only named. Its names are the subject's common names and the DNS names of its
//! subject alternative names; a `[[service_accounts]]` entry whose `client_cert` equals one
//! of them (ASCII case-insensitively) is the account. A certificate naming no account, or
//! naming two different accounts, stands for none: its requests need ordinary credentials.
//! The mapping runs once per connection, not per request.

use std::sync::Arc;

use x509_parser::extensions::GeneralName;

/// The configured `client_cert` names and the service accounts they map to.
#[derive(Debug, Clone, Default)]
pub struct ClientCertMap {
    /// `(name in lowercase, account name)`; a handful of entries, so a scan is enough.
    names: Vec<(String, Arc<str>)>,
}

impl ClientCertMap {
    /// Builds the map from `(account name, client_cert)` pairs; fails when two accounts
    /// claim the same certificate name.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> anyhow::Result<Self> {
        let mut names: Vec<(String, Arc<str>)> = Vec::new();
        for (account, name) in pairs {
            let name = name.to_ascii_lowercase();
            if name.is_empty() {
                anyhow::bail!("service account {account}: client_cert is empty");
            }
            if let Some((_, other)) = names.iter().find(|(n, _)| *n == name) {
                anyhow::bail!(
                    "service accounts {other} and {account} both claim client_cert {name}"
                );
            }
            names.push((name, account.into()));
        }
        Ok(Self { names })
    }

    /// Returns whether no account has a `client_cert`.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Returns the service account a (verified) DER certificate stands for, if exactly one.
    pub fn account_for(&self, der: &[u8]) -> Option<Arc<str>> {
        let names = match certificate_names(der) {
            Ok(names) => names,
            Err(error) => {
                tracing::debug!(%error, "client certificate names unreadable");
                return None;
            }
        };
        let mut found: Option<&Arc<str>> = None;
        for (_, account) in self.names.iter().filter(|(n, _)| names.contains(n)) {
            match found {
                Some(first) if first != account => {
                    tracing::warn!(
                        ?names,
                        "client certificate names two service accounts: it stands for neither"
                    );
                    return None;
                }
                _ => found = Some(account),
            }
        }
        if found.is_none() {
            tracing::debug!(?names, "client certificate maps to no service account");
        }
        found.cloned()
    }
}

/// Returns the subject common names and SAN DNS names of a DER certificate, lowercased.
pub fn certificate_names(der: &[u8]) -> anyhow::Result<Vec<String>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| anyhow::anyhow!("invalid certificate: {e}"))?;
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_ascii_lowercase)
        .collect();
    if let Some(san) = cert
        .subject_alternative_name()
        .map_err(|e| anyhow::anyhow!("invalid subject alternative names: {e}"))?
    {
        names.extend(
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                    _ => None,
                }),
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(common_name: &str, dns: &[&str]) -> Vec<u8> {
        let mut params =
            CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn a_certificate_maps_by_common_name_or_dns_name() {
        let map =
            ClientCertMap::new([("billing", "Billing.Internal"), ("crm", "crm.internal")]).unwrap();
        assert_eq!(
            map.account_for(&cert("billing.internal", &[])).as_deref(),
            Some("billing")
        );
        assert_eq!(
            map.account_for(&cert("whatever", &["CRM.internal"]))
                .as_deref(),
            Some("crm")
        );
        assert_eq!(map.account_for(&cert("other", &["x.internal"])), None);
        assert_eq!(
            map.account_for(&cert("billing.internal", &["billing.internal"]))
                .as_deref(),
            Some("billing")
        );
    }

    #[test]
    fn a_certificate_naming_two_accounts_stands_for_none() {
        let map =
            ClientCertMap::new([("billing", "billing.internal"), ("crm", "crm.internal")]).unwrap();
        assert_eq!(
            map.account_for(&cert("billing.internal", &["crm.internal"])),
            None
        );
        assert_eq!(map.account_for(b"not a certificate"), None);
    }

    #[test]
    fn two_accounts_may_not_claim_one_name() {
        let error = ClientCertMap::new([("a", "svc.internal"), ("b", "SVC.internal")])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("both claim client_cert svc.internal"),
            "{error}"
        );
        assert!(ClientCertMap::new([("a", "")]).is_err());
    }
}

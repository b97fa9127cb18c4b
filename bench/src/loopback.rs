//! Loopback source addresses for figures that open more connections than one address has
//! ports for: Linux routes all of 127.0.0.0/8 to `lo`, so connection `k` binds to
//! 127.0.0.2, 127.0.0.3, … (a new address every `per_address` connections) before it
//! connects. A socket bound before `connect` takes an ephemeral port of its own source
//! address (32768–60999 by default, about 28,000), so `per_address` stays well below that.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use tokio::net::{TcpSocket, TcpStream};

/// Connections given the same source address (of about 28,000 ephemeral ports).
pub const DEFAULT_PER_ADDRESS: usize = 10_000;

/// Spreads connections over loopback source addresses.
#[derive(Debug, Clone, Copy)]
pub struct SourceSpread {
    /// Connections per source address.
    pub per_address: usize,
}

impl Default for SourceSpread {
    fn default() -> Self {
        Self {
            per_address: DEFAULT_PER_ADDRESS,
        }
    }
}

impl SourceSpread {
    /// Returns the source address of connection `k`: 127.0.0.2 for the first
    /// `per_address`, then 127.0.0.3, and so on (at most 127.0.255.254).
    pub fn source(&self, k: usize) -> IpAddr {
        let n = (k / self.per_address.max(1)) as u32 + 2;
        let n = n.min((1 << 16) - 2);
        IpAddr::V4(Ipv4Addr::new(127, 0, (n >> 8) as u8, (n & 0xff) as u8))
    }

    /// Returns how many source addresses `connections` connections use.
    pub fn addresses(&self, connections: usize) -> usize {
        connections.div_ceil(self.per_address.max(1))
    }
}

/// Connects to `addr` from `source` (any port of it), with `TCP_NODELAY`.
pub async fn connect_from(addr: SocketAddr, source: IpAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("cannot bind to {source}"))?;
    let tcp = socket
        .connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr} from {source}"))?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_move_to_the_next_address_every_per_address() {
        let spread = SourceSpread { per_address: 3 };
        let ips: Vec<String> = (0..7).map(|k| spread.source(k).to_string()).collect();
        assert_eq!(
            ips,
            [
                "127.0.0.2",
                "127.0.0.2",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.3",
                "127.0.0.3",
                "127.0.0.4"
            ]
        );
        assert_eq!(spread.addresses(7), 3);
        let wide = SourceSpread { per_address: 1 };
        assert_eq!(wide.source(300).to_string(), "127.0.1.46");
    }
}

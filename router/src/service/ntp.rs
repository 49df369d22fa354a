//! A minimal SNTP client (RFC 4330): one query, one answer, the clock
//! offset. Used by `praefect check` to see whether this machine's clock
//! drifts from an NTP server.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// Host queried when none is given (upstream's default).
pub const DEFAULT_HOST: &str = "pool.ntp.org";

/// Why the server's answer could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NtpError {
    #[error("query NTP server {host}: {source}")]
    Io {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("query NTP server {0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("NTP server {0} sent an invalid answer: {1}")]
    Invalid(String, &'static str),
}

fn to_ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_TO_UNIX;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// An NTP timestamp as seconds since the Unix epoch.
fn ntp_seconds(raw: u64) -> f64 {
    let secs = (raw >> 32) as f64 - NTP_TO_UNIX as f64;
    let frac = (raw & 0xffff_ffff) as f64 / 4_294_967_296.0;
    secs + frac
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// The local clock's offset from `host` (`host` or `host:port`, port 123
/// by default), in seconds: positive when the local clock is behind.
pub async fn offset(host: &str, timeout: Duration) -> Result<f64, NtpError> {
    let addr = if host.contains(':') && !host.ends_with(']') { host.to_owned() } else { format!("{host}:123") };
    let io = |source| NtpError::Io { host: host.to_owned(), source };
    let exchange = async {
        let socket = UdpSocket::bind("0.0.0.0:0").await.map_err(io)?;
        socket.connect(&addr).await.map_err(io)?;
        let mut request = [0u8; 48];
        // LI 0, version 4, mode 3 (client).
        request[0] = 0b00_100_011;
        let sent = SystemTime::now();
        request[40..48].copy_from_slice(&to_ntp(sent).to_be_bytes());
        socket.send(&request).await.map_err(io)?;
        let mut answer = [0u8; 48];
        let n = socket.recv(&mut answer).await.map_err(io)?;
        Ok((sent, SystemTime::now(), answer, n))
    };
    let (sent, received, answer, n) =
        tokio::time::timeout(timeout, exchange).await.map_err(|_| NtpError::Timeout(host.to_owned(), timeout))??;
    if n < 48 {
        return Err(NtpError::Invalid(host.to_owned(), "short packet"));
    }
    if answer[0] & 0b111 != 4 {
        return Err(NtpError::Invalid(host.to_owned(), "not a server answer"));
    }
    if answer[1] == 0 {
        return Err(NtpError::Invalid(host.to_owned(), "kiss-of-death (stratum 0)"));
    }
    let word = |at: usize| u64::from_be_bytes(answer[at..at + 8].try_into().expect("8 bytes"));
    let (server_received, server_sent) = (ntp_seconds(word(32)), ntp_seconds(word(40)));
    if server_sent == 0.0 {
        return Err(NtpError::Invalid(host.to_owned(), "no transmit timestamp"));
    }
    let (t1, t4) = (unix_seconds(sent), unix_seconds(received));
    Ok(((server_received - t1) + (server_sent - t4)) / 2.0)
}

/// Whether the local clock is within `threshold` of `host`'s.
pub async fn synced(host: &str, threshold: Duration) -> Result<bool, NtpError> {
    let host = if host.is_empty() { DEFAULT_HOST } else { host };
    let offset = offset(host, Duration::from_secs(5)).await?;
    Ok(offset.abs() <= threshold.as_secs_f64())
}

/// An NTP server timestamp for `t` (for fake servers in tests).
pub fn ntp_timestamp(t: SystemTime) -> [u8; 8] {
    to_ntp(t).to_be_bytes()
}

//! ICMP echo (`network.ping.do`) without spawning `ping`.
//!
//! [`IcmpPing`] opens, per run, an unprivileged ICMP datagram socket
//! (`SOCK_DGRAM` + `IPPROTO_ICMP`/`IPPROTO_ICMPV6`) when `net.ipv4.ping_group_range`
//! lets the agent's group have one, and a raw socket otherwise (root or
//! `CAP_NET_RAW`); IPv4 and IPv6 alike. Names are resolved with the system
//! resolver ([`tokio::net::lookup_host`]); the first address is pinged.
//!
//! Timing, like `ping(8)`: probes go out [`IcmpPing::INTERVAL`] (1 s) apart and
//! each waits up to the request's `timeout` for its reply; a reply later than
//! that counts as lost. A run of `count` probes therefore takes at most
//! `(count - 1) × 1 s + timeout` — 129 s for the largest request (100 probes,
//! 30 s timeout) — and ends early once every probe is answered.
//!
//! Replies are matched by identifier (raw sockets; the kernel does it for datagram
//! sockets, whose identifier it assigns), sequence number, a per-run random token
//! in the payload and the source address; anything else arriving on the socket
//! (other pings, our own requests looped back, ICMP errors) is ignored.
//!
//! The packet format, checksum, reply parsing and statistics are pure functions,
//! unit-tested below; the provider only does the I/O.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::{BoxFuture, Ping, PingProvider, PingResult, ProviderError, ProviderResult, percent};
use crate::job::DEFAULT_PING_TIMEOUT;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
/// Type, code, checksum, identifier, sequence.
const ICMP_HEADER_LEN: usize = 8;
/// Payload size of `ping(8)`: an 8-byte run token, then a fill pattern.
const PAYLOAD_LEN: usize = 56;
/// How long name resolution may take before the job gives up on it.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// ICMP echo through datagram or raw ICMP sockets.
#[derive(Debug, Clone, Default)]
pub struct IcmpPing {
    _private: (),
}

impl IcmpPing {
    /// Time between two probes of one run, as `ping(8)` does by default: polite
    /// to the target, and what operators expect a ping to take.
    pub const INTERVAL: Duration = Duration::from_secs(1);

    pub fn new() -> Self {
        IcmpPing::default()
    }
}

impl PingProvider for IcmpPing {
    fn ping<'a>(&'a self, request: &'a Ping) -> BoxFuture<'a, ProviderResult<PingResult>> {
        Box::pin(run(request, Self::INTERVAL))
    }
}

/// Whether the socket hands us the IPv4 header too (raw IPv4 sockets do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SocketKind {
    Datagram,
    Raw,
}

async fn run(request: &Ping, interval: Duration) -> ProviderResult<PingResult> {
    request.validate()?;
    let timeout = request.timeout.unwrap_or(DEFAULT_PING_TIMEOUT);
    let ip = resolve(&request.address).await?;
    let v6 = ip.is_ipv6();
    let (socket, kind) = open_socket(v6)?;
    let target = SocketAddr::new(ip, 0);
    // Raw sockets see every echo reply on the host: our identifier tells ours apart.
    // Datagram sockets get only their own; the kernel rewrites the identifier.
    let ident: u16 = rand::random();
    let token: u64 = rand::random();
    let count = usize::try_from(request.count).unwrap_or(100);

    let start = Instant::now();
    let mut sent_at: Vec<Option<Instant>> = vec![None; count];
    let mut rtts: Vec<Option<f64>> = vec![None; count];
    let mut next = 0usize;
    let mut last_send_error: Option<io::Error> = None;
    let mut buf = vec![0u8; 2048];
    loop {
        let now = Instant::now();
        let received = rtts.iter().flatten().count();
        let last_sent = sent_at.iter().flatten().max().copied();
        if next == count {
            let waited_out = last_sent.is_none_or(|t| now >= t + timeout);
            if received == count || waited_out {
                break;
            }
        }
        let wake = if next < count {
            start + interval * u32::try_from(next).unwrap_or(u32::MAX)
        } else {
            // All sent: wait for the last one's timeout.
            last_sent.map_or(now, |t| t + timeout)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {
                if next < count {
                    let seq = u16::try_from(next + 1).unwrap_or(u16::MAX);
                    let packet = echo_request(v6, ident, seq, token);
                    let at = Instant::now();
                    match socket.send_to(&packet, target).await {
                        Ok(_) => sent_at[next] = Some(at),
                        // Unreachable networks and the like: the probe is lost.
                        Err(e) => last_send_error = Some(e),
                    }
                    next += 1;
                }
            }
            r = socket.recv_from(&mut buf) => {
                let at = Instant::now();
                match r {
                    Ok((n, from)) if from.ip() == ip => {
                        let Some(reply) = parse_echo_reply(&buf[..n], v6, kind == SocketKind::Raw) else {
                            continue;
                        };
                        if reply.token != token || (kind == SocketKind::Raw && reply.ident != ident) {
                            continue;
                        }
                        let Some(i) = usize::from(reply.seq).checked_sub(1).filter(|i| *i < count) else {
                            continue;
                        };
                        if let (Some(sent), None) = (sent_at[i], rtts[i]) {
                            let rtt = at.duration_since(sent);
                            if rtt <= timeout {
                                rtts[i] = Some(rtt.as_secs_f64() * 1000.0);
                            }
                        }
                    }
                    Ok(_) => {} // from someone else
                    // ICMP errors reported on the socket (e.g. unreachable): not a reply.
                    Err(e) => tracing::debug!(error = %e, "ping socket error"),
                }
            }
        }
    }

    let sent = sent_at.iter().flatten().count();
    if sent == 0 {
        let source = last_send_error.unwrap_or_else(|| io::Error::other("nothing was sent"));
        return Err(ProviderError::io(
            format!("sending ICMP echo to {ip}"),
            source,
        ));
    }
    let samples: Vec<f64> = rtts.iter().flatten().copied().collect();
    Ok(summarize(&request.address, ip, request.count, &samples))
}

/// An IP address as is; a name through the system resolver (first address).
async fn resolve(address: &str) -> ProviderResult<IpAddr> {
    if let Ok(ip) = address.parse::<IpAddr>() {
        return Ok(ip);
    }
    let not_found = || ProviderError::NotFound {
        what: "host",
        name: address.to_owned(),
    };
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((address, 0))).await {
        Ok(Ok(mut addrs)) => addrs.next().map(|a| a.ip()).ok_or_else(not_found),
        Ok(Err(e)) => {
            tracing::debug!(address, error = %e, "name resolution failed");
            Err(not_found())
        }
        Err(_) => Err(ProviderError::Unavailable {
            service: "name resolution",
            detail: format!(
                "no answer for {address} within {}s",
                RESOLVE_TIMEOUT.as_secs()
            ),
        }),
    }
}

/// A datagram ICMP socket where allowed, else a raw one; non-blocking, registered
/// with tokio. `UdpSocket` is only the async wrapper of `sendto`/`recvfrom`, which
/// behave the same on any datagram-style socket.
fn open_socket(v6: bool) -> ProviderResult<(UdpSocket, SocketKind)> {
    let (domain, protocol) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let (socket, kind) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
        Ok(s) => (s, SocketKind::Datagram),
        // EACCES: our group is outside net.ipv4.ping_group_range.
        Err(_) => match Socket::new(domain, Type::RAW, Some(protocol)) {
            Ok(s) => (s, SocketKind::Raw),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(ProviderError::PermissionDenied {
                    operation: "network.ping.do",
                    detail: "ICMP datagram sockets are not allowed for the agent's group \
                             (net.ipv4.ping_group_range) and raw sockets need CAP_NET_RAW"
                        .into(),
                });
            }
            Err(e) => return Err(ProviderError::io("opening an ICMP socket", e)),
        },
    };
    socket
        .set_nonblocking(true)
        .map_err(|e| ProviderError::io("configuring the ICMP socket", e))?;
    let socket = UdpSocket::from_std(socket.into())
        .map_err(|e| ProviderError::io("registering the ICMP socket", e))?;
    Ok((socket, kind))
}

/// An echo request: type 8 (IPv4) or 128 (IPv6), the identifier, the sequence
/// number, the run token and a fill pattern. The IPv4 checksum is ours to fill
/// in; for ICMPv6 the kernel computes it (it covers the IPv6 pseudo-header).
fn echo_request(v6: bool, ident: u16, seq: u16, token: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(ICMP_HEADER_LEN + PAYLOAD_LEN);
    p.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    p.push(0); // code
    p.extend_from_slice(&[0, 0]); // checksum
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&token.to_be_bytes());
    p.extend((0..PAYLOAD_LEN - 8).map(|i| (i % 256) as u8));
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The Internet checksum (RFC 1071): ones' complement of the ones' complement sum
/// of 16-bit words. Over a packet with a correct checksum in place it yields 0.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What identifies a reply as ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EchoReply {
    ident: u16,
    seq: u16,
    token: u64,
}

/// Parses an echo reply; `None` for anything else (requests, errors, garbage).
/// `ip_header`: the buffer starts with the IPv4 header (raw IPv4 sockets).
fn parse_echo_reply(packet: &[u8], v6: bool, ip_header: bool) -> Option<EchoReply> {
    let icmp = if ip_header && !v6 {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        packet.get(usize::from(first & 0x0f) * 4..)?
    } else {
        packet
    };
    if icmp.len() < ICMP_HEADER_LEN + 8 {
        return None;
    }
    let want = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    if icmp[0] != want || icmp[1] != 0 {
        return None;
    }
    // ICMPv6's checksum needs the pseudo-header; the kernel has verified it.
    if !v6 && checksum(icmp) != 0 {
        return None;
    }
    Some(EchoReply {
        ident: u16::from_be_bytes([icmp[4], icmp[5]]),
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        token: u64::from_be_bytes(icmp[8..16].try_into().ok()?),
    })
}

/// Rounds milliseconds to microsecond precision.
fn ms3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Sent/received/loss and min/avg/max/stddev (population, as `ping`'s `mdev`) of
/// the round-trip times in milliseconds.
fn summarize(address: &str, ip: IpAddr, sent: u32, rtts: &[f64]) -> PingResult {
    let received = u32::try_from(rtts.len()).unwrap_or(u32::MAX).min(sent);
    let (min, avg, max, stddev) = if rtts.is_empty() {
        (None, None, None, None)
    } else {
        let n = rtts.len() as f64;
        let mean = rtts.iter().sum::<f64>() / n;
        let var = rtts.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (
            Some(ms3(rtts.iter().copied().fold(f64::INFINITY, f64::min))),
            Some(ms3(mean)),
            Some(ms3(rtts.iter().copied().fold(f64::NEG_INFINITY, f64::max))),
            Some(ms3(var.sqrt())),
        )
    };
    PingResult {
        address: address.to_owned(),
        resolved: ip.to_string(),
        sent,
        received,
        loss_percent: percent(u64::from(sent - received), u64::from(sent)),
        rtt_min_ms: min,
        rtt_avg_ms: avg,
        rtt_max_ms: max,
        rtt_stddev_ms: stddev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as the peer would build it from our request.
    fn reply_from(request: &[u8], v6: bool) -> Vec<u8> {
        let mut r = request.to_vec();
        r[0] = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
        r[2..4].copy_from_slice(&[0, 0]);
        if !v6 {
            let sum = checksum(&r);
            r[2..4].copy_from_slice(&sum.to_be_bytes());
        }
        r
    }

    #[test]
    fn checksum_rfc1071() {
        // The worked example of RFC 1071 §3: sum 0xddf2, checksum 0x220d.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), 0x220d);
        // Odd length pads with a zero byte.
        assert_eq!(checksum(&[0xab]), !0xab00);
        assert_eq!(checksum(&[]), 0xffff);
    }

    #[test]
    fn request_layout_and_checksum() {
        let p = echo_request(false, 0x1234, 7, 0x0102_0304_0506_0708);
        assert_eq!(p.len(), ICMP_HEADER_LEN + PAYLOAD_LEN);
        assert_eq!(&p[..2], &[ECHO_REQUEST_V4, 0]);
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&p[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(checksum(&p), 0, "a correct checksum sums to zero");

        let p6 = echo_request(true, 1, 2, 3);
        assert_eq!(p6[0], ECHO_REQUEST_V6);
        assert_eq!(&p6[2..4], &[0, 0], "the kernel fills in ICMPv6 checksums");
    }

    #[test]
    fn parses_replies_and_ignores_the_rest() {
        let req = echo_request(false, 0xbeef, 3, 42);
        let reply = reply_from(&req, false);
        let want = Some(EchoReply {
            ident: 0xbeef,
            seq: 3,
            token: 42,
        });
        assert_eq!(parse_echo_reply(&reply, false, false), want);

        // Behind a 20-byte IPv4 header (raw socket), and one with options (24 bytes).
        for ihl in [5u8, 6] {
            let mut ip = vec![0u8; usize::from(ihl) * 4];
            ip[0] = 0x40 | ihl;
            ip.extend_from_slice(&reply);
            assert_eq!(parse_echo_reply(&ip, false, true), want);
        }

        // Our own request looped back, a bad checksum, a destination unreachable,
        // a truncated packet: none is a reply.
        assert_eq!(parse_echo_reply(&req, false, false), None);
        let mut bad = reply.clone();
        bad[20] ^= 0xff;
        assert_eq!(parse_echo_reply(&bad, false, false), None);
        let mut unreachable = reply.clone();
        unreachable[0] = 3;
        assert_eq!(parse_echo_reply(&unreachable, false, false), None);
        assert_eq!(parse_echo_reply(&reply[..12], false, false), None);
        assert_eq!(parse_echo_reply(&[], false, true), None);
        assert_eq!(parse_echo_reply(&[0x45, 0, 0], false, true), None);

        // IPv6: type 129, no IP header, no checksum check here.
        let req6 = echo_request(true, 9, 1, 77);
        let reply6 = reply_from(&req6, true);
        assert_eq!(
            parse_echo_reply(&reply6, true, true),
            Some(EchoReply {
                ident: 9,
                seq: 1,
                token: 77
            })
        );
        assert_eq!(parse_echo_reply(&req6, true, false), None);
    }

    #[test]
    fn statistics() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let r = summarize("localhost", ip, 4, &[1.0, 2.0, 3.0]);
        assert_eq!((r.sent, r.received), (4, 3));
        assert_eq!(r.loss_percent, 25.0);
        assert_eq!(r.rtt_min_ms, Some(1.0));
        assert_eq!(r.rtt_avg_ms, Some(2.0));
        assert_eq!(r.rtt_max_ms, Some(3.0));
        // Population standard deviation of 1, 2, 3: sqrt(2/3).
        assert_eq!(r.rtt_stddev_ms, Some(0.816));
        assert_eq!(r.resolved, "127.0.0.1");

        let none = summarize("192.0.2.1", "192.0.2.1".parse().unwrap(), 2, &[]);
        assert_eq!((none.received, none.loss_percent), (0, 100.0));
        assert_eq!(none.rtt_avg_ms, None);
        assert_eq!(none.rtt_stddev_ms, None);

        let one = summarize("h", ip, 1, &[0.0421]);
        assert_eq!(one.rtt_min_ms, Some(0.042));
        assert_eq!(one.rtt_stddev_ms, Some(0.0));
    }

    /// The real thing on loopback, probes 20 ms apart. Needs root or an allowing
    /// `ping_group_range`; without either the error must say so.
    #[tokio::test]
    async fn pings_loopback() {
        for address in ["127.0.0.1", "::1"] {
            let req = Ping {
                address: address.into(),
                count: 3,
                timeout: Some(Duration::from_secs(2)),
            };
            match run(&req, Duration::from_millis(20)).await {
                Ok(r) => {
                    assert_eq!((r.sent, r.received), (3, 3), "{r:?}");
                    assert!(r.rtt_min_ms <= r.rtt_max_ms, "{r:?}");
                }
                Err(ProviderError::PermissionDenied { .. }) => {}
                // A host without IPv6 on loopback.
                Err(ProviderError::Io { .. }) if address == "::1" => {}
                Err(e) => panic!("{address}: {e}"),
            }
        }
    }

    #[tokio::test]
    async fn rejects_bad_input_and_unknown_names() {
        let req = |address: &str, count| Ping {
            address: address.into(),
            count,
            timeout: Some(Duration::from_secs(1)),
        };
        let err = run(&req("127.0.0.1", 0), IcmpPing::INTERVAL).await.err();
        assert!(matches!(
            err,
            Some(ProviderError::Invalid(e)) if e.field == "count"
        ));
        let err = run(&req("no-such-host.invalid", 1), IcmpPing::INTERVAL)
            .await
            .err();
        assert!(
            matches!(&err, Some(ProviderError::NotFound { what: "host", name }) if name == "no-such-host.invalid"),
            "{err:?}"
        );
    }
}

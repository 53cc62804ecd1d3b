//! Where a webhook may point, and the HTTP client that posts to it without being turned
//! against the network it runs in (SSRF).
//!
//! Policy ([`TargetPolicy`]):
//! - **public** (on AWS, the default): `https` only; the host must not be `localhost` or an
//!   address literal outside the public internet, and every connection goes only to
//!   addresses that are public ([`is_public`]): the resolver drops private, loopback,
//!   link-local (the instance metadata service), shared (CGNAT), multicast, reserved and
//!   documentation ranges, IPv4-mapped and NAT64 forms included. Checking at connect time,
//!   on the addresses actually dialled, is what defeats DNS rebinding; the check at
//!   registration only gives an early, clear 422.
//! - **local** (`WEBHOOK_ALLOW_LOCAL=true`, set by the local gateway): additionally `http`
//!   and loopback addresses, so tests can run a receiver on 127.0.0.1. Private ranges stay
//!   refused.
//!
//! Redirects are not followed (a 3xx is a failed delivery), no proxy is used, and a request
//! is cut after [`REQUEST_TIMEOUT`].

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

/// A request (connect, send, answer's head) is cut after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Which targets are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    pub allow_local: bool,
}

/// Whether `ip` is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (RFC 6598, carrier-grade NAT).
        || (a == 100 && (64..=127).contains(&b))
        // IETF protocol assignments (192.0.0.0/24), benchmarking (198.18.0.0/15).
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        // Reserved (240.0.0.0/4).
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return is_public_v4(Ipv4Addr::new(a, b, c, d));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, site-local fec0::/10.
        || (seg[0] & 0xfe00) == 0xfc00
        || (seg[0] & 0xffc0) == 0xfe80
        || (seg[0] & 0xffc0) == 0xfec0
        // Documentation 2001:db8::/32; IPv4-compatible ::/96.
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
        || seg[..6] == [0, 0, 0, 0, 0, 0])
}

impl TargetPolicy {
    /// Whether a connection may go to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || (self.allow_local && ip.is_loopback())
    }

    /// The URL as the client will use it, or why it is refused (a sentence for a 422).
    pub fn check_url(&self, url: &str) -> Result<http::Uri, String> {
        if url.len() > rill_core::validate::URL_MAX {
            return Err(format!(
                "must be at most {} characters",
                rill_core::validate::URL_MAX
            ));
        }
        let uri: http::Uri = url
            .parse()
            .map_err(|_| "must be an absolute http(s) URL".to_owned())?;
        let authority = uri
            .authority()
            .ok_or_else(|| "must be an absolute http(s) URL".to_owned())?;
        if authority.as_str().contains('@') {
            return Err("must not carry a user name or password".into());
        }
        let host = authority.host();
        let literal = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        // `localhost.` is `localhost` too (a fully qualified name).
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let loopback_name = name == "localhost" || name.ends_with(".localhost");
        let local = loopback_name || literal.is_some_and(|ip| ip.is_loopback());
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if self.allow_local && local => {}
            Some("http") => return Err("must be https".into()),
            _ => return Err("must be an absolute http(s) URL".into()),
        }
        if let Some(ip) = literal
            && !self.allows(ip)
        {
            return Err(format!(
                "must not point at {ip}: private, loopback and link-local addresses are refused"
            ));
        }
        if loopback_name && !self.allow_local {
            return Err("must not point at localhost".into());
        }
        Ok(uri)
    }

    /// [`Self::check_url`], then the host's addresses: refused when it resolves only to
    /// addresses the policy does not allow. A name that does not resolve (yet) passes here;
    /// delivery checks again on every connection.
    pub async fn check_target(&self, url: &str) -> Result<http::Uri, String> {
        let uri = self.check_url(url)?;
        let host = uri.host().unwrap_or_default().to_owned();
        if host.parse::<IpAddr>().is_ok() || host.starts_with('[') {
            return Ok(uri);
        }
        if let Ok(Ok(addrs)) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), 443)),
        )
        .await
        {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if !addrs.is_empty() && !addrs.iter().any(|a| self.allows(a.ip())) {
                return Err(format!(
                    "must not point at {host}: it resolves to private, loopback or link-local addresses"
                ));
            }
        }
        Ok(uri)
    }
}

/// The resolver of the webhook client: the system's, minus every address the policy
/// refuses; a name left with none fails to connect.
#[derive(Debug, Clone, Copy)]
pub struct AllowedOnly(TargetPolicy);

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for AllowedOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the host resolves to no address webhooks may reach",
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// The webhook HTTP client.
pub type WebhookClient = Client<HttpsConnector<HttpConnector<AllowedOnly>>, Full<bytes::Bytes>>;

/// A client that connects only where `policy` allows, over TLS with the system's roots
/// (plain http only in the local policy), HTTP/1.1, no redirects, no proxy.
pub fn client(policy: TargetPolicy) -> Result<WebhookClient, String> {
    let mut http = HttpConnector::new_with_resolver(AllowedOnly(policy));
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("TLS root certificates: {e}"))?;
    let https = if policy.allow_local {
        builder.https_or_http().enable_http1().wrap_connector(http)
    } else {
        builder.https_only().enable_http1().wrap_connector(http)
    };
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy { allow_local: false };
    const LOCAL: TargetPolicy = TargetPolicy { allow_local: true };

    #[test]
    fn internal_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "198.18.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "::10.0.0.1",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(!is_public(ip), "{ip} counted as public");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert!(is_public(ip), "{ip} counted as internal");
        }
    }

    #[test]
    fn the_public_policy_takes_https_to_public_hosts_only() {
        assert!(
            STRICT
                .check_url("https://hooks.example.com/rill?x=1")
                .is_ok()
        );
        assert!(STRICT.check_url("https://8.8.8.8:8443/").is_ok());
        for (url, why) in [
            ("http://hooks.example.com/", "https"),
            ("https://127.0.0.1/", "127.0.0.1"),
            ("https://[::1]/", "::1"),
            (
                "https://169.254.169.254/latest/meta-data",
                "169.254.169.254",
            ),
            ("https://10.0.0.5/", "10.0.0.5"),
            ("https://localhost:8080/", "localhost"),
            ("https://api.localhost/", "localhost"),
            ("https://user:pw@example.com/", "user name"),
            ("ftp://example.com/", "http(s)"),
            ("/relative", "http(s)"),
        ] {
            let err = STRICT.check_url(url).expect_err(url);
            assert!(err.contains(why), "{url}: {err}");
        }
        assert!(
            STRICT
                .check_url(&format!("https://e.com/{}", "a".repeat(2100)))
                .is_err()
        );
    }

    #[test]
    fn the_local_policy_adds_loopback_over_http_and_nothing_private() {
        assert!(LOCAL.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(LOCAL.check_url("http://localhost:9000/hook").is_ok());
        assert!(LOCAL.check_url("http://example.com/").is_err());
        assert!(LOCAL.check_url("https://10.0.0.5/").is_err());
        assert!(LOCAL.check_url("https://169.254.169.254/").is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_registration_and_connection() {
        let err = STRICT
            .check_target("https://localhost.:8443/")
            .await
            .expect_err("loopback name");
        assert!(err.contains("localhost"), "{err}");
        // The resolver knows no names, only addresses: `localhost` resolves to loopback.
        let mut resolver = AllowedOnly(STRICT);
        let name: Name = "localhost".parse().expect("name");
        let refused = tower_service::Service::call(&mut resolver, name)
            .await
            .expect_err("no allowed address");
        assert_eq!(refused.kind(), std::io::ErrorKind::PermissionDenied);
        let mut local = AllowedOnly(LOCAL);
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = tower_service::Service::call(&mut local, name)
            .await
            .expect("loopback allowed locally")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}

//! User agents as analytics see them: browser, OS and device type, parsed with the
//! `ua-parser` crate (the uap-core standard) off the request path, in `events-analytics`.
//!
//! The data is uap-core's `regexes.yaml` as shipped in the `ua-parser` 0.2.2 crate,
//! converted to JSON (`data/uap-regexes.json`, Apache-2.0: `data/uap-core-LICENSE`), with
//! the browser and OS parsers only: uap's device parsers name models ("iPhone", "SM-G991B"),
//! not the kind of device, and are two thirds of the compile cost. The device type is
//! derived from the OS and the user agent's own words instead ([`device`]).
//!
//! The extractors are compiled once per process, on first use.

use std::sync::OnceLock;

use rill_core::analytics::ClientKind;
use ua_parser::{Regexes, os, user_agent};

const REGEXES: &str = include_str!("../data/uap-regexes.json");

struct Parsers {
    browser: user_agent::Extractor<'static>,
    os: os::Extractor<'static>,
}

fn parsers() -> Option<&'static Parsers> {
    static PARSERS: OnceLock<Option<Parsers>> = OnceLock::new();
    PARSERS
        .get_or_init(|| {
            let build = || -> Result<Parsers, String> {
                let r: Regexes<'static> =
                    serde_json::from_str(REGEXES).map_err(|e| e.to_string())?;
                let browser = user_agent::Builder::new()
                    .push_all(r.user_agent_parsers)
                    .map_err(|e| e.to_string())?
                    .build()
                    .map_err(|e| e.to_string())?;
                let os = os::Builder::new()
                    .push_all(r.os_parsers)
                    .map_err(|e| e.to_string())?
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(Parsers { browser, os })
            };
            build()
                .inspect_err(|e| tracing::error!(error = %e, "user agent parsers failed to build"))
                .ok()
        })
        .as_ref()
}

/// The kind of device: `bot`, `tv`, `tablet`, `mobile`, `desktop` or `unknown`, from the
/// browser and OS families and the user agent's own markers.
pub fn device(ua: &str, browser: &str, os: &str) -> &'static str {
    let lower = ua.to_ascii_lowercase();
    let has = |w: &str| lower.contains(w);
    if browser.contains("bot")
        || browser.contains("Spider")
        || has("bot")
        || has("spider")
        || has("crawler")
        || has("headlesschrome")
    {
        "bot"
    } else if has("smart-tv") || has("smarttv") || has("tizen") || has("web0s") || has("appletv") {
        "tv"
    } else if has("ipad") || has("tablet") || (os == "Android" && !has("mobile")) {
        "tablet"
    } else if has("mobi") || os == "iOS" || os == "Android" {
        "mobile"
    } else if matches!(
        os,
        "Windows" | "Mac OS X" | "Linux" | "Ubuntu" | "Chrome OS" | "Fedora" | "FreeBSD"
    ) {
        "desktop"
    } else {
        "unknown"
    }
}

/// Browser, OS and device type of a user agent (`unknown` for what is not recognised).
pub fn classify(ua: &str) -> ClientKind {
    let Some(p) = parsers() else {
        return ClientKind::default();
    };
    let browser = p
        .browser
        .extract(ua)
        .map_or_else(|| "unknown".to_owned(), |v| v.family.into_owned());
    let os =
        p.os.extract(ua)
            .map_or_else(|| "unknown".to_owned(), |v| v.os.into_owned());
    let device = device(ua, &browser, &os).to_owned();
    ClientKind {
        browser: if browser == "Other" {
            "unknown".into()
        } else {
            browser
        },
        os: if os == "Other" { "unknown".into() } else { os },
        device,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1";
    const FIREFOX_WINDOWS: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
    const ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36";

    #[test]
    fn common_browsers_are_named_with_their_os_and_device() {
        let k = |ua| {
            let c = classify(ua);
            (c.browser, c.os, c.device)
        };
        assert_eq!(
            k(CHROME_LINUX),
            ("Chrome".into(), "Linux".into(), "desktop".into())
        );
        assert_eq!(
            k(SAFARI_IPHONE),
            ("Mobile Safari".into(), "iOS".into(), "mobile".into())
        );
        assert_eq!(
            k(FIREFOX_WINDOWS),
            ("Firefox".into(), "Windows".into(), "desktop".into())
        );
        assert_eq!(k(ANDROID_TABLET).2, "tablet");
    }

    #[test]
    fn a_headless_browser_is_a_bot_and_junk_is_unknown() {
        assert_eq!(classify(HEADLESS).device, "bot");
        let junk = classify("\u{1}???");
        assert_eq!(
            (junk.browser.as_str(), junk.os.as_str()),
            ("unknown", "unknown")
        );
        assert_eq!(junk.device, "unknown");
    }
}

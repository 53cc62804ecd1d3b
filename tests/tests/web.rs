//! The web app end to end in a real browser: Debian's Chromium (fake camera and microphone)
//! driven by playwright-core runs `web/e2e/browser.e2e.mjs` against the whole local stack —
//! the gateway serving the built app, the real functions, DynamoDB Local and moto, and an
//! ingest node taking the broadcaster page's WHIP publish and writing HLS that the viewer
//! page plays with hls.js.
//!
//! Needs `web/node_modules` and `web/dist` (scripts/test.sh installs and builds them first).
//! The second test signs in the production way (`web/e2e/signin.e2e.mjs`: an OpenID
//! provider, PKCE, RS256). The third plays a members-only stream with its signed grant
//! (`web/e2e/members.e2e.mjs`); the fourth follows a 'live now' notification
//! (`web/e2e/notifications.e2e.mjs`); the fifth checks the analytics against what two
//! browsers did, one of them throttled (`web/e2e/analytics.e2e.mjs`). Screenshots land in
//! `artifacts/web-e2e*/`.

use std::time::Duration;

use rill_tests::{BrowserStack, RtmpPublisher, TestIdp, User, repo_root, token, wait_for};
use serde_json::json;

#[tokio::test]
async fn a_broadcast_from_the_browser_is_watched_chatted_and_reacted_to_in_another() {
    let stack = BrowserStack::start();
    let id = run_e2e(&stack, "e2e/browser.e2e.mjs", "artifacts/web-e2e", &[]).await;
    // The watching browser reported its playback (web/src/client/qoe.ts): a startup time
    // from its play request to the first frame, once playback started.
    let viewers = stack.stack.items_with_sk_prefix("VIEWER#").await;
    let startups: Vec<u64> = viewers
        .iter()
        .filter(|i| i.get("started").and_then(|v| v.as_bool().ok()) == Some(&true))
        .filter_map(|i| i.get("startupMs")?.as_n().ok()?.parse().ok())
        .collect();
    assert!(
        !startups.is_empty()
            && startups
                .iter()
                .all(|ms| *ms <= rill_core::qoe::STARTUP_MS_MAX),
        "no playback report with a startup time: {viewers:?}"
    );
    // What the browser published over WHIP is an HLS recording ffprobe reads: H.264 video
    // and AAC audio (transcoded from Opus), every playlist closed.
    let master = stack.stack.url(&format!("/hls/live/{id}/master.m3u8"));
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
        ])
        .args(["-of", "csv=p=0", &master])
        .output()
        .expect("ffprobe");
    let streams = String::from_utf8_lossy(&probe.stdout);
    assert!(streams.contains("h264,video"), "{streams}");
    assert!(streams.contains("aac,audio"), "{streams}");
    // The node notices the end within its 2 s status poll, then closes the playlists.
    let url = stack.stack.url(&format!("/hls/live/{id}/audio/index.m3u8"));
    let mut audio = String::new();
    for _ in 0..60 {
        audio = stack
            .stack
            .http
            .get(&url)
            .send()
            .await
            .expect("GET audio playlist")
            .text()
            .await
            .expect("audio playlist");
        if audio.contains("#EXT-X-ENDLIST") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(audio.contains("#EXT-X-ENDLIST"), "{audio}");
}

/// The production sign-in path in a real browser: the app's "Sign in" goes to an OpenID
/// provider (`scripts/test_idp.py`, standing in for Cognito's hosted UI), trades the code
/// with PKCE for RS256 tokens that the functions verify against its JWKS with HS256 off,
/// goes live over WHIP, chats both ways, renews its token before expiry, signs out
/// (`web/e2e/signin.e2e.mjs`). Tokens live 75 s, so the renewal (a minute early) happens
/// within the test.
#[tokio::test]
async fn signing_in_through_the_provider_with_pkce_goes_live_and_chats() {
    let idp = TestIdp::start(75);
    let stack = BrowserStack::start_with_idp(&idp);
    let id = run_e2e(
        &stack,
        "e2e/signin.e2e.mjs",
        "artifacts/web-e2e-signin",
        &[("RILL_IDP", &idp.issuer)],
    )
    .await;
    // The stream it created belongs to the provider's user.
    let r = rill_tests::User::anonymous()
        .get(&stack.stack, &format!("/api/streams/{id}"))
        .await;
    assert_eq!(r.body["ownerId"], "olga", "{}", r.text);
}

/// Members-only playback in the browser (`web/e2e/members.e2e.mjs`): a channel member's
/// hls.js player adds the signed grant to every playlist and segment request and plays;
/// an outsider's watch page finds no stream and the media unsigned is refused.
#[tokio::test]
async fn a_member_plays_a_members_only_stream_that_an_outsider_cannot_reach() {
    let stack = BrowserStack::start();
    let alice = User::named("alice");
    let (id, key) = alice
        .create_stream(
            &stack.stack,
            json!({"channelId": "club", "title": "Members only", "visibility": "members"}),
        )
        .await;
    let r = alice
        .send(
            &stack.stack,
            "PUT",
            "/api/channels/club/members/carol",
            Some(json!({"role": "subscriber"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let _publisher = RtmpPublisher::start(&stack.ingest.rtmp, &key, "640x360", 90);
    let path = format!("/api/streams/{id}");
    wait_for("live", Duration::from_secs(60), || async {
        alice.get(&stack.stack, &path).await.body["status"] == "live"
    })
    .await;
    run_e2e(
        &stack,
        "e2e/members.e2e.mjs",
        "artifacts/web-e2e-members",
        &[
            ("RILL_STREAM_ID", &id),
            ("RILL_MEMBER_TOKEN", &token("carol", "Carol")),
        ],
    )
    .await;
}

/// Notifications in the browser (`web/e2e/notifications.e2e.mjs`): a follower sees the
/// unread badge for a stream of the channel they follow that went live and for another's
/// 15-minute reminder, follows the "live now" link, and it is read afterwards; the owner
/// schedules a stream with reminders from the Schedule page.
#[tokio::test]
async fn a_follower_sees_live_now_in_the_header_and_follows_it_to_the_stream() {
    let stack = BrowserStack::start();
    let alice = User::named("alice");
    let r = alice
        .post(
            &stack.stack,
            "/api/channels",
            json!({"id": "newsroom", "name": "Newsroom"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let dave = User::named("dave");
    let r = dave
        .send(
            &stack.stack,
            "PUT",
            "/api/channels/newsroom/members/dave",
            Some(json!({"role": "follower"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (id, _key) = alice
        .create_stream(
            &stack.stack,
            json!({"channelId": "newsroom", "title": "Evening news"}),
        )
        .await;
    stack.stack.go_live(&id).await;
    // A scheduled stream whose 15-minute reminder is due 3 s from now (the gateway fires
    // its schedule).
    let start = chrono::Utc::now() + chrono::Duration::minutes(15) + chrono::Duration::seconds(3);
    alice
        .create_stream(
            &stack.stack,
            json!({"channelId": "newsroom", "title": "Morning show",
                   "scheduledAt": rill_core::time::format(&start),
                   "settings": {"notifications": {"reminders": [15]}}}),
        )
        .await;
    wait_for("both notifications", Duration::from_secs(20), || async {
        let r = dave.get(&stack.stack, "/api/me/notifications").await;
        r.body["items"].as_array().is_some_and(|i| i.len() == 2)
    })
    .await;
    run_e2e(
        &stack,
        "e2e/notifications.e2e.mjs",
        "artifacts/web-e2e-notifications",
        &[
            ("RILL_STREAM_ID", &id),
            ("RILL_STREAM_TITLE", "Evening news"),
            ("RILL_FOLLOWER_TOKEN", &token("dave", "Dave")),
            ("RILL_REMINDER_TITLE", "Morning show"),
            ("RILL_OWNER_TOKEN", &token("alice", "Alice")),
            ("RILL_CHANNEL", "newsroom"),
        ],
    )
    .await;
}

/// Analytics against ground truth (`web/e2e/analytics.e2e.mjs`): two signed-in browsers
/// watch a stream published over RTMP; one is throttled through the DevTools protocol
/// until its player stalls. The endpoint's numbers match what the script observed: two
/// views, both users, each view's watch time within a few seconds of the script's, the
/// throttled view's rebuffers counted and the steady one's exactly as it stalled (none,
/// normally), the chat exact, the reactions as stored; the owner's dashboard renders its
/// charts and CSV (screenshot in `artifacts/web-e2e-analytics/`).
#[tokio::test]
async fn analytics_match_what_two_browsers_did_one_of_them_throttled() {
    let stack = BrowserStack::start();
    let olive = User::named("olive");
    let (id, key) = olive
        .create_stream(
            &stack.stack,
            json!({"channelId": "stats", "title": "Measured"}),
        )
        .await;
    let _publisher = RtmpPublisher::start(&stack.ingest.rtmp, &key, "640x360", 170);
    let path = format!("/api/streams/{id}");
    wait_for("live", Duration::from_secs(60), || async {
        olive.get(&stack.stack, &path).await.body["status"] == "live"
    })
    .await;
    let log = run_node(
        &stack,
        "e2e/analytics.e2e.mjs",
        "artifacts/web-e2e-analytics",
        &[
            ("RILL_STREAM_ID", &id),
            ("RILL_OWNER_TOKEN", &token("olive", "Olive")),
            ("RILL_STEADY_TOKEN", &token("sam", "Sam")),
            ("RILL_THROTTLED_TOKEN", &token("tess", "Tess")),
        ],
    )
    .await;
    let truth: serde_json::Value = log
        .lines()
        .find_map(|l| l.split("TRUTH ").nth(1))
        .and_then(|j| serde_json::from_str(j.trim()).ok())
        .expect("the script prints what it observed");
    let analytics = format!("/api/streams/{id}/analytics");
    // Both views ended and folded.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let views = loop {
        let body = olive
            .get(&stack.stack, &format!("{analytics}?view=sessions"))
            .await
            .body;
        let done = body["items"]
            .as_array()
            .is_some_and(|v| v.len() == 2 && v.iter().all(|v| v["endedAt"].is_string()));
        if done {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "both views ended: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let view = |user: &str| {
        views["items"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["userId"] == user))
            .cloned()
            .unwrap_or_else(|| panic!("no view of {user}: {views}"))
    };
    for (user, seen) in [("sam", &truth["steady"]), ("tess", &truth["throttled"])] {
        let v = view(user);
        let (got, want) = (
            v["watchMs"].as_i64().expect("watchMs"),
            seen["watchMs"].as_i64().expect("truth"),
        );
        assert!(
            (got - want).abs() <= 5_000,
            "{user}: watched {got} ms, the browser {want} ms"
        );
        assert_eq!(v["report"]["started"], true, "{user}: {v}");
    }
    let rebuffers = |user: &str| {
        view(user)["report"]["rebuffers"]
            .as_u64()
            .expect("rebuffers")
    };
    assert!(
        rebuffers("tess") >= 1,
        "the throttled view stalled: {}",
        view("tess")
    );
    // Held throttled for 2 s after its first stall: the player measured rebuffering time
    // (how much depends on how soon hls.js found a frame to show again).
    let stalled_ms = view("tess")["report"]["rebufferMs"]
        .as_u64()
        .expect("rebufferMs");
    assert!(
        stalled_ms > 0,
        "rebuffering of the throttled view: {stalled_ms} ms"
    );
    assert_eq!(
        rebuffers("sam"),
        truth["steady"]["stalls"].as_u64().expect("stalls"),
        "the steady view's rebuffers are the stalls its browser saw"
    );
    let body = olive.get(&stack.stack, &analytics).await.body;
    let s = &body["summary"];
    assert_eq!(s["views"], 2, "{s}");
    assert_eq!(s["uniqueViewers"], 2);
    assert_eq!(s["chatMessages"], truth["chat"]);
    assert_eq!(s["chatters"], 2);
    assert!(
        s["rebufferPercent"].as_f64().is_some_and(|p| p > 0.0),
        "{s}"
    );
    let stored = stack.stack.items_with_sk_prefix("REACT#").await.len() as u64;
    let counted: u64 = s["reactions"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    assert!(stored >= 1, "a reaction was stored");
    assert_eq!(counted, stored, "every stored reaction counted once");
}

/// Runs `web/<script>` with node against `stack` (plus `env`), prints its log and fails the
/// test with it unless the script passed; returns the id of the stream the script created.
async fn run_e2e(
    stack: &BrowserStack,
    script: &str,
    artifacts: &str,
    env: &[(&str, &str)],
) -> String {
    run_node(stack, script, artifacts, env)
        .await
        .lines()
        .find_map(|l| l.split("created stream ").nth(1))
        .map(|s| s.trim().to_owned())
        .expect("the e2e script prints the stream id")
}

/// Runs `web/<script>` with node against `stack` (plus `env`), prints its log and fails the
/// test with it unless the script passed; returns the log.
async fn run_node(
    stack: &BrowserStack,
    script: &str,
    artifacts: &str,
    env: &[(&str, &str)],
) -> String {
    let artifacts = repo_root().join(artifacts);
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    let mut node = stack.node_command(script, &artifacts);
    node.envs(env.iter().copied());
    let out = tokio::task::spawn_blocking(move || node.output())
        .await
        .expect("join")
        .expect("run node (scripts/setup.sh installs Node.js packages)");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{log}");
    assert!(
        out.status.success(),
        "{script} failed ({}); screenshots in {}:\n{log}",
        out.status,
        artifacts.display()
    );
    log
}

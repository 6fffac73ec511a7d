//! GitHub logins (OAuth 2.0 without OpenID Connect) against the fake GitHub
//! of the test kit: identity from the REST API, the verified primary
//! address only, organization and team rules, API outages, and logout.

use http::StatusCode;
use testkit::github::{FakeGitHub, GitHubAccount, GitHubEmail};
use testkit::upstream::EchoUpstream;

use crate::support::*;

const LOGIN: &str = "octocat";
const EMAIL: &str = "octocat@example.com";

/// A fake GitHub, an echo upstream and a gate in front of them.
struct GitHubSetup {
    github: FakeGitHub,
    _upstream: EchoUpstream,
    gate: GateServer,
    door: Door,
}

impl GitHubSetup {
    async fn start(door: Door, account: GitHubAccount, extra: &str) -> GitHubSetup {
        let github = FakeGitHub::start(account).await;
        let upstream = EchoUpstream::start().await;
        let mut yaml = format!(
            "providerURL: {url}\nproviderType: github\nclientID: {id}\nclientSecret: {secret}\n\
             sessionEncryptionKey: {SESSION_KEY}\nlogLevel: error\n",
            url = github.url(),
            id = github.client_id(),
            secret = github.client_secret(),
        );
        if door == Door::Proxy {
            yaml.push_str(&format!("upstream: {}\n", upstream.url()));
        }
        yaml.push_str(extra);
        let gate = GateServer::start(&yaml).await;
        GitHubSetup {
            github,
            _upstream: upstream,
            gate,
            door,
        }
    }

    fn browser(&self) -> Browser {
        Browser::for_provider(self.door, &self.gate, self.github.addr())
    }

    /// Visits `/` and follows the login; returns every hop.
    async fn login(&self, b: &mut Browser) -> Vec<Resp> {
        let url = b.app_url("/");
        b.navigate(&url).await
    }
}

fn account() -> GitHubAccount {
    let mut a = GitHubAccount::new(583231, LOGIN, EMAIL);
    a.name = Some("The Octocat".into());
    a
}

#[tokio::test]
async fn github_login_reads_the_identity_from_the_api() {
    for door in [Door::Proxy, Door::ForwardAuth] {
        let s = GitHubSetup::start(door, account(), "").await;
        let mut b = s.browser();
        let hops = s.login(&mut b).await;
        let authorize = hops[0].location().unwrap();
        assert_eq!(authorize.path(), "/login/oauth/authorize");
        let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "read:user user:email", "{authorize}");
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!q["state"].is_empty());
        let landed = hops.last().unwrap();
        assert_eq!(landed.status, door.allowed_status(), "{landed:?}");
        let id = landed.identity(door);
        assert_eq!(id.get("x-forwarded-user").map(String::as_str), Some(EMAIL));
        assert_eq!(
            id.get("x-auth-request-email").map(String::as_str),
            Some(EMAIL)
        );
        // The session holds the identity: later requests do not call GitHub.
        let calls = s.github.api_calls();
        let again = b.get_app("/again").await;
        assert_eq!(again.status, door.allowed_status());
        assert_eq!(s.github.api_calls(), calls);
    }
}

#[tokio::test]
async fn github_unverified_primary_email_is_not_used() {
    let mut a = account();
    a.emails = vec![
        GitHubEmail {
            email: "unverified@example.com".into(),
            primary: true,
            verified: false,
        },
        GitHubEmail {
            email: "secondary@example.com".into(),
            primary: false,
            verified: true,
        },
    ];
    let s = GitHubSetup::start(Door::ForwardAuth, a, "").await;
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    let landed = hops.last().unwrap();
    assert_eq!(landed.status, StatusCode::OK, "{landed:?}");
    let id = landed.identity(Door::ForwardAuth);
    assert_eq!(id.get("x-forwarded-user").map(String::as_str), Some(LOGIN));
    assert_eq!(
        id.get("x-auth-request-email")
            .map(String::as_str)
            .unwrap_or(""),
        ""
    );

    // With a domain rule, the unverified address does not open the door.
    let mut a = account();
    a.emails[0].verified = false;
    let s = GitHubSetup::start(Door::ForwardAuth, a, "allowedUserDomains: [example.com]\n").await;
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    // Refused after the callback: the browser is sent back and refused there.
    let last = hops.last().unwrap();
    assert_eq!(last.url.path(), "/");
    assert_eq!(last.status, StatusCode::FORBIDDEN, "{last:?}");
    assert!(!b.jar.contains_key(SESSION_COOKIE));
}

#[tokio::test]
async fn github_organization_rule_refuses_outsiders_and_admits_members() {
    let mut a = account();
    a.orgs = vec!["other-org".into()];
    let s = GitHubSetup::start(Door::Proxy, a, "allowedOrganizations: [Acme]\n").await;
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    let authorize = hops[0].location().unwrap();
    assert!(
        authorize
            .query_pairs()
            .any(|(k, v)| k == "scope" && v.split(' ').any(|s| s == "read:org")),
        "{authorize}"
    );
    // Refused at the address asked for, not at the callback, naming the account.
    let last = hops.last().unwrap();
    assert_eq!(last.url.path(), "/");
    assert_eq!(last.status, StatusCode::FORBIDDEN, "{last:?}");
    assert!(last.body.contains("GitHub organization"), "{}", last.body);
    assert!(last.body.contains(LOGIN), "{}", last.body);
    assert!(!b.jar.contains_key(SESSION_COOKIE));

    let mut member = account();
    member.orgs = vec!["other-org".into(), "acme".into()];
    s.github.set_account(member);
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, StatusCode::OK, "{last:?}");
    let groups = last.identity(Door::Proxy).get("x-user-groups").cloned();
    assert_eq!(groups.as_deref(), Some("other-org,acme"));
}

#[tokio::test]
async fn github_team_rule_allows_members_and_refuses_others() {
    let mut a = account();
    a.orgs = vec!["acme".into()];
    a.teams = vec![("acme".into(), "developers".into())];
    let s = GitHubSetup::start(Door::ForwardAuth, a, "allowedTeams: [acme/ops]\n").await;
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, StatusCode::FORBIDDEN, "{last:?}");
    assert!(last.body.contains("GitHub team"), "{}", last.body);

    // Team lists are read page by page: the team is on the third page.
    let mut member = account();
    member.teams = (0..250)
        .map(|i| ("acme".to_owned(), format!("team-{i}")))
        .chain([("ACME".to_owned(), "Ops".to_owned())])
        .collect();
    s.github.set_account(member);
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    let last = hops.last().unwrap();
    assert_eq!(last.status, StatusCode::OK, "{last:?}");
}

#[tokio::test]
async fn github_api_outage_is_a_clear_error_page() {
    let s = GitHubSetup::start(Door::Proxy, account(), "").await;
    s.github.fail_api(Some(502));
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    let last = hops.last().unwrap();
    assert_eq!(last.url.path(), "/oauth2/callback");
    assert_eq!(last.status, StatusCode::SERVICE_UNAVAILABLE, "{last:?}");
    assert!(last.body.contains("unavailable"), "{}", last.body);
    assert!(!b.jar.contains_key(SESSION_COOKIE));

    s.github.fail_api(None);
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    assert_eq!(hops.last().unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn github_logout_ends_the_session_locally() {
    let s = GitHubSetup::start(Door::Proxy, account(), "").await;
    let mut b = s.browser();
    let hops = s.login(&mut b).await;
    assert_eq!(hops.last().unwrap().status, StatusCode::OK);
    let out = b.get_app("/oauth2/callback/logout").await;
    assert!(out.is_redirect(), "{out:?}");
    // No end-session endpoint: the browser stays with the application.
    let to = out.location().unwrap();
    assert_eq!(to.authority(), s.gate.addr().to_string(), "{to}");
    assert!(!b.jar.contains_key(SESSION_COOKIE));
    let after = b.get_app("/").await;
    assert_eq!(after.status, StatusCode::FOUND);
    assert_eq!(after.location().unwrap().path(), "/login/oauth/authorize");
}

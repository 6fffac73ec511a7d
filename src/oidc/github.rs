//! GitHub as a login provider: OAuth 2.0 without OpenID Connect.
//!
//! GitHub issues no ID token, publishes no discovery document or keys, and
//! has no end-session endpoint. The code flow runs against
//! `<web>/login/oauth/authorize` and `<web>/login/oauth/access_token`
//! (state and PKCE S256; client id and secret in the form body; the answer
//! asked for as JSON, and an `error` member in a 200 answer is a refusal).
//! Who the user is comes from the REST API: `GET /user` (the numeric `id` is
//! the stable subject, `login` the mutable username), `GET /user/emails`
//! (only the entry that is both primary and verified counts), and, when an
//! organization or team rule is configured, `GET /user/orgs` and
//! `GET /user/teams`, read page by page up to [`DEFAULT_GITHUB_MAX_PAGES`].
//!
//! Owns these conversations only; which organizations and teams are allowed
//! is decided by the gate from the [`GitHubUser`] returned here.

use serde::Deserialize;

use super::client_auth::ClientAuthMethod;
use super::discovery::ProviderMetadata;
use super::http::{exchange, read_capped, transport_error};
use super::{Error, OAuthErrorKind, TokenResponse};

/// The web origin of github.com (authorize and token endpoints).
pub const GITHUB_WEB_URL: &str = "https://github.com";
/// The REST API of github.com.
pub const GITHUB_API_URL: &str = "https://api.github.com";
/// Scopes requested from GitHub unless `scopes` lists others: the profile
/// and the e-mail list. `read:org` is added when an organization or team
/// rule is configured.
pub const DEFAULT_GITHUB_SCOPES: &[&str] = &["read:user", "user:email"];
/// The scope that lets the gate read organization and team membership.
pub const GITHUB_ORG_SCOPE: &str = "read:org";
/// Entries asked for per page of a GitHub list (the API's maximum).
pub const GITHUB_PER_PAGE: usize = 100;
/// Pages read of one list (`/user/emails`, `/user/orgs`, `/user/teams`)
/// before the rest is ignored: 1,000 entries.
pub const DEFAULT_GITHUB_MAX_PAGES: usize = 10;
/// The REST API media type.
const GITHUB_MEDIA_TYPE: &str = "application/vnd.github+json";

/// Where GitHub lives and which memberships the gate asks about.
#[derive(Clone, Debug)]
pub struct GitHubSettings {
    /// Origin of the authorize and token endpoints (`https://github.com`,
    /// or a GitHub Enterprise Server host).
    pub web_url: String,
    /// Base of the REST API (`https://api.github.com`, or
    /// `https://HOST/api/v3` on GitHub Enterprise Server).
    pub api_url: String,
    /// Organization logins a user must belong to (one of them), lower case.
    pub allowed_organizations: Vec<String>,
    /// Teams (`org/team-slug`) a user must belong to (one of them), lower case.
    pub allowed_teams: Vec<String>,
    /// Pages read of one list.
    pub max_pages: usize,
}

impl GitHubSettings {
    /// github.com, without membership rules.
    pub fn github_com() -> Self {
        Self::at(GITHUB_WEB_URL, GITHUB_API_URL)
    }

    /// GitHub at `web_url` with its API at `api_url`, without membership rules.
    pub fn at(web_url: &str, api_url: &str) -> Self {
        Self {
            web_url: web_url.trim_end_matches('/').to_owned(),
            api_url: api_url.trim_end_matches('/').to_owned(),
            allowed_organizations: Vec::new(),
            allowed_teams: Vec::new(),
            max_pages: DEFAULT_GITHUB_MAX_PAGES,
        }
    }

    /// True when organization memberships must be read.
    pub fn reads_organizations(&self) -> bool {
        !self.allowed_organizations.is_empty()
    }

    /// True when team memberships must be read.
    pub fn reads_teams(&self) -> bool {
        !self.allowed_teams.is_empty()
    }

    /// The metadata the rest of the client works with, in place of a
    /// discovery document: the two OAuth endpoints, nothing else.
    pub(crate) fn metadata(&self) -> Result<ProviderMetadata, Error> {
        serde_json::from_value(serde_json::json!({
            "issuer": self.web_url,
            "authorization_endpoint": format!("{}/login/oauth/authorize", self.web_url),
            "token_endpoint": format!("{}/login/oauth/access_token", self.web_url),
            "jwks_uri": "",
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [ClientAuthMethod::ClientSecretPost.as_str()],
        }))
        .map_err(|e| Error::Config(format!("GitHub endpoints: {e}")))
    }
}

/// Who signed in at GitHub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitHubUser {
    /// The numeric account id: stable, the subject of the session.
    pub id: u64,
    /// The login (username); it can be renamed.
    pub login: String,
    /// The display name, when set.
    pub name: Option<String>,
    /// The primary e-mail address, only when GitHub has verified it.
    pub verified_email: Option<String>,
    /// Organization logins, lower case (read only when a rule needs them).
    pub organizations: Vec<String>,
    /// Teams as `org/team-slug`, lower case (read only when a rule needs them).
    pub teams: Vec<String>,
}

/// GitHub's token answer: an access token, or an `error` with status 200.
#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    /// Seconds, a number or (in older answers) a string; only GitHub Apps
    /// with expiring tokens send it.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Exchanges an authorization code at GitHub's token endpoint. The client
/// id and secret travel in the body (`client_secret_post`); GitHub's
/// refresh tokens are not kept (sessions last as long as the session
/// cookie allows, or until the token's `expires_in`).
pub(crate) async fn exchange_code(
    client: &reqwest::Client,
    token_endpoint: &str,
    client_id: &str,
    client_secret: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse, Error> {
    let mut body: Vec<(&str, &str)> = vec![("client_id", client_id)];
    if !client_secret.is_empty() {
        body.push(("client_secret", client_secret));
    }
    body.extend(form.iter().filter(|(k, _)| *k != "grant_type"));
    let req = client
        .post(token_endpoint)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&body);
    let (status, bytes) = exchange(req, "GitHub token endpoint").await?;
    let raw: RawToken = serde_json::from_slice(&bytes).map_err(|_| {
        Error::ProviderInvalid(format!(
            "GitHub token endpoint answered HTTP {status} without a JSON body"
        ))
    })?;
    if let Some(code) = raw.error {
        return Err(Error::OAuth {
            kind: github_error_kind(&code),
            status: status.as_u16(),
        });
    }
    let access_token = raw
        .access_token
        .filter(|t| !t.is_empty() && status.is_success())
        .ok_or_else(|| {
            Error::ProviderInvalid(format!(
                "GitHub token endpoint answered HTTP {status} without an access_token"
            ))
        })?;
    Ok(TokenResponse {
        access_token,
        token_type: raw.token_type,
        expires_in: raw.expires_in.as_ref().and_then(seconds),
        refresh_token: None,
        id_token: None,
        scope: raw.scope,
    })
}

/// GitHub's token-endpoint error codes in OAuth terms.
fn github_error_kind(code: &str) -> OAuthErrorKind {
    match code {
        "bad_verification_code" => OAuthErrorKind::InvalidGrant,
        "incorrect_client_credentials" => OAuthErrorKind::InvalidClient,
        other => OAuthErrorKind::parse(other),
    }
}

/// A number of seconds sent as a JSON number or a string of digits.
fn seconds(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[derive(Deserialize)]
struct ApiUser {
    id: u64,
    login: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct ApiEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

#[derive(Deserialize)]
struct ApiOrg {
    login: String,
}

#[derive(Deserialize)]
struct ApiTeam {
    slug: String,
    organization: ApiOrg,
}

/// Reads the signed-in user, the verified primary e-mail, and the
/// memberships the settings ask for.
pub(crate) async fn user(
    client: &reqwest::Client,
    s: &GitHubSettings,
    token: &str,
) -> Result<GitHubUser, Error> {
    let me: ApiUser = api_get(client, s, token, "/user").await?;
    if me.login.trim().is_empty() {
        return Err(Error::ProviderInvalid(
            "GitHub /user has an empty login".into(),
        ));
    }
    let emails: Vec<ApiEmail> = api_list(client, s, token, "/user/emails").await?;
    let verified_email = emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email);
    let organizations = if s.reads_organizations() {
        let orgs: Vec<ApiOrg> = api_list(client, s, token, "/user/orgs").await?;
        orgs.into_iter()
            .map(|o| o.login.to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    let teams = if s.reads_teams() {
        let teams: Vec<ApiTeam> = api_list(client, s, token, "/user/teams").await?;
        teams
            .into_iter()
            .map(|t| format!("{}/{}", t.organization.login, t.slug).to_ascii_lowercase())
            .collect()
    } else {
        Vec::new()
    };
    Ok(GitHubUser {
        id: me.id,
        login: me.login,
        name: me.name.filter(|n| !n.is_empty()),
        verified_email,
        organizations,
        teams,
    })
}

/// Every page of a list endpoint, up to `max_pages`: a page shorter than
/// [`GITHUB_PER_PAGE`] is the last.
async fn api_list<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    s: &GitHubSettings,
    token: &str,
    path: &str,
) -> Result<Vec<T>, Error> {
    let mut all = Vec::new();
    for page in 1..=s.max_pages.max(1) {
        let batch: Vec<T> = api_get(
            client,
            s,
            token,
            &format!("{path}?per_page={GITHUB_PER_PAGE}&page={page}"),
        )
        .await?;
        let last = batch.len() < GITHUB_PER_PAGE;
        all.extend(batch);
        if last {
            return Ok(all);
        }
    }
    tracing::warn!(
        path,
        pages = s.max_pages,
        "GitHub list longer than the pages read; the rest is ignored"
    );
    Ok(all)
}

/// One authenticated GET against the REST API. 5xx, 429 and transport
/// failures are `ProviderUnavailable`; 401 means the token is not (or no
/// longer) valid; any other refusal (403 for an organization that has not
/// approved the application, 404 without the scope) is `ProviderInvalid`
/// naming the path and status.
async fn api_get<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    s: &GitHubSettings,
    token: &str,
    path_and_query: &str,
) -> Result<T, Error> {
    let url = format!("{}{path_and_query}", s.api_url);
    let path = path_and_query.split('?').next().unwrap_or(path_and_query);
    let resp = client
        .get(&url)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, GITHUB_MEDIA_TYPE)
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| transport_error(&format!("GitHub {path}"), &e))?;
    let status = resp.status();
    let body = read_capped(resp, &format!("GitHub {path}")).await?;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::ProviderUnavailable(format!(
            "GitHub {path}: HTTP {status}"
        )));
    }
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(Error::TokenClaim("GitHub refused the access token"));
    }
    if !status.is_success() {
        return Err(Error::ProviderInvalid(format!(
            "GitHub {path}: HTTP {status}"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| Error::ProviderInvalid(format!("GitHub {path}: unexpected JSON: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_is_read_as_number_or_string() {
        assert_eq!(seconds(&serde_json::json!(28800)), Some(28800));
        assert_eq!(seconds(&serde_json::json!("28800")), Some(28800));
        assert_eq!(seconds(&serde_json::json!("soon")), None);
        assert_eq!(seconds(&serde_json::json!(-1)), None);
    }

    #[test]
    fn github_error_codes_map_to_oauth_kinds() {
        assert_eq!(
            github_error_kind("bad_verification_code"),
            OAuthErrorKind::InvalidGrant
        );
        assert_eq!(
            github_error_kind("incorrect_client_credentials"),
            OAuthErrorKind::InvalidClient
        );
        assert_eq!(
            github_error_kind("redirect_uri_mismatch"),
            OAuthErrorKind::Other("redirect_uri_mismatch".into())
        );
    }

    #[test]
    fn metadata_names_the_oauth_endpoints() {
        let m = GitHubSettings::at("https://ghe.example/", "https://ghe.example/api/v3")
            .metadata()
            .unwrap();
        assert_eq!(
            m.authorization_endpoint,
            "https://ghe.example/login/oauth/authorize"
        );
        assert_eq!(
            m.token_endpoint,
            "https://ghe.example/login/oauth/access_token"
        );
        assert!(m.end_session_endpoint.is_none());
    }
}

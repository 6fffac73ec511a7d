//! Microsoft Graph, for Entra ID group overage: the groups of the signed-in
//! user, read with the session's Graph access token.
//!
//! Owns the one Graph call the gate makes
//! (`GET /v1.0/me/transitiveMemberOf?$select=id`) and its paging. A
//! `@odata.nextLink` is followed only on the configured Graph origin and for
//! at most [`MAX_GRAPH_PAGES`] pages; the URL a token names in
//! `_claim_sources` is never called.

use serde::Deserialize;

use super::Error;
use super::http::get_json_with;

/// Most pages of memberships read for one user (999 each).
pub const MAX_GRAPH_PAGES: usize = 20;
/// Memberships asked for per page (Graph's largest page).
const PAGE_SIZE: u32 = 999;
/// The `@odata.type` of a group.
const GROUP_TYPE: &str = "#microsoft.graph.group";

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    value: Vec<Member>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct Member {
    #[serde(default)]
    id: Option<String>,
    #[serde(rename = "@odata.type", default)]
    odata_type: Option<String>,
}

/// The object ids of the groups the holder of `access_token` belongs to,
/// directly or through other groups (directory roles and administrative
/// units left out).
pub(crate) async fn transitive_groups(
    client: &reqwest::Client,
    base: &str,
    access_token: &str,
) -> Result<Vec<String>, Error> {
    let base = base.trim_end_matches('/');
    let origin = url::Url::parse(base)
        .map_err(|_| Error::Config("microsoftGraphURL is not a URL".into()))?
        .origin();
    let mut url = format!("{base}/v1.0/me/transitiveMemberOf?$select=id&$top={PAGE_SIZE}");
    let mut groups = Vec::new();
    for _ in 0..MAX_GRAPH_PAGES {
        let page: Page = get_json_with(
            client,
            &url,
            Some(access_token),
            &[("ConsistencyLevel", "eventual")],
        )
        .await?;
        groups.extend(page.value.into_iter().filter_map(|m| {
            (m.odata_type.as_deref() == Some(GROUP_TYPE))
                .then_some(m.id)
                .flatten()
        }));
        match page.next_link {
            None => {
                groups.sort();
                groups.dedup();
                return Ok(groups);
            }
            Some(next) => {
                let same_origin = url::Url::parse(&next).is_ok_and(|u| u.origin() == origin);
                if !same_origin {
                    return Err(Error::ProviderInvalid(
                        "Graph paging link leaves microsoftGraphURL".into(),
                    ));
                }
                url = next;
            }
        }
    }
    Err(Error::ProviderInvalid(format!(
        "more than {MAX_GRAPH_PAGES} pages of group memberships"
    )))
}

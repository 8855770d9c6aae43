//! The Overview's first-run checklist: add a platform key, add suppliers (one
//! by one, or imported from CSV), issue gateway tokens, start the gateway, and
//! the first request — each step done when the database (or the routing lock)
//! says so, never by a flag the console keeps — with the gateway's URL and
//! copyable snippets for curl, the OpenAI Python SDK and Node.

use crate::console::service::{Res, Service, msg};
use crate::domain::{AccountOwner, ProviderAccount};

/// Where a client sends requests when the console itself does not serve them:
/// `switchboard serve`'s default address.
pub const DEFAULT_GATEWAY_URL: &str = "http://127.0.0.1:4480/v1";

/// The checklist's facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GettingStarted {
    /// Platform accounts with a key in the keychain.
    pub platform_keys: usize,
    pub suppliers: usize,
    /// Gateway tokens not revoked.
    pub tokens: usize,
    /// Who routes this database now (the routing lock's holder), if anyone.
    pub routed_by: Option<String>,
    /// Whether any request was ever recorded.
    pub first_request: bool,
    /// The gateway's URL (this console's own gateway, or `serve`'s default).
    pub gateway_url: String,
}

impl GettingStarted {
    /// Steps done, of five.
    pub fn done(&self) -> usize {
        [self.platform_keys > 0, self.suppliers > 0, self.tokens > 0, self.routed_by.is_some(), self.first_request]
            .iter()
            .filter(|d| **d)
            .count()
    }
    pub fn complete(&self) -> bool {
        self.done() == 5
    }
    pub fn snippets(&self) -> Snippets {
        Snippets::for_url(&self.gateway_url)
    }
}

/// Copyable client snippets for the gateway at `url` (the token stays a placeholder: it is shown once, at issue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippets {
    pub curl: String,
    pub python: String,
    pub node: String,
}

impl Snippets {
    pub fn for_url(url: &str) -> Snippets {
        Snippets {
            curl: format!(
                "curl {url}/chat/completions \\\n  -H \"Authorization: Bearer $SWITCHBOARD_TOKEN\" \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{\"model\": \"gpt-4o-mini\", \"messages\": [{{\"role\": \"user\", \"content\": \"Write a thank-you note\"}}]}}'"
            ),
            python: format!(
                "import os\nfrom openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}\", api_key=os.environ[\"SWITCHBOARD_TOKEN\"])\nreply = client.chat.completions.create(\n    model=\"gpt-4o-mini\",\n    messages=[{{\"role\": \"user\", \"content\": \"Write a thank-you note\"}}],\n)\nprint(reply.choices[0].message.content)"
            ),
            node: format!(
                "import OpenAI from \"openai\";\n\nconst client = new OpenAI({{ baseURL: \"{url}\", apiKey: process.env.SWITCHBOARD_TOKEN }});\nconst reply = await client.chat.completions.create({{\n  model: \"gpt-4o-mini\",\n  messages: [{{ role: \"user\", content: \"Write a thank-you note\" }}],\n}});\nconsole.log(reply.choices[0].message.content);"
            ),
        }
    }
}

impl Service {
    pub(in crate::console) fn getting_started(&self, accounts: &[ProviderAccount], suppliers: usize) -> Res<GettingStarted> {
        let platform_keys = accounts.iter().filter(|a| a.owner == AccountOwner::Platform && a.key_ref.is_some()).count();
        let tokens = self.store.token_rows().map_err(msg)?.iter().filter(|t| !t.revoked).count();
        let routed_by = crate::engine::migration_schedule::router_of(&self.store).map(|h| h.to_string());
        let gateway_url = self
            .live()
            .and_then(|l| l.services.gateway_url.clone())
            .map(|u| format!("{}/v1", u.trim_end_matches('/').trim_end_matches("/v1")))
            .unwrap_or_else(|| DEFAULT_GATEWAY_URL.to_string());
        Ok(GettingStarted {
            platform_keys,
            suppliers,
            tokens,
            routed_by,
            // A request answered by this console's own runtime counts before its ledger folds.
            first_request: self.live().and_then(|l| l.services.router.clone()).is_some_and(|r| !r.ledger().recent(1).is_empty())
                || self.store.has_usage_events().map_err(msg)?,
            gateway_url,
        })
    }
}

//! Azure OpenAI endpoints: the classic deployment form
//! (`/openai/deployments/{deployment}/…?api-version=…`) and the newer
//! `/openai/v1/…` form, both with the `api-key` header. The wire format is
//! OpenAI's (see [`super::openai`]).

use crate::domain::AzureConfig;

pub const NAME: &str = "Azure OpenAI";

/// Which URL form an Azure account uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureRoute {
    /// `/openai/deployments/{deployment}/{op}?api-version={v}`.
    Deployment { endpoint: String, deployment: String, api_version: String },
    /// `/openai/v1/{op}`, the deployment name goes in the body's `model`.
    V1 { endpoint: String, deployment: String },
}

impl AzureRoute {
    /// The v1 form is used when the api-version is `v1`/`latest`/`preview`, empty, or
    /// the endpoint already ends in `/openai/v1`.
    pub fn new(base_url: &str, cfg: Option<&AzureConfig>) -> Self {
        let base = base_url.trim_end_matches('/');
        let deployment = cfg.map(|c| c.deployment.clone()).unwrap_or_default();
        let version = cfg.map(|c| c.api_version.trim().to_string()).unwrap_or_default();
        if let Some(endpoint) = base.strip_suffix("/openai/v1") {
            return Self::V1 { endpoint: endpoint.to_string(), deployment };
        }
        let endpoint = base.strip_suffix("/openai").unwrap_or(base).to_string();
        if matches!(version.as_str(), "" | "v1" | "latest" | "preview") {
            Self::V1 { endpoint, deployment }
        } else {
            Self::Deployment { endpoint, deployment, api_version: version }
        }
    }

    pub fn deployment(&self) -> &str {
        match self {
            Self::Deployment { deployment, .. } | Self::V1 { deployment, .. } => deployment,
        }
    }

    /// URL of an operation under the deployment (`chat/completions`, `embeddings`).
    pub fn op_url(&self, op: &str) -> String {
        match self {
            Self::Deployment { endpoint, deployment, api_version } => {
                format!("{endpoint}/openai/deployments/{deployment}/{op}?api-version={api_version}")
            }
            Self::V1 { endpoint, .. } => format!("{endpoint}/openai/v1/{op}"),
        }
    }

    /// URL of the model list (used to validate keys).
    pub fn models_url(&self) -> String {
        match self {
            Self::Deployment { endpoint, api_version, .. } => format!("{endpoint}/openai/models?api-version={api_version}"),
            Self::V1 { endpoint, .. } => format!("{endpoint}/openai/v1/models"),
        }
    }

    /// Whether the body's `model` must be set to the deployment name.
    pub fn model_in_body(&self) -> bool {
        matches!(self, Self::V1 { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let cfg = AzureConfig { deployment: "gpt4o-prod".into(), api_version: "2024-10-21".into() };
        let r = AzureRoute::new("https://acme.openai.azure.com/", Some(&cfg));
        assert_eq!(
            r.op_url("chat/completions"),
            "https://acme.openai.azure.com/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(r.models_url(), "https://acme.openai.azure.com/openai/models?api-version=2024-10-21");
        let v1 = AzureRoute::new("https://acme.openai.azure.com/openai/v1", Some(&cfg));
        assert_eq!(v1.op_url("chat/completions"), "https://acme.openai.azure.com/openai/v1/chat/completions");
        assert!(v1.model_in_body());
        let cfg1 = AzureConfig { deployment: "d".into(), api_version: "v1".into() };
        assert_eq!(AzureRoute::new("https://x", Some(&cfg1)).op_url("embeddings"), "https://x/openai/v1/embeddings");
    }
}

//! Test servers with a pre-filled audit store, and admin-token requests.

use crate::helpers::*;
use serde_json::Value;
use vcf_cds::audit::AuditStore;
use vcf_cds::audit::seed::{self, Generated};
use vcf_cds::configuration::Settings;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const SERVICE: &str = "vcf-order-select";

/// Generated data: `n` calls over the last 20 days (seed fixed).
pub async fn generated(n: usize) -> Generated {
    seed::generate(n, 2024, time::OffsetDateTime::now_utc(), 20)
        .await
        .expect("generated")
}

/// A server whose audit store already holds `data` (calls and their feedback).
pub async fn spawn_seeded(
    data: Option<Generated>,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    settings.admin_token = Some(ADMIN_TOKEN.into());
    configure(&mut settings);
    if let Some(data) = data {
        let store = AuditStore::open(&settings).await.expect("audit store");
        seed::seed_store(&store, data).await.expect("seeded");
        store.shutdown().await;
    }
    start(settings, dir).await
}

impl TestApp {
    /// GET with the admin bearer token.
    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        let r = self.admin_get(path).await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r.json().await.expect("JSON")
    }
}

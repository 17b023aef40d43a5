//! No PHI or secrets in logs, card text, the audit store or the spool (issue 5 point 4, issue 13
//! point 3). Full request cycles (valid calls with prefetch and with FHIR fetches whose answers
//! are partly malformed, failing calls of every kind) run against four servers: pseudonymization
//! off and on, each with a working SQLite audit store and with an unreachable store (so every
//! record goes to the spool). The patient's record carries unique markers: name, birth date,
//! raw patient, user and encounter ids, resource ids, an identifier (MRN) and report text.
//!
//! None of them may appear in the debug-level tracing output of every crate (nor the JWTs, their
//! parts or the FHIR access token), in the card text of any answer, in any column of any table
//! of the audit store, or in any spool line. Exceptions by design: with pseudonymization off,
//! the raw patient, user and encounter ids are stored in the audit store and spool (with a key
//! they are HMAC pseudonyms, and the raw ids must not appear).
//!
//! Its own test binary: it installs the process-wide tracing subscriber.

#[path = "security/support/mod.rs"]
mod support;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use support::{TestKey, claims, jwks, now};
use vcf_cds::configuration::{LogFormat, Settings, TrustedIssuer};
use vcf_cds::startup::Application;

const ISS: &str = "https://ehr.example.org";
const BASE: &str = "https://cds.example.test";
const PATIENT_ID: &str = "pat-SECRET-4711";
const GIVEN: &str = "Zebulon";
const FAMILY: &str = "Quixotewski";
const BIRTH: &str = "1937-05-14";
const ACCESS_TOKEN: &str = "acc-tok-SECRET-9f8e7d6c";
const USER_ID: &str = "Practitioner/dr-SECRET-3141";
const ENCOUNTER_ID: &str = "enc-SECRET-5150";
const MRN: &str = "MRN-SECRET-8842";
const CONDITION_ID: &str = "cond-SECRET-77";
const REPORT_ID: &str = "rep-SECRET-12";
const REPORT_TEXT: &str = "Wedge deformity first dictated by Dr Ominous-Xylophone";
/// The fracture's onset: a clinical date the card and the audit cite as evidence by design.
const ONSET: &str = "2026-11-10";
const PSEUDONYM_KEY: &str = "privacy-test-pseudonym-key-0123456789";

type Markers = Vec<(&'static str, String)>;

/// Patient data that must never be logged, shown in a card or stored.
fn content_markers() -> Markers {
    [
        ("given name", GIVEN),
        ("family name", FAMILY),
        ("birth date", BIRTH),
        ("identifier (MRN)", MRN),
        ("report text", REPORT_TEXT),
        ("report text (part)", "Ominous-Xylophone"),
    ]
    .into_iter()
    .map(|(w, m)| (w, m.to_owned()))
    .collect()
}

/// The raw patient, user and encounter ids: stored by design when pseudonymization is off,
/// never in logs or cards.
fn raw_ids() -> Markers {
    [
        ("raw patient id", PATIENT_ID),
        ("raw user id", "dr-SECRET-3141"),
        ("raw encounter id", ENCOUNTER_ID),
    ]
    .into_iter()
    .map(|(w, m)| (w, m.to_owned()))
    .collect()
}

/// Ids of the resources the engine cites as evidence: shown on the card (the clinician can
/// look them up), stored as cited when pseudonymization is off, pseudonymized with a key,
/// never logged.
fn resource_ids() -> Markers {
    [
        ("Condition id", CONDITION_ID),
        ("DiagnosticReport id", REPORT_ID),
    ]
    .into_iter()
    .map(|(w, m)| (w, m.to_owned()))
    .collect()
}

#[track_caller]
fn assert_absent(place: &str, text: &str, markers: &Markers) {
    for (what, secret) in markers {
        if let Some(at) = text.find(secret.as_str()) {
            let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            let line: String = text[start..end].chars().take(2000).collect();
            panic!("{what} found in {place}:\n{line}");
        }
    }
}

/// Every column of every row of every table of a SQLite audit store, one line per row.
async fn dump_sqlite(path: &std::path::Path) -> String {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .collect();
    assert!(tables.iter().any(|t| t == "audit_orders"), "{tables:?}");
    let mut out = String::new();
    for t in tables {
        let cols: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{t}')"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
        // As bytes: some columns hold binary values (decoded lossily for the search).
        let select = cols
            .iter()
            .map(|c| format!("CAST(\"{c}\" AS BLOB)"))
            .collect::<Vec<_>>()
            .join(", ");
        for row in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {select} FROM \"{t}\"")))
            .fetch_all(&mut conn)
            .await
            .unwrap()
        {
            let cells: Vec<String> = (0..cols.len())
                .map(|i| {
                    let v: Option<Vec<u8>> = row.get(i);
                    String::from_utf8_lossy(&v.unwrap_or_default()).into_owned()
                })
                .collect();
            out.push_str(&format!("{t}: {}\n", cells.join(" | ")));
        }
    }
    out
}

/// Every line of every file in the spool directory (segments and dead letters).
fn read_spool(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jsonl") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A FHIR server on 127.0.0.1 whose answers are full of PHI, some of it malformed (so error
/// paths that might echo values run too).
fn fhir_stub() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest| async move {
            let path = req.path().to_owned();
            let body = if path.contains("/Patient") {
                json!({"resourceType": "Patient", "id": PATIENT_ID,
                       "identifier": [{"system": "urn:oid:1.2.3.4", "value": MRN}],
                       "name": [{"given": [GIVEN], "family": FAMILY}], "birthDate": BIRTH})
            } else if path.contains("/Condition") {
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                    "resourceType": "Condition", "id": CONDITION_ID,
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}],
                             "text": format!("fracture of {GIVEN} {FAMILY}")},
                    "subject": {"reference": format!("Patient/{PATIENT_ID}")},
                    "onsetDateTime": ONSET}}]})
            } else if path.contains("/Procedure") {
                // Malformed: a name where a code belongs, an invalid date built from the birth date.
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                    "resourceType": "Procedure", "id": "x", "status": format!("{GIVEN} {FAMILY}"),
                    "performedDateTime": format!("{BIRTH}T99:99")}}]})
            } else if path.contains("/DiagnosticReport") {
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": report()}]})
            } else {
                json!({"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                    "resourceType": "Observation", "id": "o1", "status": "final",
                    "code": {"text": FAMILY}, "effectiveDateTime": format!("{BIRTH}x")}}]})
            };
            HttpResponse::Ok()
                .content_type("application/fhir+json")
                .body(body.to_string())
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    format!("http://127.0.0.1:{port}/fhir")
}

/// A spine radiograph report showing the fracture, with free text and an id that are markers.
fn report() -> Value {
    json!({"resourceType": "DiagnosticReport", "id": REPORT_ID, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}],
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72020"}],
                 "text": format!("XR lumbar spine for {GIVEN} {FAMILY}")},
        "subject": {"reference": format!("Patient/{PATIENT_ID}")},
        "effectiveDateTime": "2026-11-20",
        "conclusion": format!("Acute compression fracture of L1. {REPORT_TEXT}. {MRN}."),
        "conclusionCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "42942008"}],
                            "text": format!("fracture, {GIVEN} {FAMILY}")}]})
}

fn request(with_prefetch: bool, fhir_server: &str) -> Value {
    let mut r = json!({
        "hook": "order-select",
        "hookInstance": "6c0a8d6e-1f1b-4c39-9d2e-6f9b8f9d0a11",
        "fhirServer": fhir_server,
        "fhirAuthorization": {"access_token": ACCESS_TOKEN, "token_type": "Bearer",
            "expires_in": 300, "scope": "patient/*.read", "subject": "cds-service"},
        "context": {
            "userId": USER_ID,
            "patientId": PATIENT_ID,
            "encounterId": ENCOUNTER_ID,
            "selections": ["ServiceRequest/sr-1"],
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
                "resourceType": "ServiceRequest", "id": "sr-1", "status": "draft", "intent": "order",
                // MRI lumbar spine with contrast: usually not appropriate here, so a warning card.
                "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "72149"}]},
                "subject": {"reference": format!("Patient/{PATIENT_ID}")}}}]}
        }
    });
    if with_prefetch {
        r["prefetch"] = json!({
            "patient": {"resourceType": "Patient", "id": PATIENT_ID,
                "identifier": [{"system": "urn:oid:1.2.3.4", "value": MRN}],
                "name": [{"given": [GIVEN], "family": FAMILY}], "birthDate": BIRTH},
            "conditions": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": {
                "resourceType": "Condition", "id": CONDITION_ID,
                "bodySite": [{"text": format!("L1 of {FAMILY}")}],
                "note": [{"text": format!("{GIVEN} fell at home; {MRN}")}],
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M80.08XA"}]},
                "subject": {"reference": format!("Patient/{PATIENT_ID}")}, "onsetDateTime": ONSET}}]},
            "procedures": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "observations": {"resourceType": "Bundle", "type": "searchset", "entry": []},
            "reports": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": report()}]}
        });
    }
    r
}

/// One server's configuration in the scenario.
struct Run {
    pseudonymize: bool,
    /// The audit store is unreachable: every record goes to the spool.
    spool_only: bool,
}

#[actix_web::test]
async fn no_phi_in_logs_cards_audit_store_or_spool() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Capture(logs.clone());
    vcf_cds::telemetry::init(LogFormat::Json, "debug", move || sink.clone());

    let key = TestKey::es384("k1");
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&key]).to_string()).unwrap();
    let fhir = fhir_stub();
    let mut jwts = Vec::new();
    let mut cards = Vec::new();
    let mut cards_seen = 0;

    for (n, run) in [
        Run {
            pseudonymize: false,
            spool_only: false,
        },
        Run {
            pseudonymize: true,
            spool_only: false,
        },
        Run {
            pseudonymize: false,
            spool_only: true,
        },
        Run {
            pseudonymize: true,
            spool_only: true,
        },
    ]
    .into_iter()
    .enumerate()
    {
        let run_dir = dir.path().join(format!("run-{n}"));
        let db_path = run_dir.join("audit.sqlite");
        let spool_dir = run_dir.join("spool");
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            public_base_url: Some(BASE.into()),
            audit_db: if run.spool_only {
                // Nothing listens on port 1: the store is unreachable, records are spooled.
                "postgres://audit@127.0.0.1:1/audit".into()
            } else {
                db_path.display().to_string()
            },
            audit_spool_dir: spool_dir.clone(),
            audit_pseudonym_key: run.pseudonymize.then(|| PSEUDONYM_KEY.into()),
            audit_write_timeout_ms: 500,
            audit_retry_interval_ms: 60_000,
            trusted_fhir_servers: vec![fhir.clone()],
            trusted_issuers: vec![TrustedIssuer {
                iss: ISS.into(),
                jwks_url: None,
                jwks_file: Some(jwks_path.clone()),
                algorithms: vec!["ES384".into()],
                tenant: None,
                jku_allowlist: vec![],
                fhir_servers: vec![],
            }],
            log_format: LogFormat::Json,
            log_level: "debug".into(),
            ..Settings::default()
        };
        std::fs::create_dir_all(&run_dir).unwrap();
        let app = Application::build(settings).await.unwrap();
        let addr = format!("http://127.0.0.1:{}", app.port());
        let server = actix_web::rt::spawn(app.run_until_stopped());
        let answers = request_cycles(&addr, &key, &fhir, &mut jwts).await;
        let answered = answers.iter().filter(|(status, _)| *status == 200).count();
        assert!(answered >= 2, "run {n}: {answers:?}");
        for (status, body) in answers {
            if status == 200 {
                // The cards' text. Not the FHIR resources in actions: a suggestion's new order
                // and the system actions carry the patient's reference by design.
                let v: Value = serde_json::from_str(&body).unwrap();
                for card in v["cards"].as_array().into_iter().flatten() {
                    cards_seen += 1;
                    cards.push(card_text(card));
                }
            }
        }
        server.abort();
        // Let the last records and log lines land.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        let mut stored_markers = content_markers();
        if run.pseudonymize {
            stored_markers.extend(raw_ids());
            stored_markers.extend(resource_ids());
        }
        if run.spool_only {
            let spool = read_spool(&spool_dir);
            assert!(
                spool.contains("\"kind\":\"call\"") && spool.contains("\"order_ref\""),
                "run {n}: nothing was spooled"
            );
            assert_absent(&format!("the spool (run {n})"), &spool, &stored_markers);
        } else {
            let stored = dump_sqlite(&db_path).await;
            assert!(
                stored.lines().any(|l| l.starts_with("audit_orders: ")),
                "run {n}: no order was audited:\n{stored}"
            );
            if run.pseudonymize {
                // The pseudonyms are there instead of the raw ids.
                assert!(stored.contains(&hmac_hex(PATIENT_ID)), "run {n}:\n{stored}");
            } else {
                assert!(stored.contains(PATIENT_ID), "run {n}:\n{stored}");
            }
            assert_absent(
                &format!("the audit store (run {n})"),
                &stored,
                &stored_markers,
            );
        }
    }
    assert!(cards_seen > 0, "no card was shown");

    // Card text (every 200 answer): no patient data, no raw patient, user or encounter id.
    let mut card_markers = content_markers();
    card_markers.extend(raw_ids());
    card_markers.push(("FHIR access token", ACCESS_TOKEN.into()));
    let cards = cards.join("\n");
    assert!(
        cards.contains(CONDITION_ID),
        "the evidence is cited: {cards}"
    );
    assert_absent("an answer's cards", &cards, &card_markers);

    // Logs: no patient data, no raw ids, no tokens.
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        text.contains("authentication failed") && text.contains("\"request\""),
        "log capture did not work:\n{text}"
    );
    let mut secrets = card_markers;
    secrets.extend(resource_ids());
    for j in &jwts {
        secrets.push(("JWT", j.clone()));
        // Any of its three parts on its own (header, claims, signature).
        for part in j.split('.') {
            secrets.push(("JWT part", part.to_owned()));
        }
    }
    assert_absent("the logs", &text, &secrets);
}

/// The human-readable text of a card: summary, detail, source, suggestion labels and action
/// descriptions, override reasons.
fn card_text(card: &Value) -> String {
    let mut out = vec![
        card["summary"].to_string(),
        card["detail"].to_string(),
        card["source"].to_string(),
        card["overrideReasons"].to_string(),
        card["links"].to_string(),
    ];
    for s in card["suggestions"].as_array().into_iter().flatten() {
        out.push(s["label"].to_string());
        for a in s["actions"].as_array().into_iter().flatten() {
            out.push(a["description"].to_string());
        }
    }
    out.join("\n")
}

/// `hex(HMAC-SHA-256(key, id))`, the documented pseudonym.
fn hmac_hex(id: &str) -> String {
    vcf_cds::audit::pseudonym::Pseudonymizer::new(Some(PSEUDONYM_KEY)).apply(id)
}

/// Sends the calls of one cycle; returns (status, body) of each.
async fn request_cycles(
    addr: &str,
    key: &TestKey,
    fhir: &str,
    jwts: &mut Vec<String>,
) -> Vec<(u16, String)> {
    let http = reqwest::Client::new();
    let path = "/cds-services/vcf-order-select";
    let aud = format!("{BASE}{path}");
    let mut jwt_for = |aud: &str, exp_offset: i64| {
        let mut c = claims(ISS, aud);
        c["exp"] = json!(now() + exp_offset);
        c["iat"] = json!(now() - 600);
        let t = key.sign(json!({}), &c);
        jwts.push(t.clone());
        t
    };
    let valid = jwt_for(&aud, 300);
    let valid2 = jwt_for(&aud, 300);
    let valid3 = jwt_for(&aud, 300);
    let valid4 = jwt_for(&aud, 300);
    let expired = jwt_for(&aud, -3600);
    let wrong_aud = jwt_for(&format!("{BASE}/cds-services/other"), 300);
    let unparseable_body_jwt = jwt_for(&aud, 300);

    let calls: Vec<(Option<&str>, Value, u16)> = vec![
        // Valid with prefetch (name, birth date, identifier, report, access token in the body).
        (Some(&valid), request(true, fhir), 200),
        // Replay of the same JWT.
        (Some(&valid), request(true, fhir), 401),
        // Valid without prefetch: everything is fetched from the FHIR server with the token,
        // and some of its answers are malformed (a name as a status, invalid dates built from
        // the birth date): the fetch errors must not quote them.
        (Some(&valid2), request(false, fhir), 0),
        // Prefetch without procedures and observations: those come from the FHIR server, whose
        // answers are malformed, while the rest of the record is usable (a card is shown).
        (
            Some(&valid4),
            {
                let mut r = request(true, fhir);
                let p = r["prefetch"].as_object_mut().unwrap();
                p.remove("procedures");
                p.remove("observations");
                r
            },
            200,
        ),
        (Some(&expired), request(true, fhir), 401),
        (Some(&wrong_aud), request(true, fhir), 401),
        (None, request(true, fhir), 401),
        // Valid JWT, invalid birth date in the prefetched Patient.
        (
            Some(&valid3),
            {
                let mut r = request(true, fhir);
                r["prefetch"]["patient"]["birthDate"] = json!(format!("{BIRTH}x"));
                r
            },
            400,
        ),
    ];
    let mut answers = Vec::new();
    for (jwt, body, want) in calls {
        let mut req = http
            .post(format!("{addr}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(t) = jwt {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        if want != 0 {
            assert_eq!(status, want, "{text}");
        } else {
            assert!(status == 200 || status == 412, "{status} {text}");
        }
        answers.push((status, text));
    }
    // An unparseable body carrying the name, and a malformed bearer token.
    let resp = http
        .post(format!("{addr}{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {unparseable_body_jwt}"))
        .body(format!(
            "{{\"hook\": \"order-select\", \"name\": \"{GIVEN} {FAMILY}\", {BIRTH}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http
        .post(format!("{addr}{path}"))
        .header(
            "authorization",
            format!("Bearer {ACCESS_TOKEN}.{GIVEN}.{BIRTH}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    answers
}

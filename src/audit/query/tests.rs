//! Unit tests of the query helpers that need no store.

use super::export::cell;
use super::*;
use crate::audit::pseudonym::Pseudonymizer;

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn filters_parse_and_reject() {
    let ps = Pseudonymizer::new(None);
    let f = Filters::parse(
        &p(&[
            ("from", "2026-01-01"),
            ("to", "2026-01-01"),
            ("variant", "V2"),
            ("rating", "3"),
        ]),
        &ps,
        &[],
    )
    .unwrap();
    assert_eq!(f.to_ms.unwrap() - f.from_ms.unwrap(), 86_400_000);
    assert_eq!(f.rating, Some(3));
    for bad in [
        ("rating", "10"),
        ("from", "yesterday"),
        ("category", "bad"),
        ("nope", "1"),
        ("feedback", "maybe"),
    ] {
        let e = Filters::parse(&p(&[bad]), &ps, &[]).unwrap_err();
        assert_eq!(e.0, bad.0);
    }
    assert!(Filters::parse(&p(&[("limit", "5")]), &ps, &["limit"]).is_ok());
    assert!(Filters::default().time_only());
    assert!(!f.time_only());
}

#[test]
fn csv_cells_are_defused() {
    assert_eq!(cell("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    assert_eq!(cell("V1"), "V1");
    assert_eq!(CSV_HEADER.len(), 38);
}

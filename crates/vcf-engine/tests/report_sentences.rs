//! The report-sentence corpus (`tests/data/report-sentences.toml`): every sentence's findings,
//! with negation, uncertainty, history and levels, as written from the sentence's clinical
//! meaning.

use std::collections::BTreeSet;
use vcf_engine::knowledge;
use vcf_engine::reports::Lexicon;

#[derive(serde::Deserialize)]
struct Corpus {
    case: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    text: String,
    expect: Vec<String>,
}

#[test]
fn report_sentence_corpus() {
    let kb = knowledge::load_default().unwrap();
    let lex = Lexicon::new(&kb).unwrap();
    let corpus: Corpus = toml::from_str(include_str!("data/report-sentences.toml")).unwrap();
    assert!(
        corpus.case.len() >= 40,
        "the corpus has at least 40 sentences"
    );
    let mut failures = Vec::new();
    for c in &corpus.case {
        let got: BTreeSet<String> = lex
            .extract(&c.text)
            .iter()
            .map(|m| {
                let levels: Vec<String> = m.levels.iter().map(|l| l.to_string()).collect();
                if levels.is_empty() {
                    format!("{}:{}", m.id, m.status.as_str())
                } else {
                    format!("{}:{}@{}", m.id, m.status.as_str(), levels.join("+"))
                }
            })
            .collect();
        let want: BTreeSet<String> = c.expect.iter().cloned().collect();
        if got != want {
            failures.push(format!(
                "{:?}\n   expected {want:?}\n   got      {got:?}",
                c.text
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn matched_phrases_come_from_the_knowledge_file_not_the_report() {
    let kb = knowledge::load_default().unwrap();
    let lex = Lexicon::new(&kb).unwrap();
    let ms = lex.extract("Mrs Example's L1 fracture shows STIR HYPERINTENSITY.");
    let edema = ms.iter().find(|m| m.id == "marrow-edema").unwrap();
    assert_eq!(edema.phrase, "stir hyperintens");
    for m in &ms {
        let def = kb.report_findings.iter().find(|f| f.id == m.id).unwrap();
        assert!(
            def.phrases
                .iter()
                .any(|p| p.trim_end_matches('*') == m.phrase),
            "{m:?}"
        );
    }
}

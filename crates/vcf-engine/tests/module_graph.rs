//! The engine's modules import each other as a tree (a DAG), never in a cycle.
//!
//! Rule: take every top-level module of `src/` (`src/x.rs` or `src/x/…` is module `x`) and draw
//! an edge `a -> b` for each `crate::b…` path written in module `a` (in `use` items, grouped
//! `use crate::{b, c}` and inline paths alike, test code included). The graph must have no cycle.
//! Shared domain types live in `types`, which every module may import; `evaluate` (the
//! orchestration) sits at the top and nothing imports it. A new import that closes a cycle means a
//! type or helper is in the wrong module: move it down, do not import up.
//!
//! `super::` paths stay inside one top-level module and are not edges. Lines starting with `//`
//! are skipped, so doc comments that mention a path do not count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules named by `crate::…` paths in `text` (identifiers right after `crate::`,
/// or each first identifier inside `crate::{…}`).
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            // `some_crate::x` is another crate, not `crate::x`.
            let before = rest[..i].chars().next_back();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a::X, b}` on one line: the first identifier of each top-level item.
                let mut depth = 0;
                let mut item_start = true;
                for (j, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => item_start = true,
                        c if item_start && (c.is_alphabetic() || c == '_') => {
                            out.insert(ident(&group[j..]));
                            item_start = false;
                        }
                        _ => {}
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every `.rs` file under `dir` with its top-level module name (`None` for `lib.rs`).
fn sources(dir: &Path, top: Option<&str>, out: &mut Vec<(Option<String>, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("engine src directory is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            sources(&path, Some(top.unwrap_or(&stem)), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = match top {
                Some(t) => Some(t.to_owned()),
                None if stem == "lib" => None,
                None => Some(stem),
            };
            let text = std::fs::read_to_string(&path).expect("source is readable");
            out.push((module, text));
        }
    }
}

/// The module graph of the engine crate (self-edges dropped).
fn engine_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, None, &mut files);
    let mut graph = Graph::new();
    for (module, text) in files {
        let Some(module) = module else { continue };
        let deps = graph.entry(module.clone()).or_default();
        for r in crate_refs(&text) {
            if r != module {
                deps.insert(r);
            }
        }
    }
    graph
}

/// A cycle in `graph` as a path `a -> b -> … -> a`, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node).unwrap();
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

fn graph_of(edges: &[(&str, &str)]) -> Graph {
    let mut g = Graph::new();
    for (a, b) in edges {
        g.entry((*a).into()).or_default().insert((*b).into());
        g.entry((*b).into()).or_default();
    }
    g
}

#[test]
fn engine_modules_import_each_other_without_a_cycle() {
    let graph = engine_graph();
    // The scan sees the engine's real imports (guards against a scanner that finds nothing).
    for (from, to) in [
        ("evaluate", "cards"),
        ("cards", "types"),
        ("facts", "index"),
    ] {
        assert!(
            graph.get(from).is_some_and(|d| d.contains(to)),
            "expected {from} -> {to} in {graph:?}"
        );
    }
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the engine's modules import each other in a cycle: {}",
            cycle.join(" -> ")
        );
    }
    // Nothing imports the orchestration.
    for (module, deps) in &graph {
        assert!(!deps.contains("evaluate"), "{module} imports evaluate");
    }
}

#[test]
fn the_scanner_and_the_cycle_check_catch_a_cycle() {
    // The scanner: plain, grouped and inline paths; comments and other crates ignored.
    let text = "use crate::types::{A, B};\nuse crate::{cards::x, facts};\n\
                let e = crate::index::test_kb::engine();\n// crate::evaluate in a comment\n\
                use fhir_build::crate_like; my_crate::rating::x();";
    let refs: Vec<String> = crate_refs(text).into_iter().collect();
    assert_eq!(refs, ["cards", "facts", "index", "types"]);
    // The cycle check: a tree passes, a back edge fails and is named.
    let tree = graph_of(&[
        ("evaluate", "cards"),
        ("cards", "types"),
        ("evaluate", "types"),
    ]);
    assert_eq!(find_cycle(&tree), None);
    let cyclic = graph_of(&[
        ("evaluate", "cards"),
        ("cards", "types"),
        ("types", "evaluate"),
    ]);
    let cycle = find_cycle(&cyclic).expect("the cycle is found");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}

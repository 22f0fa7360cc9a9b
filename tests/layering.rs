//! The shape of `src/`: modules depend on each other in one direction only, so the crate
//! reads top-down, and no file outgrows one sitting.
//!
//! Dependencies are read from the source text: every `crate::name` path outside comments and
//! unit tests, where `name` is a module or an item `lib.rs` re-exports from one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The longest a file in `src/` may be, tests included.
const MAX_LINES: usize = 450;

fn sources() -> BTreeMap<String, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    std::fs::read_dir(&dir)
        .expect("src/ is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let module = path.file_stem().unwrap().to_string_lossy().into_owned();
            (
                module,
                std::fs::read_to_string(&path).expect("a readable source"),
            )
        })
        .collect()
}

/// The code of a file without its comments and its unit tests.
fn code(text: &str) -> String {
    let without_tests = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    without_tests
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The identifiers a `crate::` path starts with at `rest`: one name, or every top-level name
/// of a `{...}` group.
fn first_names(rest: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    if !rest.starts_with('{') {
        return vec![ident(rest)];
    }
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start_of_item = true;
    for (index, c) in rest.char_indices() {
        match c {
            '{' => {
                depth += 1;
                start_of_item = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => start_of_item = true,
            c if start_of_item && depth == 1 && (c.is_alphanumeric() || c == '_') => {
                names.push(ident(&rest[index..]));
                start_of_item = false;
            }
            _ => {}
        }
    }
    names
}

/// Which module each item `lib.rs` re-exports lives in.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    for statement in lib.split("pub use crate::").skip(1) {
        let module: String = statement
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let rest = &statement[module.len()..];
        let Some(rest) = rest.strip_prefix("::") else {
            continue;
        };
        for name in first_names(rest) {
            owners.insert(name, module.clone());
        }
    }
    owners
}

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let owners = reexports(&sources["lib"]);
    let mut graph = BTreeMap::new();
    for (module, text) in sources.iter().filter(|(module, _)| *module != "lib") {
        let mut uses = BTreeSet::new();
        for rest in code(text).split("crate::").skip(1) {
            for name in first_names(rest) {
                let target = if sources.contains_key(&name) {
                    Some(name)
                } else {
                    owners.get(&name).cloned()
                };
                uses.extend(target.filter(|target| target != module));
            }
        }
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle through `module`, if there is one, as the modules along it.
fn cycle_from(
    module: &str,
    graph: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(at) = path.iter().position(|m| m == module) {
        let mut cycle = path[at..].to_vec();
        cycle.push(module.to_owned());
        return Some(cycle);
    }
    if done.contains(module) {
        return None;
    }
    path.push(module.to_owned());
    for next in graph.get(module).into_iter().flatten() {
        if let Some(cycle) = cycle_from(next, graph, path, done) {
            return Some(cycle);
        }
    }
    path.pop();
    done.insert(module.to_owned());
    None
}

#[test]
fn modules_depend_on_each_other_in_one_direction() {
    let graph = dependencies();
    assert!(
        graph["kafka_sse"].contains("feed"),
        "the reader sees real edges: {graph:?}"
    );
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(module, &graph, &mut Vec::new(), &mut done) {
            panic!("an import circle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_stream_session_never_reaches_into_the_service() {
    let graph = dependencies();
    for below in [
        "session", "feed", "encoder", "fanout", "hub", "sources", "lookup", "start",
    ] {
        for above in ["kafka_sse", "builder", "http", "event_stream"] {
            assert!(
                !graph[below].contains(above),
                "{below} uses {above}, a layer above it"
            );
        }
    }
}

#[test]
fn no_source_file_outgrows_one_sitting() {
    for (module, text) in sources() {
        let lines = text.lines().count();
        assert!(
            lines <= MAX_LINES,
            "src/{module}.rs has {lines} lines, over {MAX_LINES}"
        );
    }
}

#[test]
fn the_reader_finds_grouped_and_nested_imports() {
    assert_eq!(first_names("{a, b::{c, d}, e}"), ["a", "b", "e"]);
    assert_eq!(first_names("frame::event(x)"), ["frame"]);
    let cycle = cycle_from(
        "a",
        &BTreeMap::from([
            ("a".to_owned(), BTreeSet::from(["b".to_owned()])),
            ("b".to_owned(), BTreeSet::from(["a".to_owned()])),
        ]),
        &mut Vec::new(),
        &mut BTreeSet::new(),
    );
    assert_eq!(cycle.unwrap(), ["a", "b", "a"]);
}

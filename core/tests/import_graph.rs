//! The import graphs of `core/src`, `migrator/src` and `gateway/src` have no cycles (the
//! other crates' sources are read from the workspace; they are files, not dependencies of
//! core). Nodes are source files; `A → B` when `A`
//! names an item of `B` through a `crate::…`, `super::…` or `self::…` path (in a `use` or
//! inline, or through a child module's name). A module and its own direct children are one
//! unit — a `mod.rs` declares its children and they use its shared types — so edges between
//! them are not counted; the crate root is not such a unit (`App` is a real dependency). A
//! cycle elsewhere means two parts of the crate cannot be understood, tested or changed apart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module path (`["store", "tiered"]`) and the file that holds it.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let relative = path.strip_prefix(src).unwrap();
            let mut parts: Vec<String> =
                relative.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            found.insert(parts, path);
        }
    }
    found
}

/// Every path a file names, as written (`crate::store::tiered::Read`), `use` trees expanded,
/// with the inline modules (`mod tests`) it was written in.
#[derive(Default)]
struct Paths {
    inline: Vec<String>,
    found: Vec<(Vec<String>, Vec<String>)>,
}

impl Paths {
    fn tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.push(prefix, &name.ident.to_string()),
            syn::UseTree::Rename(rename) => self.push(prefix, &rename.ident.to_string()),
            syn::UseTree::Glob(_) => self.found.push((self.inline.clone(), prefix.clone())),
            syn::UseTree::Group(group) => group.items.iter().for_each(|item| self.tree(prefix, item)),
        }
    }

    fn push(&mut self, prefix: &[String], last: &str) {
        let mut path = prefix.to_vec();
        path.push(last.to_owned());
        self.found.push((self.inline.clone(), path));
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.found.push((self.inline.clone(), path.segments.iter().map(|s| s.ident.to_string()).collect()));
        syn::visit::visit_path(self, path);
    }

    /// `pub(crate)` names a scope, not a dependency.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.inline.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.inline.pop();
    }
}

/// The module a path written in module `current` points into (the deepest one with a file).
fn resolve(current: &[String], path: &[String], known: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    let first = path.first()?;
    let child = [current, std::slice::from_ref(first)].concat();
    let (mut absolute, mut rest): (Vec<String>, &[String]) = match first.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "super" => (current[..current.len().saturating_sub(1)].to_vec(), &path[1..]),
        "self" => (current.to_vec(), &path[1..]),
        // A path through a child module of this one (`tiered::Read` in `store`).
        _ if path.len() > 1 && known.contains_key(&child) => (current.to_vec(), path),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        absolute.pop();
        rest = &rest[1..];
    }
    absolute.extend(rest.iter().cloned());
    (0..=absolute.len()).rev().map(|n| absolute[..n].to_vec()).find(|prefix| known.contains_key(prefix))
}

/// One unit: the same file, or a module and its direct child — except the crate root, whose
/// items (`App`) are real dependencies of the modules that use them.
fn related(a: &[String], b: &[String]) -> bool {
    let child_of = |child: &[String], parent: &[String]| {
        !parent.is_empty() && child.len() == parent.len() + 1 && child.starts_with(parent)
    };
    a == b || child_of(a, b) || child_of(b, a)
}

/// Tarjan's strongly connected components with more than one file.
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<Vec<String>>> {
    struct State<'g> {
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g Vec<String>, usize>,
        low: BTreeMap<&'g Vec<String>, usize>,
        stack: Vec<&'g Vec<String>>,
        on_stack: BTreeSet<&'g Vec<String>>,
        found: Vec<Vec<Vec<String>>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g Vec<String>) {
        let n = state.index.len();
        state.index.insert(node, n);
        state.low.insert(node, n);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[next].min(state.low[node]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.index[next].min(state.low[node]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.clone());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The cycles of the crate whose sources are in `src`, one line each (empty: none).
fn cycles_in(src: &Path) -> Vec<String> {
    let known = modules(src);
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap();
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut paths = Paths::default();
        paths.visit_file(&parsed);
        let edges = graph.entry(module.clone()).or_default();
        for (inline, path) in &paths.found {
            let current = [module.as_slice(), inline.as_slice()].concat();
            if let Some(target) = resolve(&current, path, &known).filter(|t| !related(module, t)) {
                edges.insert(target);
            }
        }
    }
    let name = |m: &Vec<String>| if m.is_empty() { "lib".to_owned() } else { m.join("::") };
    let found: Vec<String> = cycles(&graph)
        .iter()
        .map(|component| {
            let members: Vec<String> = component.iter().map(name).collect();
            let edges: Vec<String> = component
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .iter()
                        .filter(|to| component.contains(to))
                        .map(move |to| format!("{} → {}", name(from), name(to)))
                })
                .collect();
            format!("[{}] via {}", members.join(", "), edges.join("; "))
        })
        .collect();
    found
}

fn assert_acyclic(crate_dir: &str) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(crate_dir).join("src");
    let found = cycles_in(&src);
    assert!(found.is_empty(), "import cycles in {crate_dir}/src:\n{}", found.join("\n"));
}

#[test]
fn core_has_no_import_cycles() {
    assert_acyclic("core");
}

#[test]
fn migrator_has_no_import_cycles() {
    assert_acyclic("migrator");
}

#[test]
fn gateway_has_no_import_cycles() {
    assert_acyclic("gateway");
}

//! The dependency graph of models: missing models, cycles, build order and selection.

use std::collections::{BTreeMap, BTreeSet};

use darkroom_config::Diagnostics;

use crate::model::Model;

/// Models in build order (every model after the models it reads), with their edges.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Indexes into the models, upstream first.
    pub order: Vec<usize>,
    /// For each model, the models it reads.
    pub upstream: Vec<BTreeSet<usize>>,
    /// For each model, the models that read it.
    pub downstream: Vec<BTreeSet<usize>>,
}

impl Graph {
    /// Build the graph; a `ref` to no model and every cycle are reported, each at the line of
    /// the `ref` call. Models on a cycle are left out of the order.
    pub fn new(models: &[Model], diags: &mut Diagnostics) -> Self {
        let index: BTreeMap<&str, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        let mut upstream = vec![BTreeSet::new(); models.len()];
        let mut downstream = vec![BTreeSet::new(); models.len()];
        for (i, m) in models.iter().enumerate() {
            for (r, line) in &m.refs {
                match index.get(r.as_str()) {
                    Some(&j) => {
                        upstream[i].insert(j);
                        downstream[j].insert(i);
                    }
                    None => {
                        let hint = closest(r, index.keys().copied())
                            .map(|c| format!("; did you mean `{c}`?"))
                            .unwrap_or_default();
                        diags.push(m.error_at(
                            *line,
                            format!(
                                "ref('{r}'): no model named `{r}` under models/{hint} (a raw \
                                 table is read with source(...))"
                            ),
                        ));
                    }
                }
            }
        }
        // Kahn's algorithm; ties broken by name so the order is stable.
        let mut waiting: Vec<usize> = upstream.iter().map(BTreeSet::len).collect();
        let mut ready: BTreeSet<(&str, usize)> = (0..models.len())
            .filter(|&i| waiting[i] == 0)
            .map(|i| (models[i].name.as_str(), i))
            .collect();
        let mut order = Vec::with_capacity(models.len());
        while let Some(next) = ready.pop_first() {
            let i = next.1;
            order.push(i);
            for &d in &downstream[i] {
                waiting[d] -= 1;
                if waiting[d] == 0 {
                    ready.insert((models[d].name.as_str(), d));
                }
            }
        }
        if order.len() < models.len() {
            report_cycles(models, &upstream, &order, diags);
        }
        Self {
            order,
            upstream,
            downstream,
        }
    }

    /// The models a `--select` list names, in build order. `name` selects one model, `name+`
    /// it and everything downstream, `+name` it and everything upstream, `+name+` both.
    pub fn select(&self, models: &[Model], selectors: &[String]) -> Result<Vec<usize>, String> {
        if selectors.is_empty() {
            return Ok(self.order.clone());
        }
        let mut chosen = BTreeSet::new();
        for s in selectors {
            let down = s.ends_with('+');
            let up = s.starts_with('+');
            let name = s.trim_start_matches('+').trim_end_matches('+');
            let Some(i) = models.iter().position(|m| m.name == name) else {
                let hint = closest(name, models.iter().map(|m| m.name.as_str()))
                    .map(|c| format!(" Did you mean `{c}`?"))
                    .unwrap_or_default();
                return Err(format!("--select {s}: no model named `{name}`.{hint}"));
            };
            chosen.insert(i);
            if down {
                walk(i, &self.downstream, &mut chosen);
            }
            if up {
                walk(i, &self.upstream, &mut chosen);
            }
        }
        Ok(self
            .order
            .iter()
            .copied()
            .filter(|i| chosen.contains(i))
            .collect())
    }
}

fn walk(start: usize, edges: &[BTreeSet<usize>], seen: &mut BTreeSet<usize>) {
    let mut stack = vec![start];
    while let Some(i) = stack.pop() {
        for &j in &edges[i] {
            if seen.insert(j) {
                stack.push(j);
            }
        }
    }
}

/// Report each cycle once, at every `ref` that closes a link of it.
fn report_cycles(
    models: &[Model],
    upstream: &[BTreeSet<usize>],
    ordered: &[usize],
    diags: &mut Diagnostics,
) {
    let placed: BTreeSet<usize> = ordered.iter().copied().collect();
    let mut reported: BTreeSet<usize> = BTreeSet::new();
    for start in 0..models.len() {
        if placed.contains(&start) || reported.contains(&start) {
            continue;
        }
        // follow unplaced upstream edges until a model repeats: that loop is a cycle
        let mut path = vec![start];
        let mut at = start;
        let cycle = loop {
            let Some(&next) = upstream[at].iter().find(|j| !placed.contains(j)) else {
                break None;
            };
            if let Some(pos) = path.iter().position(|&p| p == next) {
                break Some(path[pos..].to_vec());
            }
            path.push(next);
            at = next;
        };
        let Some(mut cycle) = cycle else { continue };
        if cycle.iter().any(|i| reported.contains(i)) {
            continue;
        }
        // read as "a -> b -> c -> a": each model reads the next
        cycle.reverse();
        let names: Vec<&str> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| models[i].name.as_str())
            .collect();
        let text = names.join(" -> ");
        for (k, &i) in cycle.iter().enumerate() {
            let reads = cycle[(k + cycle.len() - 1) % cycle.len()];
            let line = models[i]
                .refs
                .iter()
                .find(|(r, _)| *r == models[reads].name)
                .map_or(1, |(_, l)| *l);
            diags.push(models[i].error_at(
                line,
                format!(
                    "dependency cycle: {text} (`{}` reads `{}`); break one ref",
                    models[i].name, models[reads].name
                ),
            ));
            reported.insert(i);
        }
    }
}

/// The name closest to `wanted` by edit distance, if close enough to be a typo.
pub(crate) fn closest<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .map(|n| (distance(wanted, n), n))
        .filter(|(d, n)| *d <= 2.max(n.len() / 4))
        .min()
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

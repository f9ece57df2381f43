//! Compile many segments into one plan: a DAG of interned nodes where an
//! identical (normalized) clause or boolean sub-expression exists once, and
//! `in_segment` points at the referenced segment's root node.

use std::collections::{HashMap, HashSet};

use ahash::AHashMap;

use crate::{CoreError, CoreResult};

use super::ast::Expr;
use super::typecheck::{check_expr, check_text, AggKey, Leaf, Src, TExpr};
use super::{did_you_mean, Schema};

/// A segment definition: its rule as text or as a tree.
#[derive(Debug, Clone)]
pub enum RuleSource {
    /// Rule text.
    Text(String),
    /// A parsed or JSON-built tree.
    Tree(Expr),
}

/// A node of the predicate graph. Children always have smaller ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// A leaf, by index in [`Plan::leaves`].
    Leaf(usize),
    /// Conjunction.
    And(Vec<usize>),
    /// Disjunction.
    Or(Vec<usize>),
    /// Negation.
    Not(usize),
}

/// A compiled set of segments.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The schema the rules were checked against.
    pub schema: Schema,
    /// Segment names, in the order given.
    pub names: Vec<String>,
    /// Each segment's rule tree.
    pub exprs: Vec<Expr>,
    /// Each segment's type-checked tree.
    pub texprs: Vec<TExpr>,
    /// Distinct leaves.
    pub leaves: Vec<Leaf>,
    /// For each leaf, the index of its aggregate in [`Plan::aggs`], if any.
    pub leaf_agg: Vec<Option<usize>>,
    /// Distinct aggregates the plan needs.
    pub aggs: Vec<AggKey>,
    /// The predicate graph in topological order.
    pub nodes: Vec<Node>,
    /// Root node of each segment.
    pub roots: Vec<usize>,
    /// The same graph in two flat arrays, for single-row evaluation.
    pub flat: FlatGraph,
    /// For each schema column, the segments that read it (directly or through `in_segment`).
    pub col_segments: HashMap<usize, Vec<usize>>,
    /// For each interaction kind, the segments that read it.
    pub kind_segments: HashMap<String, Vec<usize>>,
    /// For each leaf, the segments whose result it can change (through `in_segment` too).
    pub leaf_segments: Vec<Vec<usize>>,
    /// For each schema column, the leaves that read it.
    pub col_leaves: HashMap<usize, Vec<usize>>,
    /// For each interaction kind, the leaves that read it.
    pub kind_leaves: HashMap<String, Vec<usize>>,
    /// Whether each segment depends on the as-of time.
    pub uses_clock: Vec<bool>,
    /// A process-unique id (caches keyed by plan use it).
    pub id: u64,
    name_index: HashMap<String, usize>,
}

/// The predicate graph in two flat arrays (no pointer to chase per node).
#[derive(Debug, Clone, Default)]
pub struct FlatGraph {
    /// Per node `(tag, a, b)`: tag [`FlatGraph::LEAF`] reads leaf `a`;
    /// [`FlatGraph::AND`] and [`FlatGraph::OR`] combine `kids[a..a + b]`;
    /// [`FlatGraph::NOT`] negates node `a`.
    pub nodes: Vec<(u32, u32, u32)>,
    /// Children of the and / or nodes.
    pub kids: Vec<u32>,
}

impl FlatGraph {
    /// Tag of a leaf node.
    pub const LEAF: u32 = 0;
    /// Tag of a conjunction.
    pub const AND: u32 = 1;
    /// Tag of a disjunction.
    pub const OR: u32 = 2;
    /// Tag of a negation.
    pub const NOT: u32 = 3;

    /// Flatten `nodes`; the children of each and / or are ordered by the
    /// cost of reading them for one row (cheapest first, so that a child
    /// that decides the node spares the dearer ones: interaction aggregates
    /// come last).
    fn new(nodes: &[Node], leaf_is_agg: &[bool]) -> FlatGraph {
        let mut g = FlatGraph::default();
        let mut cost: Vec<u32> = Vec::with_capacity(nodes.len());
        for n in nodes {
            let (e, c) = match n {
                Node::Leaf(l) => (
                    (Self::LEAF, *l as u32, 0),
                    if leaf_is_agg[*l] { 16 } else { 1 },
                ),
                Node::And(cs) | Node::Or(cs) => {
                    let tag = if matches!(n, Node::And(_)) {
                        Self::AND
                    } else {
                        Self::OR
                    };
                    let a = g.kids.len() as u32;
                    let mut kids: Vec<u32> = cs.iter().map(|&c| c as u32).collect();
                    // Stable: equal costs keep the node order.
                    kids.sort_by_key(|&k| cost[k as usize]);
                    g.kids.extend_from_slice(&kids);
                    let c = cs.iter().map(|&k| cost[k]).fold(0u32, u32::saturating_add);
                    ((tag, a, cs.len() as u32), c)
                }
                Node::Not(c) => ((Self::NOT, *c as u32, 0), cost[*c]),
            };
            g.nodes.push(e);
            cost.push(c);
        }
        g
    }
}

static NEXT_PLAN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

struct Builder {
    leaves: Vec<Leaf>,
    leaf_keys: AHashMap<Leaf, usize>,
    leaf_agg: Vec<Option<usize>>,
    aggs: Vec<AggKey>,
    agg_keys: AHashMap<AggKey, usize>,
    nodes: Vec<Node>,
    node_keys: AHashMap<Node, usize>,
}

impl Builder {
    fn node(&mut self, n: Node) -> usize {
        if let Some(&i) = self.node_keys.get(&n) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(n.clone());
        self.node_keys.insert(n, i);
        i
    }

    fn leaf(&mut self, l: &Leaf) -> usize {
        let li = match self.leaf_keys.get(l) {
            Some(&i) => i,
            None => {
                let i = self.leaves.len();
                let agg = match l.src() {
                    Src::Agg(k) => Some(match self.agg_keys.get(&k) {
                        Some(&a) => a,
                        None => {
                            let a = self.aggs.len();
                            self.aggs.push(k.clone());
                            self.agg_keys.insert(k, a);
                            a
                        }
                    }),
                    Src::Col(_) => None,
                };
                self.leaves.push(l.clone());
                self.leaf_agg.push(agg);
                self.leaf_keys.insert(l.clone(), i);
                i
            }
        };
        self.node(Node::Leaf(li))
    }

    fn nary(&mut self, kids: Vec<usize>, is_and: bool) -> usize {
        let mut flat = Vec::with_capacity(kids.len());
        for k in kids {
            match (&self.nodes[k], is_and) {
                (Node::And(cs), true) | (Node::Or(cs), false) => flat.extend(cs.iter().copied()),
                _ => flat.push(k),
            }
        }
        flat.sort_unstable();
        flat.dedup();
        if flat.len() == 1 {
            return flat[0];
        }
        self.node(if is_and {
            Node::And(flat)
        } else {
            Node::Or(flat)
        })
    }

    fn build(&mut self, t: &TExpr, roots: &HashMap<&str, usize>) -> usize {
        match t {
            TExpr::Leaf(l) => self.leaf(l),
            TExpr::And(cs) => {
                let kids = cs.iter().map(|c| self.build(c, roots)).collect();
                self.nary(kids, true)
            }
            TExpr::Or(cs) => {
                let kids = cs.iter().map(|c| self.build(c, roots)).collect();
                self.nary(kids, false)
            }
            TExpr::Not(c) => {
                let k = self.build(c, roots);
                match self.nodes[k] {
                    Node::Not(inner) => inner,
                    _ => self.node(Node::Not(k)),
                }
            }
            TExpr::Segment(name) => roots[name.as_str()],
        }
    }
}

impl Plan {
    /// Compile segments (name, rule). Names must be distinct; every rule is
    /// type-checked; `in_segment` must name a segment of the plan and must not
    /// form a cycle.
    pub fn compile(segments: Vec<(String, RuleSource)>, schema: Schema) -> CoreResult<Plan> {
        let mut name_index = HashMap::with_capacity(segments.len());
        for (i, (n, _)) in segments.iter().enumerate() {
            if n.is_empty() {
                return Err(CoreError::InvalidInput("empty segment name".into()));
            }
            if name_index.insert(n.clone(), i).is_some() {
                return Err(CoreError::InvalidInput(format!(
                    "segment '{n}' defined twice"
                )));
            }
        }
        let mut names = Vec::with_capacity(segments.len());
        let mut exprs = Vec::with_capacity(segments.len());
        let mut texprs = Vec::with_capacity(segments.len());
        for (name, src) in segments {
            let (e, t) = match &src {
                RuleSource::Text(s) => check_text(s, &schema),
                RuleSource::Tree(e) => check_expr(e, &schema),
            }
            .map_err(|err| match err {
                CoreError::Rule(m) => CoreError::Rule(format!("segment '{name}': {m}")),
                other => other,
            })?;
            names.push(name);
            exprs.push(e);
            texprs.push(t);
        }
        // Dependencies and a topological order (cycles rejected).
        let n = names.len();
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, e) in exprs.iter().enumerate() {
            let mut refs = Vec::new();
            e.segment_refs(&mut refs);
            for r in refs {
                match name_index.get(&r) {
                    Some(&j) => deps[i].push(j),
                    None => {
                        let mut msg = format!(
                            "segment '{}': in_segment('{r}') names no segment of this plan",
                            names[i]
                        );
                        if let Some(s) = did_you_mean(&r, names.iter().map(String::as_str)) {
                            msg.push_str(&format!(": did you mean '{s}'?"));
                        }
                        return Err(CoreError::Rule(msg));
                    }
                }
            }
        }
        let order = topo(&deps, &names)?;
        let mut b = Builder {
            leaves: Vec::new(),
            leaf_keys: AHashMap::new(),
            leaf_agg: Vec::new(),
            aggs: Vec::new(),
            agg_keys: AHashMap::new(),
            nodes: Vec::new(),
            node_keys: AHashMap::new(),
        };
        let mut roots = vec![0usize; n];
        let mut root_by_name: HashMap<&str, usize> = HashMap::with_capacity(n);
        for &i in &order {
            let r = b.build(&texprs[i], &root_by_name);
            roots[i] = r;
            root_by_name.insert(names[i].as_str(), r);
        }
        // What each segment reads, transitively.
        let mut reads_cols: Vec<HashSet<usize>> = vec![HashSet::new(); n];
        let mut reads_kinds: Vec<HashSet<String>> = vec![HashSet::new(); n];
        let mut uses_clock = vec![false; n];
        for &i in &order {
            let mut cols = HashSet::new();
            let mut kinds = HashSet::new();
            let mut clock = false;
            collect(&texprs[i], &mut cols, &mut kinds, &mut clock);
            for &d in &deps[i] {
                cols.extend(reads_cols[d].iter().copied());
                kinds.extend(reads_kinds[d].iter().cloned());
                clock |= uses_clock[d];
            }
            reads_cols[i] = cols;
            reads_kinds[i] = kinds;
            uses_clock[i] = clock;
        }
        let mut col_segments: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut kind_segments: HashMap<String, Vec<usize>> = HashMap::new();
        for i in 0..n {
            for &c in &reads_cols[i] {
                col_segments.entry(c).or_default().push(i);
            }
            for k in &reads_kinds[i] {
                kind_segments.entry(k.clone()).or_default().push(i);
            }
        }
        col_segments.values_mut().for_each(|v| v.sort_unstable());
        kind_segments.values_mut().for_each(|v| v.sort_unstable());
        let mut leaf_segments: Vec<Vec<usize>> = vec![Vec::new(); b.leaves.len()];
        let mut stamp = vec![usize::MAX; b.nodes.len()];
        let mut stack = Vec::new();
        for (s, &root) in roots.iter().enumerate() {
            stack.push(root);
            while let Some(i) = stack.pop() {
                if stamp[i] == s {
                    continue;
                }
                stamp[i] = s;
                match &b.nodes[i] {
                    Node::Leaf(l) => leaf_segments[*l].push(s),
                    Node::And(cs) | Node::Or(cs) => stack.extend(cs.iter().copied()),
                    Node::Not(c) => stack.push(*c),
                }
            }
        }
        let mut col_leaves: HashMap<usize, Vec<usize>> = HashMap::new();
        let mut kind_leaves: HashMap<String, Vec<usize>> = HashMap::new();
        for (l, leaf) in b.leaves.iter().enumerate() {
            match leaf.src() {
                Src::Col(c) => col_leaves.entry(c).or_default().push(l),
                Src::Agg(k) => kind_leaves.entry(k.kind).or_default().push(l),
            }
        }
        let flat = FlatGraph::new(
            &b.nodes,
            &b.leaf_agg.iter().map(Option::is_some).collect::<Vec<_>>(),
        );
        Ok(Plan {
            leaf_segments,
            col_leaves,
            kind_leaves,
            schema,
            names,
            exprs,
            texprs,
            leaves: b.leaves,
            leaf_agg: b.leaf_agg,
            aggs: b.aggs,
            flat,
            nodes: b.nodes,
            roots,
            col_segments,
            kind_segments,
            uses_clock,
            id: NEXT_PLAN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            name_index,
        })
    }

    /// The index of a segment by name.
    pub fn segment(&self, name: &str) -> Option<usize> {
        self.name_index.get(name).copied()
    }

    /// Nodes reachable from the given segments' roots, in topological order.
    pub fn nodes_for(&self, segments: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = segments.iter().map(|&s| self.roots[s]).collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            match &self.nodes[i] {
                Node::Leaf(_) => {}
                Node::And(cs) | Node::Or(cs) => stack.extend(cs.iter().copied()),
                Node::Not(c) => stack.push(*c),
            }
        }
        (0..self.nodes.len()).filter(|&i| seen[i]).collect()
    }
}

fn collect(t: &TExpr, cols: &mut HashSet<usize>, kinds: &mut HashSet<String>, clock: &mut bool) {
    match t {
        TExpr::And(cs) | TExpr::Or(cs) => cs.iter().for_each(|c| collect(c, cols, kinds, clock)),
        TExpr::Not(c) => collect(c, cols, kinds, clock),
        TExpr::Segment(_) => {}
        TExpr::Leaf(l) => {
            *clock |= l.uses_clock();
            match l.src() {
                Src::Col(c) => {
                    cols.insert(c);
                }
                Src::Agg(k) => {
                    kinds.insert(k.kind);
                }
            }
        }
    }
}

fn topo(deps: &[Vec<usize>], names: &[String]) -> CoreResult<Vec<usize>> {
    // 0 = new, 1 = on the stack, 2 = done. Iterative DFS (no recursion limit).
    let n = deps.len();
    let mut state = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    for s in 0..n {
        if state[s] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(s, 0)];
        state[s] = 1;
        while let Some(&mut (v, ref mut k)) = stack.last_mut() {
            if *k < deps[v].len() {
                let w = deps[v][*k];
                *k += 1;
                match state[w] {
                    0 => {
                        state[w] = 1;
                        stack.push((w, 0));
                    }
                    1 => {
                        let pos = stack.iter().position(|&(x, _)| x == w).unwrap_or(0);
                        let mut cycle: Vec<&str> = stack[pos..]
                            .iter()
                            .map(|&(x, _)| names[x].as_str())
                            .collect();
                        cycle.push(names[w].as_str());
                        return Err(CoreError::Rule(format!(
                            "in_segment cycle: {}",
                            cycle
                                .iter()
                                .map(|c| format!("'{c}'"))
                                .collect::<Vec<_>>()
                                .join(" -> ")
                        )));
                    }
                    _ => {}
                }
            } else {
                state[v] = 2;
                order.push(v);
                stack.pop();
            }
        }
    }
    Ok(order)
}

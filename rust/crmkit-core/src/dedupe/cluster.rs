//! Clustering: connected components over scored pairs, guarded against chaining.
//!
//! Edges (pairs at or above the threshold) are taken strongest first (ties by
//! pair). An edge between two singletons always joins them. An edge between
//! two components `A` and `B` of which at least one is larger joins them only
//! if the guard lets it:
//!
//! - [`cluster`]: the number of above-threshold edges between `A` and `B` is
//!   at least `ceil(guard * |A| * |B|)`: a new member must match enough of a
//!   cluster, and two clusters are not chained together through one weak link.
//! - [`cluster_weighted`]: the match weights (log2 odds) of all `|A| * |B|`
//!   pairs between them sum to more than 0 (average linkage in log odds: the
//!   two clusters are more likely one entity than two, each pair counted as
//!   evidence). A pair that is not an edge counts with its own weight, so a
//!   namesake that disagrees with the rest of a cluster holds a join back.
//!   Joins of more than [`MAX_LINKAGE`] pairs fall back to the edge count.
//!
//! With `guard = 0` this is plain connected components. The cluster id of a
//! row is the smallest caller id in its cluster, so ids are stable across runs.
//!
//! Pairs kept apart (a reviewer's "not the same person", an undone merge)
//! are never put in one cluster, by any chain of edges: a join that would
//! is refused, whatever the guard.

/// The result of clustering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clusters {
    /// Cluster id (smallest member id) per row.
    pub ids: Vec<i64>,
    /// Number of clusters with two or more rows.
    pub multi: usize,
    /// Joins refused by the chaining guard.
    pub refused: usize,
    /// Joins refused because they would have put a pair kept apart together.
    pub kept_apart: usize,
}

struct Dsu {
    parent: Vec<u32>,
    size: Vec<u32>,
    next: Vec<u32>,
    /// Per root: whether a member of the component has a pair kept apart.
    apart: Vec<bool>,
}

impl Dsu {
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }

    /// The root of `x`, without shortening paths.
    fn root(&self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }
}

/// Pairs of rows kept apart, as adjacency lists (CSR).
struct Apart {
    start: Vec<u32>,
    other: Vec<u32>,
}

/// Adjacency lists (CSR) of `n` rows over undirected pairs: the neighbours
/// of row `x` are `other[start[x]..start[x + 1]]`, and `pair[k]` is the index
/// in `pairs` of the pair that put `other[k]` there.
fn csr(
    n: usize,
    pairs: impl Iterator<Item = (u32, u32)> + Clone,
) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; n + 1];
    for (i, j) in pairs.clone() {
        start[i as usize + 1] += 1;
        start[j as usize + 1] += 1;
    }
    for k in 1..=n {
        start[k] += start[k - 1];
    }
    let mut fill = start.clone();
    let mut other = vec![0u32; start[n] as usize];
    let mut pair = vec![0u32; other.len()];
    for (e, (i, j)) in pairs.enumerate() {
        for (x, y) in [(i, j), (j, i)] {
            let k = fill[x as usize] as usize;
            other[k] = y;
            pair[k] = e as u32;
            fill[x as usize] += 1;
        }
    }
    (start, other, pair)
}

impl Apart {
    fn new(n: usize, pairs: &[(u32, u32)]) -> Apart {
        let (start, other, _) = csr(n, pairs.iter().copied());
        Apart { start, other }
    }

    /// Whether joining components `a` and `b` (roots) would put a pair kept
    /// apart into one cluster.
    fn forbids(&self, d: &Dsu, a: u32, b: u32) -> bool {
        if !(d.apart[a as usize] && d.apart[b as usize]) {
            return false;
        }
        let (small, other) = if d.size[a as usize] <= d.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        members(d, small).into_iter().any(|x| {
            let (lo, hi) = (self.start[x as usize], self.start[x as usize + 1]);
            self.other[lo as usize..hi as usize]
                .iter()
                .any(|&y| d.root(y) == other)
        })
    }
}

/// Joins of components with more pairs between them than this are decided
/// by the edge count of [`cluster`] rather than by summed weights.
pub const MAX_LINKAGE: usize = 4096;

fn join(d: &mut Dsu, a: u32, b: u32) {
    let (big, small) = if d.size[a as usize] >= d.size[b as usize] {
        (a, b)
    } else {
        (b, a)
    };
    d.parent[small as usize] = big;
    d.size[big as usize] += d.size[small as usize];
    d.apart[big as usize] |= d.apart[small as usize];
    d.next.swap(big as usize, small as usize);
}

/// Cluster `n` rows given edges `(i, j, probability)` at or above the threshold.
pub fn cluster(n: usize, ids: &[i64], edges: &[(u32, u32, f64)], guard: f64) -> Clusters {
    cluster_with(n, ids, edges, guard, &[], None::<fn(u32, u32) -> f64>)
}

/// [`cluster`] where two components join when the match weights `weight(i, j)`
/// (log2 odds) of all pairs between them sum to more than 0 (see the module
/// documentation); `guard` = 0 still gives plain connected components. No
/// cluster holds both rows of a pair in `apart`.
pub fn cluster_weighted<W>(
    n: usize,
    ids: &[i64],
    edges: &[(u32, u32, f64)],
    guard: f64,
    apart: &[(u32, u32)],
    weight: W,
) -> Clusters
where
    W: Fn(u32, u32) -> f64,
{
    cluster_with(n, ids, edges, guard, apart, Some(weight))
}

fn members(d: &Dsu, root: u32) -> Vec<u32> {
    let mut out = vec![root];
    let mut x = d.next[root as usize];
    while x != root {
        out.push(x);
        x = d.next[x as usize];
    }
    out
}

fn cluster_with<W>(
    n: usize,
    ids: &[i64],
    edges: &[(u32, u32, f64)],
    guard: f64,
    apart: &[(u32, u32)],
    weight: Option<W>,
) -> Clusters
where
    W: Fn(u32, u32) -> f64,
{
    let kept = Apart::new(n, apart);
    // Adjacency (CSR) of the edges, to count links between components.
    let (deg, adj, edge_of) = csr(n, edges.iter().map(|&(i, j, _)| (i, j)));
    // The edges' probabilities, beside `adj`, for the weighted guard.
    let adj_p: Vec<f64> = if weight.is_some() {
        edge_of.iter().map(|&e| edges[e as usize].2).collect()
    } else {
        Vec::new()
    };
    drop(edge_of);
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (ea, eb) = (&edges[a], &edges[b]);
        eb.2.total_cmp(&ea.2).then((ea.0, ea.1).cmp(&(eb.0, eb.1)))
    });
    let mut d = Dsu {
        parent: (0..n as u32).collect(),
        size: vec![1; n],
        next: (0..n as u32).collect(), // circular member lists
        apart: (0..n).map(|r| kept.start[r] < kept.start[r + 1]).collect(),
    };
    let mut refused = 0;
    let mut kept_apart = 0;
    // Weighted joins refused, by (root, size) of both sides: the same two
    // clusters are not weighed again for each further edge between them.
    let mut weighed_out: ahash::AHashSet<(u32, u32, u32, u32)> = ahash::AHashSet::new();
    for &e in &order {
        let (i, j, _) = edges[e];
        let (a, b) = (d.find(i), d.find(j));
        if a == b {
            continue;
        }
        let (sa, sb) = (d.size[a as usize] as f64, d.size[b as usize] as f64);
        let linkage = (sa * sb) as usize;
        if let Some(w) = weight.as_ref().filter(|_| guard > 0.0 && linkage > 1) {
            if linkage <= MAX_LINKAGE {
                let (lo_root, hi_root) = (a.min(b), a.max(b));
                let key = (
                    lo_root,
                    hi_root,
                    d.size[lo_root as usize],
                    d.size[hi_root as usize],
                );
                if weighed_out.contains(&key) {
                    refused += 1;
                    continue;
                }
                let (ma, mb) = (members(&d, a), members(&d, b));
                let mut sum = 0.0;
                for &x in &ma {
                    let (lo, hi) = (deg[x as usize] as usize, deg[x as usize + 1] as usize);
                    for &y in &mb {
                        // An edge's weight from its probability (when finite),
                        // any other pair's from `weight`.
                        let known = (lo..hi)
                            .find(|&k| adj[k] == y)
                            .map(|k| adj_p[k])
                            .filter(|&p| p > 0.0 && p < 1.0);
                        sum += match known {
                            Some(p) => (p / (1.0 - p)).log2(),
                            None => w(x.min(y), x.max(y)),
                        };
                    }
                }
                if sum <= 0.0 {
                    weighed_out.insert(key);
                    refused += 1;
                    continue;
                }
                if kept.forbids(&d, a, b) {
                    kept_apart += 1;
                } else {
                    join(&mut d, a, b);
                }
                continue;
            }
        }
        if sa * sb > 1.0 && guard > 0.0 {
            let need = (guard * sa * sb).ceil() as usize;
            // Count links from the smaller component into the other.
            let (small, other) = if sa <= sb { (a, b) } else { (b, a) };
            let mut links = 0;
            let mut x = small;
            loop {
                for &y in &adj[deg[x as usize] as usize..deg[x as usize + 1] as usize] {
                    if d.find(y) == other {
                        links += 1;
                    }
                }
                x = d.next[x as usize];
                if x == small {
                    break;
                }
            }
            if links < need {
                refused += 1;
                continue;
            }
        }
        // Checked last, so that the count is of joins the guard allowed.
        if kept.forbids(&d, a, b) {
            kept_apart += 1;
            continue;
        }
        join(&mut d, a, b);
    }
    let mut min_id: Vec<i64> = vec![i64::MAX; n];
    let mut roots = vec![0u32; n];
    for r in 0..n {
        let root = d.find(r as u32);
        roots[r] = root;
        min_id[root as usize] = min_id[root as usize].min(ids[r]);
    }
    let multi = (0..n)
        .filter(|&r| d.find(r as u32) == r as u32 && d.size[r] > 1)
        .count();
    Clusters {
        ids: roots.iter().map(|&root| min_id[root as usize]).collect(),
        multi,
        refused,
        kept_apart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_take_the_smallest_id() {
        let ids = [50, 40, 30, 20, 10];
        let c = cluster(5, &ids, &[(0, 1, 0.99), (1, 2, 0.95), (3, 4, 0.97)], 0.0);
        assert_eq!(c.ids, vec![30, 30, 30, 10, 10]);
        assert_eq!(c.multi, 2);
    }

    #[test]
    fn one_weak_link_does_not_chain_two_clusters() {
        // Two triangles {0,1,2} and {3,4,5}, joined by the single edge 2-3.
        let ids: Vec<i64> = (0..6).collect();
        let mut edges = vec![
            (0, 1, 0.99),
            (0, 2, 0.99),
            (1, 2, 0.99),
            (3, 4, 0.99),
            (3, 5, 0.99),
            (4, 5, 0.99),
            (2, 3, 0.91),
        ];
        let plain = cluster(6, &ids, &edges, 0.0);
        assert_eq!(plain.multi, 1);
        let guarded = cluster(6, &ids, &edges, 0.5);
        assert_eq!(guarded.ids, vec![0, 0, 0, 3, 3, 3]);
        assert_eq!(guarded.refused, 1);
        // With enough links between them, they do join.
        edges.extend([
            (0, 3, 0.92),
            (1, 4, 0.92),
            (2, 4, 0.92),
            (1, 3, 0.92),
            (0, 5, 0.92),
        ]);
        assert_eq!(cluster(6, &ids, &edges, 0.5).multi, 1);
    }

    #[test]
    fn weighted_joins_need_the_summed_weights_to_be_positive() {
        // Rows 0-1 are one person (strong pair); row 2 matches row 1 weakly
        // and row 0 strongly disagrees with row 2: a namesake chained by a
        // single link.
        let ids: Vec<i64> = (0..4).collect();
        let weight = |w: [f64; 6]| {
            move |i: u32, j: u32| match (i, j) {
                (0, 1) => w[0],
                (0, 2) => w[1],
                (1, 2) => w[2],
                (0, 3) => w[3],
                (1, 3) => w[4],
                (2, 3) => w[5],
                _ => unreachable!("pairs come ordered"),
            }
        };
        let edges = vec![(0, 1, 0.99), (1, 2, 0.8)];
        let c = cluster_weighted(
            4,
            &ids,
            &edges,
            0.5,
            &[],
            weight([9.0, -6.0, 2.0, 0.0, 0.0, 0.0]),
        );
        assert_eq!((c.ids.clone(), c.refused), (vec![0, 0, 2, 3], 1));
        // A mildly negative non-edge is outweighed: 2 - 1 > 0.
        let c = cluster_weighted(
            4,
            &ids,
            &edges,
            0.5,
            &[],
            weight([9.0, -1.0, 2.0, 0.0, 0.0, 0.0]),
        );
        assert_eq!(c.ids, vec![0, 0, 0, 3]);
        // The link-count guard would have joined the first case (1 link of 2).
        assert_eq!(cluster(4, &ids, &edges, 0.5).ids, vec![0, 0, 0, 3]);
        // With the guard off, the weights are not consulted.
        let c = cluster_weighted(4, &ids, &edges, 0.0, &[], |_, _| -100.0);
        assert_eq!(c.ids, vec![0, 0, 0, 3]);
    }

    #[test]
    fn a_new_member_must_match_enough_of_the_cluster() {
        let ids: Vec<i64> = (0..4).collect();
        // 3 links to the pair {0,1}? no: row 2 matches only row 1 of {0, 1, 3}.
        let edges = vec![(0, 1, 0.99), (0, 3, 0.99), (1, 3, 0.99), (1, 2, 0.9)];
        let c = cluster(4, &ids, &edges, 0.5);
        assert_eq!(c.ids, vec![0, 0, 2, 0]);
        // Joining a pair needs one link of two.
        let c = cluster(3, &ids[..3], &[(0, 1, 0.99), (1, 2, 0.9)], 0.5);
        assert_eq!(c.ids, vec![0, 0, 0]);
    }

    #[test]
    fn a_pair_kept_apart_is_never_chained_together() {
        let ids: Vec<i64> = (0..5).collect();
        // 0-1-2 is a chain of strong edges; 3-4 a pair.
        let edges = vec![(0, 1, 0.99), (1, 2, 0.98), (3, 4, 0.97)];
        let c = cluster_weighted(5, &ids, &edges, 0.0, &[(2, 0)], |_, _| 0.0);
        assert_eq!(c.ids, vec![0, 0, 2, 3, 3]);
        assert_eq!((c.kept_apart, c.refused), (1, 0));
        // A pair kept apart that no edge joins changes nothing.
        let c = cluster_weighted(5, &ids, &edges, 0.0, &[(0, 3)], |_, _| 0.0);
        assert_eq!((c.ids, c.kept_apart), (vec![0, 0, 0, 3, 3], 0));
    }

    proptest::proptest! {
        #[test]
        fn clusters_never_hold_a_pair_kept_apart(
            n in 2usize..24,
            raw in proptest::collection::vec((0u32..24, 0u32..24, 0.5f64..1.0), 0..60),
            apart_raw in proptest::collection::vec((0u32..24, 0u32..24), 0..6),
            guard in proptest::sample::select(vec![0.0, 0.5]),
        ) {
            let n32 = n as u32;
            let edges: Vec<(u32, u32, f64)> = raw
                .into_iter()
                .map(|(i, j, p)| (i % n32, j % n32, p))
                .filter(|(i, j, _)| i < j)
                .collect();
            let apart: Vec<(u32, u32)> = apart_raw
                .into_iter()
                .map(|(i, j)| (i % n32, j % n32))
                .filter(|(i, j)| i != j)
                .collect();
            let ids: Vec<i64> = (0..n as i64).collect();
            let w = |i: u32, j: u32| f64::from((i * 7 + j * 3) % 5) - 2.0;
            let free = cluster_weighted(n, &ids, &edges, guard, &[], w);
            let kept = cluster_weighted(n, &ids, &edges, guard, &apart, w);
            for &(i, j) in &apart {
                proptest::prop_assert_ne!(kept.ids[i as usize], kept.ids[j as usize]);
            }
            // Constraints the free clustering already meets change nothing.
            if apart.iter().all(|&(i, j)| free.ids[i as usize] != free.ids[j as usize]) {
                proptest::prop_assert_eq!(&kept.ids, &free.ids);
                proptest::prop_assert_eq!(kept.kept_apart, 0);
            }
            // Every cluster is still joined by its edges: no member is alone.
            for r in 0..n {
                let c = kept.ids[r];
                if kept.ids.iter().filter(|&&x| x == c).count() > 1 {
                    let linked = edges.iter().any(|&(i, j, _)| {
                        (i as usize == r && kept.ids[j as usize] == c)
                            || (j as usize == r && kept.ids[i as usize] == c)
                    });
                    proptest::prop_assert!(linked);
                }
            }
        }
    }
}

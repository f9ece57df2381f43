//! Clustering: connected components over scored pairs, guarded against chaining.
//!
//! Edges (pairs at or above the threshold) are taken strongest first (ties by
//! pair). An edge between two singletons always joins them. An edge between
//! two components `A` and `B` of which at least one is larger joins them only
//! if the number of above-threshold edges between `A` and `B` is at least
//! `ceil(guard * |A| * |B|)`: a new member must match enough of a cluster,
//! and two clusters are not chained together through one weak link. With
//! `guard = 0` this is plain connected components. The cluster id of a row is
//! the smallest caller id in its cluster, so ids are stable across runs.

/// The result of clustering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clusters {
    /// Cluster id (smallest member id) per row.
    pub ids: Vec<i64>,
    /// Number of clusters with two or more rows.
    pub multi: usize,
    /// Joins refused by the chaining guard.
    pub refused: usize,
}

struct Dsu {
    parent: Vec<u32>,
    size: Vec<u32>,
    next: Vec<u32>,
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
}

/// Cluster `n` rows given edges `(i, j, probability)` at or above the threshold.
pub fn cluster(n: usize, ids: &[i64], edges: &[(u32, u32, f64)], guard: f64) -> Clusters {
    // Adjacency (CSR) of the edges, to count links between components.
    let mut deg = vec![0u32; n + 1];
    for &(i, j, _) in edges {
        deg[i as usize + 1] += 1;
        deg[j as usize + 1] += 1;
    }
    for k in 1..=n {
        deg[k] += deg[k - 1];
    }
    let mut fill = deg.clone();
    let mut adj = vec![0u32; deg[n] as usize];
    for &(i, j, _) in edges {
        adj[fill[i as usize] as usize] = j;
        fill[i as usize] += 1;
        adj[fill[j as usize] as usize] = i;
        fill[j as usize] += 1;
    }
    let mut order: Vec<usize> = (0..edges.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (ea, eb) = (&edges[a], &edges[b]);
        eb.2.total_cmp(&ea.2).then((ea.0, ea.1).cmp(&(eb.0, eb.1)))
    });
    let mut d = Dsu {
        parent: (0..n as u32).collect(),
        size: vec![1; n],
        next: (0..n as u32).collect(), // circular member lists
    };
    let mut refused = 0;
    for &e in &order {
        let (i, j, _) = edges[e];
        let (a, b) = (d.find(i), d.find(j));
        if a == b {
            continue;
        }
        let (sa, sb) = (d.size[a as usize] as f64, d.size[b as usize] as f64);
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
        let (big, small) = if d.size[a as usize] >= d.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        d.parent[small as usize] = big;
        d.size[big as usize] += d.size[small as usize];
        d.next.swap(big as usize, small as usize);
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
}

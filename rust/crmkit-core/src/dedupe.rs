//! Bulk duplicate detection: blocking, comparison, scoring, clustering.

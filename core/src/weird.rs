//! Counted anomalies ("weirds"), as the Python engine's `collections.Counter[str]`.

use std::collections::BTreeMap;

/// Weird name -> count. Sorted by name, so the order handed to Python is stable.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Weirds(pub BTreeMap<String, u64>);

impl Weirds {
    pub fn new() -> Self {
        Weirds(BTreeMap::new())
    }
    /// Count one more of `name`.
    pub fn add(&mut self, name: &str) {
        self.add_n(name, 1)
    }
    pub fn add_n(&mut self, name: &str, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(v) = self.0.get_mut(name) {
            *v += n;
        } else {
            self.0.insert(name.to_string(), n);
        }
    }
    /// Add every count of `other` (Counter.update).
    pub fn update(&mut self, other: &Weirds) {
        for (k, v) in &other.0 {
            self.add_n(k, *v);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn clear(&mut self) {
        self.0.clear()
    }
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

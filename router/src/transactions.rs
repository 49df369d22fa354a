//! Reference-transaction voting (groundwork for strong consistency).
//!
//! A transactional write is sent to the primary and the healthy up-to-date
//! secondaries at once; each node's reference-transaction hook votes on the
//! hash of its reference updates. A transaction is a sequence of
//! subtransactions (git votes in the prepared and committed phases, and a
//! write may update references more than once); every voter goes through
//! the same sequence. A subtransaction commits the hash that reaches the
//! threshold: the primary always counts, plus a majority of secondaries.
//! Voters that voted for another hash fail, and a voter that failed,
//! stopped or was cancelled takes part in no later subtransaction.
//!
//! Each transaction carries the repository's term at registration, so the
//! write can be fenced when the primary changed in the meantime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A vote: the SHA-1 of the reference updates a node is about to make.
pub type Hash = [u8; 20];

/// Where one voter stands in one subtransaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not decided yet (voted or not).
    Undecided,
    /// Voted with the winning side: go ahead.
    Committed,
    /// Voted for a losing hash, or the threshold became unreachable.
    Failed,
    /// The node's call ended before the subtransaction was decided.
    Canceled,
    /// The primary stopped the transaction (a hook refused the write).
    Stopped,
}

/// Why a vote could not be counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("transaction {0} not found")]
    NotFound(u64),
    #[error("invalid transaction: {0}")]
    Invalid(String),
    #[error("node {node:?} is not a voter of transaction {id}")]
    UnknownVoter { id: u64, node: String },
    #[error("node {node:?} cannot vote again: it {outcome:?} an earlier vote of transaction {id}")]
    Finished { id: u64, node: String, outcome: Outcome },
}

/// A voter and its weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub node: String,
    pub weight: u32,
}

/// Upstream's voting rule for a primary and `secondaries` secondaries: the
/// primary weighs `n + 1` and each secondary 1; the threshold is the
/// primary alone for n <= 1, else the primary plus ceil(n / 2) secondaries.
/// With one secondary, its vote cannot block the primary: it is repaired by
/// replication when it disagrees.
pub fn voters(primary: &str, secondaries: &[String]) -> (Vec<Voter>, u32) {
    let n = u32::try_from(secondaries.len()).expect("fewer than 2^32 secondaries");
    let mut voters = vec![Voter { node: primary.to_owned(), weight: n + 1 }];
    voters.extend(secondaries.iter().map(|s| Voter { node: s.clone(), weight: 1 }));
    let threshold = if n <= 1 { n + 1 } else { n + 1 + n.div_ceil(2) };
    (voters, threshold)
}

/// One round of votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtransaction {
    pub votes: HashMap<String, Hash>,
    pub outcomes: HashMap<String, Outcome>,
    /// The hash that reached the threshold.
    pub winner: Option<Hash>,
}

impl Subtransaction {
    fn outcome(&self, node: &str) -> Option<Outcome> {
        self.outcomes.get(node).copied()
    }
}

#[derive(Debug)]
struct State {
    voters: Vec<Voter>,
    threshold: u32,
    subtransactions: Vec<Subtransaction>,
    stopped: bool,
}

impl State {
    fn weight(&self, node: &str) -> u32 {
        self.voters.iter().find(|v| v.node == node).map_or(0, |v| v.weight)
    }

    /// Decides `index` if a hash reached the threshold or none can.
    fn tally(&mut self, index: usize) {
        let total: u32 = self.voters.iter().map(|v| v.weight).sum();
        let threshold = self.threshold;
        let weights: HashMap<String, u32> = self.voters.iter().map(|v| (v.node.clone(), v.weight)).collect();
        // Voters out of the transaction: they failed or were cancelled in
        // some subtransaction and will not vote again.
        let out: std::collections::HashSet<String> = self
            .subtransactions
            .iter()
            .flat_map(|s| s.outcomes.iter())
            .filter(|(_, o)| matches!(o, Outcome::Failed | Outcome::Canceled))
            .map(|(n, _)| n.clone())
            .collect();
        let sub = &mut self.subtransactions[index];
        let mut by_hash: HashMap<Hash, u32> = HashMap::new();
        for (node, hash) in &sub.votes {
            if sub.outcomes.get(node) != Some(&Outcome::Canceled) {
                *by_hash.entry(*hash).or_default() += weights[node];
            }
        }
        if sub.winner.is_none() {
            sub.winner = by_hash.iter().find(|(_, w)| **w >= threshold).map(|(h, _)| *h);
        }
        let unreachable = sub.winner.is_none() && {
            // Weight still able to join: voters that have not voted and are
            // not out of the race.
            let open: u32 =
                weights.iter().filter(|(n, _)| !sub.votes.contains_key(*n) && !out.contains(*n)).map(|(_, w)| *w).sum();
            by_hash.values().all(|w| w + open < threshold) && total > 0
        };
        for (node, hash) in &sub.votes {
            let outcome = sub.outcomes.entry(node.clone()).or_insert(Outcome::Undecided);
            if *outcome != Outcome::Undecided {
                continue;
            }
            match sub.winner {
                Some(w) if w == *hash => *outcome = Outcome::Committed,
                Some(_) => *outcome = Outcome::Failed,
                None if unreachable => *outcome = Outcome::Failed,
                None => {}
            }
        }
    }
}

/// What a transaction is about: the write's repository and the primary
/// with the term it held when the write started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub repository_id: i64,
    pub primary: String,
    pub term: i64,
}

/// One registered transaction.
#[derive(Debug)]
struct Entry {
    registration: Registration,
    state: Mutex<State>,
    changed: Notify,
}

/// What a transaction looked like when it ended, for bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub term: i64,
    pub subtransactions: Vec<Subtransaction>,
}

/// The last id handed out and the live transactions.
#[derive(Debug, Default)]
struct Registry {
    last_id: u64,
    live: HashMap<u64, Arc<Entry>>,
}

/// Transactions of this router, by id.
#[derive(Debug, Default, Clone)]
pub struct Manager {
    inner: Arc<Mutex<Registry>>,
}

impl Manager {
    /// Registers a transaction; returns its id.
    pub fn register(
        &self,
        voters: Vec<Voter>,
        threshold: u32,
        registration: Registration,
    ) -> Result<u64, TransactionError> {
        let total: u32 = voters.iter().map(|v| v.weight).sum();
        if voters.is_empty() {
            return Err(TransactionError::Invalid("no voters".into()));
        }
        let mut names: Vec<&str> = voters.iter().map(|v| v.node.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(TransactionError::Invalid("duplicate voter".into()));
        }
        if threshold > total || threshold * 2 <= total {
            // Above the total it can never commit; at half or below, two
            // different hashes could both win.
            return Err(TransactionError::Invalid(format!("threshold {threshold} for total weight {total}")));
        }
        let entry = Arc::new(Entry {
            registration,
            state: Mutex::new(State { voters, threshold, subtransactions: Vec::new(), stopped: false }),
            changed: Notify::new(),
        });
        let mut inner = self.inner.lock().expect("transaction lock is never poisoned");
        inner.last_id += 1;
        let id = inner.last_id;
        inner.live.insert(id, entry);
        Ok(id)
    }

    fn entry(&self, id: u64) -> Result<Arc<Entry>, TransactionError> {
        let inner = self.inner.lock().expect("transaction lock is never poisoned");
        inner.live.get(&id).cloned().ok_or(TransactionError::NotFound(id))
    }

    /// What the transaction was registered for.
    pub fn registration(&self, id: u64) -> Result<Registration, TransactionError> {
        Ok(self.entry(id)?.registration.clone())
    }

    /// Whether `node` may still commit the last subtransaction: no vote of
    /// it failed or was cancelled, and it has not committed the last one
    /// yet. Waiting for a voter for which this is false changes nothing.
    pub fn pending(&self, id: u64, node: &str) -> bool {
        let Ok(entry) = self.entry(id) else { return false };
        let state = entry.state.lock().expect("transaction lock is never poisoned");
        let Some(last) = state.subtransactions.last() else { return true };
        state
            .subtransactions
            .iter()
            .all(|s| matches!(s.outcome(node), None | Some(Outcome::Undecided | Outcome::Committed)))
            && last.outcome(node) != Some(Outcome::Committed)
    }

    /// How many votes `node` has cast in the transaction.
    pub fn votes_cast(&self, id: u64, node: &str) -> usize {
        let Ok(entry) = self.entry(id) else { return 0 };
        let state = entry.state.lock().expect("transaction lock is never poisoned");
        state.subtransactions.iter().filter(|s| s.votes.contains_key(node)).count()
    }

    /// Voters that have not voted in the undecided last subtransaction are
    /// cancelled (they take too long: a paused or cut-off node), so the
    /// others learn the outcome. Returns the cancelled voters.
    pub fn cancel_absent(&self, id: u64) -> Result<Vec<String>, TransactionError> {
        let entry = self.entry(id)?;
        let cancelled = {
            let mut state = entry.state.lock().expect("transaction lock is never poisoned");
            let names: Vec<String> = state.voters.iter().map(|v| v.node.clone()).collect();
            let Some(index) = state.subtransactions.len().checked_sub(1) else { return Ok(Vec::new()) };
            let sub = &mut state.subtransactions[index];
            if sub.winner.is_some() {
                return Ok(Vec::new());
            }
            let mut cancelled = Vec::new();
            for node in names {
                if !sub.votes.contains_key(&node) && !sub.outcomes.contains_key(&node) {
                    sub.outcomes.insert(node.clone(), Outcome::Canceled);
                    cancelled.push(node);
                }
            }
            state.tally(index);
            cancelled
        };
        entry.changed.notify_waiters();
        Ok(cancelled)
    }

    /// Casts `node`'s vote in its next subtransaction and waits until that
    /// subtransaction is decided for it.
    pub async fn vote(&self, id: u64, node: &str, hash: Hash) -> Result<Outcome, TransactionError> {
        let entry = self.entry(id)?;
        let index = {
            let mut state = entry.state.lock().expect("transaction lock is never poisoned");
            if state.weight(node) == 0 {
                return Err(TransactionError::UnknownVoter { id, node: node.to_owned() });
            }
            if state.stopped {
                return Ok(Outcome::Stopped);
            }
            // Its first subtransaction without its vote; earlier ones must
            // all have committed for it.
            let mut index = state.subtransactions.len();
            for (i, sub) in state.subtransactions.iter().enumerate() {
                if !sub.votes.contains_key(node) {
                    index = i;
                    break;
                }
                match sub.outcomes.get(node).copied().unwrap_or(Outcome::Undecided) {
                    Outcome::Committed => {}
                    outcome => return Err(TransactionError::Finished { id, node: node.to_owned(), outcome }),
                }
            }
            if index == state.subtransactions.len() {
                state.subtransactions.push(Subtransaction {
                    votes: HashMap::new(),
                    outcomes: HashMap::new(),
                    winner: None,
                });
            }
            state.subtransactions[index].votes.insert(node.to_owned(), hash);
            state.tally(index);
            index
        };
        entry.changed.notify_waiters();
        loop {
            let notified = entry.changed.notified();
            {
                let state = entry.state.lock().expect("transaction lock is never poisoned");
                if state.stopped {
                    return Ok(Outcome::Stopped);
                }
                match state.subtransactions[index].outcomes.get(node).copied().unwrap_or(Outcome::Undecided) {
                    Outcome::Undecided => {}
                    outcome => return Ok(outcome),
                }
            }
            notified.await;
        }
    }

    /// Stops the transaction: waiting and later voters get `Stopped`.
    pub fn stop(&self, id: u64) -> Result<(), TransactionError> {
        let entry = self.entry(id)?;
        entry.state.lock().expect("transaction lock is never poisoned").stopped = true;
        entry.changed.notify_waiters();
        Ok(())
    }

    /// A voter's call ended: its undecided votes are cancelled, which may
    /// make a threshold unreachable and so decide the others.
    pub fn cancel_voter(&self, id: u64, node: &str) -> Result<(), TransactionError> {
        let entry = self.entry(id)?;
        {
            let mut state = entry.state.lock().expect("transaction lock is never poisoned");
            for i in 0..state.subtransactions.len() {
                let sub = &mut state.subtransactions[i];
                let outcome = sub.outcomes.entry(node.to_owned()).or_insert(Outcome::Undecided);
                if *outcome == Outcome::Undecided {
                    *outcome = Outcome::Canceled;
                }
                state.tally(i);
            }
        }
        entry.changed.notify_waiters();
        Ok(())
    }

    /// Removes the transaction and reports how it ended.
    pub fn finish(&self, id: u64) -> Result<Summary, TransactionError> {
        let entry = {
            let mut inner = self.inner.lock().expect("transaction lock is never poisoned");
            inner.live.remove(&id).ok_or(TransactionError::NotFound(id))?
        };
        let mut state = entry.state.lock().expect("transaction lock is never poisoned");
        for sub in &mut state.subtransactions {
            for outcome in sub.outcomes.values_mut() {
                if *outcome == Outcome::Undecided {
                    *outcome = Outcome::Canceled;
                }
            }
        }
        let summary = Summary { term: entry.registration.term, subtransactions: state.subtransactions.clone() };
        drop(state);
        entry.changed.notify_waiters();
        Ok(summary)
    }
}

/// How a node's call ended, as the router saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEnd {
    /// The node answered with this status.
    Finished(tonic::Code),
    /// The stream broke off (node died, connection lost) or never started.
    Broken,
    /// Still running when the router stopped waiting for it.
    Running,
}

/// What a transactional write did, for the repository's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No replica changed.
    Unchanged,
    /// `updated` hold the write (their generation moves); every other
    /// replica gets a replication job from `source`.
    Changed { updated: Vec<String>, source: String },
}

/// Decides which replicas hold a transactional write from its votes and
/// how each node's call ended.
///
/// - No subtransaction: nothing voted. A failed primary changed nothing; a
///   successful one may have changed what no vote covers (or its nodes may
///   have diverged unseen), so the secondaries are repaired from it.
/// - The last subtransaction committed (it always needs the primary): the
///   primary and the secondaries that committed it, unless their call
///   ended differently from the primary's, hold the write.
/// - It did not commit and it was the first, without the primary's vote:
///   nobody can have changed anything.
/// - Otherwise the primary dropped out (or was outvoted) after an earlier
///   subtransaction committed, so its state is unknown. Secondaries that
///   committed every earlier subtransaction and voted the same hash in the
///   last one made the same changes from the same state: the largest such
///   group holds the write and the primary is repaired from it. Upstream
///   marks every secondary outdated here, which leaves the repository
///   without an up-to-date replica while the primary is down.
pub fn decide(summary: &Summary, primary: &str, ends: &HashMap<String, CallEnd>) -> Decision {
    let end = |node: &str| ends.get(node).copied().unwrap_or(CallEnd::Broken);
    let primary_end = end(primary);
    let mut secondaries: Vec<&String> = ends.keys().filter(|n| n.as_str() != primary).collect();
    secondaries.sort();
    let Some(last) = summary.subtransactions.last() else {
        return match primary_end {
            CallEnd::Finished(tonic::Code::Ok) | CallEnd::Running => {
                Decision::Changed { updated: vec![primary.to_owned()], source: primary.to_owned() }
            }
            _ => Decision::Unchanged,
        };
    };
    if last.outcome(primary) == Some(Outcome::Committed) {
        let mut updated = vec![primary.to_owned()];
        for s in secondaries {
            let agrees = match (end(s), primary_end) {
                (CallEnd::Running, _) | (_, CallEnd::Broken | CallEnd::Running) => true,
                (theirs, ours) => theirs == ours,
            };
            if last.outcome(s) == Some(Outcome::Committed) && agrees {
                updated.push(s.clone());
            }
        }
        return Decision::Changed { updated, source: primary.to_owned() };
    }
    if summary.subtransactions.len() == 1 && !last.votes.contains_key(primary) {
        return Decision::Unchanged;
    }
    let earlier = &summary.subtransactions[..summary.subtransactions.len() - 1];
    let mut groups: std::collections::BTreeMap<Hash, Vec<String>> = std::collections::BTreeMap::new();
    for s in secondaries {
        let kept_up = earlier.iter().all(|sub| sub.outcome(s) == Some(Outcome::Committed));
        if let (true, Some(hash)) = (kept_up, last.votes.get(s.as_str())) {
            groups.entry(*hash).or_default().push(s.clone());
        }
    }
    match groups.into_values().max_by_key(Vec::len) {
        Some(group) => Decision::Changed { source: group[0].clone(), updated: group },
        None => Decision::Changed { updated: vec![primary.to_owned()], source: primary.to_owned() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    /// `node`'s vote, cast in a task so the test can go on while it waits.
    fn spawn_vote(
        m: &Manager,
        id: u64,
        node: &'static str,
        hash: u8,
    ) -> tokio::task::JoinHandle<Result<Outcome, TransactionError>> {
        let m = m.clone();
        tokio::spawn(async move { m.vote(id, node, [hash; 20]).await })
    }

    fn reg(term: i64) -> Registration {
        Registration { repository_id: 1, primary: "p".into(), term }
    }

    #[test]
    fn voting_rule_needs_the_primary_and_a_majority_of_secondaries() {
        assert_eq!(voters("p", &[]).1, 1);
        let (v, t) = voters("p", &names(&["a"]));
        assert_eq!((v[0].weight, t), (2, 2), "one secondary cannot block the primary");
        let (v, t) = voters("p", &names(&["a", "b"]));
        assert_eq!((v[0].weight, t), (3, 4), "primary + 1 of 2");
        let (v, t) = voters("p", &names(&["a", "b", "c", "d"]));
        assert_eq!((v[0].weight, t), (5, 7), "primary + 2 of 4");
    }

    #[test]
    fn registration_rejects_unsafe_thresholds() {
        let m = Manager::default();
        let (v, _) = voters("p", &names(&["a", "b"]));
        assert!(m.register(vec![], 1, reg(1)).is_err());
        assert!(m.register(v.clone(), 6, reg(1)).is_err(), "above the total weight");
        assert!(m.register(v.clone(), 2, reg(1)).is_err(), "half of the total weight: two winners possible");
        let dup = vec![Voter { node: "p".into(), weight: 1 }, Voter { node: "p".into(), weight: 1 }];
        assert!(m.register(dup, 2, reg(1)).is_err());
    }

    #[tokio::test]
    async fn agreeing_voters_commit_and_a_dissenter_fails() {
        let m = Manager::default();
        let (v, t) = voters("p", &names(&["a", "b"]));
        let id = m.register(v, t, reg(7)).expect("register");
        assert_eq!(m.registration(id).expect("registration").term, 7);
        let (h1, h2) = ([1u8; 20], [2u8; 20]);
        let (p, a, b) = tokio::join!(m.vote(id, "p", h1), m.vote(id, "a", h1), async {
            tokio::task::yield_now().await;
            m.vote(id, "b", h2).await
        });
        assert_eq!(p.expect("p"), Outcome::Committed);
        assert_eq!(a.expect("a"), Outcome::Committed);
        assert_eq!(b.expect("b"), Outcome::Failed);
        // The dissenter is out of the transaction; the others go on.
        assert!(matches!(m.vote(id, "b", h1).await, Err(TransactionError::Finished { .. })));
        let (p, a) = tokio::join!(m.vote(id, "p", h2), m.vote(id, "a", h2));
        assert_eq!((p.expect("p"), a.expect("a")), (Outcome::Committed, Outcome::Committed));
        let summary = m.finish(id).expect("finish");
        assert_eq!(summary.subtransactions.len(), 2);
        let last = summary.subtransactions.last().expect("a subtransaction");
        assert_eq!(last.outcome("p"), Some(Outcome::Committed));
        assert_eq!(last.outcome("b"), None, "the dissenter did not vote in the last one");
        assert!(matches!(m.vote(id, "p", h1).await, Err(TransactionError::NotFound(_))));
    }

    #[tokio::test]
    async fn the_primary_alone_cannot_commit_with_two_secondaries() {
        let m = Manager::default();
        let (v, t) = voters("p", &names(&["a", "b"]));
        let id = m.register(v, t, reg(1)).expect("register");
        let waiting = spawn_vote(&m, id, "p", 1);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the primary waits for a secondary");
        // Both secondaries disagree: the threshold is unreachable, all fail.
        let (a, b) = tokio::join!(m.vote(id, "a", [2; 20]), m.vote(id, "b", [3; 20]));
        assert_eq!(a.expect("a"), Outcome::Failed);
        assert_eq!(b.expect("b"), Outcome::Failed);
        assert_eq!(waiting.await.expect("join").expect("p"), Outcome::Failed);
    }

    #[tokio::test]
    async fn a_cancelled_secondary_unblocks_the_others_and_stop_releases_waiters() {
        let m = Manager::default();
        let (v, t) = voters("p", &names(&["a", "b"]));
        let id = m.register(v, t, reg(1)).expect("register");
        let p = spawn_vote(&m, id, "p", 1);
        tokio::task::yield_now().await;
        m.cancel_voter(id, "a").expect("cancel");
        assert_eq!(m.vote(id, "b", [1; 20]).await.expect("b"), Outcome::Committed);
        assert_eq!(p.await.expect("join").expect("p"), Outcome::Committed);

        let id = m.register(voters("p", &names(&["a", "b"])).0, 4, reg(1)).expect("register");
        let waiting = spawn_vote(&m, id, "a", 1);
        tokio::task::yield_now().await;
        m.stop(id).expect("stop");
        assert_eq!(waiting.await.expect("join").expect("a"), Outcome::Stopped);
        assert_eq!(m.vote(id, "b", [1; 20]).await.expect("b"), Outcome::Stopped);
    }
    fn sub(votes: &[(&str, u8)], outcomes: &[(&str, Outcome)], won: Option<u8>) -> Subtransaction {
        Subtransaction {
            votes: votes.iter().map(|(n, h)| ((*n).to_owned(), [*h; 20])).collect(),
            outcomes: outcomes.iter().map(|(n, o)| ((*n).to_owned(), *o)).collect(),
            winner: won.map(|h| [h; 20]),
        }
    }

    fn ends(e: &[(&str, CallEnd)]) -> HashMap<String, CallEnd> {
        e.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect()
    }

    const OK: CallEnd = CallEnd::Finished(tonic::Code::Ok);
    use Outcome::{Canceled, Committed, Failed};

    fn changed(updated: &[&str], source: &str) -> Decision {
        Decision::Changed { updated: names(updated), source: source.to_owned() }
    }

    #[test]
    fn decisions_follow_the_votes() {
        let all_ok = ends(&[("p", OK), ("a", OK), ("b", OK)]);
        let none = Summary { term: 1, subtransactions: vec![] };
        assert_eq!(decide(&none, "p", &all_ok), changed(&["p"], "p"), "no votes: replicate from the primary");
        let failed = ends(&[("p", CallEnd::Finished(tonic::Code::PermissionDenied)), ("a", OK)]);
        assert_eq!(decide(&none, "p", &failed), Decision::Unchanged, "primary refused before voting");

        let both = |third: Subtransaction| Summary {
            term: 1,
            subtransactions: vec![
                sub(&[("p", 1), ("a", 1), ("b", 1)], &[("p", Committed), ("a", Committed), ("b", Committed)], Some(1)),
                third,
            ],
        };
        let committed =
            both(sub(&[("p", 2), ("a", 2), ("b", 3)], &[("p", Committed), ("a", Committed), ("b", Failed)], Some(2)));
        assert_eq!(decide(&committed, "p", &all_ok), changed(&["p", "a"], "p"), "the dissenter is outdated");
        let a_erred = ends(&[("p", OK), ("a", CallEnd::Finished(tonic::Code::Internal)), ("b", OK)]);
        assert_eq!(decide(&committed, "p", &a_erred), changed(&["p"], "p"), "a call that ended otherwise");
        let a_slow = ends(&[("p", OK), ("a", CallEnd::Running), ("b", OK)]);
        assert_eq!(decide(&committed, "p", &a_slow), changed(&["p", "a"], "p"), "committed, still finishing");

        // The primary died after the prepared vote committed: the
        // secondaries that went on together hold the write.
        let primary_gone = both(sub(&[("a", 2), ("b", 2)], &[("p", Canceled), ("a", Failed), ("b", Failed)], None));
        let dead = ends(&[("p", CallEnd::Broken), ("a", OK), ("b", OK)]);
        assert_eq!(decide(&primary_gone, "p", &dead), changed(&["a", "b"], "a"));
        // It died before voting at all: nobody changed anything.
        let first = Summary {
            term: 1,
            subtransactions: vec![sub(&[("a", 1), ("b", 1)], &[("p", Canceled), ("a", Failed), ("b", Failed)], None)],
        };
        assert_eq!(decide(&first, "p", &dead), Decision::Unchanged);
    }

    #[tokio::test]
    async fn absent_voters_are_cancelled_on_demand() {
        let m = Manager::default();
        let (v, t) = voters("p", &names(&["a", "b"]));
        let id = m.register(v, t, reg(1)).expect("register");
        let p = spawn_vote(&m, id, "p", 1);
        tokio::task::yield_now().await;
        assert!(m.cancel_absent(id).expect("cancel").len() == 2, "a and b never voted");
        assert_eq!(p.await.expect("join").expect("p"), Outcome::Failed, "the threshold is out of reach");
    }
}

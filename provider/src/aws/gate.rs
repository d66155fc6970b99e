//! A one-time signal between the concurrent branches of a teardown: a branch that AWS orders
//! after another part of a different branch waits at a [`Gate`] until that part is done, and
//! stops there when it failed. The rest of each branch goes on meanwhile, so only AWS's own
//! dependencies are sequential (EC2 refuses to detach a gateway while an Elastic IP is mapped
//! in its VPC, and to delete a VPC while a security group is left in it).
//!
//! Our own, on tokio's `watch` channel: a future awaited by two branches would need
//! `futures`' `Shared`, a new dependency, for one value of one bit.

use tokio::sync::watch;

/// Where a branch waits; cloneable, so several branches can wait at one gate.
#[derive(Clone, Debug)]
pub struct Gate(Option<watch::Receiver<bool>>);

/// The one side that opens the gate; dropping it unopened closes the gate for good (the part
/// the waiters depend on failed or was not reached).
#[derive(Debug)]
pub struct Opener(watch::Sender<bool>);

/// A closed gate and what opens it.
pub fn gate() -> (Opener, Gate) {
    let (tx, rx) = watch::channel(false);
    (Opener(tx), Gate(Some(rx)))
}

impl Opener {
    pub fn open(self) {
        // No receiver left is fine: nobody waits.
        let _ = self.0.send(true);
    }
}

impl Gate {
    /// A gate that is open from the start: the dependency does not exist here.
    pub fn open() -> Self {
        Gate(None)
    }

    /// Waits until the gate opens (true) or its opener is dropped unopened (false).
    pub async fn passed(&self) -> bool {
        match &self.0 {
            None => true,
            Some(rx) => {
                let mut rx = rx.clone();
                let passed = rx.wait_for(|open| *open).await.is_ok();
                passed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_pass_once_it_opens_and_stop_when_it_is_dropped() {
        assert!(Gate::open().passed().await);

        let (opener, waiter) = gate();
        let (a, b) = (waiter.clone(), waiter);
        let waiting = tokio::spawn(async move { (a.passed().await, b.passed().await) });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "a closed gate let a waiter through");
        opener.open();
        assert_eq!(waiting.await.unwrap(), (true, true));

        let (opener, waiter) = gate();
        drop(opener);
        assert!(!waiter.passed().await);

        // Opened before anyone waits: still passed.
        let (opener, waiter) = gate();
        opener.open();
        assert!(waiter.passed().await);
    }
}

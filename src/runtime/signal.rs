//! SIGTERM and SIGINT cancel whatever is in flight: every wait selects on [`Cancel::cancelled`].
//!
//! In a container initbox is often PID 1, and PID 1 ignores any signal it has no handler for,
//! so without this the kubelet's SIGTERM would do nothing until the grace period ran out.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::runtime::exit::Exit;

/// A cheap handle that resolves once a stop signal has arrived.
#[derive(Clone)]
pub struct Cancel {
    stopped: watch::Receiver<Option<Exit>>,
}

impl Cancel {
    /// Installs the SIGTERM and SIGINT handlers. Must run inside the tokio runtime, before any
    /// work starts, so that no signal is missed.
    pub fn install() -> std::io::Result<Cancel> {
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (sender, stopped) = watch::channel(None);
        tokio::spawn(async move {
            let exit = tokio::select! {
                _ = terminate.recv() => Exit::Terminated,
                _ = interrupt.recv() => Exit::Interrupted,
            };
            let _ = sender.send(Some(exit));
            // Keep the sender alive so receivers never see a closed channel.
            std::future::pending::<()>().await;
        });
        Ok(Cancel { stopped })
    }

    /// A handle fired by hand through the returned sender, for tests of code that selects on one.
    pub fn manual() -> (watch::Sender<Option<Exit>>, Cancel) {
        let (sender, stopped) = watch::channel(None);
        (sender, Cancel { stopped })
    }

    /// The signal that has arrived, if any, without waiting.
    pub fn stopped(&self) -> Option<Exit> {
        *self.stopped.borrow()
    }

    /// Resolves with [`Exit::Terminated`] or [`Exit::Interrupted`] once a signal has arrived.
    pub async fn cancelled(&self) -> Exit {
        let mut stopped = self.stopped.clone();
        match stopped.wait_for(Option::is_some).await {
            Ok(exit) => exit.expect("waited for Some"),
            Err(_) => std::future::pending().await,
        }
    }
}

/// The error for a run stopped by a signal: "stopped by SIGTERM", exit 143 (130 for SIGINT).
pub fn stopped(exit: Exit) -> anyhow::Error {
    let name = match exit {
        Exit::Interrupted => "SIGINT",
        _ => "SIGTERM",
    };
    crate::runtime::exit::interrupted(exit, format!("stopped by {name}"))
}

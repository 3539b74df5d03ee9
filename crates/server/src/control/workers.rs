//! The one place that starts threads and runtimes.
//!
//! - Work that must not take CPU or disk time from the masters (restores, WAL
//!   feeding, base backups) runs on a thread of its own at nice 10 and in the idle I/O
//!   class ([`Priority::Low`]).
//! - Futures that are not `Send` (the pre-check, the migration, the diff: they hold
//!   borrows across awaits) run on a thread of its own with a current-thread runtime.
//!   A single-threaded runtime also halves the system CPU of a copy that is one stream
//!   per table, compared with the server's multi-threaded one.
//! - Blocking calls (`pg_ctl`, `initdb`) run on Tokio's blocking pool ([`blocking`]).

use std::future::Future;

use super::{Error, Result};

/// The CPU and I/O priority of a worker thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// The server's own.
    Normal,
    /// Nice 10 and the idle I/O class, inherited by the processes the thread starts.
    Low,
}

/// Lowers the calling thread's CPU priority (nice 10) and puts its I/O in the idle
/// class; threads it starts inherit both.
pub fn lower_priority() {
    // SAFETY: plain system calls on the calling thread (Linux keeps nice and I/O
    // priority per thread; `who = 0` is the caller).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
    }
}

/// Runs the future `make` builds on a new thread with its own current-thread runtime,
/// and returns at once. `name` names the thread and the work in errors.
pub fn spawn_thread<F, Fut>(name: &str, priority: Priority, make: F) -> Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let label = name.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if priority == Priority::Low {
                lower_priority();
            }
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(make()),
                Err(e) => tracing::error!(error = %e, work = %label, "cannot start a runtime"),
            }
        })
        .map(|_| ())
        .map_err(|e| Error::internal(format!("cannot start a thread for {name}: {e}")))
}

/// Runs the future `make` builds on a new thread (see [`spawn_thread`]) and waits for
/// its result.
pub async fn on_thread<T, F, Fut>(name: &str, priority: Priority, make: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_thread(name, priority, move || async move {
        let _ = tx.send(make().await);
    })?;
    rx.await
        .map_err(|_| Error::internal(format!("the {name} thread ended abnormally")))?
}

/// Runs a blocking call (a PostgreSQL program, file work) on the blocking pool.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> std::result::Result<T, E> + Send + 'static,
) -> Result<T>
where
    T: Send + 'static,
    E: Into<Error> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_thread_returns_what_its_future_returns() {
        // Not Send: an Rc held across an await.
        let got = on_thread("test", Priority::Normal, || async {
            let rc = std::rc::Rc::new(41);
            tokio::task::yield_now().await;
            Ok(*rc + 1)
        })
        .await
        .unwrap();
        assert_eq!(got, 42);
        let e = on_thread::<(), _, _>("test", Priority::Low, || async {
            Err(Error::invalid("bad", "fix it"))
        })
        .await
        .unwrap_err();
        assert_eq!(e.message, "bad");
    }
}

//! Background work that must not take CPU or disk time from the masters (restores,
//! WAL feeding, base backups) runs on threads of its own at nice 10 and in the idle
//! I/O class, each with a small runtime.

use std::future::Future;

use crate::error::ApiError;

/// Lowers the calling thread's CPU priority (nice 10) and puts its I/O in the idle
/// class; threads it starts inherit both.
pub fn lower() {
    // SAFETY: plain system calls on the calling thread (Linux keeps nice and I/O
    // priority per thread; `who = 0` is the caller).
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
        libc::syscall(libc::SYS_ioprio_set, 1, 0, 3 << 13);
    }
}

/// Runs the future `make` builds on a new low-priority thread and waits for it.
/// `what` names the work in errors.
pub async fn run<T, F, Fut>(what: &str, make: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    let label = what.to_string();
    std::thread::Builder::new()
        .name(format!("low {what}"))
        .spawn(move || {
            lower();
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ApiError::internal(format!("cannot start a runtime for {label}: {e}")))
                .and_then(|rt| rt.block_on(make()));
            let _ = tx.send(result);
        })
        .map_err(|e| ApiError::internal(format!("cannot start a thread for {what}: {e}")))?;
    rx.await
        .map_err(|_| ApiError::internal(format!("the {what} thread ended abnormally")))?
}

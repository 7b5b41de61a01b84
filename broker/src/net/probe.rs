//! What this kernel gives the data plane, settled once at start-up: the requested
//! configuration in, the effective one out, with a typed [`Fallback`] (key, requested,
//! effective, the kernel's reason) for every value that cannot be honoured here.
//! `config` stays pure; this is the one place that asks the kernel.

use crate::config::{Config, EffectiveConfig};

use super::uring;

/// Probes io_uring and its options for `requested` (a tiny ring with the requested
/// flags and entries, the opcode probe, real registered-buffer and multishot round
/// trips) and returns what will run.
pub fn resolve(requested: Config) -> EffectiveConfig {
    let probed = uring::probe(&requested);
    let config = Config {
        io_backend: probed.backend,
        uring_registered_buffers: probed.registered_buffers,
        uring_multishot_recv: probed.multishot_recv,
        ..requested
    };
    EffectiveConfig::new(config, probed.fallbacks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConnBufferKind, IoBackend, LogMapKind, Profile};

    #[test]
    fn impossible_io_uring_requests_fall_back_with_a_reason() {
        // IORING_MAX_ENTRIES is 32768: a million entries is refused on every kernel.
        let cfg = Config::load(
            Profile::Tuned,
            None,
            &[
                "sq_entries=1000000".into(),
                "uring_multishot_recv=true".into(),
            ],
        )
        .unwrap();
        let eff = resolve(cfg);
        assert_eq!(eff.config.io_backend, IoBackend::Epoll);
        assert!(!eff.config.uring_multishot_recv);
        let io = eff
            .fallbacks
            .iter()
            .find(|f| f.key == "io_backend")
            .unwrap();
        assert_eq!(
            (io.requested.as_str(), io.effective.as_str()),
            ("io_uring_sqpoll", "epoll")
        );
        assert!(io.reason.contains("sq_entries=1000000"), "{io:?}");
        let ms = eff
            .fallbacks
            .iter()
            .find(|f| f.key == "uring_multishot_recv")
            .unwrap();
        assert_eq!(
            (ms.requested.as_str(), ms.effective.as_str()),
            ("true", "false")
        );
        assert!(!ms.reason.is_empty());
        // The other toggles are honoured as asked.
        assert_eq!(eff.config.conn_buffer, ConnBufferKind::Circular);
        assert_eq!(eff.config.log_map, LogMapKind::Sharded);
        assert!(resolve(Config::profile(Profile::Baseline))
            .fallbacks
            .is_empty());
    }

    #[test]
    fn uring_extras_without_io_uring_are_reported() {
        let cfg = Config::load(
            Profile::Baseline,
            None,
            &["uring_registered_buffers=true".into()],
        )
        .unwrap();
        let eff = resolve(cfg);
        assert!(!eff.config.uring_registered_buffers);
        assert_eq!(eff.fallbacks.len(), 1, "{:?}", eff.fallbacks);
        assert_eq!(eff.fallbacks[0].key, "uring_registered_buffers");
    }
}

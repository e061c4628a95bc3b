//! A new config applied to the running modules, and the verify keys read
//! again.

use std::{path::PathBuf, time::SystemTime};

use crate::signing::Keyring;

use super::{
    super::{error::LoadErrorKind, sink::DEFAULT_PUBLISHES_PER_SECOND},
    Refusal, Registry, RuntimeSettings, lock, read, write,
};

impl Registry {
    /// Reads the verify keys again (`[modules] verify_keys`), so a key added
    /// while the host runs is trusted from the next load on. On error the
    /// keys in use are kept. Returns how many modules have keys.
    pub fn reload_keys(&self) -> Result<usize, String> {
        let dirs = read(&self.settings).modules.verify_keys.clone();
        let ring = Keyring::load(&dirs).map_err(|e| e.to_string())?;
        let modules = ring.modules().count();
        *write(&self.keyring) = ring;
        Ok(modules)
    }

    /// Applies a new config to the modules: call timeouts, module config
    /// tables (sent to the running instance, whose `on_config` decides),
    /// modules switched off (deregistered) or on (their file loaded), and
    /// the verify key folders. Queue sizes apply to generations started
    /// from now on.
    pub fn apply_settings(&self, new: RuntimeSettings) {
        let _serial = lock(&self.load_lock);
        let old = std::mem::replace(&mut *write(&self.settings), new.clone());
        if old.modules.verify_keys != new.modules.verify_keys {
            match self.reload_keys() {
                Ok(n) => {
                    tracing::info!("verify keys read from the new folders: keys for {n} module(s)")
                }
                Err(e) => tracing::warn!("verify keys: {e}; the keys read before stay in use"),
            }
        }
        for g in self.running() {
            let now = new.modules.settings_for(&g.name);
            if !now.enabled {
                let file = g.file.clone();
                if self.remove_locked(&g.name, "disabled in config.toml") {
                    write(&self.refused).insert(
                        file,
                        Refusal {
                            module: Some(g.name.clone()),
                            error: LoadErrorKind::Disabled {
                                module: g.name.clone(),
                            }
                            .to_string(),
                            at: SystemTime::now(),
                            disabled: true,
                        },
                    );
                }
                continue;
            }
            let timeout = now.call_timeout.unwrap_or(new.call_timeout);
            if timeout.as_millis() as u64 != g.call_timeout_ms() {
                g.set_call_timeout(timeout);
                tracing::info!(module = %g.name, "module call timeout is now {} ms", timeout.as_millis());
            }
            let budget = now
                .publishes_per_second
                .unwrap_or(DEFAULT_PUBLISHES_PER_SECOND);
            if budget != g.publishes_per_second() {
                g.set_publishes_per_second(budget);
                tracing::info!(module = %g.name, "module may now publish {budget} messages per second");
            }
            if old.modules.settings_for(&g.name).config != now.config {
                if g.reconfigure(&now.config) {
                    tracing::info!(module = %g.name, generation = g.generation, "module sent its new config ([modules.{}] changed)", g.name);
                } else {
                    tracing::warn!(module = %g.name, generation = g.generation, "module could not be sent its new config (its queue is full or it stopped); its next build or a reset starts with it");
                }
            }
        }
        let parked: Vec<PathBuf> = read(&self.refused)
            .iter()
            .filter(|(_, r)| {
                r.disabled
                    && r.module.as_deref().is_some_and(|m| {
                        new.modules.settings_for(m).enabled && !self.disabled_by_operator(m)
                    })
            })
            .map(|(file, _)| file.clone())
            .collect();
        for file in parked {
            if !file.exists() {
                write(&self.refused).remove(&file);
                continue;
            }
            tracing::info!(file = %file.display(), "module enabled in config.toml: loading it");
            if let Err(e) = self.load_locked(&file) {
                self.refuse(&file, &e);
            }
        }
    }
}

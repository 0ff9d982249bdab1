//! `.env` support: `NAME=value` lines, `#` comments; the process environment wins.

use std::path::Path;

use anyhow::Context as _;

/// Reads `path` into the process environment, so every command and service started later sees
/// it. Call before any thread starts.
pub fn load_dotenv(path: &Path) -> anyhow::Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = line
            .trim_start_matches("export ")
            .split_once('=')
            .with_context(|| format!("{}:{}: expected NAME=value", path.display(), number + 1))?;
        let value = value.trim().trim_matches('"').trim_matches('\'');
        if std::env::var_os(name.trim()).is_none() {
            // SAFETY: called at the start of `main`, before any other thread exists.
            unsafe { std::env::set_var(name.trim(), value) };
        }
    }
    Ok(())
}

//! Layered configuration: the type's defaults, then a TOML file, then `PREFIX__SECTION__KEY`
//! environment variables. Every problem is one readable line; binaries exit with [`EXIT_CONFIG`].

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Exit code for an unusable configuration (`EX_USAGE`, as linkerd and sysexits.h use).
pub const EXIT_CONFIG: u8 = 64;

/// A bad configuration, reported as one line: `invalid configuration: …`. Build it with
/// [`ConfigError::new`] from text that may span lines (a parser's); the field is public for
/// messages that are one line by construction.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    /// A problem, said in one line (line breaks in `message` become spaces, so a multi-line
    /// parser message cannot break the one-line contract).
    pub fn new(message: impl Into<String>) -> Self {
        let message = message.into();
        Self(message.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    /// The problem without the `invalid configuration: ` prefix.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Where one service's configuration comes from.
#[derive(Debug, Clone, Copy)]
pub struct Layers<'a> {
    /// Environment prefix: `IBGW` reads `IBGW__UPSTREAM__ADDRESS` as `upstream.address`.
    pub env_prefix: &'a str,
    /// The file read when none is named, from the working directory, if it exists: `gateway`
    /// reads `./gateway.toml`.
    pub default_file: &'a str,
}

impl Layers<'_> {
    /// Loads `T`: its `serde(default)`s, then `file` (which must exist when given; otherwise the
    /// optional default file), then the process environment.
    pub fn load<T: DeserializeOwned>(&self, file: Option<&Path>) -> Result<T, ConfigError> {
        self.load_with_env(file, None)
    }

    /// [`Layers::load`] with `env` in place of the process environment (for tests: setting the
    /// process environment is unsound while other threads read it).
    pub fn load_with_env<T: DeserializeOwned>(
        &self,
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<T, ConfigError> {
        let mut builder = config::Config::builder();
        builder = match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::new(format!("config file {} does not exist", path.display())));
                }
                builder.add_source(config::File::from(path).format(config::FileFormat::Toml))
            }
            None => builder.add_source(
                config::File::with_name(self.default_file).format(config::FileFormat::Toml).required(false),
            ),
        };
        builder
            .add_source(
                config::Environment::with_prefix(self.env_prefix).prefix_separator("__").separator("__").source(env),
            )
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::new(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Settings {
        net: Net,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Net {
        listen: String,
        timeout_ms: u64,
        retries: u32,
    }

    impl Default for Net {
        fn default() -> Self {
            Self { listen: "127.0.0.1:1".into(), timeout_ms: 100, retries: 3 }
        }
    }

    const LAYERS: Layers<'static> = Layers { env_prefix: "KITTEST", default_file: "kit-test-none" };

    fn env(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    /// A TOML file of its own, removed when dropped.
    struct TempToml(std::path::PathBuf);

    impl TempToml {
        fn new(name: &str, text: &str) -> Self {
            let path = std::env::temp_dir().join(format!("ibgw-kit-{}-{name}.toml", std::process::id()));
            std::fs::write(&path, text).expect("temp file");
            Self(path)
        }
    }

    impl Drop for TempToml {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn defaults_then_file_then_environment() {
        let none: Settings = LAYERS.load_with_env(None, env(&[])).expect("defaults");
        assert_eq!(none, Settings::default());

        let file = TempToml::new("layers", "[net]\nlisten = \"127.0.0.1:2\"\ntimeout_ms = 200\n");
        let from_file: Settings = LAYERS.load_with_env(Some(&file.0), env(&[])).expect("file");
        assert_eq!(from_file.net, Net { listen: "127.0.0.1:2".into(), timeout_ms: 200, retries: 3 });

        let both: Settings = LAYERS
            .load_with_env(Some(&file.0), env(&[("KITTEST__NET__TIMEOUT_MS", "300"), ("OTHER__NET__RETRIES", "9")]))
            .expect("file and environment");
        assert_eq!(
            both.net,
            Net { listen: "127.0.0.1:2".into(), timeout_ms: 300, retries: 3 },
            "the environment wins over the file; another prefix is ignored"
        );
    }

    #[test]
    fn every_problem_is_one_line_naming_the_key() {
        let err = LAYERS.load_with_env::<Settings>(None, env(&[("KITTEST__NET__TIMEOUT_MS", "soon")])).unwrap_err();
        let line = err.to_string();
        assert!(line.starts_with("invalid configuration: "), "{line}");
        assert!(line.contains("timeout_ms"), "names the key: {line}");
        assert!(!line.contains('\n'), "{line}");

        let err = LAYERS.load_with_env::<Settings>(None, env(&[("KITTEST__NET__COLOUR", "red")])).unwrap_err();
        assert!(err.to_string().contains("colour"), "unknown keys are refused: {err}");

        let missing = Path::new("/nonexistent/ibgw-kit.toml");
        let err = LAYERS.load_with_env::<Settings>(Some(missing), env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "invalid configuration: config file /nonexistent/ibgw-kit.toml does not exist");

        let bad = TempToml::new("broken", "[net\nlisten = 1\n");
        let err = LAYERS.load_with_env::<Settings>(Some(&bad.0), env(&[])).unwrap_err();
        assert!(!err.to_string().contains('\n'), "a multi-line parser message becomes one line: {err}");
    }
}

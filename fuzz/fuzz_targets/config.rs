//! The configuration parser: TOML text into a validated configuration (the parse, then the
//! directory and core limits the gateway builds from it at start-up).
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_gateway::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::parse(text) {
        let _ = config.directory();
        let _ = config.core_limits();
    }
});

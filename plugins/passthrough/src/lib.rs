//! # passthrough: every event written on unchanged
//!
//! One output per event: the value as it is (a tombstone stays a tombstone),
//! the input's key and headers, the pipeline's result topic. It owns no
//! logic on purpose: it is the baseline the benchmarks measure the host
//! against, so it does no per-event work beyond moving the value across.

use sluice_sdk::{Config, Event, Output, Plugin, ProcessError, export};

/// The identity plugin; it has no configuration.
pub struct Passthrough;

impl Plugin for Passthrough {
    fn init(_config: &Config) -> Result<Self, String> {
        Ok(Passthrough)
    }

    fn process(&mut self, event: Event) -> Result<Vec<Output>, ProcessError> {
        Ok(vec![Output::forward(event)])
    }
}

export!(Passthrough);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_value_and_inherits_the_rest() {
        let mut plugin = Passthrough::init(&Config::default()).unwrap();
        let event = Event::new("v").with_key("k").with_header("h", "1");
        assert_eq!(plugin.process(event), Ok(vec![Output::new("v")]));
        assert_eq!(
            plugin.process(Event::tombstone()),
            Ok(vec![Output::tombstone()])
        );
    }
}

// {{name}}: a Sluice plugin.
//
// Adds `"processed_by": <label>` to every event whose value is a JSON object
// and writes it to the pipeline's result topic, with the input's key and
// headers. Anything else goes to the dead-letter topic as `invalid`, with
// the reason.
//
// Config: `label` (default "{{name}}").

import { Config, ConfigError, Invalid, Output, jsonType, log } from 'sluice-sdk';

let label = '{{name}}';

/** Once per instance, with the pipeline's `config` table; throw to refuse it. */
export function init(config) {
  label = Config.get(config, 'label', '{{name}}');
  if (!label) throw new ConfigError('config key `label` must not be empty');
  log.info(`labelling events as ${JSON.stringify(label)}`);
}

/** Once per event: the records to write, or throw. */
export function process(event) {
  const value = event.json(); // not JSON, or a tombstone: Invalid, with the reason
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new Invalid(`expected a JSON object, got ${jsonType(value)}`);
  }
  value.processed_by = label;
  return [Output.json(value)];
}

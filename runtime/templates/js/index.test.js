// Unit tests on plain node: `npm test`.

import assert from 'node:assert/strict';
import { beforeEach, it } from 'node:test';

import { Event, Invalid } from 'sluice-sdk';
import { init, process } from './index.js';

beforeEach(() => init({ label: 'checked' }));

it('labels JSON objects', () => {
  const [output] = process(Event.create({ value: '{"id": 1}', key: 'k' }));
  assert.deepEqual(JSON.parse(output.valueString()), { id: 1, processed_by: 'checked' });
  // The key and headers are inherited from the input.
  assert.equal(output.key, undefined);
});

it('rejects what is not a JSON object', () => {
  for (const value of ['not json', '[1]', null]) {
    assert.throws(() => process(Event.create({ value })), Invalid, String(value));
  }
});

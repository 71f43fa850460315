// The plugin's logic under plain node (node --test), mirroring the Rust
// plugin's unit tests. The behaviour inside the host is checked by
// compare.py against the Rust component itself.

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { Event, Invalid } from 'sluice-sdk';
import { init, process } from './index.js';

const ORDER = '{"order_id":"ORD-0001","customer_id":"CUST-001","amount":11.5,"timestamp":1732400000.0}';

function enrich(value) {
  const outputs = process(Event.create({ value, key: 'k', headers: [['h', '1']] }));
  assert.equal(outputs.length, 1);
  const [output] = outputs;
  assert.equal(output.topic, undefined, 'default topic');
  assert.equal(output.key, undefined, 'key inherited');
  assert.equal(output.headers, undefined, 'headers inherited');
  return output.valueString();
}

function invalid(value) {
  try {
    enrich(value);
  } catch (err) {
    assert.ok(err instanceof Invalid, `expected Invalid for ${value}, got ${err}`);
    return err.message;
  }
  assert.fail(`expected Invalid for ${value}`);
}

describe('order-enrich', () => {
  beforeEach(() => assert.equal(init({}), undefined));

  it('tutorial order', () => {
    // Rust writes `1732400000.0`; JSON.stringify writes the same number as `1732400000`.
    assert.equal(
      enrich(ORDER),
      '{"amount":11.5,"amount_cents":1150,"customer_id":"CUST-001","order_id":"ORD-0001","tier":"bronze","timestamp":1732400000}',
    );
  });

  it('keeps unknown fields and overwrites ours', () => {
    assert.equal(
      enrich('{"order_id":"A","amount":0.29,"z":[1,{"b":2}],"tier":"x"}'),
      '{"amount":0.29,"amount_cents":29,"order_id":"A","tier":"bronze","z":[1,{"b":2}]}',
    );
  });

  it('tiers and rounding', () => {
    const tierOf = (amount) => {
      const out = JSON.parse(enrich(`{"order_id":"A","amount":${amount}}`));
      return [out.tier, out.amount_cents];
    };
    assert.deepEqual(tierOf('0'), ['bronze', 0]);
    assert.deepEqual(tierOf('49.999'), ['bronze', 5000]);
    assert.deepEqual(tierOf('50'), ['silver', 5000]);
    assert.deepEqual(tierOf('99.99'), ['silver', 9999]);
    assert.deepEqual(tierOf('100'), ['gold', 10000]);
    assert.deepEqual(tierOf('1234.565'), ['gold', 123457]);
    assert.deepEqual(tierOf('7'), ['bronze', 700]);
    assert.deepEqual(tierOf('0.005'), ['bronze', 1], 'half away from zero');
    assert.deepEqual(tierOf('-0'), ['bronze', 0]);
  });

  it('thresholds from config', () => {
    assert.equal(init({ silver_from: '10', gold_from: '20.5' }), undefined);
    const tier = (amount) => JSON.parse(enrich(`{"order_id":"A","amount":${amount}}`)).tier;
    assert.equal(tier(9.99), 'bronze');
    assert.equal(tier(10), 'silver');
    assert.equal(tier(20.5), 'gold');
  });

  it('bad config names the key', () => {
    const refusal = (config) => {
      try {
        return init(config);
      } catch (err) {
        return err.message;
      }
    };
    assert.equal(refusal({ silver_from: 'lots' }), 'config key `silver_from`: invalid value "lots": invalid float literal');
    assert.equal(refusal({ gold_from: '-1' }), 'config key `gold_from`: must be a finite, non-negative number, got -1');
    assert.equal(refusal({ gold_from: 'NaN' }), 'config key `gold_from`: must be a finite, non-negative number, got NaN');
    assert.equal(refusal({ gold_from: 'inf' }), 'config key `gold_from`: must be a finite, non-negative number, got inf');
    assert.equal(refusal({ silver_from: '60', gold_from: '40' }), 'config key `gold_from` (40) must not be below `silver_from` (60)');
  });

  it('invalid events say why', () => {
    assert.match(invalid('not json'), /^event value is not valid JSON: /);
    assert.equal(invalid('[1,2]'), 'order is not a JSON object, got array');
    assert.equal(invalid('"ORD-1"'), 'order is not a JSON object, got string');
    assert.equal(invalid('{"amount":1}'), 'missing field `order_id`');
    assert.equal(invalid('{"order_id":7,"amount":1}'), 'field `order_id` must be a string, got number');
    assert.equal(invalid('{"order_id":"A"}'), 'missing field `amount`');
    assert.equal(invalid('{"order_id":"A","amount":"11.5"}'), 'field `amount` must be a number, got string');
    assert.equal(invalid('{"order_id":"A","amount":null}'), 'field `amount` must be a number, got null');
    assert.equal(invalid('{"order_id":"A","amount":-1.5}'), 'field `amount` must not be negative, got -1.5');
    assert.equal(invalid('{"order_id":"A","amount":1e300}'), 'field `amount` is too large for exact cents, got 1e300');
    assert.equal(invalid('{"order_id":"A","amount":1e400}'), 'event value is not valid JSON: number out of range');
    assert.equal(invalid(null), 'event has no value (tombstone)');
  });
});

// The Rust account-balance's unit tests, ported: same inputs, same outputs,
// state and messages (only the JSON parser's own wording differs).

import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';

import { Event, Invalid } from 'sluice-sdk';
import { testing } from 'sluice-sdk/state';

import * as plugin from './index.js';

const MAX_AMOUNT = 9007199254740992;
const dec = new TextDecoder();

/** Processes an account event keyed by its account id, as the host does: the output value, or the invalid message. */
function apply(value) {
  let key = null;
  try {
    const id = JSON.parse(value).account_id;
    if (typeof id === 'string') key = id;
  } catch {}
  const event = Event.create({ value, key, headers: [['h', '1']] });
  let outputs;
  try {
    outputs = testing.process(plugin, event);
  } catch (err) {
    if (err instanceof Invalid) return ['invalid', err.message];
    throw err;
  }
  assert.equal(outputs.length, 1);
  const [output] = outputs;
  assert.equal(output.topic, undefined, 'result topic');
  assert.equal(output.headers, undefined, 'headers inherited');
  const text = dec.decode(output.value);
  assert.equal(dec.decode(output.key), JSON.parse(text).account_id);
  return text;
}

const event = (account, type, amount) => `{"account_id":"${account}","type":"${type}","amount":${amount}}`;
const balances = () => [...testing.state()];

describe('account-balance', () => {
  beforeEach(() => testing.reset());

  it('the tutorial replay', () => {
    assert.equal(apply(event('ACC-1', 'CREATED', 0)), '{"account_id":"ACC-1","balance":0,"version":1}');
    assert.equal(apply(event('ACC-1', 'DEPOSITED', 1000)), '{"account_id":"ACC-1","balance":1000,"version":2}');
    assert.equal(apply(event('ACC-1', 'WITHDRAWN', 200)), '{"account_id":"ACC-1","balance":800,"version":3}');
    assert.deepEqual(balances(), [['account/ACC-1', '{"balance":800,"version":3}']]);
  });

  it('accounts are independent and extra fields ignored', () => {
    apply(event('ACC-1', 'CREATED', 50));
    apply('{"account_id":"ACC-2","type":"CREATED","amount":7,"at":"today"}');
    assert.equal(apply(event('ACC-2', 'WITHDRAWN', 7)), '{"account_id":"ACC-2","balance":0,"version":2}');
    assert.equal(apply(event('ACC-1', 'DEPOSITED', 0)), '{"account_id":"ACC-1","balance":50,"version":2}');
    const [output] = testing.process(plugin, Event.create({ value: event('ACC-1', 'DEPOSITED', 1) }));
    assert.equal(dec.decode(output.key), 'ACC-1', 'an event without a key is accepted');
  });

  it('invalid events say why and change nothing', () => {
    apply(event('ACC-1', 'CREATED', 0));
    apply(event('ACC-1', 'DEPOSITED', 800));
    const before = balances();
    const cases = [
      ['[1]', 'account event is not a JSON object, got array'],
      ['{"type":"CREATED","amount":1}', 'missing field `account_id`'],
      ['{"account_id":1,"type":"CREATED","amount":1}', 'field `account_id` must be a string, got number'],
      ['{"account_id":"","type":"CREATED","amount":1}', 'field `account_id` is empty'],
      ['{"account_id":"ACC-1","amount":1}', 'missing field `type`'],
      ['{"account_id":"ACC-1","type":"CLOSED","amount":1}', 'field `type` must be CREATED, DEPOSITED or WITHDRAWN, got "CLOSED"'],
      ['{"account_id":"ACC-1","type":"DEPOSITED"}', 'missing field `amount`'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":"5"}', 'field `amount` must be a number, got string'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":-5}', 'field `amount` must not be negative, got -5'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":-0.5}', 'field `amount` must not be negative, got -0.5'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":2.5}', 'field `amount` must be a whole number, got 2.5'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":1.0}', 'field `amount` must be a whole number, got 1.0'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":1e16}', 'field `amount` must be a whole number, got 1e+16'],
      ['{"account_id":"ACC-1","type":"DEPOSITED","amount":9007199254740993}', 'field `amount` must be at most 2^53, got 9007199254740993'],
      ['{"account_id":"ACC-1","amount":5,"type":"DEPOSITED","amount":-1}', 'field `amount` must not be negative, got -1'],
      [event('ACC-1', 'CREATED', 0), 'account `ACC-1` already exists'],
      [event('ACC-9', 'DEPOSITED', 1), 'account `ACC-9` does not exist'],
      [event('ACC-9', 'WITHDRAWN', 1), 'account `ACC-9` does not exist'],
      [event('ACC-1', 'WITHDRAWN', 5000), 'account `ACC-1` has a balance of 800, cannot withdraw 5000'],
      [event('ACC-1', 'DEPOSITED', MAX_AMOUNT), 'account `ACC-1` has a balance of 800, depositing 9007199254740992 takes it above 2^53'],
    ];
    for (const [value, message] of cases) assert.deepEqual(apply(value), ['invalid', message], value);
    const [kind, message] = apply('{not json');
    assert.equal(kind, 'invalid');
    assert.match(message, /^event value is not valid JSON: /);
    assert.throws(
      () => testing.process(plugin, Event.create({ value: event('ACC-1', 'DEPOSITED', 1), key: 'ACC-2' })),
      { message: 'event key `ACC-2` is not the account_id `ACC-1`' },
    );
    assert.throws(() => testing.process(plugin, Event.create({})), { message: 'event has no value (tombstone)' });
    assert.deepEqual(balances(), before, 'no invalid event changed the state');
    assert.equal(apply(event('ACC-1', 'WITHDRAWN', 800)), '{"account_id":"ACC-1","balance":0,"version":3}');
  });

  it('a deposit up to 2^53 exactly, and not one past it', () => {
    testing.setState({ 'account/A': `{"balance":${MAX_AMOUNT - 1},"version":1}` });
    assert.deepEqual(apply(event('A', 'DEPOSITED', 2)), ['invalid', 'account `A` has a balance of 9007199254740991, depositing 2 takes it above 2^53']);
    assert.equal(apply(event('A', 'DEPOSITED', 1)), `{"account_id":"A","balance":${MAX_AMOUNT},"version":2}`);
  });

  it('a corrupt state value is invalid', () => {
    testing.setState({ 'account/ACC-1': 'not json' });
    const [, message] = apply(event('ACC-1', 'DEPOSITED', 1));
    assert.ok(message.startsWith('state value of key `account/ACC-1` is not the expected JSON: '), message);
  });

  it('numbers are written as serde_json writes them', () => {
    for (const [x, text] of [[1, '1.0'], [2.5, '2.5'], [1e16, '1e+16'], [1e-5, '0.00001'], [1e-6, '1e-6'], [-0, '-0.0'], [1e300, '1e+300'], [-1e-7, '-1e-7'], [1e15, '1000000000000000.0']]) {
      assert.equal(plugin.serdeFloat(x), text);
    }
    assert.equal(plugin.rawMember('{"a":{"amount":1},"amount" : 2.50,"b":"\\"amount"}', 'amount'), '2.50');
  });
});

// account-balance, in JavaScript: the tutorial's event sourcing with the
// state in the host. Same behaviour, per event, as the Rust
// plugins/account-balance: the same outputs, the same state bytes (key
// `account/<account_id>`, value `{"balance":…,"version":…}`) and the same
// `invalid` messages, except the JSON parser's own wording for a value
// that is not JSON. The Rust module docs are the specification.
//
// Input: {"account_id": "ACC-1", "type": "DEPOSITED", "amount": 1000}, keyed
// by the account id; `type` CREATED (opens the account with `amount`),
// DEPOSITED or WITHDRAWN; `amount` a whole, non-negative number, at most
// 2^53, as is every balance. Output: {"account_id":"ACC-1","balance":1000,"version":2}
// to the result topic, keyed by the account id, with the input's headers.
//
// Numbers: JSON.parse reads `1.0` as 1 and 9007199254740993 as
// 9007199254740992, where serde_json (the Rust plugin) sees a float and an
// integer above 2^53. So the amount is classified from its JSON text, as
// serde_json does, and written in messages as serde_json writes it.
//
// Build: node plugins/js/sdk/build.mjs plugins/js/account-balance/index.js -o plugins/account-balance-js.wasm

import { Invalid, Output, debugString, jsonType, wrongType } from 'sluice-sdk';
import * as state from 'sluice-sdk/state';

/** 2^53: past it a JSON number is not exact in JavaScript or in an f64. */
const MAX_AMOUNT = 9_007_199_254_740_992;
const U64_MAX = 18_446_744_073_709_551_615n;
const I64_MIN = -9_223_372_036_854_775_808n;
const KINDS = new Set(['CREATED', 'DEPOSITED', 'WITHDRAWN']);
const encoder = new TextEncoder();

export function process(event) {
  const fields = event.json();
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
    throw new Invalid(`account event is not a JSON object, got ${jsonType(fields)}`);
  }
  const accountId = string(fields, 'account_id');
  if (accountId === '') throw new Invalid('field `account_id` is empty');
  if (event.key !== null && !sameBytes(event.key, encoder.encode(accountId))) {
    throw new Invalid(`event key \`${state.escapeAscii(event.key)}\` is not the account_id \`${accountId}\``);
  }
  const kind = string(fields, 'type');
  if (!KINDS.has(kind)) {
    throw new Invalid(`field \`type\` must be CREATED, DEPOSITED or WITHDRAWN, got ${debugString(kind)}`);
  }
  const amount = amountOf(fields, event.valueString());

  const key = `account/${accountId}`;
  const account = stored(key);
  let balance;
  if (kind === 'CREATED') {
    if (account !== undefined) throw new Invalid(`account \`${accountId}\` already exists`);
    balance = amount;
  } else if (account === undefined) {
    throw new Invalid(`account \`${accountId}\` does not exist`);
  } else if (kind === 'DEPOSITED') {
    // Both are at most 2^53, so the difference is exact (a sum may not be).
    if (amount > MAX_AMOUNT - account.balance) {
      throw new Invalid(
        `account \`${accountId}\` has a balance of ${account.balance}, depositing ${amount} takes it above 2^53`,
      );
    }
    balance = account.balance + amount;
  } else {
    if (amount > account.balance) {
      throw new Invalid(`account \`${accountId}\` has a balance of ${account.balance}, cannot withdraw ${amount}`);
    }
    balance = account.balance - amount;
  }
  const version = account === undefined ? 1 : account.version + 1;
  state.setJson(key, { balance, version });
  return [Output.json({ account_id: accountId, balance, version }).withKey(accountId)];
}

/** The account stored under `key`, or undefined; Invalid if it is not one (as the Rust plugin's typed read). */
function stored(key) {
  const account = state.getJson(key);
  if (account === undefined) return undefined;
  for (const field of ['balance', 'version']) {
    const value = account !== null && typeof account === 'object' ? account[field] : undefined;
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new Invalid(`state value of key \`${key}\` is not the expected JSON: \`${field}\` is not a whole number`);
    }
  }
  return account;
}

function string(fields, name) {
  const value = fields[name];
  if (value === undefined) throw new Invalid(`missing field \`${name}\``);
  if (typeof value !== 'string') throw wrongType(name, 'a string', value);
  return value;
}

function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The amount, checked as serde_json's reading of its JSON text would be. */
function amountOf(fields, text) {
  const value = fields.amount;
  if (value === undefined) throw new Invalid('missing field `amount`');
  if (typeof value !== 'number') throw wrongType('amount', 'a number', value);
  const token = rawMember(text, 'amount');
  const number = serdeNumber(token);
  if (typeof number === 'bigint') {
    if (number < 0n) throw new Invalid(`field \`amount\` must not be negative, got ${number}`);
    if (number > BigInt(MAX_AMOUNT)) throw new Invalid(`field \`amount\` must be at most 2^53, got ${number}`);
    return Number(number);
  }
  if (number < 0) throw new Invalid(`field \`amount\` must not be negative, got ${serdeFloat(number)}`);
  throw new Invalid(`field \`amount\` must be a whole number, got ${serdeFloat(number)}`);
}

/** serde_json's number for a JSON number token: a BigInt for an integer in the 64-bit range, else a float. */
export function serdeNumber(token) {
  if (!/[.eE]/.test(token) && token !== '-0') {
    const int = BigInt(token);
    if (int >= I64_MIN && int <= U64_MAX) return int;
  }
  return Number(token);
}

/** A float as serde_json writes it: `2.5`, `1.0`, `1e+16`, `1e-7`, `-0.0`; fixed notation from 1e-5 up to 1e16. */
export function serdeFloat(x) {
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mantissa, exp] = Math.abs(x).toExponential().split('e');
  const digits = mantissa.replace('.', '');
  const e = Number(exp);
  const point = e + 1; // where the decimal point goes in the digits
  let text;
  if (point >= -4 && point <= 16) {
    if (point >= digits.length) text = `${digits}${'0'.repeat(point - digits.length)}.0`;
    else if (point > 0) text = `${digits.slice(0, point)}.${digits.slice(point)}`;
    else text = `0.${'0'.repeat(-point)}${digits}`;
  } else {
    text = `${mantissa}e${e > 0 ? '+' : ''}${e}`;
  }
  return sign + text;
}

/**
 * The JSON text of member `name` of the top-level object in `text` (valid
 * JSON), the last one if repeated as JSON.parse keeps the last; undefined
 * if it is not a number.
 */
export function rawMember(text, name) {
  let depth = 0;
  let expectKey = false;
  let found;
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '"') {
      const start = i++;
      while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      if (depth === 1 && expectKey) {
        expectKey = false;
        const key = JSON.parse(text.slice(start, i));
        while (text[i] !== ':') i++;
        i++;
        while (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r') i++;
        if (key === name) found = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i))?.[0];
      }
      continue;
    }
    if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1 && c === '{';
    } else if (c === '}' || c === ']') {
      depth--;
    } else if (c === ',' && depth === 1) {
      expectKey = true;
    }
    i++;
  }
  return found;
}

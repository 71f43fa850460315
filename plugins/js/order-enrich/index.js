// order-enrich, in JavaScript: adds a customer tier and the amount in cents
// to orders. Same behaviour, per event, as the Rust plugins/order-enrich
// (see README.md here for the contract and the few byte-level differences).
//
// Build: node plugins/js/sdk/build.mjs plugins/js/order-enrich/index.js -o plugins/order-enrich-js.wasm

import { Config, ConfigError, Invalid, Output, formatFloat, formatFloatExp, jsonType, wrongType } from 'sluice-sdk';

/** Past 2^53 a double no longer holds every integer, so cents would be silently wrong. */
const MAX_EXACT_CENTS = 9_007_199_254_740_992;

let silverFrom = 50;
let goldFrom = 100;

export function init(config) {
  const silver = threshold(config, 'silver_from', 50);
  const gold = threshold(config, 'gold_from', 100);
  if (gold < silver) {
    return `config key \`gold_from\` (${formatFloat(gold)}) must not be below \`silver_from\` (${formatFloat(silver)})`;
  }
  silverFrom = silver;
  goldFrom = gold;
}

function threshold(config, key, fallback) {
  const value = Config.number(config, key, fallback);
  if (Number.isFinite(value) && value >= 0) return value;
  throw new ConfigError(`config key \`${key}\`: must be a finite, non-negative number, got ${formatFloat(value)}`);
}

export function process(event) {
  const order = event.json();
  if (order === null || typeof order !== 'object' || Array.isArray(order)) {
    throw new Invalid(`order is not a JSON object, got ${jsonType(order)}`);
  }
  // JSON.parse makes only own, data properties, and none of these names is
  // on Object.prototype, so `undefined` means "missing".
  const orderId = order.order_id;
  if (typeof orderId !== 'string') {
    if (orderId === undefined) throw new Invalid('missing field `order_id`');
    throw wrongType('order_id', 'a string', orderId);
  }
  const amount = order.amount;
  if (typeof amount !== 'number') {
    if (amount === undefined) throw new Invalid('missing field `amount`');
    throw wrongType('amount', 'a number', amount);
  }
  if (amount < 0) {
    throw new Invalid(`field \`amount\` must not be negative, got ${formatFloat(amount)}`);
  }
  // amount >= 0 (or -0), where Math.round (half up) is Rust's f64::round
  // (half away from zero).
  const cents = Math.round(amount * 100);
  if (cents > MAX_EXACT_CENTS) {
    throw new Invalid(`field \`amount\` is too large for exact cents, got ${formatFloatExp(amount)}`);
  }

  order.tier = amount < silverFrom ? 'bronze' : amount < goldFrom ? 'silver' : 'gold';
  order.amount_cents = cents;

  // Top-level keys sorted, as the Rust plugin writes them. A null-prototype
  // object keeps a `__proto__` key an ordinary key.
  const keys = Object.keys(order).sort();
  const sorted = Object.create(null);
  for (let i = 0; i < keys.length; i++) sorted[keys[i]] = order[keys[i]];
  return [Output.json(sorted)];
}

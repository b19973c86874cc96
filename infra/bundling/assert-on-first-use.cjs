// Stands in for `assert` where a dependency requires it, in the Lambda bundles: Node's module is
// loaded on the first call or property read, not at import. redis-errors (under ioredis) requires
// assert as it is imported, only to check the arguments of a parser error, which a healthy
// connection never builds; loading assert, with its diff and message formatting, cost about
// 0.6 ms of every cold start. Behaviour is Node's own: every call and property goes to it.
'use strict';

let assertModule;
const load = () => (assertModule ??= require('node:assert'));

function assertOnFirstUse(...args) {
  return load()(...args);
}

module.exports = new Proxy(assertOnFirstUse, {
  get: (_target, property) => load()[property],
  has: (_target, property) => property in load(),
});

// Stands in for the `debug` package in the Lambda bundles: every namespace off, always.
// ioredis traces through `debug`, and DEBUG=ioredis:* would print each command with its
// arguments: AUTH with the Redis password, session digests, cached answers. A function's logs
// must never hold those, whatever its environment says; and the real package, with its
// terminal-colour detection, costs about 10 KB of every bundle. The operator tools and the tests
// run from source with the real package: there DEBUG=ioredis:* traces every command, AUTH's
// password included (docs/operations.md warns).
'use strict';

function createDebug(namespace) {
  const debug = () => {};
  debug.namespace = namespace;
  debug.enabled = false;
  debug.log = () => {};
  debug.destroy = () => true;
  debug.extend = (suffix, delimiter = ':') => createDebug(`${namespace}${delimiter}${suffix}`);
  return debug;
}

createDebug.enabled = () => false;
createDebug.enable = () => {};
createDebug.disable = () => '';
createDebug.default = createDebug;
module.exports = createDebug;

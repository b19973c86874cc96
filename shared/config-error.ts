// The error of a configuration that cannot work (a missing or malformed variable, a secret of the
// wrong form): a module of its own so that modules config.ts imports can throw it too without an
// import cycle. Everything else imports it from config.ts.

export class ConfigError extends Error {
  override name = 'ConfigError';
}

// Before any test: the real servers the tests start must be installable here.

import { ensureRedisInstalled } from '../infra/local/redis-server.ts';

export default function setup(): void {
  ensureRedisInstalled();
}

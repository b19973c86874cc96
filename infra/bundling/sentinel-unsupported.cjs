// Stands in for ioredis's Redis Sentinel connector in the Lambda bundles (plugin
// ioredis-without-sentinel in plugins.cjs). The functions reach Redis through REDIS_URL: one
// server or a cluster (local, Redis Cloud, Upstash, ElastiCache), never a Sentinel group, yet
// ioredis's index pulls the connector into every bundle (about 7 KB). Asking for Sentinel anyway
// fails at once, saying so, rather than with an obscure error from a missing module.
'use strict';

class SentinelUnsupported {
  constructor() {
    throw new Error('Redis Sentinel is not supported by these functions: REDIS_URL names one Redis server or, with REDIS_CLUSTER=true, a cluster');
  }
}

Object.defineProperty(exports, '__esModule', { value: true });
exports.default = SentinelUnsupported;
exports.SentinelIterator = SentinelUnsupported;

// What the ends of a migration say after the copy that the copy itself could not see: keys the
// target dropped (evictions) or lost (a restart), masters that changed (a failover), and a source
// whose slots moved while it was read (a resharding).

import { runIdsKnown, type MigrationEnd } from './migration-ends.ts';
import { describeMovingSlots, evictedKeys, movingSlots, type NodeInfo } from './server-info.ts';

/**
 * The sentence for keys the target may have lost since it was opened, if any. A target whose
 * memory is full and whose policy evicts accepts every write and drops keys to make room, copied
 * ones included; a target that restarted (a node with a new run_id at its address) lost what it
 * held only in memory. Every RESTORE succeeded, yet keys are missing.
 */
export function keysLostDuringCopy(target: MigrationEnd, nodesAfter: readonly NodeInfo[]): string | undefined {
  const runIdBefore = new Map(target.nodes.map((node) => [node.address, node.info.get('run_id')]));
  const restarted = nodesAfter.filter((node) => {
    const before = runIdBefore.get(node.address);
    const now = node.info.get('run_id');
    return before !== undefined && now !== undefined && before !== now;
  }).length;
  if (restarted > 0) {
    const which = restarted === 1 ? 'a node of the target has' : `${restarted} nodes of the target have`;
    return `The target restarted during the copy (${which} a new run_id): keys copied before may be lost; run the same command again (it overwrites), then --verify.`;
  }
  const evicted = evictedKeys(nodesAfter) - evictedKeys(target.nodes);
  if (evicted <= 0) return undefined;
  const policy = [...new Set(target.nodes.map((node) => node.info.get('maxmemory_policy') ?? '?'))].join('/');
  return `The target evicted ${evicted} keys during the copy (maxmemory full, maxmemory-policy ${policy}): raise its maxmemory, or copy fewer keys with --match, then run again.`;
}

/**
 * Whether an end's masters are other nodes than when it was opened: a failover (which, on the
 * target, may lose what the old master had not passed on) or a resharding (which loses nothing),
 * told apart only by comparing the data.
 */
export function mastersChanged(end: MigrationEnd, nodesAfter: readonly NodeInfo[]): boolean {
  const before = new Set(end.nodes.map((node) => node.address));
  const after = new Set(nodesAfter.map((node) => node.address));
  return before.size !== after.size || [...after].some((address) => !before.has(address));
}

/**
 * The sentence for a source whose keys may have moved while it was read, if they may have: slots
 * on the move when the copy started or ended (a resharding), other masters at the end (a failover,
 * or a resharding onto a new node), or slots served by other masters. The copy reads each master
 * in turn, so a key that moved from a master not read yet to one read already was not copied.
 */
export function sourceSlotsMoved(source: MigrationEnd, nodesAfter: readonly NodeInfo[]): string | undefined {
  const moving = movingSlots([...source.nodes, ...nodesAfter]);
  const slotMap = (nodes: readonly NodeInfo[]) => nodes.map((node) => `${node.address} ${node.slots?.served}`).sort().join('\n');
  let what: string;
  if (moving.length > 0) what = `a resharding: ${describeMovingSlots(moving)}`;
  else if (mastersChanged(source, nodesAfter)) what = 'its masters changed: a failover or a resharding';
  else if (slotMap(source.nodes) !== slotMap(nodesAfter)) what = 'a resharding: slots moved between masters';
  else return undefined;
  return `The source's slots moved during the copy (${what}): a key that moved while the copy ran may not have been copied; copy again once they stay put, then --verify.`;
}

/** Whether INFO shows the target's evictions and restarts (refused or hidden by some managed services). */
export function lossesVisible(target: MigrationEnd): boolean {
  return runIdsKnown(target) && target.nodes.every((node) => node.info.has('evicted_keys'));
}

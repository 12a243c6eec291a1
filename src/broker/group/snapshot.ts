/**
 * The group snapshot: like Kafka, which keeps group metadata in __consumer_offsets, every
 * Stable group is written to one JSON file so that after a broker restart its members keep
 * heartbeating and committing in their generation instead of rejoining. Buffers (protocol
 * metadata, assignments) are stored as base64.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../../config/logger.js';
import type { Group, Member } from './model.js';

interface SavedGroup {
  groupId: string;
  generationId: number;
  protocolType: string;
  protocolName: string;
  leaderId: string;
  members: Array<
    Omit<Member, 'protocols' | 'assignment' | 'lastHeartbeat' | 'restored' | 'pendingJoin' | 'pendingSync'> & {
      protocols: Array<{ name: string; metadata: string }>;
      assignment: string;
    }
  >;
}

/**
 * Reads the snapshot at `path` back as Stable groups whose members count as restored (not
 * heard from since the restart) with a fresh session timeout. A missing file is no groups;
 * an unreadable one is logged and ignored (its members rejoin).
 */
export function loadGroups(path: string, logger: Logger): Group[] {
  let saved: SavedGroup[];
  try {
    saved = JSON.parse(readFileSync(path, 'utf8')) as SavedGroup[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ err, path }, 'ignoring unreadable group snapshot; members will rejoin');
    return [];
  }
  const now = Date.now();
  const groups = saved.map((g): Group => {
    const members = new Map<string, Member>();
    for (const m of g.members) {
      members.set(m.memberId, {
        ...m,
        protocols: m.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata, 'base64') })),
        assignment: Buffer.from(m.assignment, 'base64'),
        lastHeartbeat: now,
        restored: true,
        pendingJoin: undefined,
        pendingSync: undefined,
      });
    }
    return {
      groupId: g.groupId,
      state: 'Stable',
      generationId: g.generationId,
      protocolType: g.protocolType,
      protocolName: g.protocolName,
      leaderId: g.leaderId,
      members,
      rebalanceDeadline: 0,
    };
  });
  if (groups.length > 0) logger.info({ groups: groups.length }, 'restored stable consumer groups');
  return groups;
}

/** Writes every Stable group to `path` (temp file + rename, so a crash leaves the old or the new snapshot). */
export function saveGroups(path: string, groups: Iterable<Group>, logger: Logger): void {
  const stable: SavedGroup[] = [];
  for (const g of groups) {
    if (g.state !== 'Stable') continue;
    stable.push({
      groupId: g.groupId,
      generationId: g.generationId,
      protocolType: g.protocolType,
      protocolName: g.protocolName,
      leaderId: g.leaderId,
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        clientHost: m.clientHost,
        sessionTimeoutMs: m.sessionTimeoutMs,
        rebalanceTimeoutMs: m.rebalanceTimeoutMs,
        protocols: m.protocols.map((p) => ({ name: p.name, metadata: p.metadata.toString('base64') })),
        assignment: m.assignment.toString('base64'),
      })),
    });
  }
  try {
    writeFileSync(`${path}.tmp`, JSON.stringify(stable));
    renameSync(`${path}.tmp`, path);
  } catch (err) {
    logger.error({ err, path }, 'could not save the group snapshot; members will rejoin after a restart');
  }
}
